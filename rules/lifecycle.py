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

from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Sequence

NEW, RECEIVED, NOT_ACCEPTED, IN_PROGRESS, SUPPLEMENT, FINANCIAL, WITHDRAWN, STOPPED, FINISHED, RETURNED = range(1, 11)

TERMINAL = frozenset({NOT_ACCEPTED, WITHDRAWN, STOPPED, RETURNED})
"""Statuses after which nothing may follow."""
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


def _first(values):
    for v in values:
        if v is not None:
            return v
    return None


def dedupe_sorted(events: Iterable[EventFacts]) -> list[EventFacts]:
    """Distinct events (first copy of an event_id wins), in (event_time, event_id) order."""
    seen: dict[str, EventFacts] = {}
    for e in events:
        seen.setdefault(e.event_id, e)
    return sorted(seen.values(), key=lambda e: (e.event_time, e.event_id))


def _rounds(applied: Sequence[EventFacts]) -> tuple[Round, ...]:
    # Rounds as listed by the system (union over events, by requested_at, fields merged
    # first-non-null in event-time order) ...
    listed: dict[datetime, list] = {}
    for e in applied:
        for r in e.supplements:
            cur = listed.setdefault(r.requested_at, [r.requested_at, None, None, None])
            for i, v in enumerate((r.resumed_at, r.old_promised_at, r.new_promised_at), start=1):
                if cur[i] is None and v is not None:
                    cur[i] = v
    # ... and rounds seen as status transitions into 5 (requested) and out of it (resumed).
    derived: list[list] = []
    prev = None
    for e in applied:
        if e.status == SUPPLEMENT and prev != SUPPLEMENT:
            derived.append([e.event_time, None, None, None])
        elif prev == SUPPLEMENT and e.status != SUPPLEMENT and derived and derived[-1][1] is None:
            derived[-1][1] = e.event_time
        prev = e.status
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
    return tuple(Round(*r) for r in rounds)


def fold(dossier_code: str, events: Iterable[EventFacts]) -> DossierFacts | None:
    """Fold a dossier's events (any order, duplicates allowed) into its facts; None if no event."""
    ordered = dedupe_sorted(events)
    if not ordered:
        return None
    status: int | None = None
    applied: list[EventFacts] = []
    illegal: list[str] = []
    for e in ordered:
        if not is_legal_transition(status, e.status):
            illegal.append(e.event_id)
            if status in CLOSED:
                continue  # a closed dossier does not reopen: ignore the event's status and dates
        status = e.status
        applied.append(e)
    if not applied:  # cannot happen (the first event is always applied) but keep the type honest
        applied = ordered[:1]
        status = applied[0].status
    rev = applied[::-1]
    status_times: dict[int, datetime] = {}
    for e in applied:
        status_times.setdefault(e.status, e.event_time)
    first_status_time = status_times.get

    return DossierFacts(
        dossier_code=dossier_code,
        status=int(status),
        unit_code=_first(e.unit_code or None for e in rev) or "",
        procedure_code=_first(e.procedure_code or None for e in rev) or "",
        procedure_field=_first(e.procedure_field or None for e in rev) or "",
        channel=rev[0].channel,
        submitted_at=_first(e.submitted_at for e in applied),
        received_at=_first(e.received_at for e in applied),
        first_promised_at=_first(e.promised_at for e in applied),
        promised_at=_first(e.promised_at for e in rev),
        finished_at=_first(e.finished_at for e in applied) or first_status_time(FINISHED),
        returned_at=_first(e.returned_at for e in applied) or first_status_time(RETURNED),
        refused_at=_first(e.refused_at for e in applied) or first_status_time(NOT_ACCEPTED),
        stopped_at=first_status_time(STOPPED),
        withdrawn_at=first_status_time(WITHDRAWN),
        rounds=_rounds(applied),
        digitised=any(e.digitised for e in applied),
        electronic_result=any(e.electronic_result for e in applied),
        paid_online=max(e.paid_online for e in applied),
        vneid=any(e.vneid for e in applied),
        first_event_time=ordered[0].event_time,
        last_event_time=ordered[-1].event_time,
        event_count=len(ordered),
        illegal_transitions=len(illegal),
        illegal_event_ids=tuple(illegal),
    )
