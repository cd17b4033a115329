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

import operator
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from schemas.contracts import CRITERIA, Channel, DossierEvent, DossierStatus, KioskRating, RatingLevel

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
    return _seconds_ahead(max((t for t in times if t is not None), default=None), ingest, now)


def _seconds_ahead(latest: datetime | None, ingest: datetime | None, now: Any) -> float | None:
    """How far ``latest`` is ahead of the ingest time (else of ``now``), in seconds."""
    ref: datetime | None
    if ingest is not None:
        ref = ingest
    elif type(now) is datetime and now.tzinfo is not None:
        ref = now                  # what _time(now) returns, without the call (hot path)
    else:
        ref = _time(now)
    return None if latest is None or ref is None else (latest - ref).total_seconds()


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


_DOSSIER_MODEL_FIELDS = (
    "event_id", "contract_version", "source_system", "dossier_code", "procedure_code", "procedure_field",
    "unit_code", "channel", "status", "paid_online", "owner_type", "handler", "event_time", "ingest_time",
    "submitted_at", "received_at", "promised_at", "finished_at", "returned_at", "refused_at", "supplements",
    "has_digitised_components", "electronic_result", "vneid_authenticated")
_dossier_fields = operator.itemgetter(*_DOSSIER_MODEL_FIELDS)
_dossier_attrs = operator.attrgetter(*_DOSSIER_MODEL_FIELDS)


def _flatten_dossier_model(ev: Any, now: datetime) -> dict:
    """Fast path for a decoded DossierEvent (contract already holds: types are right).

    Hot path (once per event): the fields are read in one go (a DossierEvent keeps them in
    its instance dict), the enums turned into int without a call, and the latest actual
    time found in one pass. The row is what the generic path gives: same keys in the same
    order, same values and types (``test_fast_and_lenient_flatten_agree``)."""
    if type(ev) is DossierEvent:
        try:
            values = _dossier_fields(ev.__dict__)
        except KeyError:  # a model_construct()-ed event lacking fields: AttributeError as before
            values = _dossier_attrs(ev)
    else:
        values = _dossier_attrs(ev)
    (event_id, contract_version, source_system, dossier_code, proc, field, unit_code, channel, status,
     paid_online, owner_type, handler, event_time, ingest_time, submitted_at, received_at, promised_at,
     finished_at, returned_at, refused_at, supplements, digitised, electronic, vneid) = values
    row = {
        "event_id": event_id, "contract_version": contract_version, "source_system": source_system,
        "dossier_code": dossier_code, "procedure_code": proc, "procedure_field": field,
        "procedure_and_field": f"{proc}{PAIR_SEPARATOR}{field}", "unit_code": unit_code,
        "channel": channel._value_ if type(channel) is Channel else int(channel),
        "status": status._value_ if type(status) is DossierStatus else int(status),
        "paid_online": paid_online if type(paid_online) is int else int(paid_online),
        "owner_type": owner_type, "handler": handler,
        "event_time": event_time, "ingest_time": ingest_time, "submitted_at": submitted_at,
        "received_at": received_at, "promised_at": promised_at, "finished_at": finished_at,
        "returned_at": returned_at, "refused_at": refused_at,
        "supplement_count": len(supplements),
        "has_digitised_components": digitised, "electronic_result": electronic, "vneid_authenticated": vneid,
    }
    row["seconds_ahead_of_ingest"] = _seconds_ahead(
        _latest_actual(event_time, submitted_at, received_at, finished_at, returned_at, refused_at, supplements),
        ingest_time, now)
    return row


def _latest_actual(event_time, submitted_at, received_at, finished_at, returned_at, refused_at, supplements):
    """= max of the event's actual times and its supplement rounds' (``_ahead``'s first
    argument), unrolled: aware datetimes of pydantic's own tzinfo cost ~0.3 µs per
    comparison, so every one counts. max() keeps the first of equal maxima as this does
    (and either gives the same difference anyway)."""
    latest = event_time
    if latest is None:  # not from a decoded event (event_time is required)
        latest = max((t for t in (submitted_at, received_at, finished_at, returned_at, refused_at) if t is not None),
                     default=None)
    else:
        if submitted_at is not None and submitted_at > latest:
            latest = submitted_at
        if received_at is not None and received_at > latest:
            latest = received_at
        if finished_at is not None and finished_at > latest:
            latest = finished_at
        if returned_at is not None and returned_at > latest:
            latest = returned_at
        if refused_at is not None and refused_at > latest:
            latest = refused_at
    for s in supplements:
        t = s.requested_at
        if t is not None and (latest is None or t > latest):
            latest = t
        t = s.resumed_at
        if t is not None and (latest is None or t > latest):
            latest = t
    return latest


def dossier_seconds_ahead(d: dict, now: datetime) -> float | None:
    """The row's ``seconds_ahead_of_ingest`` from a decoded DossierEvent's fields (its
    ``__dict__``), as ``_flatten_dossier_model`` computes it."""
    return _seconds_ahead(_latest_actual(d["event_time"], d["submitted_at"], d["received_at"], d["finished_at"],
                                         d["returned_at"], d["refused_at"], d["supplements"]),
                          d["ingest_time"], now)


# The checker's model path (``checks.CompiledSuite.passes_model``): how each dossier row
# column comes out of a decoded DossierEvent's fields ``d`` (its ``__dict__``) without
# building the row. None: the field of that name as it is (what the row holds too); else a
# Python expression over ``d`` and ``now`` giving the row's value (names from
# ``DOSSIER_MODEL_NAMES``). ``tests/test_expectations.py`` checks the two paths agree.
DOSSIER_MODEL_COLUMNS: dict[str, str | None] = {
    **{c: None for c in DOSSIER_COLUMNS if c in DossierEvent.model_fields and c not in ("channel", "status")},
    "channel": "_int(d['channel'])",
    "status": "_int(d['status'])",
    "procedure_and_field": "d['procedure_code'] + _PAIR_SEPARATOR + d['procedure_field']",
    "supplement_count": "len(d['supplements'])",
    "seconds_ahead_of_ingest": "_dossier_seconds_ahead(d, now)",
}
DOSSIER_MODEL_NAMES = {"_int": int, "_PAIR_SEPARATOR": PAIR_SEPARATOR, "_dossier_seconds_ahead": dossier_seconds_ahead}
if set(DOSSIER_MODEL_COLUMNS) != set(DOSSIER_COLUMNS):   # a new derived column needs its expression here
    raise RuntimeError(f"DOSSIER_MODEL_COLUMNS lacks {sorted(set(DOSSIER_COLUMNS) - set(DOSSIER_MODEL_COLUMNS))}")


def flatten_rating(ev: Any, now: datetime) -> dict:
    if type(ev) is KioskRating:
        try:
            return _flatten_rating_model(ev, now)
        except AttributeError:  # a model_construct()-ed rating lacking fields: getattr's default below
            pass
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


_CRITERION_COLUMNS = tuple((f"criterion_{c}", c) for c in CRITERIA)
_NO_CRITERIA = {col: None for col, _ in _CRITERION_COLUMNS}


def _flatten_rating_model(ev: Any, now: datetime) -> dict:
    """Fast path for a KioskRating: what the generic ``flatten_rating`` gives for it
    (``_get`` is plain attribute access on a model, ``_scalar`` turns the enums into int),
    without the per-field calls."""
    level, scale, criteria = ev.level, ev.scale, ev.criteria
    event_time, ingest_time = ev.event_time, ev.ingest_time
    if not (type(event_time) is datetime and event_time.tzinfo is not None):
        event_time = _time(event_time)
    if ingest_time is not None and not (type(ingest_time) is datetime and ingest_time.tzinfo is not None):
        ingest_time = _time(ingest_time)
    row = {
        "rating_id": ev.rating_id, "contract_version": ev.contract_version, "source_system": ev.source_system,
        "kiosk_id": ev.kiosk_id, "unit_code": ev.unit_code, "counter_id": ev.counter_id,
        "officer_id": ev.officer_id, "dossier_code": ev.dossier_code, "procedure_code": ev.procedure_code,
        "level": int(level) if type(level) is RatingLevel else _scalar(level),
        "scale": scale if type(scale) is int else _scalar(scale),
    }
    if not criteria:
        row.update(_NO_CRITERIA)
    else:
        if not isinstance(criteria, Mapping):
            criteria = {}
        get = criteria.get
        for col, name in _CRITERION_COLUMNS:
            v = get(name)
            row[col] = None if v is None else (int(v) if type(v) is RatingLevel else _scalar(v))
    row["event_time"] = event_time
    row["ingest_time"] = ingest_time
    row["seconds_ahead_of_ingest"] = _seconds_ahead(event_time, ingest_time, now)
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
