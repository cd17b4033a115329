"""DVCQG sync payload -> DossierEvent contracts (pure: no I/O, no clock).

A unit's one-stop system syncs a dossier to DVCQG as one object with the dossier's
fields (MaHoSo, MaTTHC, MaLinhVuc, DonViXuLy, NgayHenTra, ...) and its status history
(QuaTrinhXuLy: records of NguoiXuLy, ThoiDiemXuLy, TrangThai, NgayBatDau,
NgayKetThucTheoQuyDinh). ``convert_dossier`` turns one such object into one
``DossierEvent`` per status-history record.

Deterministic ids
    ``event_id = "dv-" + sha256(source | MaHoSo | TrangThai | ThoiDiemXuLy as a UTC
    instant)[:40]``. The instant is normalised, so ``20250701083000`` (local time) and
    ``2025-07-01T08:30:00+07:00`` give the same id: the same record synced twice, through
    the API or the importer, produces the same event_id and downstream dedup (Faust and
    ClickHouse, keyed on event_id) drops the second copy. ``source`` is part of the key,
    so the importer must be given the same ``--source`` as the unit system's credential
    id when it re-imports data that system already pushed.

Point-in-time attributes
    The payload is a snapshot taken at sync time. An event for an earlier status must
    not carry dates that had not happened yet (a "received" event carrying the final
    NgayKetThucXuLy would let the stream judge it finished). So each event carries only
    the dates at or before its own ThoiDiemXuLy, the supplement rounds requested by then,
    and the promised date in force at that moment (the first round's NgayHenTraTruoc
    before any round, then each round's NgayHenTraMoi).

Dates
    DVCQG payloads carry local time (Asia/Ho_Chi_Minh) as ``yyyyMMddHHmmss`` (also
    ``yyyyMMdd``, ``dd/MM/yyyy[ HH:mm[:ss]]``), or ISO 8601 with or without an offset
    (naive means local), or epoch milliseconds (OpenCPS). Empty strings mean absent.

Errors are collected, not raised one by one: ``DvcqgError.problems`` is a list of
``{"field": "QuaTrinhXuLy[2].ThoiDiemXuLy", "reason": "..."}`` so a caller can answer
with every problem at once.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from schemas.contracts import DossierEvent

DEFAULT_TZ = "Asia/Ho_Chi_Minh"
DEFAULT_SOURCE = "dvcqg"

HISTORY_KEYS = ("QuaTrinhXuLy", "DanhSachQuaTrinhXuLy", "LichSuXuLy")
BATCH_KEYS = ("data", "Data", "DanhSachHoSo", "HoSo", "dossiers")

# Contract field -> DVCQG field, to name the payload's field in errors from the contract.
CONTRACT_TO_DVCQG = {
    "dossier_code": "MaHoSo", "procedure_code": "MaTTHC", "procedure_field": "MaLinhVuc",
    "unit_code": "DonViXuLy", "channel": "KenhThucHien", "status": "TrangThai",
    "handler": "NguoiXuLy", "owner_type": "LoaiDoiTuong", "submitted_at": "NgayNopHoSo",
    "received_at": "NgayTiepNhan", "promised_at": "NgayHenTra", "finished_at": "NgayKetThucXuLy",
    "returned_at": "NgayTra", "refused_at": "NgayTuChoi", "supplements": "DanhSachHoSoBoSung",
    "has_digitised_components": "HoSoCoThanhPhanSoHoa", "paid_online": "DuocThanhToanTrucTuyen",
    "vneid_authenticated": "TaiKhoanDuocXacThucVoiVNeID", "event_time": "ThoiDiemXuLy",
    "source_system": "source",
}


class DvcqgError(ValueError):
    def __init__(self, problems: list[dict[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{p['field']}: {p['reason']}" for p in problems))


@dataclass
class _Ctx:
    tz: ZoneInfo
    problems: list[dict[str, str]]

    def bad(self, field: str, reason: str) -> None:
        self.problems.append({"field": field, "reason": reason})


# ----------------------------------------------------------------------------- dates

_COMPACT = re.compile(r"^\d{14}$|^\d{12}$|^\d{8}$")
_DMY = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?$")


MIN_YEAR, MAX_YEAR = 1900, 2200


def parse_dvcqg_time(value: Any, tz: ZoneInfo | str = DEFAULT_TZ) -> datetime | None:
    """Parse a DVCQG date/time into an aware datetime; None for absent/empty.

    Raises ValueError for a value that is present but not a date (or outside the years
    1900-2200, which no dossier has and which would overflow in UTC arithmetic).
    """
    try:
        t = _parse_time(value, tz)
    except (OverflowError, OSError):
        raise ValueError(f"date out of range: {value!r}") from None
    if t is not None and not (MIN_YEAR <= t.year <= MAX_YEAR):
        raise ValueError(f"date out of range (years {MIN_YEAR}-{MAX_YEAR}): {value!r}")
    return t


def _parse_time(value: Any, tz: ZoneInfo | str) -> datetime | None:
    if isinstance(tz, str):
        tz = ZoneInfo(tz)
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, bool):
        raise ValueError(f"not a date: {value!r}")
    if isinstance(value, (int, float)):
        # epoch milliseconds (OpenCPS) or seconds
        v = float(value)
        if v > 1e11:
            v /= 1000.0
        if v <= 0:
            raise ValueError(f"not a date: {value!r}")
        return datetime.fromtimestamp(v, tz=timezone.utc).astimezone(tz)
    if not isinstance(value, str):
        raise ValueError(f"not a date: {value!r}")
    s = value.strip()
    if not s:
        return None
    if _COMPACT.match(s):
        fmt = {14: "%Y%m%d%H%M%S", 12: "%Y%m%d%H%M", 8: "%Y%m%d"}[len(s)]
        try:
            return datetime.strptime(s, fmt).replace(tzinfo=tz)
        except ValueError:
            raise ValueError(f"not a valid yyyyMMddHHmmss date: {s!r}") from None
    m = _DMY.match(s)
    if m:
        d, mo, y, hh, mi, ss = m.groups()
        try:
            return datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0), tzinfo=tz)
        except ValueError:
            raise ValueError(f"not a valid dd/MM/yyyy date: {s!r}") from None
    if s.isdigit() and len(s) >= 10:
        return _parse_time(int(s), tz)
    iso = s[:-1] + "+00:00" if s.endswith(("Z", "z")) else s
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(f"not a date (expected yyyyMMddHHmmss or ISO 8601): {s!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=tz)


def event_id_for(source: str, dossier_code: str, status: int, at: datetime) -> str:
    """Deterministic event id of one status-history record (see module doc)."""
    instant = at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    key = f"{source}|{dossier_code}|{int(status)}|{instant}".encode()
    return "dv-" + hashlib.sha256(key).hexdigest()[:40]


# ----------------------------------------------------------------------------- fields

def _str(d: dict, key: str, ctx: _Ctx, where: str, required: bool = False) -> str | None:
    v = d.get(key)
    if v is None or (isinstance(v, str) and not v.strip()):
        if required:
            ctx.bad(where + key, "required")
        return None
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = str(v)
    if not isinstance(v, str):
        ctx.bad(where + key, "must be a string")
        return None
    return v.strip()


def _int(d: dict, key: str, ctx: _Ctx, where: str, default: int | None = None,
         allowed: Iterable[int] | None = None) -> int | None:
    v = d.get(key)
    if v is None or (isinstance(v, str) and not v.strip()):
        return default
    try:
        if isinstance(v, bool):
            raise ValueError
        if isinstance(v, float) and not v.is_integer():
            raise ValueError
        i = int(v.strip() if isinstance(v, str) else v)
    except (TypeError, ValueError):
        ctx.bad(where + key, f"must be an integer, got {v!r}")
        return default
    if allowed is not None and i not in allowed:
        ctx.bad(where + key, f"must be one of {sorted(allowed)}, got {i}")
        return default
    return i


_TRUE = {"1", "true", "yes", "co", "có", "x"}
_FALSE = {"0", "false", "no", "khong", "không", ""}


def _bool(d: dict, key: str, ctx: _Ctx, where: str) -> bool:
    v = d.get(key)
    if v is None:
        return False
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v != 0
    if isinstance(v, str):
        s = v.strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
    ctx.bad(where + key, f"must be 0/1 or true/false, got {v!r}")
    return False


def _time(d: dict, key: str, ctx: _Ctx, where: str, required: bool = False) -> datetime | None:
    try:
        t = parse_dvcqg_time(d.get(key), ctx.tz)
    except ValueError as e:
        ctx.bad(where + key, str(e))
        return None
    if t is None and required:
        ctx.bad(where + key, "required")
    return t


# ----------------------------------------------------------------------------- conversion

def iter_dossiers(payload: Any) -> list[Any]:
    """The dossiers of a sync payload: one object, a list, or {"data": [...]}."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        if "MaHoSo" not in payload:
            for k in BATCH_KEYS:
                if isinstance(payload.get(k), list):
                    return payload[k]
        return [payload]
    raise DvcqgError([{"field": "$", "reason": "expected a dossier object or a list of dossiers"}])


def is_batch(payload: Any) -> bool:
    return isinstance(payload, list) or (
        isinstance(payload, dict) and "MaHoSo" not in payload
        and any(isinstance(payload.get(k), list) for k in BATCH_KEYS))


_FALLBACK_TIME = {10: "NgayTra", 9: "NgayKetThucXuLy", 3: "NgayTuChoi", 2: "NgayTiepNhan",
                  4: "NgayTiepNhan", 1: "NgayNopHoSo"}


def convert_dossier(d: Any, source: str = DEFAULT_SOURCE, *, ingest_time: datetime | None = None,
                    tz: str = DEFAULT_TZ) -> list[DossierEvent]:
    """One DossierEvent per status-history record of a DVCQG dossier object.

    Events come out in ThoiDiemXuLy order. A dossier without a history yields one event
    for its current TrangThaiHoSo, timed by the matching date (NgayTra for 10, ...).
    Raises DvcqgError listing every problem found.
    """
    ctx = _Ctx(ZoneInfo(tz), [])
    if not isinstance(d, dict):
        raise DvcqgError([{"field": "$", "reason": "a dossier must be a JSON object"}])

    code = _str(d, "MaHoSo", ctx, "", required=True)
    procedure = _str(d, "MaTTHC", ctx, "", required=True)
    pfield = _str(d, "MaLinhVuc", ctx, "", required=True)
    unit = _str(d, "DonViXuLy", ctx, "", required=True)
    channel = _int(d, "KenhThucHien", ctx, "", default=1, allowed=(1, 2, 3))
    owner_type = _int(d, "LoaiDoiTuong", ctx, "")
    current = _int(d, "TrangThaiHoSo", ctx, "", allowed=range(1, 11))
    paid = _int(d, "DuocThanhToanTrucTuyen", ctx, "", default=0, allowed=(0, 1, 2))
    digitised = _bool(d, "HoSoCoThanhPhanSoHoa", ctx, "")
    vneid = _bool(d, "TaiKhoanDuocXacThucVoiVNeID", ctx, "")
    submitted = _time(d, "NgayNopHoSo", ctx, "")
    received = _time(d, "NgayTiepNhan", ctx, "")
    promised = _time(d, "NgayHenTra", ctx, "")
    finished = _time(d, "NgayKetThucXuLy", ctx, "")
    returned = _time(d, "NgayTra", ctx, "")
    refused = _time(d, "NgayTuChoi", ctx, "")
    electronic = False
    results = d.get("DanhSachGiayToKetQua")
    if isinstance(results, list):
        electronic = any(isinstance(r, dict) and any(str(r.get(k) or "").strip() for k in
                         ("DuongDanTepTinKetQua", "TepTinKetQua", "MaGiayToKetQua", "FileKetQua"))
                         for r in results)

    # status history
    hist_key = next((k for k in HISTORY_KEYS if k in d), HISTORY_KEYS[0])
    raw_history = d.get(hist_key)
    if raw_history is None:
        raw_history = []
    if not isinstance(raw_history, list):
        ctx.bad(hist_key, "must be a list of status records")
        raw_history = []
    history: list[tuple[int, datetime, str | None]] = []
    for i, rec in enumerate(raw_history):
        where = f"{hist_key}[{i}]."
        if not isinstance(rec, dict):
            ctx.bad(f"{hist_key}[{i}]", "must be an object")
            continue
        rec_code = _str(rec, "MaHoSo", ctx, where)
        if rec_code and code and rec_code != code:
            ctx.bad(where + "MaHoSo", f"{rec_code!r} differs from the dossier's MaHoSo {code!r}")
        st = _int(rec, "TrangThai", ctx, where, allowed=range(1, 11))
        if st is None and "TrangThai" not in rec:
            ctx.bad(where + "TrangThai", "required")
        at = _time(rec, "ThoiDiemXuLy", ctx, where, required=True)
        _time(rec, "NgayBatDau", ctx, where)
        _time(rec, "NgayKetThucTheoQuyDinh", ctx, where)
        handler = _str(rec, "NguoiXuLy", ctx, where)
        if st is not None and at is not None:
            history.append((st, at, handler))
    if not raw_history:
        if current is None:
            ctx.bad(hist_key, "no status history and no TrangThaiHoSo")
        else:
            key = _FALLBACK_TIME.get(current)
            at = {"NgayTra": returned, "NgayKetThucXuLy": finished, "NgayTuChoi": refused,
                  "NgayTiepNhan": received, "NgayNopHoSo": submitted}.get(key) if key else None
            if at is None:
                known = [t for t in (returned, finished, refused, received, submitted) if t]
                at = max(known) if known else None
            if at is None:
                ctx.bad(hist_key, f"no status history and no date to time TrangThaiHoSo {current}")
            else:
                history.append((current, at, None))

    # supplement rounds
    raw_sup = d.get("DanhSachHoSoBoSung") or []
    if not isinstance(raw_sup, list):
        ctx.bad("DanhSachHoSoBoSung", "must be a list")
        raw_sup = []
    supplement_times = sorted(at for st, at, _ in history if st == 5)
    rounds: list[dict] = []
    for i, r in enumerate(raw_sup):
        where = f"DanhSachHoSoBoSung[{i}]."
        if not isinstance(r, dict):
            ctx.bad(f"DanhSachHoSoBoSung[{i}]", "must be an object")
            continue
        req = _time(r, "NgayYeuCauBoSung", ctx, where)
        if req is None and "NgayYeuCauBoSung" not in r:
            # older payloads omit it: the i-th "supplement requested" history record
            req = supplement_times[i] if i < len(supplement_times) else None
            if req is None:
                ctx.bad(where + "NgayYeuCauBoSung", "required (no matching TrangThai 5 record in the history)")
        rounds.append({
            "requested_at": req,
            "resumed_at": _time(r, "NgayTiepNhanBoSung", ctx, where),
            "old_promised_at": _time(r, "NgayHenTraTruoc", ctx, where),
            "new_promised_at": _time(r, "NgayHenTraMoi", ctx, where),
        })
    if ctx.problems:
        raise DvcqgError(ctx.problems)
    assert code is not None  # required: a missing MaHoSo is one of ctx.problems
    rounds.sort(key=lambda r: r["requested_at"])
    # The promised date in force before any supplement round: the first round's
    # NgayHenTraTruoc when given, else NgayHenTra.
    initial_promised = (rounds[0]["old_promised_at"] if rounds and rounds[0]["old_promised_at"]
                        else promised)

    def upto(t: datetime | None, at: datetime) -> datetime | None:
        return t if t is not None and t <= at else None

    events: list[DossierEvent] = []
    seen: set[str] = set()
    for st, at, handler in sorted(history, key=lambda h: h[1]):
        eid = event_id_for(source, code, st, at)
        if eid in seen:  # the same record listed twice in one payload
            continue
        seen.add(eid)
        done = [r for r in rounds if r["requested_at"] <= at]
        p = initial_promised
        for r in done:
            if r["new_promised_at"] is not None:
                p = r["new_promised_at"]
        # validated (and coerced: supplement dicts to SupplementRound) by the contract model
        fields: dict[str, Any] = dict(
            event_id=eid, event_time=at, ingest_time=ingest_time, source_system=source,
            dossier_code=code, procedure_code=procedure, procedure_field=pfield, unit_code=unit,
            channel=channel, status=st, handler=handler, owner_type=owner_type,
            submitted_at=submitted,
            received_at=upto(received, at), promised_at=p,
            finished_at=upto(finished, at), returned_at=upto(returned, at), refused_at=upto(refused, at),
            supplements=tuple({k: (v if k != "resumed_at" else upto(v, at)) for k, v in r.items()} for r in done),
            has_digitised_components=digitised, electronic_result=electronic and st in (9, 10),
            paid_online=paid, vneid_authenticated=vneid,
        )
        # The contract makes the event time the status time: dates recorded for the event
        # itself (e.g. NgayTra on the status-10 record) are at == event_time, kept by upto().
        try:
            events.append(DossierEvent(**fields))
        except ValidationError as e:
            raise DvcqgError([{"field": _dvcqg_loc(err["loc"]), "reason": err["msg"]}
                              for err in e.errors()]) from None
    return events


def _dvcqg_loc(loc: tuple) -> str:
    if not loc:
        return "$"
    head = CONTRACT_TO_DVCQG.get(str(loc[0]), str(loc[0]))
    return ".".join([head] + [str(x) for x in loc[1:]])


def convert_payload(payload: Any, source: str = DEFAULT_SOURCE, *, ingest_time: datetime | None = None,
                    tz: str = DEFAULT_TZ) -> list[tuple[str | None, list[DossierEvent] | DvcqgError]]:
    """Every dossier of a payload: (MaHoSo or None, events or the error)."""
    out: list[tuple[str | None, list[DossierEvent] | DvcqgError]] = []
    for d in iter_dossiers(payload):
        code = d.get("MaHoSo") if isinstance(d, dict) else None
        try:
            out.append((code if isinstance(code, str) else None,
                        convert_dossier(d, source, ingest_time=ingest_time, tz=tz)))
        except DvcqgError as e:
            out.append((code if isinstance(code, str) else None, e))
    return out
