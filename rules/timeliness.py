"""On-time judgement of a dossier (early / on time / late), pure functions, no I/O.

One truth for every rule (issue 18): ``judge`` returns everything a board or an alert needs
(the effective deadline as an instant, the outcome, the moment judged, whether the clock is
stopped, the reading used) and ``Judgement.overdue_at(now)`` answers "overdue now?", so
nothing downstream re-derives a rule. docs/RULES.md states each rule with its source.

Rules (shared/DOMAIN.md, "When is a dossier early, on time or late" and "The 766 method in
detail"; values in Settings):

* Finish time precedence: processing finished (status 9 / NgayKetThucXuLy), else result
  returned (10 / NgayTra), else stopped (8) / refused (3, NgayTuChoi) / withdrawn (7).
  Stopped, refused and withdrawn dossiers are closed with their own outcome; they are not
  judged early/on time/late.
* ON TIME IFF FINISHED AT OR BEFORE THE EFFECTIVE DEADLINE, compared as instants: a dossier
  promised for 17:00 and finished at 17:30 the same day, or on the Saturday after a Friday
  promise, is late although no working time passed in between (the index's rule 2.1 compares
  NgayKetThucXuLy <= NgayHenTra, an instant, not working days). Finished exactly at the
  deadline is on time. Early: on time AND at least ``early_min_working_days`` working days
  before the deadline (early is a working-day measure: OpenCPS, provincial boards).
* Waiting for the citizen's additional documents is not counted against the unit. How the
  deadline moves after a supplement round is a parameter, ``supplement_reading``:

  - ``SupplementReading.SHIFT_BY_WAIT`` ("shift_by_wait", THE DEFAULT): the original promised
    instant (the first round's NgayHenTraTruoc, else the first NgayHenTra the dossier carried)
    moved on by the working time actually waited (each round's requested_at -> resumed_at; a
    round still open at the judged moment waits until that moment). This is the official
    reading as far as we could establish it (docs/RULES.md, "Sources"): Decree 61/2018/ND-CP,
    the article on resolving the dossier (Art. 17 as third-party material cites it), in the
    wording of Decree 107/2021/ND-CP: a dossier found incomplete during processing is returned
    with a Phiếu yêu cầu bổ sung, hoàn thiện hồ sơ (Form 02, Circular 01/2018/TT-VPCP), the
    request is made at most once per agency, and the time the agency had already spent stays
    counted in the resolution time: the clock stops for the citizen and resumes, it neither
    restarts nor takes a new date; and the national index's formula (Decision 766/QD-TTg,
    rule 2.1) subtracts (supplement completed - supplement requested) from the elapsed time.
    CONFIDENCE: medium. The decree's text was not in the sources we could search, so the
    article and clause numbers are unverified; and Decree 118/2025/ND-CP (with Circular
    03/2025/TT-VPCP) replaced Decree 61/2018 and Circular 01/2018 from 1 July 2025: confirm its
    supplement clause before relying on this.
  - ``SupplementReading.NEW_PROMISE`` ("new_promise"): the unit's new promised date of the
    LAST round (its NgayHenTraMoi); a last round without one falls back to SHIFT_BY_WAIT for
    that dossier (``Judgement.reading`` says which was applied). NgayHenTraMoi is set by the
    unit itself and can be stretched beyond the real wait, hence not the default.

* A second supplement round makes the dossier late, whatever its times (766 rule 2.1; Decree
  107/2021 allows one supplement request per agency). Either reading.
* An apology letter (Phiếu xin lỗi và hẹn lại ngày trả kết quả, Form 04 of Circular
  01/2018/TT-VPCP; Decree 61/2018, same article, on dossiers past their date) is written
  because the dossier IS (about to be) late;
  the re-promised NgayHenTra it brings never becomes a deadline: both readings start from the
  FIRST promised date (DossierFacts.first_promised_at). Under NEW_PROMISE a dossier whose
  first supplement request came after its promised instant was already late then and stays
  late whatever NgayHenTraMoi says (under SHIFT_BY_WAIT this follows from the arithmetic).
* No promised date: the deadline is received (else submitted) + the procedure's legal working
  days + the wait (reference data), compared as an instant too. No promised date and no legal
  time: no deadline, the dossier cannot be late -> on time.
* An open dossier at the end of a period counts by the period's end (``as_of``): late iff the
  period's end is after its deadline (exact, as above) or it has had two rounds; else still
  open (Outcome.OPEN). One waiting for the citizen at the period's end is judged at its open
  round's request (766: "a single supplement request still open counts as the end date").
* Overdue (``Judgement.overdue_at(now)``, ``is_overdue``): open, the clock running (not waiting
  for the citizen) and ``now`` > the effective deadline, exactly.

Working days come from the calendar's ``working_days_between`` (weekends, public holidays and
swapped days excluded); the deadline instant after a shift from ``shift_working_days``.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from enum import Enum

from rules.lifecycle import (FINISHED, NOT_ACCEPTED, RETURNED, STOPPED, WITHDRAWN,
                             DossierFacts, Round)


class Outcome(str, Enum):
    """dossier_state.outcome values."""
    OPEN = ""
    EARLY = "early"
    ON_TIME = "on_time"
    LATE = "late"
    WITHDRAWN = "withdrawn"
    REFUSED = "refused"
    STOPPED = "stopped"

    @property
    def judged(self) -> bool:
        return self in (Outcome.EARLY, Outcome.ON_TIME, Outcome.LATE)


FINISHED_KINDS = ("finished", "returned")


def _wd(cal, a: datetime, b: datetime) -> float:
    """Signed working days from a to b."""
    if b >= a:
        return float(cal.working_days_between(a, b))
    return -float(cal.working_days_between(b, a))


def finish_time(f: DossierFacts) -> tuple[datetime | None, str | None]:
    """(time, kind) by precedence finished > returned > stopped/refused/withdrawn; (None, None) if open.

    Among stopped/refused/withdrawn (normally only one happens) the status the dossier
    ended in decides.
    """
    if f.status in (FINISHED, RETURNED):
        if f.finished_at is not None:
            return f.finished_at, "finished"
        return f.returned_at, "returned"
    if f.status == STOPPED:
        return f.stopped_at, "stopped"
    if f.status == NOT_ACCEPTED:
        return f.refused_at, "refused"
    if f.status == WITHDRAWN:
        return f.withdrawn_at, "withdrawn"
    return None, None


def supplement_wait_working_days(rounds: tuple[Round, ...], cal, until: datetime | None) -> float:
    """Working days waited for the citizen over all rounds; an open round waits until ``until``."""
    total = 0.0
    for r in rounds:
        end = r.resumed_at or until
        if end is not None and end > r.requested_at:
            total += _wd(cal, r.requested_at, end)
    return total


def shift_working_days(cal, start: datetime, days: float) -> datetime:
    """The instant ``days`` (fractional, >= 0) working days after ``start``, per the calendar's
    ``working_days_between`` (bisection on it, so both always agree)."""
    if days <= 0:
        return start
    add = getattr(cal, "add_working_days", None)
    if add is not None:  # calendars with fractional days (rules.calendar) answer directly
        try:
            t = add(start, days)
            if abs(_wd(cal, start, t) - days) < 1e-6:
                return t
        except (TypeError, ValueError):
            pass
    lo, hi = start, start + timedelta(days=max(1.0, days) * 2 + 3)
    while _wd(cal, start, hi) < days:
        lo, hi = hi, hi + (hi - start)
    for _ in range(60):
        mid = lo + (hi - lo) / 2
        if _wd(cal, start, mid) < days:
            lo = mid
        else:
            hi = mid
        if hi - lo <= timedelta(milliseconds=1):
            break
    return hi.replace(microsecond=(hi.microsecond // 1000) * 1000)


class SupplementReading(str, Enum):
    """How a supplement round moves the deadline (module docstring; docs/RULES.md). The value
    is the short code stored with the judgement (``Judgement.reading``)."""
    SHIFT_BY_WAIT = "shift_by_wait"   # first promise + working time waited (official, default)
    NEW_PROMISE = "new_promise"       # the last round's NgayHenTraMoi


_SHIFT = SupplementReading.SHIFT_BY_WAIT.value
_NEW = SupplementReading.NEW_PROMISE.value


@dataclass(frozen=True)
class Judgement:
    outcome: Outcome
    finish_time: datetime | None
    deadline: datetime | None          # effective deadline (None: none known, or paused while waiting)
    slack_working_days: float | None   # + before the deadline, - after it (working time only)
    wait_working_days: float
    resolution_working_days: float | None
    # --- added by issue 18 (fields above keep their order: the stream builds them positionally)
    judged_at: datetime | None         # the instant compared with the deadline: finish, period end,
                                       # or an open round's request; None: open and not judged
    is_open: bool                      # still running (not finished/returned/stopped/refused/withdrawn)
    clock_stopped: bool                # open and waiting for the citizen: deadline paused (None)
    reading: str                       # SupplementReading code applied to this dossier
    basis: str                         # where the deadline comes from: 'promised' (NgayHenTra),
                                       # 'new_promise' (NgayHenTraMoi), 'legal_time', '' (none)

    def overdue_at(self, now: datetime) -> bool:
        """Open, the clock running, and ``now`` strictly after the effective deadline."""
        dl = self.deadline
        return self.is_open and dl is not None and now > dl


_new = object.__new__


def _judgement(outcome, finish, deadline, slack, wait, resolution, judged_at, is_open, clock_stopped,
               reading, basis) -> Judgement:
    """``Judgement(...)`` from all its fields, positionally: one per changed dossier in the
    stream. Filling the instance dict from keywords costs about 0.6 of
    ``rules.lifecycle.positional`` for these 11 fields (which zips names and values); same
    instance (equal, same repr and hash: tests/test_timeliness.py), no ``__init__`` run."""
    obj = _new(Judgement)
    obj.__dict__.update(outcome=outcome, finish_time=finish, deadline=deadline, slack_working_days=slack,
                        wait_working_days=wait, resolution_working_days=resolution, judged_at=judged_at,
                        is_open=is_open, clock_stopped=clock_stopped, reading=reading, basis=basis)
    return obj


# _judgement names every field, in order: fail at import, not in a board, if Judgement changes
if tuple(f.name for f in fields(Judgement)) != (
        "outcome", "finish_time", "deadline", "slack_working_days", "wait_working_days",
        "resolution_working_days", "judged_at", "is_open", "clock_stopped", "reading", "basis"):
    raise TypeError("rules.timeliness._judgement must list Judgement's fields, in order")


def _base(f: DossierFacts) -> tuple[datetime | None, bool]:
    """(base date, from the first promise): the FIRST promised instant, never a re-promise
    (an apology letter's later NgayHenTra must not move the deadline). Only when no original
    date is known at all, the newest NgayHenTraMoi, taken as it is (False)."""
    if f.rounds and f.rounds[0].old_promised_at is not None:
        return f.rounds[0].old_promised_at, True
    if f.first_promised_at is not None:
        return f.first_promised_at, True
    newest = next((r.new_promised_at for r in reversed(f.rounds) if r.new_promised_at), None)
    if newest is not None:
        return newest, False
    return None, True


def _start(f: DossierFacts) -> datetime | None:
    return f.received_at or f.submitted_at


def judge(f: DossierFacts, cal, *, early_min_working_days: float = 1.0,
          legal_working_days: float | None = None, as_of: datetime | None = None,
          supplement_reading: SupplementReading | str = SupplementReading.SHIFT_BY_WAIT) -> Judgement:
    """Outcome of a dossier.

    ``as_of``: judge an open dossier at this moment (the period's end, or now); without it an
    open dossier is Outcome.OPEN with no slack. Closed dossiers ignore ``as_of``.
    ``supplement_reading``: SupplementReading (or its code), see the module docstring.
    """
    if supplement_reading == _SHIFT:     # str-valued enum: members and codes compare equal
        reading = _SHIFT
    elif supplement_reading == _NEW:
        reading = _NEW
    else:
        raise ValueError(f"unknown supplement reading {supplement_reading!r}")
    t, kind = finish_time(f)
    rounds = f.rounds
    if kind in ("stopped", "refused", "withdrawn"):
        wait = supplement_wait_working_days(rounds, cal, t)
        return _judgement(Outcome(kind), t, None, None, wait, None, t, False, False, reading, "")
    is_open = t is None
    waiting = is_open and f.waiting_for_citizen
    at = t if not is_open else as_of
    wait = supplement_wait_working_days(rounds, cal, at) if rounds else 0.0
    # The moment compared with the deadline: an open dossier waiting for the citizen at the
    # period's end is judged at its open round's request (766: a single open request counts as
    # the end date), with the waits of the rounds closed before it.
    judged, judged_wait, at_request = at, wait, False
    if waiting and at is not None and rounds and rounds[-1].resumed_at is None:
        judged, at_request = rounds[-1].requested_at, True
        judged_wait = supplement_wait_working_days(rounds, cal, judged)
    resolution = None
    if not is_open and t is not None:
        start = _start(f)
        if start is not None:
            resolution = max(0.0, _wd(cal, start, t) - wait)

    base, from_first = _base(f)
    deadline = None      # the effective deadline reported (None while the clock is stopped)
    cmp_deadline = None  # the one the judged moment is compared with
    slack = None
    basis = ""
    already_late = False
    new_promise = None
    if reading == _NEW and rounds:
        last = rounds[-1]
        new_promise = last.new_promised_at
        if new_promise is None:
            reading = _SHIFT   # no NgayHenTraMoi on the last round: the default reading applies
    if new_promise is not None and base is not None:
        basis = "new_promise"
        # a dossier already late when the unit asked for documents stays late (the request
        # must come before the promised instant; a later NgayHenTraMoi does not excuse it)
        already_late = from_first and rounds[0].requested_at > base
        if not waiting:
            deadline = new_promise
        if judged is not None:
            if not at_request:
                cmp_deadline = new_promise
            else:  # judged at an open round's request: the promise in force then
                cmp_deadline = base if len(rounds) == 1 else (rounds[-2].new_promised_at or base)
            slack = _wd(cal, judged, cmp_deadline)
    elif base is not None:
        basis = "promised" if from_first else "new_promise"
        shift_days = wait if from_first else 0.0
        if not waiting:
            deadline = shift_working_days(cal, base, shift_days) if shift_days > 0 else base
        if judged is not None:
            cmp_days = judged_wait if from_first else 0.0
            slack = cmp_days - _wd(cal, base, judged)
            cmp_deadline = (deadline if deadline is not None
                            else shift_working_days(cal, base, cmp_days) if cmp_days > 0 else base)
    elif legal_working_days is not None:
        start = _start(f)
        if start is not None:
            basis = "legal_time"
            legal = float(legal_working_days)
            if not waiting:
                deadline = shift_working_days(cal, start, legal + wait)
            if judged is not None:
                slack = legal - (_wd(cal, start, judged) - judged_wait)
                cmp_deadline = (deadline if deadline is not None
                                else shift_working_days(cal, start, legal + judged_wait))

    # late: the judged instant strictly after the deadline (exact, whatever working time lies
    # between), or two supplement rounds, or already late at the first request (NEW_PROMISE)
    late = len(rounds) >= 2 or already_late or (cmp_deadline is not None and judged is not None and judged > cmp_deadline)
    if is_open:
        if judged is None:
            return _judgement(Outcome.OPEN, None, deadline, None, wait, None, None, True, waiting,
                              reading, basis)
        return _judgement(Outcome.LATE if late else Outcome.OPEN, None, deadline, slack, wait, None,
                          judged, True, waiting, reading, basis)

    if late:
        outcome = Outcome.LATE
    elif slack is None:
        outcome = Outcome.ON_TIME  # no deadline known: cannot be late
    elif slack >= early_min_working_days:
        outcome = Outcome.EARLY
    else:
        outcome = Outcome.ON_TIME  # at or before the deadline, less than early_min ahead of it
    return _judgement(outcome, t, deadline, slack, wait, resolution, t, False, False, reading, basis)


def is_overdue(f: DossierFacts, j: Judgement, now: datetime) -> bool:
    """An open dossier whose effective deadline has passed at wall-clock ``now`` (not while the
    clock is stopped for a supplement): ``j.overdue_at(now)``, kept for the stream's call.
    ``f`` is ``j``'s dossier; the judgement alone decides (its deadline is None while waiting)."""
    return j.overdue_at(now)
