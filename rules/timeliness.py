"""On-time judgement of a dossier (early / on time / late), pure functions, no I/O.

Rules (shared/DOMAIN.md, "When is a dossier early, on time or late"; values in Settings):

* Finish time precedence: processing finished (status 9 / NgayKetThucXuLy), else result
  returned (10 / NgayTra), else stopped (8) / refused (3, NgayTuChoi) / withdrawn (7).
  Stopped, refused and withdrawn dossiers are closed with their own outcome; they are not
  judged early/on time/late.
* On time: finish <= the effective deadline. Early: at least
  ``settings.early_min_working_days`` working days before it. Late: after it.
* Waiting for the citizen's additional documents is not counted against the unit.
  READING CHOSEN: the deadline is the ORIGINAL promised date (the round's NgayHenTraTruoc,
  else the first NgayHenTra the dossier carried) shifted by the working days actually waited
  (each round's requested_at -> resumed_at; a round still open at the judged moment waits
  until that moment). We do not take NgayHenTraMoi: it is set by the unit itself, can be
  stretched beyond the real wait, and a later NgayHenTra also arrives with the apology
  letter of a dossier that is ALREADY late ("phiếu xin lỗi và hẹn lại"), which must not
  turn it on time. NgayHenTraMoi is used only when no original date is known at all.
* A second supplement round makes the dossier late, whatever its times.
* No promised date: elapsed working days (received, else submitted -> finish, minus the
  wait) compared with the procedure's legal working days (reference data).
  No promised date and no legal time: the dossier cannot be late -> on time.
* An open dossier at the end of a period counts by the period's end: judged as if it
  finished then -> late if past its deadline, else still open (Outcome.OPEN).

Everything is computed in working days with the calendar's ``working_days_between``
(weekends, public holidays and swapped days excluded), so a dossier promised on Friday
17:00 and finished the next Monday 08:00 is a fraction of a working day late, not 2.6 days.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from rules.lifecycle import (CLOSED, FINISHED, NOT_ACCEPTED, RETURNED, STOPPED, WITHDRAWN,
                             DossierFacts, Round, positional)


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


@dataclass(frozen=True)
class Judgement:
    outcome: Outcome
    finish_time: datetime | None
    deadline: datetime | None          # effective deadline (None: none known, or paused while waiting)
    slack_working_days: float | None   # + before the deadline, - after it
    wait_working_days: float
    resolution_working_days: float | None


_judgement = positional(Judgement)


def _base(f: DossierFacts) -> tuple[datetime | None, bool]:
    """(base date, shift_by_wait)."""
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
          legal_working_days: float | None = None, as_of: datetime | None = None) -> Judgement:
    """Outcome of a dossier.

    ``as_of``: judge an open dossier at this moment (the period's end, or now); without it an
    open dossier is Outcome.OPEN with no slack. Closed dossiers ignore ``as_of``.
    """
    t, kind = finish_time(f)
    if kind in ("stopped", "refused", "withdrawn"):
        wait = supplement_wait_working_days(f.rounds, cal, t)
        return _judgement(Outcome(kind), t, None, None, wait, None)
    is_open = t is None
    at = t if not is_open else as_of
    wait = supplement_wait_working_days(f.rounds, cal, at)
    start = _start(f)
    resolution = None
    if not is_open and start is not None and t is not None:
        resolution = max(0.0, _wd(cal, start, t) - wait)

    base, shift = _base(f)
    deadline = None
    slack = None
    if base is not None:
        shift_days = wait if shift else 0.0
        if at is not None:
            slack = shift_days - _wd(cal, base, at)
        if not (is_open and f.waiting_for_citizen):
            deadline = shift_working_days(cal, base, shift_days) if shift_days > 0 else base
    elif legal_working_days is not None and start is not None:
        if at is not None:
            slack = float(legal_working_days) - (_wd(cal, start, at) - wait)
        if not (is_open and f.waiting_for_citizen):
            deadline = shift_working_days(cal, start, float(legal_working_days) + wait)

    if is_open:
        if at is None:
            return _judgement(Outcome.OPEN, None, deadline, None, wait, None)
        late = len(f.rounds) >= 2 or (slack is not None and slack < 0)
        return _judgement(Outcome.LATE if late else Outcome.OPEN, None, deadline, slack, wait, None)

    if len(f.rounds) >= 2:
        outcome = Outcome.LATE
    elif slack is None:
        outcome = Outcome.ON_TIME  # no deadline known: cannot be late
    elif slack >= early_min_working_days:
        outcome = Outcome.EARLY
    elif slack >= 0:
        outcome = Outcome.ON_TIME
    else:
        outcome = Outcome.LATE
    return _judgement(outcome, t, deadline, slack, wait, resolution)


def is_overdue(f: DossierFacts, j: Judgement, now: datetime) -> bool:
    """An open dossier whose effective deadline has passed at wall-clock ``now`` (not while the
    clock is stopped for a supplement)."""
    return f.is_open and not f.waiting_for_citizen and j.deadline is not None and now > j.deadline
