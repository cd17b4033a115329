"""Dossier lifecycle: legal status transitions and the fold of a dossier's events into facts.

Pure functions, no I/O. The stream (streams/) and the batch recomputation in the tests use
the same ``fold`` so a dossier's state is a function of the SET of its events, whatever the
order and the duplicates in which they arrived:

* events are de-duplicated by ``event_id`` (first copy wins) and sorted by
  ``(event_time, event_id)`` before folding, so an event arriving before its predecessor
  cannot corrupt the state;
* an illegal transition is counted (``DossierFacts.illegal_transitions``) and, when the
  dossier is already closed (3 not accepted, 7 withdrawn, 8 stopped, 9 finished,
  10 returned), the offending event is ignored (a closed dossier does not reopen);
  an illegal move between open statuses (e.g. 1 -> 9, a system that does not sync every
  step) is applied, because the newer status is still the best knowledge we have.

Status codes (TrangThaiHoSo, DVCQG): 1 new, 2 received, 3 not accepted, 4 in progress,
5 supplement requested, 6 financial obligation, 7 withdrawn, 8 stopped, 9 finished,
10 returned.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from typing import Any, Callable, Iterable, Sequence

NEW, RECEIVED, NOT_ACCEPTED, IN_PROGRESS, SUPPLEMENT, FINANCIAL, WITHDRAWN, STOPPED, FINISHED, RETURNED = range(1, 11)

CLOSED = frozenset({NOT_ACCEPTED, WITHDRAWN, STOPPED, FINISHED, RETURNED})
"""Statuses at which the dossier no longer runs against its deadline (9 waits only for hand-over)."""
INITIAL = frozenset({NEW, RECEIVED, NOT_ACCEPTED})

_PROCESSING_NEXT = frozenset({IN_PROGRESS, SUPPLEMENT, FINANCIAL, WITHDRAWN, STOPPED, FINISHED, RETURNED})
LEGAL_NEXT: dict[int | None, frozenset[int]] = {
    None: INITIAL,
    NEW: frozenset({RECEIVED, NOT_ACCEPTED, WITHDRAWN}),
    RECEIVED: _PROCESSING_NEXT,
    IN_PROGRESS: _PROCESSING_NEXT,                      # 4 -> 4: hand-over between officers
    SUPPLEMENT: frozenset({IN_PROGRESS, FINANCIAL, WITHDRAWN, STOPPED, FINISHED}),
    FINANCIAL: _PROCESSING_NEXT - {FINANCIAL},
    FINISHED: frozenset({RETURNED}),
    NOT_ACCEPTED: frozenset(),
    WITHDRAWN: frozenset(),
    STOPPED: frozenset(),
    RETURNED: frozenset(),
}


def is_legal_transition(prev: int | None, new: int) -> bool:
    """May a dossier move from status ``prev`` (None: no event yet) to ``new``?"""
    return int(new) in LEGAL_NEXT.get(None if prev is None else int(prev), frozenset())


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)


def to_ms(t: datetime | None) -> int | None:
    """Epoch milliseconds (floor) of an aware datetime: the time keys of the stream's event
    rows (and of DateTime64(3) columns). In integers: exact, and cheaper than
    ``int(t.timestamp() * 1000)`` (two float roundings)."""
    return None if t is None else (t - _EPOCH) // _ONE_MS


def positional(cls: type) -> Callable[..., Any]:
    """A constructor of frozen dataclass ``cls`` from ALL its fields, positionally, that
    fills the instance dict in one step. A frozen dataclass's ``__init__`` sets each field
    with ``object.__setattr__``: 2.9 µs for DossierFacts' 25 fields, 1.2 µs this way, and
    the stream builds one DossierFacts, Judgement and DossierState per state change. Same
    instance (equal, same repr and hash); no defaults, no ``__post_init__``."""
    names = tuple(f.name for f in fields(cls))
    if getattr(cls, "__post_init__", None) is not None:
        raise TypeError(f"{cls.__name__} has a __post_init__")
    new = object.__new__

    def make(*values: Any):
        if len(values) != len(names):
            raise TypeError(f"{cls.__name__}: {len(names)} values expected, got {len(values)}")
        obj: Any = new(cls)
        obj.__dict__.update(zip(names, values))
        return obj
    make.__name__ = make.__qualname__ = f"{cls.__name__}_positional"
    return make


@dataclass(frozen=True)
class Round:
    """One supplement round (DanhSachHoSoBoSung)."""
    requested_at: datetime
    resumed_at: datetime | None = None
    old_promised_at: datetime | None = None
    new_promised_at: datetime | None = None


@dataclass(frozen=True)
class EventFacts:
    """What the fold needs from one DossierEvent (see ``from_event``)."""
    event_id: str
    event_time: datetime
    status: int
    unit_code: str = ""
    procedure_code: str = ""
    procedure_field: str = ""
    channel: int = 1
    submitted_at: datetime | None = None
    received_at: datetime | None = None
    promised_at: datetime | None = None
    finished_at: datetime | None = None
    returned_at: datetime | None = None
    refused_at: datetime | None = None
    supplements: tuple[Round, ...] = ()
    digitised: bool = False
    electronic_result: bool = False
    paid_online: int = 0
    vneid: bool = False

    @classmethod
    def from_event(cls, ev) -> "EventFacts":
        """From a schemas.contracts.DossierEvent."""
        return cls(
            event_id=ev.event_id, event_time=ev.event_time, status=int(ev.status),
            unit_code=ev.unit_code, procedure_code=ev.procedure_code,
            procedure_field=ev.procedure_field, channel=int(ev.channel),
            submitted_at=ev.submitted_at, received_at=ev.received_at, promised_at=ev.promised_at,
            finished_at=ev.finished_at, returned_at=ev.returned_at, refused_at=ev.refused_at,
            supplements=tuple(Round(s.requested_at, s.resumed_at, s.old_promised_at, s.new_promised_at)
                              for s in ev.supplements),
            digitised=bool(ev.has_digitised_components), electronic_result=bool(ev.electronic_result),
            paid_online=int(ev.paid_online), vneid=bool(ev.vneid_authenticated),
        )


@dataclass(frozen=True)
class DossierFacts:
    """A dossier's state as the fold of its events (event-time order)."""
    dossier_code: str
    status: int
    unit_code: str
    procedure_code: str
    procedure_field: str
    channel: int
    submitted_at: datetime | None
    received_at: datetime | None
    first_promised_at: datetime | None   # NgayHenTra as first promised: the judgement's base
    promised_at: datetime | None         # the promised date currently in force (latest)
    finished_at: datetime | None         # status 9 (or NgayKetThucXuLy)
    returned_at: datetime | None         # status 10 (or NgayTra)
    refused_at: datetime | None          # status 3 (or NgayTuChoi)
    stopped_at: datetime | None          # status 8
    withdrawn_at: datetime | None        # status 7
    rounds: tuple[Round, ...]
    digitised: bool
    electronic_result: bool
    paid_online: int
    vneid: bool
    first_event_time: datetime
    last_event_time: datetime
    event_count: int                     # distinct events applied (the dedup set's size)
    illegal_transitions: int = 0
    illegal_event_ids: tuple[str, ...] = field(default=())

    @property
    def is_open(self) -> bool:
        return self.status not in CLOSED

    @property
    def waiting_for_citizen(self) -> bool:
        return self.status == SUPPLEMENT


_facts = positional(DossierFacts)


# --------------------------------------------------------------------------- the fold
#
# The fold runs on EVENT ROWS: one sequence per event, in the layout of the stream's
# compact events (streams/core.py keeps them in its state table), so the stream folds its
# stored lists directly, without building an EventFacts per event on every new event of a
# dossier. ``fold`` turns EventFacts into rows; there is one implementation of the rules.
# Times in a row are any totally ordered keys (datetimes here, epoch milliseconds in the
# stream) and ``when`` turns a key into the datetime of the facts; it must be strictly
# increasing (so ordering and equality of keys are those of the instants).

(ROW_ID, ROW_TIME, ROW_STATUS, ROW_UNIT, ROW_PROCEDURE, ROW_FIELD, ROW_CHANNEL, ROW_SUBMITTED, ROW_RECEIVED,
 ROW_PROMISED, ROW_FINISHED, ROW_RETURNED, ROW_REFUSED, ROW_SUPPLEMENTS, ROW_FLAGS, ROW_PAID) = range(16)
"""Event row layout. ROW_SUPPLEMENTS: sequence of (requested, resumed, old promised, new
promised) time keys (or None); ROW_FLAGS: bits below."""
FLAG_DIGITISED, FLAG_ERESULT, FLAG_VNEID = 1, 2, 4

_NO_NEXT: frozenset[int] = frozenset()
_by_time_then_id = itemgetter(ROW_TIME, ROW_ID)


def event_row(e: EventFacts) -> tuple:
    """An EventFacts as an event row (times stay datetimes)."""
    return (e.event_id, e.event_time, e.status, e.unit_code, e.procedure_code, e.procedure_field, e.channel,
            e.submitted_at, e.received_at, e.promised_at, e.finished_at, e.returned_at, e.refused_at,
            [(r.requested_at, r.resumed_at, r.old_promised_at, r.new_promised_at) for r in e.supplements],
            (FLAG_DIGITISED if e.digitised else 0) | (FLAG_ERESULT if e.electronic_result else 0)
            | (FLAG_VNEID if e.vneid else 0),
            e.paid_online)


def _rounds(applied: Sequence[Sequence], when) -> tuple[Round, ...]:
    # Rounds as listed by the system (union over events, by requested_at, fields merged
    # first-non-null in event-time order) ...
    listed: dict = {}
    for e in applied:
        for r in e[ROW_SUPPLEMENTS]:
            cur = listed.get(r[0])
            if cur is None:
                cur = listed[r[0]] = [r[0], None, None, None]
            for i in (1, 2, 3):
                if cur[i] is None and r[i] is not None:
                    cur[i] = r[i]
    # ... and rounds seen as status transitions into 5 (requested) and out of it (resumed).
    derived: list[list] = []
    prev = None
    for e in applied:
        st = e[ROW_STATUS]
        if st == SUPPLEMENT and prev != SUPPLEMENT:
            derived.append([e[ROW_TIME], None, None, None])
        elif prev == SUPPLEMENT and st != SUPPLEMENT and derived and derived[-1][1] is None:
            derived[-1][1] = e[ROW_TIME]
        prev = st
    if not listed:
        rounds = derived
    else:
        rounds = [listed[k] for k in sorted(listed)]
        # a listed round without resumed_at takes it from the status history: the first
        # event leaving status 5 after the request
        for r in rounds:
            if r[1] is None:
                for d in derived:
                    if d[1] is not None and d[1] > r[0] and d[0] <= d[1]:
                        r[1] = d[1]
                        break
    if when is None:
        return tuple(Round(*r) for r in rounds)
    return tuple(Round(*[None if v is None else when(v) for v in r]) for r in rounds)  # type: ignore[arg-type]  # requested_at is never None in a stored round


def fold(dossier_code: str, events: Iterable[EventFacts]) -> DossierFacts | None:
    """Fold a dossier's events (any order, duplicates allowed) into its facts; None if no event."""
    return fold_rows(dossier_code, [event_row(e) for e in events])


def fold_rows(dossier_code: str, rows: Iterable[Sequence], when: Callable[[Any], datetime | None] | None = None
              ) -> DossierFacts | None:
    """``fold`` over event rows (layout ROW_*); ``when(key)`` -> datetime for the rows' time keys
    (None: they are datetimes already). Duplicates by event id: the first copy wins."""
    seen: dict = {}
    for r in rows:
        if r[ROW_ID] not in seen:
            seen[r[ROW_ID]] = r
    if not seen:
        return None
    ordered = sorted(seen.values(), key=_by_time_then_id)
    # One pass over the events. Among the APPLIED events, in event-time order: dates are the
    # first non-None (promised: the last one too), unit / procedure / field the last
    # non-empty, channel the last, flags any(), paid_online max() (its first maximum);
    # a status's time is its first event's.
    legal_next = LEGAL_NEXT
    status: int | None = None
    allowed = legal_next[None]
    applied: list = []
    illegal: list[str] = []
    status_times: dict = {}
    unit_code = procedure_code = procedure_field = ""
    submitted_at = received_at = first_promised_at = promised_at = None
    finished_at = returned_at = refused_at = None
    flags = 0
    paid_online = None
    with_rounds = False   # a listed round or a status 5: else no round, whatever the rest
    for e in ordered:
        (eid, t, st, unit, proc, fld, _channel, sub, rec, prom, fin, ret, ref, _supplements, fl, paid
         ) = e if len(e) == 16 else e[:16]
        if int(st) not in allowed:  # is_legal_transition(status, st)
            illegal.append(eid)
            if status in CLOSED:
                continue  # a closed dossier does not reopen: ignore the event's status and dates
        if st != status:
            allowed = legal_next.get(int(st), _NO_NEXT)
        status = st
        applied.append(e)
        if st not in status_times:
            status_times[st] = t
        if unit:
            unit_code = unit
        if proc:
            procedure_code = proc
        if fld:
            procedure_field = fld
        if submitted_at is None:
            submitted_at = sub
        if received_at is None:
            received_at = rec
        if prom is not None:
            if first_promised_at is None:
                first_promised_at = prom
            promised_at = prom
        if finished_at is None:
            finished_at = fin
        if returned_at is None:
            returned_at = ret
        if refused_at is None:
            refused_at = ref
        flags |= fl
        if paid_online is None or paid > paid_online:
            paid_online = paid
        if _supplements or st == SUPPLEMENT:
            with_rounds = True
    # ``applied`` is never empty: the first event is always applied (no status yet is not closed)
    if finished_at is None:
        finished_at = status_times.get(FINISHED)
    if returned_at is None:
        returned_at = status_times.get(RETURNED)
    if refused_at is None:
        refused_at = status_times.get(NOT_ACCEPTED)
    stopped_at = status_times.get(STOPPED)
    withdrawn_at = status_times.get(WITHDRAWN)
    first_time, last_time = ordered[0][ROW_TIME], ordered[-1][ROW_TIME]
    if when is not None:
        submitted_at, received_at, first_promised_at, promised_at, finished_at, returned_at, refused_at, \
            stopped_at, withdrawn_at = [
                None if v is None else when(v) for v in (
                    submitted_at, received_at, first_promised_at, promised_at, finished_at, returned_at,
                    refused_at, stopped_at, withdrawn_at)]
        first_time = None if first_time is None else when(first_time)
        last_time = None if last_time is None else when(last_time)

    assert status is not None      # every event has one, and rows holds at least one
    return _facts(  # DossierFacts(...), all fields positionally (one per state of the stream)
        dossier_code, int(status), unit_code, procedure_code, procedure_field, applied[-1][ROW_CHANNEL],
        submitted_at, received_at, first_promised_at, promised_at, finished_at, returned_at, refused_at,
        stopped_at, withdrawn_at, _rounds(applied, when) if with_rounds else (),
        bool(flags & FLAG_DIGITISED), bool(flags & FLAG_ERESULT), paid_online, bool(flags & FLAG_VNEID),
        first_time, last_time, len(ordered), len(illegal), tuple(illegal))
