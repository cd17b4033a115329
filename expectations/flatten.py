"""Decoded events -> flat rows with exactly the columns the suites name.

The per-event checker and the GX micro-batch see the same rows: the worker keeps the row
the checker made (``Verdict.row``) and hands a list of them to ``gx_batch.validate_batch``.

Derived columns
- ``seconds_ahead_of_ingest``: how far (seconds) the latest actual time of the event lies
  after the reference time (the event's ``ingest_time`` if the front door set it, else the
  ``now`` of the check). ``promised_at`` is a future date by nature and is exempt. Negative
  values (the usual case) mean "in the past".
- ``procedure_and_field``: ``"<procedure_code>|<procedure_field>"``, checked against the
  reference data's (procedure, field) pairs.
- ``criterion_<name>``: a rating's per-criterion levels, one column per known criterion.

Times keep their offset in rows; ``to_dataframe`` normalises them to UTC so a DataFrame
column has one dtype.

``flatten_*`` also accept a plain mapping (a JSON object that failed the contract): values
are taken as they are, unparseable times become None. The checker uses that to name the
data rules a rejected payload also breaks; GX only ever sees rows of decoded events.
"""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from schemas.contracts import CRITERIA

from .suite_io import PAIR_SEPARATOR

DOSSIER_TIME_COLUMNS = ("event_time", "ingest_time", "submitted_at", "received_at", "promised_at",
                        "finished_at", "returned_at", "refused_at")
# Times that record something that already happened (promised_at is exempt).
_DOSSIER_ACTUAL_TIMES = ("event_time", "submitted_at", "received_at", "finished_at", "returned_at", "refused_at")

DOSSIER_COLUMNS = (
    "event_id", "contract_version", "source_system", "dossier_code", "procedure_code", "procedure_field",
    "procedure_and_field", "unit_code", "channel", "status", "paid_online", "owner_type", "handler",
    *DOSSIER_TIME_COLUMNS, "supplement_count", "has_digitised_components", "electronic_result",
    "vneid_authenticated", "seconds_ahead_of_ingest",
)
RATING_TIME_COLUMNS = ("event_time", "ingest_time")
RATING_COLUMNS = (
    "rating_id", "contract_version", "source_system", "kiosk_id", "unit_code", "counter_id", "officer_id",
    "dossier_code", "procedure_code", "level", "scale", *(f"criterion_{c}" for c in CRITERIA),
    *RATING_TIME_COLUMNS, "seconds_ahead_of_ingest",
)
COLUMNS = {"dossier_events": DOSSIER_COLUMNS, "ratings": RATING_COLUMNS}
TIME_COLUMNS = {"dossier_events": DOSSIER_TIME_COLUMNS, "ratings": RATING_TIME_COLUMNS}


def _get(src: Any, name: str, default: Any = None) -> Any:
    if type(src) is dict or isinstance(src, Mapping):
        return src.get(name, default)
    return getattr(src, name, default)


def _time(v: Any) -> datetime | None:
    """An aware datetime (any offset; ``to_dataframe`` normalises to UTC), or None
    (missing, unparseable or naive)."""
    if v is None:
        return None
    if type(v) is str:
        try:
            v = datetime.fromisoformat(v)
        except ValueError:
            return None
    if isinstance(v, datetime) and v.tzinfo is not None:
        return v
    return None


def _scalar(v: Any) -> Any:
    """Enum members -> plain int; everything else as is."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return int(v)
    return v


def _ahead(times: list[datetime | None], ingest: datetime | None, now: datetime) -> float | None:
    ref = ingest if ingest is not None else _time(now)
    present = [t for t in times if t is not None]
    if not present or ref is None:
        return None
    return (max(present) - ref).total_seconds()


def flatten_dossier(ev: Any, now: datetime) -> dict:
    if not isinstance(ev, Mapping):
        return _flatten_dossier_model(ev, now)
    times = {c: _time(_get(ev, c)) for c in DOSSIER_TIME_COLUMNS}
    supplements = _get(ev, "supplements") or ()
    if not isinstance(supplements, (list, tuple)):
        supplements = ()
    sup_times = []
    for s in supplements:
        sup_times += [_time(_get(s, "requested_at")), _time(_get(s, "resumed_at"))]
    proc, field = _get(ev, "procedure_code"), _get(ev, "procedure_field")
    row = {
        "event_id": _get(ev, "event_id"),
        "contract_version": _get(ev, "contract_version"),
        "source_system": _get(ev, "source_system"),
        "dossier_code": _get(ev, "dossier_code"),
        "procedure_code": proc,
        "procedure_field": field,
        "procedure_and_field": f"{proc}{PAIR_SEPARATOR}{field}" if proc is not None and field is not None else None,
        "unit_code": _get(ev, "unit_code"),
        # Contract default: channel 1 (direct) also when empty; paid_online 0.
        "channel": _scalar(_get(ev, "channel", 1)),
        "status": _scalar(_get(ev, "status")),
        "paid_online": _scalar(_get(ev, "paid_online", 0)),
        "owner_type": _scalar(_get(ev, "owner_type")),
        "handler": _get(ev, "handler"),
        **times,
        "supplement_count": len(supplements),
        "has_digitised_components": bool(_get(ev, "has_digitised_components", False)),
        "electronic_result": bool(_get(ev, "electronic_result", False)),
        "vneid_authenticated": bool(_get(ev, "vneid_authenticated", False)),
    }
    row["seconds_ahead_of_ingest"] = _ahead([times[c] for c in _DOSSIER_ACTUAL_TIMES] + sup_times,
                                            times["ingest_time"], now)
    return row


def _flatten_dossier_model(ev: Any, now: datetime) -> dict:
    """Fast path for a decoded DossierEvent (contract already holds: types are right)."""
    sup_times = []
    for s in ev.supplements:
        sup_times.append(s.requested_at)
        if s.resumed_at is not None:
            sup_times.append(s.resumed_at)
    proc, field = ev.procedure_code, ev.procedure_field
    row = {
        "event_id": ev.event_id, "contract_version": ev.contract_version, "source_system": ev.source_system,
        "dossier_code": ev.dossier_code, "procedure_code": proc, "procedure_field": field,
        "procedure_and_field": f"{proc}{PAIR_SEPARATOR}{field}", "unit_code": ev.unit_code,
        "channel": int(ev.channel), "status": int(ev.status), "paid_online": int(ev.paid_online),
        "owner_type": ev.owner_type, "handler": ev.handler,
        "event_time": ev.event_time, "ingest_time": ev.ingest_time, "submitted_at": ev.submitted_at,
        "received_at": ev.received_at, "promised_at": ev.promised_at, "finished_at": ev.finished_at,
        "returned_at": ev.returned_at, "refused_at": ev.refused_at,
        "supplement_count": len(ev.supplements),
        "has_digitised_components": ev.has_digitised_components, "electronic_result": ev.electronic_result,
        "vneid_authenticated": ev.vneid_authenticated,
    }
    row["seconds_ahead_of_ingest"] = _ahead(
        [ev.event_time, ev.submitted_at, ev.received_at, ev.finished_at, ev.returned_at, ev.refused_at, *sup_times],
        ev.ingest_time, now)
    return row


def flatten_rating(ev: Any, now: datetime) -> dict:
    criteria = _get(ev, "criteria") or {}
    if not isinstance(criteria, Mapping):
        criteria = {}
    times = {c: _time(_get(ev, c)) for c in RATING_TIME_COLUMNS}
    row = {
        "rating_id": _get(ev, "rating_id"),
        "contract_version": _get(ev, "contract_version"),
        "source_system": _get(ev, "source_system", "kiosk"),
        "kiosk_id": _get(ev, "kiosk_id"),
        "unit_code": _get(ev, "unit_code"),
        "counter_id": _get(ev, "counter_id"),
        "officer_id": _get(ev, "officer_id"),
        "dossier_code": _get(ev, "dossier_code"),
        "procedure_code": _get(ev, "procedure_code"),
        "level": _scalar(_get(ev, "level")),
        "scale": _scalar(_get(ev, "scale", 5)),
        **{f"criterion_{c}": _scalar(criteria.get(c)) for c in CRITERIA},
        **times,
    }
    row["seconds_ahead_of_ingest"] = _ahead([times["event_time"]], times["ingest_time"], now)
    return row


FLATTENERS = {"dossier_events": flatten_dossier, "ratings": flatten_rating}


def to_dataframe(rows: list[dict], suite_name: str):
    """Rows -> pandas DataFrame with the suite's columns in a fixed order and time dtypes."""
    import pandas as pd

    cols = COLUMNS[suite_name]
    df = pd.DataFrame.from_records(rows, columns=list(cols))
    for c in TIME_COLUMNS[suite_name]:
        # UTC instants without the zone: same order, and GX's pair metrics then do not go
        # through pandas' deprecated tz-dropping Series.values.
        df[c] = pd.to_datetime(df[c], utc=True).dt.tz_localize(None)
    return df
