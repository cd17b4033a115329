"""Load reference data (units, fields, procedures, working-day calendar) into ClickHouse.

``load_reference_tables(client)`` makes ``ref_units``, ``ref_procedures``, ``ref_fields``
and ``ref_calendar`` hold exactly the reference data of ``schemas.reference`` (and the
calendar), idempotently and without an empty moment: it compares with what the tables
hold (FINAL) and writes only changed rows with a higher ``version`` plus ``is_deleted``
tombstones for codes that disappeared. Re-running with the same data writes nothing.

An imported catalogue (``pulse reference import``, issue 21) is written by
``write_catalogue``: one catalogue version for all three tables, then its row in
``ref_catalogue`` (the whole catalogue as a JSON document), which is what the workers poll
(``streams.catalogue``) and read back with ``read_catalogue``. Once a catalogue was
imported, ``load_reference_tables(client)`` without a reference (``make up``) leaves the
three tables alone and loads only the calendar: the bundled Bắc Ninh set is the default
until the first import, never over it.
"""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Callable

# table -> (key column, value columns)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ref_units": ("unit_code", ("unit_name", "unit_kind", "parent_code", "unit_name_en", "former_district",
                                "gso_code")),
    "ref_procedures": ("procedure_code", ("procedure_name", "field_code", "legal_working_days", "procedure_level",
                                          "online_level")),
    "ref_fields": ("field_code", ("field_name", "field_name_en", "department_code")),
    "ref_calendar": ("day", ("is_working", "working_index")),
}

CALENDAR_START = date(2020, 1, 1)
CALENDAR_YEARS_AHEAD = 3


def _default_calendar() -> Callable[[date], bool]:
    """rules.calendar's working-day test when available, else weekdays minus Vietnam's holidays."""
    try:
        from rules import calendar as rc  # written by the rules owner
        for name in ("default_calendar", "get_calendar", "load_calendar"):
            if hasattr(rc, name):
                cal = getattr(rc, name)()
                return cal.is_working_day
        if hasattr(rc, "is_working_day"):
            return rc.is_working_day
    except ImportError:
        pass
    import holidays

    vn = holidays.country_holidays("VN", years=range(CALENDAR_START.year, date.today().year + CALENDAR_YEARS_AHEAD + 1))
    return lambda d: d.weekday() < 5 and d not in vn


def calendar_rows(is_working_day: Callable[[date], bool], start: date = CALENDAR_START,
                  end: date | None = None) -> list[tuple[date, int, int]]:
    end = end or date(date.today().year + CALENDAR_YEARS_AHEAD, 12, 31)
    out, idx, d = [], 0, start
    while d <= end:
        w = 1 if is_working_day(d) else 0
        idx += w
        out.append((d, w, idx))
        d += timedelta(days=1)
    return out


def reference_rows(ref) -> dict[str, list[tuple]]:
    return {
        "ref_units": [(u.code, u.name, u.kind, u.parent_code or "", u.name_en, u.former_district, u.gso_code)
                      for u in ref.units.values()],
        "ref_procedures": [(p.code, p.name, p.field_code, float(p.legal_working_days), p.level, p.online)
                           for p in ref.procedures.values()],
        "ref_fields": [(f.code, f.name, f.name_en, f.department_code) for f in ref.fields.values()],
    }


def _norm(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 4)
    return v


def replace_table(client, table: str, rows: list[tuple], version: int | None = None) -> int:
    """Make ``table`` (FINAL) hold exactly ``rows``; return the number of rows written.
    ``version``: the row version to write (a catalogue's); default one above the table's."""
    key, values = TABLES[table]
    cols = (key, *values)
    current = client.query(f"SELECT {', '.join(cols)}, version FROM {table} FINAL").result_rows
    have = {r[0]: tuple(_norm(v) for v in r[1:-1]) for r in current}
    if version is None:
        version = max((r[-1] for r in current), default=0)
        version = max(version, int(client.query(f"SELECT max(version) FROM {table}").result_rows[0][0] or 0)) + 1
    want = {r[0]: tuple(_norm(v) for v in r[1:]) for r in rows}
    out = []
    for k, vals in want.items():
        if have.get(k) != vals:
            out.append([k, *vals, version, 0])
    for k, vals in have.items():
        if k not in want:
            out.append([k, *vals, version, 1])
    if out:
        client.insert(table, out, column_names=[*cols, "version", "is_deleted"])
    return len(out)


def load_reference_tables(client, reference=None, is_working_day: Callable[[date], bool] | None = None) -> dict[str, int]:
    """Replace the reference tables' contents; returns rows written per table (0 = unchanged)."""
    data: dict[str, list[tuple]] = {}
    if reference is None and catalogue_version(client) > 0:
        data = {t: [] for t in CATALOGUE_TABLES}   # an imported catalogue is in force: keep it
    else:
        if reference is None:
            from schemas.reference import load_reference
            reference = load_reference()
        data = reference_rows(reference)
    calendar = calendar_rows(is_working_day or _default_calendar())
    written = {t: (replace_table(client, t, rows) if reference is not None else 0) for t, rows in data.items()}
    written["ref_calendar"] = replace_table(client, "ref_calendar", calendar)
    return written


# --- imported catalogues (pulse reference import) ------------------------------------------

CATALOGUE_TABLES = ("ref_units", "ref_procedures", "ref_fields")


def catalogue_version(client) -> int:
    """The newest catalogue version in ``ref_catalogue`` (0: none imported, the bundled set)."""
    return int(client.query("SELECT max(version) FROM ref_catalogue").result_rows[0][0] or 0)


def next_catalogue_version(client) -> int:
    """One above every version the catalogue tables hold, so a catalogue's rows win FINAL."""
    top = catalogue_version(client)
    for t in CATALOGUE_TABLES:
        top = max(top, int(client.query(f"SELECT max(version) FROM {t}").result_rows[0][0] or 0))
    return top + 1


def document_digest(document: dict) -> str:
    import hashlib
    import json
    return hashlib.sha256(json.dumps(document, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def write_catalogue(client, reference, *, source: str = "import", files: list[str] | None = None,
                    province_code: str = "", now=None) -> tuple[int, dict[str, int]]:
    """Write ``reference`` as a new catalogue version: the changed rows of the three tables
    (and tombstones), then its ``ref_catalogue`` row, last, so a worker that sees the version
    finds its rows. Returns (version, rows written per table)."""
    import json
    from datetime import datetime, timezone

    from schemas.reference import to_document
    version = next_catalogue_version(client)
    data = reference_rows(reference)
    written = {t: replace_table(client, t, data[t], version) for t in CATALOGUE_TABLES}
    document = to_document(reference)
    province = reference.province
    client.insert("ref_catalogue", [[version, now or datetime.now(timezone.utc), source,
                                     province_code or province.gso_code, province.name, list(files or []),
                                     len(reference.units), len(reference.procedures), len(reference.fields),
                                     document_digest(document), json.dumps(document, ensure_ascii=False)]],
                  column_names=["version", "imported_at", "source", "province_code", "province_name", "files",
                                "units", "procedures", "fields", "digest", "document"])
    return version, written


def read_catalogue(client, newer_than: int = 0):
    """(version, Reference) of the newest imported catalogue, or None if there is none
    (newer than ``newer_than``)."""
    import json

    from schemas.reference import from_document
    rows = client.query("SELECT version, document FROM ref_catalogue WHERE version > {v:UInt64} "
                        "ORDER BY version DESC LIMIT 1", parameters={"v": int(newer_than)}).result_rows
    if not rows:
        return None
    return int(rows[0][0]), from_document(json.loads(rows[0][1]))


def current_reference(client):
    """(version, Reference) in force: the newest imported catalogue, else (0, the bundled set)."""
    found = read_catalogue(client)
    if found is not None:
        return found
    from schemas.reference import load_reference
    return 0, load_reference()
