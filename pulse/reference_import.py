"""``pulse reference import``: the province's reference catalogue from the files an IT centre has.

    pulse reference import units.csv thu-tuc.xlsx --communes-of 42 --province 42 [--dry-run]

Reads CSV and XLSX exports with the column names of the national procedure database (Mã thủ
tục / MaTTHC, Tên thủ tục, Lĩnh vực, Cấp thực hiện, Thời hạn giải quyết, Mức độ DVC ...) and
of DVCQG's agency lists (Mã định danh / MaDinhDanh per Decision 20/2020/QĐ-TTg, Tên đơn vị
...), with or without diacritics, and this package's own CSV layout (schemas/reference/).
Each file (each XLSX sheet) is recognised by its header row, which may sit below title rows.
``--communes-of`` adds the communes of one of the 34 provinces from the ``vietnam-provinces``
package as unit rows. docs/REFERENCE.md lists every column and value form accepted.

A table the files provide replaces that table of the catalogue in force; a table they do
not provide is kept. Everything is validated first: any error (named by file and row) means
exit 1 and nothing written. Otherwise a new catalogue version goes to ClickHouse (ref_*
tables, then its ref_catalogue row: sinks.reference.write_catalogue) and to the compacted
``reference-catalogue`` topic; running workers pick it up without a restart
(streams.catalogue), and ``python -m expectations.redrive --unknown-codes`` re-publishes the
events dead-lettered only for codes the catalogue now knows.
"""
from __future__ import annotations

import argparse
import csv
import math
import re
import sys
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable, Iterator

from schemas.contracts import CODE_PATTERN
from schemas.reference import Procedure, ProcedureField, Reference, Unit, problems_of

HEADER_SCAN_ROWS = 15            # exports put a title and a date above the header row
DEFAULT_COMMUNE_CODE = "000.{n:02d}.50.H{province:02d}"   # the bundled set's convention (schemas/reference/README.md)
_CODE_RE = re.compile(CODE_PATTERN)
# the local form of a procedure code, MaTTHC + the province's agency code (e.g. a portal's
# MaTTHCDP=2.000815.000.00.00.H55): events carry the national MaTTHC, so the suffix goes
_LOCAL_PROCEDURE_RE = re.compile(r"^(\d\.\d{6})\.\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2,3}$")


def fold(text: Any) -> str:
    """Lower case without diacritics (đ -> d), for matching headers and values."""
    s = unicodedata.normalize("NFD", str(text or "")).replace("đ", "d").replace("Đ", "d")
    return "".join(c for c in s if not unicodedata.combining(c)).lower().strip()


def header_key(text: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", fold(text))


def _aliases(*names: str) -> set[str]:
    return {header_key(n) for n in names}


# canonical column -> accepted headers (compared by header_key: case, spaces, diacritics ignored)
UNIT_COLUMNS: dict[str, set[str]] = {
    "code": _aliases("unit_code", "Mã định danh", "Mã định danh điện tử", "MaDinhDanh", "MaDinhDanhCap1",
                     "MaDinhDanhCap2", "MaDinhDanhCap3", "Mã đơn vị", "MaDonVi", "DonViXuLy", "Mã cơ quan",
                     "MaCoQuan", "MaCoQuanThucHien", "Mã DVCQG"),
    "name": _aliases("unit_name", "Tên đơn vị", "TenDonVi", "Tên cơ quan", "TenCoQuan", "Tên cơ quan, đơn vị"),
    "name_en": _aliases("name_en", "Tên tiếng Anh", "TenTiengAnh"),
    "kind": _aliases("kind", "unit_kind", "Loại đơn vị", "LoaiDonVi", "Loại", "Cấp", "Cấp đơn vị"),
    "parent_code": _aliases("parent_code", "Mã đơn vị cha", "MaDonViCha", "Mã cơ quan cấp trên", "MaCoQuanCha",
                            "Mã cấp trên", "MaCapTren", "Đơn vị cha"),
    "former_district": _aliases("former_district", "Huyện cũ"),
    "gso_code": _aliases("gso_code", "Mã ĐVHC", "MaDVHC", "Mã đơn vị hành chính", "MaDonViHanhChinh", "Mã xã",
                         "MaXa", "Mã hành chính"),
}
PROCEDURE_COLUMNS: dict[str, set[str]] = {
    "code": _aliases("procedure_code", "Mã thủ tục", "MaThuTuc", "Mã TTHC", "MaTTHC", "Mã số TTHC",
                     "Mã thủ tục hành chính", "MaTTHCDP"),
    "name": _aliases("procedure_name", "Tên thủ tục", "TenThuTuc", "Tên TTHC", "TenTTHC", "Tên thủ tục hành chính"),
    "field_code": _aliases("field_code", "Mã lĩnh vực", "MaLinhVuc"),
    "field_name": _aliases("field_name", "Lĩnh vực", "LinhVuc", "Tên lĩnh vực", "TenLinhVuc"),
    "level": _aliases("level", "Cấp thực hiện", "CapThucHien", "Cấp"),
    "legal_working_days": _aliases("legal_working_days", "Thời hạn giải quyết", "ThoiHanGiaiQuyet",
                                   "Thời gian giải quyết", "ThoiGianGiaiQuyet", "Thời hạn"),
    "online": _aliases("online", "Mức độ", "MucDo", "Mức độ DVC", "MucDoDVC", "Mức độ DVCTT", "Mức độ dịch vụ công",
                       "Dịch vụ công trực tuyến", "DVC trực tuyến", "Loại DVC", "DVCTT"),
    "agency": _aliases("Cơ quan thực hiện", "CoQuanThucHien", "Đơn vị thực hiện", "Cơ quan giải quyết"),
}
FIELD_COLUMNS: dict[str, set[str]] = {
    "code": _aliases("field_code", "Mã lĩnh vực", "MaLinhVuc"),
    "name": _aliases("field_name", "Tên lĩnh vực", "TenLinhVuc", "Lĩnh vực", "LinhVuc"),
    "name_en": _aliases("name_en", "Tên tiếng Anh"),
    "department_code": _aliases("department_code", "Mã cơ quan", "MaCoQuan", "Cơ quan thực hiện", "Mã đơn vị"),
}
TABLE_COLUMNS = {"units": UNIT_COLUMNS, "procedures": PROCEDURE_COLUMNS, "fields": FIELD_COLUMNS}
# this package's own CSV layout: "code"/"name" mean the table the file name says
_GENERIC = {"code", "name"}
_STEM_HINTS = {"units": ("unit", "donvi", "coquan"), "procedures": ("procedure", "thutuc", "tthc"),
               "fields": ("field", "linhvuc")}


@dataclass(frozen=True)
class Problem:
    where: str          # "path:row" (XLSX: "path[sheet]:row"), or "path" / "catalogue"
    reason: str

    def __str__(self) -> str:
        return f"{self.where}: {self.reason}"


@dataclass
class Sheet:
    """One table read from a file (or one XLSX sheet): its rows by canonical column."""
    source: str                                   # path (and [sheet])
    table: str                                    # units | procedures | fields
    rows: list[tuple[int, dict[str, Any]]]        # (row number as the spreadsheet shows it, values)


@dataclass
class Diff:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: bool = False                            # not in this import: the catalogue's table stays

    def line(self, table: str, now: int) -> str:
        if self.kept:
            return f"  {table:<11} unchanged (not in these files), {now} in force"
        return (f"  {table:<11} +{len(self.added)} added, ~{len(self.changed)} changed, "
                f"-{len(self.removed)} removed, {now} in force")


@dataclass
class ImportResult:
    reference: Reference | None
    errors: list[Problem]
    warnings: list[Problem]
    diffs: dict[str, Diff]
    sheets: list[Sheet]
    province_code: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors and self.reference is not None

    def report(self) -> list[str]:
        out = [f"read {len(self.sheets)} table(s): " + ", ".join(f"{s.source} ({s.table}, {len(s.rows)} rows)"
                                                                 for s in self.sheets)]
        if self.reference is not None:
            p = next((u for u in self.reference.units.values() if u.kind == "province"), None)
            if p is not None:
                out.append(f"province: {p.name} ({p.code})")
            sizes = {"units": len(self.reference.units), "procedures": len(self.reference.procedures),
                     "fields": len(self.reference.fields)}
            out += [d.line(t, sizes[t]) for t, d in self.diffs.items()]
        for w in self.warnings:
            out.append(f"warning: {w}")
        if self.errors:
            out.append(f"{len(self.errors)} error(s); nothing written:")
            out += [f"  {e}" for e in self.errors]
        return out


# --- reading files ------------------------------------------------------------------------

def _classify(keys: list[str], stem: str) -> str | None:
    have = set(keys)
    if "code" in have:   # this package's own layout: the file name says which table
        s = header_key(stem)
        for table, hints in _STEM_HINTS.items():
            if any(h in s for h in hints):
                return table
    specific = {t: {k for k in (cols["code"] - _GENERIC) if k in have} for t, cols in TABLE_COLUMNS.items()}
    if specific["procedures"]:
        return "procedures"
    if specific["units"]:
        return "units"
    if specific["fields"]:
        return "fields"
    return None


def _columns(keys: list[str], table: str) -> dict[int, str]:
    """Header position -> canonical column (the first header that names it wins)."""
    out: dict[int, str] = {}
    taken: set[str] = set()
    for i, k in enumerate(keys):
        for canon, aliases in TABLE_COLUMNS[table].items():
            if (k in aliases or k == header_key(canon)) and canon not in taken:
                out[i] = canon
                taken.add(canon)
                break
    return out


def _table_of(rows: Iterable[tuple[int, list[Any]]], source: str, stem: str) -> Sheet | Problem:
    it = iter(rows)
    for rownum, cells in it:
        if rownum > HEADER_SCAN_ROWS:
            break
        keys = [header_key(c) for c in cells]
        table = _classify(keys, stem)
        if table is None:
            continue
        cols = _columns(keys, table)
        if "code" not in cols.values():
            continue
        body = []
        for n, values in it:
            row = {canon: values[i] for i, canon in cols.items() if i < len(values)}
            if all(v is None or str(v).strip() == "" for v in row.values()):
                continue
            body.append((n, row))
        return Sheet(source, table, body)
    return Problem(source, "no header row with a known code column in its first "
                           f"{HEADER_SCAN_ROWS} rows (e.g. 'Mã thủ tục', 'Mã định danh', 'Mã lĩnh vực')")


def _csv_rows(path: Path) -> Iterator[tuple[int, list[Any]]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        sample = f.read(4096)
        f.seek(0)
        try:
            dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        reader = csv.reader(f, dialect)
        for cells in reader:
            yield reader.line_num, cells


def read_file(path: Path) -> list[Sheet | Problem]:
    """The tables of one CSV or XLSX file (an XLSX: every sheet with a header row)."""
    suffix = path.suffix.lower()
    if not path.exists():
        return [Problem(str(path), "no such file")]
    if suffix in (".csv", ".txt"):
        try:
            return [_table_of(_csv_rows(path), str(path), path.stem)]
        except UnicodeDecodeError as e:
            return [Problem(str(path), f"not UTF-8 text ({e.reason} at byte {e.start}); save the export as CSV UTF-8")]
    if suffix in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook  # type: ignore[import-untyped]
        try:
            wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as e:  # noqa: BLE001 - a broken or mislabelled file: say so, name it
            return [Problem(str(path), f"not a readable XLSX workbook ({e})")]
        try:
            out: list[Sheet | Problem] = []
            for ws in wb.worksheets:
                rows = ((i, list(r)) for i, r in enumerate(ws.iter_rows(values_only=True), start=1))
                got = _table_of(rows, f"{path}[{ws.title}]", path.stem)
                if isinstance(got, Sheet) or len(wb.worksheets) == 1:
                    out.append(got)
            return out or [Problem(str(path), "no sheet with a header row")]
        finally:
            wb.close()
    return [Problem(str(path), f"unsupported file type {suffix!r}: CSV (UTF-8) or XLSX")]


# --- values -------------------------------------------------------------------------------

def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return unicodedata.normalize("NFC", str(v)).strip()


def procedure_code(v: Any) -> str:
    """MaTTHC as text: a spreadsheet may hold 1.001190 as the number 1.00119; a local code
    (MaTTHC.000.00.00.Hxx) is cut to the national MaTTHC the events carry."""
    if isinstance(v, float):
        return f"{v:.6f}"
    s = _text(v)
    m = _LOCAL_PROCEDURE_RE.match(s)
    return m.group(1) if m else s


_NUMBER = r"(\d+(?:[.,]\d+)?)"


def parse_duration(v: Any) -> tuple[float | None, str | None]:
    """(working days, note) from a legal resolution time: a number, "15 ngày làm việc",
    "Trong ngày", "04 giờ làm việc", "30 ngày" (calendar days: ×5/7, noted), "01 tháng"
    (22 working days, noted). (None, reason) when nothing can be read."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v), None
    s = fold(v)
    if not s:
        return None, "no resolution time"
    m = re.search(_NUMBER + r"\s*(ngay lam viec|ngay|gio lam viec|gio|thang|tuan)?", s)
    if m is None:
        if "trong ngay" in s or "ngay khi" in s or "ngay sau khi" in s:
            return 0.5, None                      # "within the day" / "immediately": the same day
        return None, f"unreadable resolution time {str(v)[:60]!r}"
    n = float(m.group(1).replace(",", "."))
    unit = m.group(2) or ("ngay lam viec" if re.fullmatch(_NUMBER, s) else None)
    if unit is None:
        return None, f"resolution time {str(v)[:60]!r} has no unit (ngày làm việc, ngày, giờ, tháng)"
    if unit == "ngay lam viec":
        return n, None
    if unit.startswith("gio"):
        return max(0.5, round(n / 8, 2)), None    # a working day has 8 hours
    if unit == "ngay":
        return float(math.ceil(n * 5 / 7)), f"{n:g} calendar days read as {math.ceil(n * 5 / 7)} working days"
    if unit == "tuan":
        return n * 5, None
    return n * 22, f"{n:g} month(s) read as {n * 22:g} working days"


def parse_level(v: Any) -> tuple[str | None, str | None]:
    """'province' | 'commune' from Cấp thực hiện (or this package's own values)."""
    s = fold(v)
    if s in ("province", "commune"):
        return s, None
    if not s:
        return None, "no level (Cấp thực hiện: Cấp tỉnh / Cấp xã)"
    if "xa" in re.split(r"[^a-z]+", s) or "phuong" in s or "dac khu" in s:
        return "commune", None
    if "tinh" in s or "thanh pho truc thuoc" in s:
        return "province", None
    if "huyen" in s:
        return None, f"level {str(v)!r}: there is no district level since 1 July 2025 (two-tier local government)"
    return None, f"unknown level {str(v)!r} (Cấp tỉnh / Cấp xã)"


def parse_online(v: Any) -> tuple[str | None, str | None]:
    """'full' | 'partial' | 'none' from Mức độ DVC: 4 / toàn trình, 3 / một phần, 1-2 /
    information only; empty = no online service."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = str(int(v)) if float(v).is_integer() else str(v)
    s = fold(v)
    if s in ("full", "partial", "none"):
        return s, None
    if not s or s in ("khong", "-", "cung cap thong tin", "thong tin truc tuyen"):
        return "none", None
    if "toan trinh" in s:
        return "full", None
    if "mot phan" in s:
        return "partial", None
    m = re.fullmatch(r"(?:muc do|muc|md)?\s*(\d+(?:[.,]\d+)?)", s)
    if m:
        n = float(m.group(1).replace(",", "."))
        if n in (1.0, 2.0):
            return "none", None
        if n == 3.0:
            return "partial", None
        if n == 4.0:
            return "full", None
        return None, f"online level {str(v)!r} outside 1-4"
    return None, f"unknown online level {str(v)!r} (Mức độ 1-4, toàn trình, một phần)"


def parse_kind(v: Any, name: str) -> tuple[str | None, str | None]:
    """A unit's kind from its kind column, else from its name's first words."""
    s = fold(v)
    if s in ("province", "department", "commune"):
        return s, None
    if s:
        if s in ("tinh", "cap tinh", "ubnd tinh", "thanh pho"):
            return "province", None
        if s in ("so", "ban", "nganh", "so nganh", "co quan chuyen mon", "department"):
            return "department", None
        if s in ("xa", "phuong", "dac khu", "cap xa", "ubnd xa"):
            return "commune", None
        return None, f"unknown unit kind {str(v)!r} (tỉnh / sở / xã)"
    n = fold(name)
    n = re.sub(r"^(uy ban nhan dan|ubnd)\s+", "ubnd ", n)
    if re.match(r"^ubnd (tinh|thanh pho)\b", n):
        return "province", None
    if re.match(r"^(ubnd )?(xa|phuong|dac khu)\b", n):
        return "commune", None
    return "department", None


# --- communes from vietnam-provinces ------------------------------------------------------

def find_province(key: str):
    """A vietnam_provinces.Province by GSO code (42) or name (Hà Tĩnh, ha tinh); None if unknown."""
    from vietnam_provinces import Province
    k = str(key).strip()
    for p in Province.iter_all():
        if k.isdigit() and int(k) == p.code.value:
            return p
        if header_key(k) in (header_key(p.name), header_key(re.sub(r"^(Thành phố|Tỉnh)\s+", "", p.name))):
            return p
    return None


_WARD_EN = {"phường": "Ward", "xã": "Commune", "đặc khu": "Special Zone"}


def communes_of(province_key: str, province_unit: str, template: str = DEFAULT_COMMUNE_CODE) -> list[Unit]:
    """The province's communes and wards (2025) as commune units under ``province_unit``;
    codes from ``template`` ({n}: 1-based in GSO-code order, {gso}: the ward's GSO code,
    {province}: the province's GSO code)."""
    from vietnam_provinces import Ward
    p = find_province(province_key)
    if p is None:
        raise ValueError(f"--communes-of {province_key!r}: not one of the 34 provinces of vietnam-provinces")
    out = []
    for n, w in enumerate(sorted(Ward.iter_by_province(p.code), key=lambda w: w.code.value), start=1):
        code = template.format(n=n, gso=f"{w.code.value:05d}", province=p.code.value)
        kind = fold(w.division_type.value)
        bare = re.sub(r"^(Phường|Xã|Đặc khu)\s+", "", w.name)
        en = fold(bare).title() + " " + next((v for k, v in _WARD_EN.items() if fold(k) == kind), "Commune")
        out.append(Unit(code, w.name, en, "commune", province_unit, "", f"{w.code.value:05d}"))
    return out


# --- building the catalogue ---------------------------------------------------------------

def _check_code(code: str, where: str, what: str, errors: list[Problem]) -> bool:
    if not code:
        errors.append(Problem(where, f"{what} has no code"))
        return False
    if not _CODE_RE.match(code):
        errors.append(Problem(where, f"{what} code {code!r} is not a code the event contract accepts "
                                     "(letters, digits, . _ / -; at most 64)"))
        return False
    return True


def _first_seen(seen: dict[str, str], code: str, where: str, what: str, errors: list[Problem]) -> bool:
    if code in seen:
        errors.append(Problem(where, f"duplicate {what} code {code} (first at {seen[code]})"))
        return False
    seen[code] = where
    return True


def build(sheets: list[Sheet], current: Reference, *, communes: list[Unit] | None = None,
          province_code: str = "") -> tuple[Reference | None, list[Problem], list[Problem]]:
    """The new catalogue from the tables read (+ communes), on top of ``current`` for the
    tables not provided; (reference or None, errors, warnings)."""
    errors: list[Problem] = []
    warnings: list[Problem] = []
    by_table = {t: [s for s in sheets if s.table == t] for t in TABLE_COLUMNS}

    # units
    units: dict[str, Unit] | None = None
    unit_rows: list[tuple[str, dict]] = []
    if by_table["units"] or communes:
        # communes alone (no units file) replace the communes and keep the other units
        units = {} if by_table["units"] else {c: u for c, u in current.units.items() if u.kind != "commune"}
        seen: dict[str, str] = {}
        for s in by_table["units"]:
            for n, r in s.rows:
                where = f"{s.source}:{n}"
                code, name = _text(r.get("code")), _text(r.get("name"))
                if not _check_code(code, where, "unit", errors) or not _first_seen(seen, code, where, "unit", errors):
                    continue
                if not name:
                    errors.append(Problem(where, f"unit {code} has no name (Tên đơn vị)"))
                    continue
                kind, why = parse_kind(r.get("kind"), name)
                if kind is None:
                    errors.append(Problem(where, f"unit {code}: {why}"))
                    continue
                gso = _text(r.get("gso_code"))
                units[code] = Unit(code, name, _text(r.get("name_en")), kind,  # type: ignore[arg-type]
                                   _text(r.get("parent_code")) or None, _text(r.get("former_district")),
                                   gso.zfill(5) if gso.isdigit() and kind == "commune" else gso)
                unit_rows.append((where, r))
        provinces = [u for u in units.values() if u.kind == "province"]
        top = provinces[0].code if len(provinces) == 1 else None
        if top is not None:
            if province_code and provinces[0].gso_code and provinces[0].gso_code != province_code:
                errors.append(Problem("catalogue", f"--province {province_code}: the files' province "
                                                   f"{provinces[0].name} has GSO code {provinces[0].gso_code}"))
            if province_code and not provinces[0].gso_code:
                units[top] = replace(provinces[0], gso_code=province_code)
            for code, u in list(units.items()):     # a unit without a parent is the province's
                if u.kind != "province" and not u.parent_code:
                    units[code] = replace(u, parent_code=top)
        # communes from the package; a units-file commune with the same GSO code wins (its code)
        by_gso = {u.gso_code: u for u in units.values() if u.kind == "commune" and u.gso_code}
        known = {u.gso_code: u for u in current.units.values() if u.kind == "commune" and u.gso_code}
        for c in communes or []:
            mine = by_gso.get(c.gso_code)
            if mine is not None:
                continue
            old = known.get(c.gso_code)
            if old is not None:   # what the package lacks (English name, former district) stays
                c = replace(c, name_en=old.name_en or c.name_en, former_district=old.former_district)
            if c.code in units:
                errors.append(Problem("--communes-of", f"commune {c.name}: generated code {c.code} is already "
                                                       f"the unit {units[c.code].name}"))
                continue
            units[c.code] = replace(c, parent_code=top or c.parent_code)
        for where, r in unit_rows:
            code = _text(r.get("code"))
            found = units.get(code)
            if found is not None and found.parent_code and found.parent_code not in units:
                errors.append(Problem(where, f"unit {code}: unknown parent unit {found.parent_code}"))

    # fields: a fields file, else the procedures' field columns
    fields: dict[str, ProcedureField] | None = None
    if by_table["fields"]:
        fields = {}
        seen = {}
        for s in by_table["fields"]:
            for n, r in s.rows:
                where = f"{s.source}:{n}"
                code, name = _text(r.get("code")), _text(r.get("name"))
                if not _check_code(code, where, "field", errors) or not _first_seen(seen, code, where, "field", errors):
                    continue
                if not name:
                    errors.append(Problem(where, f"field {code} has no name (Tên lĩnh vực)"))
                    continue
                fields[code] = ProcedureField(code, name, _text(r.get("name_en")), _text(r.get("department_code")))

    # procedures
    procedures: dict[str, Procedure] | None = None
    derived: dict[str, tuple[str, str]] = {}        # field code -> (name, where) from procedure rows
    agencies: dict[str, list[str]] = {}             # field code -> the procedures' Cơ quan thực hiện
    proc_where: dict[str, str] = {}
    if by_table["procedures"]:
        procedures = {}
        for s in by_table["procedures"]:
            for n, r in s.rows:
                where = f"{s.source}:{n}"
                code, name = procedure_code(r.get("code")), _text(r.get("name"))
                if not _check_code(code, where, "procedure", errors):
                    continue
                if not _first_seen(proc_where, code, where, "procedure", errors):
                    continue
                bad = []
                if not name:
                    bad.append("no name (Tên thủ tục)")
                field_code = _text(r.get("field_code"))
                field_name = _text(r.get("field_name"))
                if not field_code:
                    bad.append("no field code (Mã lĩnh vực)")
                elif not _CODE_RE.match(field_code):
                    bad.append(f"field code {field_code!r} is not a code")
                level, why_level = parse_level(r.get("level"))
                if level is None:
                    bad.append(why_level or "no level")
                days, why_days = parse_duration(r.get("legal_working_days"))
                if days is None:
                    bad.append(why_days or "no resolution time")
                elif days <= 0:
                    bad.append(f"resolution time {r.get('legal_working_days')!r} is not positive")
                elif why_days:
                    warnings.append(Problem(where, f"procedure {code}: {why_days}"))
                online, why_online = parse_online(r.get("online"))
                if online is None:
                    bad.append(why_online or "no online level")
                if bad:
                    errors.append(Problem(where, f"procedure {code}: " + "; ".join(bad)))
                    continue
                assert level is not None and days is not None and online is not None
                procedures[code] = Procedure(code, name, field_code, level, days, online)  # type: ignore[arg-type]
                if field_name:
                    had = derived.setdefault(field_code, (field_name, where))
                    if fold(had[0]) != fold(field_name):
                        warnings.append(Problem(where, f"field {field_code} named {field_name!r} here, "
                                                       f"{had[0]!r} at {had[1]}: the first is kept"))
                agency = _text(r.get("agency"))
                if agency:
                    agencies.setdefault(field_code, []).append(agency)
        if fields is None and derived:
            # the procedures name their fields: that is the fields table (kept names/departments
            # of fields the current catalogue has are overlaid by what the files say)
            fields = {}
            for code, (name, _) in derived.items():
                had_field = current.fields.get(code)
                fields[code] = ProcedureField(code, name, had_field.name_en if had_field else "",
                                              had_field.department_code if had_field else "")

    new_units = units if units is not None else dict(current.units)
    new_fields = fields if fields is not None else dict(current.fields)
    new_procs = procedures if procedures is not None else dict(current.procedures)

    # a field's department: the department its procedures name (Cơ quan thực hiện), by code or name
    by_name = {fold(u.name): u.code for u in new_units.values() if u.kind == "department"}
    for code, names in agencies.items():
        f = new_fields.get(code)
        if f is None or (f.department_code and f.department_code in new_units):
            continue
        hits = [c for c in (a if a in new_units else by_name.get(fold(a)) for a in names) if c]
        if hits:
            new_fields[code] = replace(f, department_code=max(set(hits), key=hits.count))

    for code, p in new_procs.items():
        if p.field_code not in new_fields:
            errors.append(Problem(proc_where.get(code, "catalogue"), f"procedure {code}: unknown field code "
                                                                     f"{p.field_code} (not in the fields)"))
    for f in new_fields.values():
        if f.department_code and f.department_code not in new_units:
            if fields is not None and units is not None:
                errors.append(Problem("catalogue", f"field {f.code}: unknown department {f.department_code}"))
            else:   # a kept field pointing at a replaced unit list: no department rather than a wrong one
                new_fields[f.code] = replace(f, department_code="")
    if errors:
        return None, errors, warnings
    ref = Reference(new_units, new_procs, new_fields)
    for problem in problems_of(ref):
        errors.append(Problem("catalogue", problem))
    return (None if errors else ref), errors, warnings


def diff(old: Reference, new: Reference, provided: set[str]) -> dict[str, Diff]:
    out = {}
    for table in ("units", "procedures", "fields"):
        a, b = getattr(old, table), getattr(new, table)
        d = Diff(added=sorted(set(b) - set(a)), removed=sorted(set(a) - set(b)),
                 changed=sorted(k for k in set(a) & set(b) if a[k] != b[k]), kept=table not in provided)
        out[table] = d
    return out


def run_import(paths: list[Path], current: Reference, *, communes_of_province: str | None = None,
               commune_code: str = DEFAULT_COMMUNE_CODE, province_code: str = "") -> ImportResult:
    """Read, validate and diff (no I/O but reading the files)."""
    sheets: list[Sheet] = []
    errors: list[Problem] = []
    for path in paths:
        for got in read_file(path):
            if isinstance(got, Problem):
                errors.append(got)
            else:
                sheets.append(got)
    communes: list[Unit] = []
    if communes_of_province:
        try:
            communes = communes_of(communes_of_province, "", commune_code)
        except (ValueError, KeyError, IndexError) as e:
            errors.append(Problem("--communes-of", str(e)))
        if province_code == "":
            p = find_province(communes_of_province)
            province_code = f"{p.code.value:02d}" if p is not None else ""
    if province_code.isdigit():
        province_code = f"{int(province_code):02d}"
    ref, build_errors, warnings = build(sheets, current, communes=communes, province_code=province_code)
    errors += build_errors
    provided = {s.table for s in sheets} | ({"units"} if communes else set())
    if "procedures" in provided and "fields" not in provided and ref is not None:
        provided.add("fields")            # derived from the procedures' field columns
    diffs = diff(current, ref, provided) if ref is not None else {}
    return ImportResult(None if errors else ref, errors, warnings, diffs, sheets, province_code)


# --- writing ------------------------------------------------------------------------------

def publish(settings, version: int, old: Reference, new: Reference, timeout_s: float = 60.0) -> int:
    """The catalogue on the compacted reference-catalogue topic: one record per code (key
    ``unit/CODE``, ``procedure/CODE``, ``field/CODE``), a tombstone per code removed, then the
    ``catalogue`` record with the version, last. Returns the records sent (all acked)."""
    import json
    from dataclasses import asdict

    from kafka import KafkaProducer

    from pulse.admin import create_topics
    from pulse.kafka_security import kafka_python_kwargs
    from pulse.topics import REFERENCE_CATALOGUE
    from schemas.reference import to_document
    from sinks.reference import document_digest

    create_topics(settings)    # idempotent; a broker that auto-creates would not compact it
    topic = settings.topic(REFERENCE_CATALOGUE.name)
    records: list[tuple[str, bytes | None]] = []
    for table, kind in (("units", "unit"), ("fields", "field"), ("procedures", "procedure")):
        for code, item in getattr(new, table).items():
            records.append((f"{kind}/{code}", json.dumps({"version": version, "kind": kind, **asdict(item)},
                                                         ensure_ascii=False).encode()))
        for code in set(getattr(old, table)) - set(getattr(new, table)):
            records.append((f"{kind}/{code}", None))
    province = new.province
    records.append(("catalogue", json.dumps({
        "version": version, "province": province.name, "province_code": province.gso_code,
        "units": len(new.units), "procedures": len(new.procedures), "fields": len(new.fields),
        "digest": document_digest(to_document(new))}, ensure_ascii=False).encode()))
    producer = KafkaProducer(**kafka_python_kwargs(settings), acks="all", retries=5, linger_ms=20,
                             max_in_flight_requests_per_connection=1)
    try:
        futures = [producer.send(topic, key=k.encode(), value=v) for k, v in records]
        producer.flush(timeout=timeout_s)
        for f in futures:
            f.get(timeout=timeout_s)
    finally:
        producer.close(timeout=timeout_s)
    return len(records)


def _redrive_hint(client, database: str, ref: Reference, settings) -> str:
    from expectations.checks import Checker
    from expectations.redrive import read_dead_letters, redrive
    letters = read_dead_letters(client, database, rule=None, since=None, source=None, kind=None, limit=None,
                                unknown_codes=True)
    if not letters:
        return "no dead letters wait for unknown codes"
    passing = redrive(letters, Checker.from_suites(ref, settings), None, dry_run=True).republished
    return (f"{len(letters)} dead letters failed only for unknown unit/procedure codes; {passing} pass with this "
            f"catalogue. Once the workers have it (within {settings.tunables.reference_poll_interval_s:g} s), run: "
            "python -m expectations.redrive --unknown-codes")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pulse reference import", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="docs/REFERENCE.md: the columns and values accepted.")
    p.add_argument("files", nargs="*", type=Path, help="CSV (UTF-8) or XLSX exports")
    p.add_argument("--province", default="", help="the province's GSO code (e.g. 42): checked against the files")
    p.add_argument("--communes-of", dest="communes_of", help="add this province's communes (GSO code or name) "
                                                             "from vietnam-provinces as commune units")
    p.add_argument("--commune-code", default=DEFAULT_COMMUNE_CODE,
                   help="code of a generated commune: {n} (1.. in GSO order), {gso}, {province}; "
                        f"default {DEFAULT_COMMUNE_CODE!r}")
    p.add_argument("--dry-run", action="store_true", help="validate and report; write nothing")
    a = p.parse_args(argv)
    if not a.files and not a.communes_of:
        p.error("give files to import and/or --communes-of PROVINCE")

    from pulse.config import Settings
    from sinks.client import database_of, get_client
    from sinks.reference import current_reference, write_catalogue

    settings = Settings.from_env()
    try:
        client = get_client(settings)
        version, current = current_reference(client)
    except Exception as e:  # noqa: BLE001 - ClickHouse down or not migrated: say so, write nothing
        print(f"pulse reference import: cannot read the catalogue in force from ClickHouse "
              f"({settings.clickhouse_url.split('@')[-1]}): {e}", file=sys.stderr)
        return 2
    try:
        result = run_import(a.files, current, communes_of_province=a.communes_of, commune_code=a.commune_code,
                            province_code=a.province)
        print(f"catalogue in force: version {version}" + (" (the bundled set)" if version == 0 else ""))
        print("\n".join(result.report()))
        if not result.ok:
            return 1
        assert result.reference is not None
        if a.dry_run:
            print("dry run: nothing written")
            return 0
        new_version, written = write_catalogue(client, result.reference, source="import",
                                               files=[str(f) for f in a.files],
                                               province_code=result.province_code)
        print(f"wrote catalogue version {new_version} to ClickHouse ("
              + ", ".join(f"{t} {n} rows" for t, n in written.items()) + ")")
        try:
            n = publish(settings, new_version, current, result.reference)
        except Exception as e:  # noqa: BLE001 - ClickHouse has it (the workers too); say what to redo
            print(f"pulse reference import: version {new_version} is in ClickHouse but publishing it to Kafka "
                  f"failed ({e}); run the same import again to publish it", file=sys.stderr)
            return 2
        print(f"published {n} records to {settings.topic('reference-catalogue')}")
        print(_redrive_hint(client, database_of(settings), result.reference, settings))
        return 0
    finally:
        client.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
