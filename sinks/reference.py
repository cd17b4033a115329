"""Load reference data (units, fields, procedures, working-day calendar) into ClickHouse.

``load_reference_tables(client)`` makes ``ref_units``, ``ref_procedures``, ``ref_fields``
and ``ref_calendar`` hold exactly the reference data of ``schemas.reference`` (and the
calendar), idempotently and without an empty moment: it compares with what the tables
hold (FINAL) and writes only changed rows with a higher ``version`` plus ``is_deleted``
tombstones for codes that disappeared. Re-running with the same data writes nothing.
"""
from __future__ import annotations

from datetime import date, timedelta
from typing import Any, Callable

# table -> (key column, value columns)
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ref_units": ("unit_code", ("unit_name", "unit_kind", "parent_code")),
    "ref_procedures": ("procedure_code", ("procedure_name", "field_code", "legal_working_days")),
    "ref_fields": ("field_code", ("field_name",)),
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
        "ref_units": [(u.code, u.name, u.kind, u.parent_code or "") for u in ref.units.values()],
        "ref_procedures": [(p.code, p.name, p.field_code, float(p.legal_working_days)) for p in ref.procedures.values()],
        "ref_fields": [(f.code, f.name) for f in ref.fields.values()],
    }


def _norm(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 4)
    return v


def replace_table(client, table: str, rows: list[tuple]) -> int:
    """Make ``table`` (FINAL) hold exactly ``rows``; return the number of rows written."""
    key, values = TABLES[table]
    cols = (key, *values)
    current = client.query(f"SELECT {', '.join(cols)}, version FROM {table} FINAL").result_rows
    have = {r[0]: tuple(_norm(v) for v in r[1:-1]) for r in current}
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
    if reference is None:
        from schemas.reference import load_reference
        reference = load_reference()
    data = reference_rows(reference)
    data["ref_calendar"] = calendar_rows(is_working_day or _default_calendar())
    return {t: replace_table(client, t, rows) for t, rows in data.items()}
