"""The stream's logic without Faust: compact per-dossier event lists, state rows, alerts.

The Faust side (streams/app.py, streams/dossiers.py) only moves bytes and offsets; every decision is here,
as plain functions over plain data, so it is tested without a broker and the integration
test can recompute ClickHouse's final state from the raw events with the same code.

Dossier state in the Faust table: ``dossier_code -> (compact event, ...)`` sorted by
(event_time, event_id), tuples of plain values (the changelog stores them as JSON arrays).
The tuple IS the set of applied event ids (duplicates are recognised by id and not applied
twice) and the state is ``rules.lifecycle.fold`` of it, so an event arriving before its
predecessor is simply inserted where it belongs. (The compact layout is the fold's
event-row layout: the sets are folded as stored, ``fold_rows``.)

Version of a ``dossier_state`` row (ReplacingMergeTree(version)): ``2 × distinct applied
events + overdue``. It depends only on the event set (and, for the overdue bit, on the
wall clock having passed the deadline, which never goes back), so a replay after kill -9
writes the very same (key, version) rows and ClickHouse keeps the right one.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from typing import Any, Callable, Iterable, Sequence

from rules.lifecycle import DossierFacts, EventFacts, Round, fold_rows, positional, to_ms
# compact event layout: rules.lifecycle's event rows, so DossierLogic folds the stored lists as they are
from rules.lifecycle import (FLAG_DIGITISED as F_DIGITISED, FLAG_ERESULT as F_ERESULT,
                             FLAG_VNEID as F_VNEID, ROW_CHANNEL as CHANNEL, ROW_FIELD as FIELD,
                             ROW_FINISHED as FIN, ROW_FLAGS as FLAGS, ROW_ID as ID, ROW_PAID as PAID,
                             ROW_PROCEDURE as PROC, ROW_PROMISED as PROM, ROW_RECEIVED as REC,
                             ROW_REFUSED as REF, ROW_RETURNED as RET, ROW_STATUS as STATUS,
                             ROW_SUBMITTED as SUB, ROW_SUPPLEMENTS as SUPP, ROW_TIME as TIME, ROW_UNIT as UNIT)
from rules.timeliness import Judgement, judge

VN = timezone(timedelta(hours=7))


_FROM_MS: dict = {}
_FROM_MS_MAX = 200_000


def from_ms(ms: int | None) -> datetime | None:
    """ms -> datetime in Vietnam time. Remembered (bounded): the stream folds a dossier's
    events again on each new event, so the same instants come back, and handing out the
    same (immutable) objects also lets the calendar's memo reuse their cached hash."""
    if ms is None:
        return None
    t = _FROM_MS.get(ms)
    if t is None:
        if len(_FROM_MS) >= _FROM_MS_MAX:
            _FROM_MS.clear()
        t = _FROM_MS[ms] = datetime.fromtimestamp(ms / 1000, VN)
    return t


def at_ms(ms: int) -> datetime:
    """``from_ms`` of a time that is always there (an event's time, a round's request)."""
    t = from_ms(ms)
    assert t is not None
    return t


def compact(ev) -> tuple:
    """A DossierEvent -> the JSON-able tuple kept in the state table (times in ms).

    Tuples of plain values, all the way down, so that the cyclic GC stops tracking them
    after its first look: the table keeps every dossier's events for months, and as lists
    they were millions of containers that every collection of the older generations walked
    again (in-process over 300k simulated events: 1.2 s of GC instead of 1.9)."""
    return (
        ev.event_id, to_ms(ev.event_time), int(ev.status), ev.unit_code, ev.procedure_code,
        ev.procedure_field, int(ev.channel), to_ms(ev.submitted_at), to_ms(ev.received_at),
        to_ms(ev.promised_at), to_ms(ev.finished_at), to_ms(ev.returned_at), to_ms(ev.refused_at),
        tuple((to_ms(s.requested_at), to_ms(s.resumed_at), to_ms(s.old_promised_at), to_ms(s.new_promised_at))
              for s in ev.supplements) if ev.supplements else (),
        (F_DIGITISED if ev.has_digitised_components else 0) | (F_ERESULT if ev.electronic_result else 0)
        | (F_VNEID if ev.vneid_authenticated else 0),
        int(ev.paid_online),
    )


def facts_of(c: Sequence) -> EventFacts:
    f = c[FLAGS]
    return EventFacts(
        event_id=c[ID], event_time=at_ms(c[TIME]), status=c[STATUS], unit_code=c[UNIT],
        procedure_code=c[PROC], procedure_field=c[FIELD], channel=c[CHANNEL],
        submitted_at=from_ms(c[SUB]), received_at=from_ms(c[REC]), promised_at=from_ms(c[PROM]),
        finished_at=from_ms(c[FIN]), returned_at=from_ms(c[RET]), refused_at=from_ms(c[REF]),
        supplements=tuple(Round(at_ms(s[0]), from_ms(s[1]), from_ms(s[2]), from_ms(s[3])) for s in c[SUPP]),
        digitised=bool(f & F_DIGITISED), electronic_result=bool(f & F_ERESULT), vneid=bool(f & F_VNEID),
        paid_online=c[PAID],
    )


_EVENT_ORDER = itemgetter(TIME, ID)      # (event_time, event_id)


def merge(current: Sequence | None, new: Iterable[Sequence]) -> tuple[tuple, int, int]:
    """Add new compact events to a dossier's event set: (merged set, applied, duplicates)."""
    events, fresh, dups = merge_fresh(current, new)
    return events, len(fresh), dups


def merge_fresh(current: Sequence | None, new: Iterable[Sequence]) -> tuple[tuple, list, int]:
    """``merge``, naming the events applied: (merged set, the new events applied, in the
    order given, duplicates). Of two copies of an event id the first wins.

    The merged set is a tuple in event order: a new one when events were applied (``current``
    is never changed: a batch still being written may hold it), else ``current`` itself,
    made a tuple if it was read back from the changelog as a list of lists."""
    events = current if current else ()
    seen = {c[ID] for c in events}
    fresh = []
    dups = 0
    for c in new:
        if c[ID] in seen:
            dups += 1
            continue
        seen.add(c[ID])
        fresh.append(c)
    if fresh or type(events) is not tuple:
        events = tuple(sorted((*events, *fresh), key=_EVENT_ORDER))
    return events, fresh, dups


@dataclass(frozen=True)
class DossierState:
    code: str
    facts: DossierFacts
    judgement: Judgement
    overdue: bool
    version: int
    row: list                         # dossier_state row (DOSSIER_STATE_COLUMNS order)

    @property
    def deadline_ms(self) -> int | None:
        return to_ms(self.judgement.deadline)


_dossier_state = positional(DossierState)


class DossierLogic:
    """Judges dossiers. ``legal_days(procedure_code)`` gives the procedure's legal working days."""

    def __init__(self, calendar, *, early_min_working_days: float = 1.0,
                 legal_days: Callable[[str], float | None] = lambda code: None,
                 supplement_reading: str = "shift_by_wait"):
        self.calendar = calendar
        self.early_min = early_min_working_days
        self.legal_days = legal_days
        self.supplement_reading = supplement_reading

    @classmethod
    def from_settings(cls, settings, calendar=None, reference=None) -> "DossierLogic":
        if calendar is None:
            from rules.calendar import default_calendar
            calendar = default_calendar()
        if reference is None:
            try:
                from schemas.reference import load_reference
                reference = load_reference()
            except Exception:  # noqa: BLE001 - legal days are a fallback only
                reference = None
        procs = getattr(reference, "procedures", {}) or {}

        def legal_days(code: str) -> float | None:
            p = procs.get(code)
            return float(p.legal_working_days) if p is not None and p.legal_working_days else None
        return cls(calendar, early_min_working_days=settings.early_min_working_days, legal_days=legal_days,
                   supplement_reading=settings.supplement_reading)

    def state(self, code: str, events: Sequence[list], now: datetime,
              updated_at: datetime | None = None) -> DossierState:
        # the compact events ARE the fold's event rows (ms time keys): no EventFacts per event;
        # same facts as ``fold(code, map(facts_of, events))``
        f = fold_rows(code, events, from_ms)
        if f is None:
            raise ValueError(f"dossier {code}: no events to judge")
        j = judge(f, self.calendar, early_min_working_days=self.early_min,
                  legal_working_days=self.legal_days(f.procedure_code), supplement_reading=self.supplement_reading)
        overdue = j.overdue_at(now)
        return self._state(f, j, overdue, updated_at or now)

    def _state(self, f: DossierFacts, j: Judgement, overdue: bool, updated_at: datetime) -> DossierState:
        version = 2 * f.event_count + (1 if overdue else 0)
        row = _state_row(f, j, overdue, version, updated_at)
        return _dossier_state(f.dossier_code, f, j, overdue, version, row)


# Each dossier_state column's value, by name, from the facts ``f``, the judgement ``j``,
# ``overdue``, ``version`` and ``updated_at``. The column ORDER is sinks.rows'
# DOSSIER_STATE_COLUMNS (the one layout, checked against ClickHouse's DESCRIBE at start);
# this says only what goes in each. Every column must be here and nothing else.
STATE_COLUMN_VALUES = {
    "dossier_code": "f.dossier_code", "unit_code": "f.unit_code", "procedure_code": "f.procedure_code",
    "procedure_field": "f.procedure_field", "channel": "f.channel", "status": "f.status",
    "submitted_at": "f.submitted_at", "received_at": "f.received_at", "promised_at": "f.promised_at",
    "finished_at": "f.finished_at", "returned_at": "f.returned_at", "refused_at": "f.refused_at",
    "closed_at": "None if f.is_open else j.finish_time",
    "supplement_rounds": "len(f.rounds)",
    "supplement_wait_working_days": "round(j.wait_working_days, 4)",
    "outcome": "j.outcome.value",
    "resolution_working_days": "None if j.resolution_working_days is None else round(j.resolution_working_days, 4)",
    "is_open": "f.is_open", "overdue": "overdue", "deadline": "j.deadline", "deadline_reading": "j.reading",
    "digitised": "f.digitised", "paid_online": "f.paid_online > 0",
    "vneid": "f.vneid", "electronic_result": "f.electronic_result", "first_event_time": "f.first_event_time",
    "last_event_time": "f.last_event_time", "version": "version", "updated_at": "updated_at",
}


def _compile_state_row():
    """``(f, j, overdue, version, updated_at) -> row`` in DOSSIER_STATE_COLUMNS order, compiled
    once into one list display: it runs for every changed dossier (~0.7 per event), and a
    loop over per-column functions cost ~2 µs more per state than the literal list."""
    from sinks.rows import DOSSIER_STATE_COLUMNS
    missing = [c for c in DOSSIER_STATE_COLUMNS if c not in STATE_COLUMN_VALUES]
    extra = [c for c in STATE_COLUMN_VALUES if c not in DOSSIER_STATE_COLUMNS]
    if missing or extra:
        raise RuntimeError(f"dossier_state layout: no value for {missing}, no column for {extra}")
    src = "lambda f, j, overdue, version, updated_at: [" + ", ".join(
        STATE_COLUMN_VALUES[c] for c in DOSSIER_STATE_COLUMNS) + "]"
    return eval(src, {"len": len, "round": round})  # noqa: S307 - our own constant expressions


_state_row = _compile_state_row()


# --------------------------------------------------------------------------- alerts

def alert_id(kind: str, *parts: Any) -> str:
    raw = "|".join(str(p) for p in (kind, *parts))
    return f"{kind}:{hashlib.blake2b(raw.encode(), digest_size=10).hexdigest()}"


def _fmt(t: datetime | None) -> str:
    return t.astimezone(VN).strftime("%H:%M %d/%m/%Y") if t else "?"


def alert_row(kind: str, *, aid: str, unit_code: str = "", kiosk_id: str = "", dossier_code: str = "",
              value: float = 0.0, threshold: float = 0.0, window: str = "", message: str = "",
              raised_at: datetime) -> dict:
    return {"alert_id": aid, "kind": kind, "unit_code": unit_code, "kiosk_id": kiosk_id,
            "dossier_code": dossier_code, "value": float(value), "threshold": float(threshold),
            "window": window, "message": message, "raised_at": raised_at}


def deadline_alert(kind: str, s: DossierState, raised_at: datetime) -> dict:
    """``due_soon`` (about to pass its promised date) or ``overdue`` for one dossier."""
    dl = s.judgement.deadline
    hours_left = (dl - raised_at).total_seconds() / 3600 if dl else 0.0
    if kind == "overdue":
        msg = f"Hồ sơ {s.code} đã quá hạn trả kết quả (hẹn trả {_fmt(dl)})."
    else:
        msg = f"Hồ sơ {s.code} sắp đến hạn trả kết quả ({_fmt(dl)}, còn {max(hours_left, 0):.1f} giờ)."
    return alert_row(kind, aid=alert_id(kind, s.code, to_ms(dl)), unit_code=s.facts.unit_code,
                     dossier_code=s.code, value=round(hours_left, 3), window=_fmt(dl), message=msg,
                     raised_at=raised_at)


def illegal_transition_alert(s: DossierState, raised_at: datetime) -> dict:
    ids = ",".join(s.facts.illegal_event_ids)
    return alert_row("illegal_transition", aid=alert_id("illegal_transition", s.code, ids),
                     unit_code=s.facts.unit_code, dossier_code=s.code, value=s.facts.illegal_transitions,
                     message=f"Hồ sơ {s.code}: {s.facts.illegal_transitions} bước chuyển trạng thái không hợp lệ "
                             f"(sự kiện {ids}).", raised_at=raised_at)


def share_alert(kind: str, unit_code: str, share: float, threshold: float, n: int,
                window_start: datetime, window_end: datetime, raised_at: datetime) -> dict:
    label = "trả kết quả đúng hạn" if kind == "ontime_low" else "hài lòng"
    window = f"{_fmt(window_start)} – {_fmt(window_end)}"
    return alert_row(kind, aid=alert_id(kind, unit_code, to_ms(window_start)), unit_code=unit_code,
                     value=round(share, 4), threshold=threshold, window=window,
                     message=f"Đơn vị {unit_code}: tỷ lệ {label} {share:.0%} thấp hơn ngưỡng {threshold:.0%} "
                             f"({n} lượt, {window}).", raised_at=raised_at)


def silence_alert(unit_code: str, kiosk_id: str, last_seen: datetime, minutes: int, raised_at: datetime) -> dict:
    if kiosk_id:
        subject, kind = f"Ki-ốt {kiosk_id} (đơn vị {unit_code})", "kiosk_silent"
    else:
        subject, kind = f"Đơn vị {unit_code}", "unit_silent"
    return alert_row(kind, aid=alert_id(kind, unit_code, kiosk_id, to_ms(last_seen)), unit_code=unit_code,
                     kiosk_id=kiosk_id, value=round((raised_at - last_seen).total_seconds() / 60, 1),
                     threshold=minutes, window=_fmt(last_seen),
                     message=f"{subject} không gửi dữ liệu từ {_fmt(last_seen)} (quá {minutes} phút).",
                     raised_at=raised_at)
