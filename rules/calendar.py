"""Vietnam's working-day calendar for state agencies: pure functions, no I/O after loading.

A day is a working day unless it is a weekend day (Sat, Sun) or a public holiday, where
public holidays come from the ``holidays`` package (Vietnam, lunar Tết included) and the
government's yearly swaps come from ``rules/calendar_overrides.yaml`` (extra days off,
make-up Saturdays, corrections). See that file for sources and their uncertainty.

Fractions of a day. Deadlines are counted in WORKING TIME: a working day is its sessions
(default 07:30-11:30 and 13:30-17:00, 7.5 hours), and ``x`` working days is ``x`` times
that working time. So 0.5 day received Monday 08:00 is due Monday 13:45, and 1 day
received Monday 07:30 is due Monday 17:00 (the end of the day, not Tuesday 07:30).
Time outside sessions (nights, lunch, weekends, holidays) does not count. Sessions are
configurable because provinces set their own office hours (some switch to summer hours).

``add_working_days`` and ``working_days_between`` use the same model, so
``working_days_between(t, add_working_days(t, d)) == d`` for every start ``t``.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays as holidays_lib
import yaml

OVERRIDES_FILE = Path(__file__).resolve().parent / "calendar_overrides.yaml"
VIETNAM_TZ = ZoneInfo("Asia/Ho_Chi_Minh")
DEFAULT_SESSIONS: tuple[tuple[time, time], ...] = ((time(7, 30), time(11, 30)), (time(13, 30), time(17, 0)))
DEFAULT_YEARS = range(2015, 2041)  # span of the precomputed tables; dates outside still work, slower
POINTS_MEMO = 32_768  # instants whose local day and working seconds are remembered (working_days_between)


@dataclass(frozen=True)
class Overrides:
    days_off: dict[date, str] = field(default_factory=dict)
    working_days: dict[date, str] = field(default_factory=dict)
    not_days_off: dict[date, str] = field(default_factory=dict)


def load_overrides(path: Path = OVERRIDES_FILE) -> Overrides:
    """Read the yearly overrides YAML (``{year: {days_off: [...], working_days: [...], not_days_off: [...]}}``)."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    out = Overrides()
    for year, sections in raw.items():
        for key in ("days_off", "working_days", "not_days_off"):
            for item in (sections or {}).get(key) or ():
                d = item["date"] if isinstance(item, dict) else item
                d = date.fromisoformat(d) if isinstance(d, str) else d
                if d.year != int(year):
                    raise ValueError(f"{path.name}: {d} listed under {year}")
                getattr(out, key)[d] = item.get("name", "") if isinstance(item, dict) else ""
    return out


class WorkingCalendar:
    """Working days and working time of state agencies in Vietnam."""

    def __init__(self, days_off: dict[date, str] | None = None, working_days: set[date] | None = None,
                 sessions: tuple[tuple[time, time], ...] = DEFAULT_SESSIONS, tz: ZoneInfo = VIETNAM_TZ,
                 weekend: frozenset[int] = frozenset({5, 6}), years: range = DEFAULT_YEARS):
        self.days_off = dict(days_off or {})            # date -> name (holidays, bridged days)
        self.working_days = frozenset(working_days or ())  # make-up working days on weekends
        self.sessions = tuple(sessions)
        if any(s >= e for s, e in self.sessions) or any(
                a[1] > b[0] for a, b in zip(self.sessions, self.sessions[1:])):
            raise ValueError("sessions must be ordered, non-overlapping (start, end) pairs")
        self.tz = tz
        self.weekend = frozenset(weekend)
        self.day_seconds = float(sum(_secs(e) - _secs(s) for s, e in self.sessions))
        # Prefix count of working days over ``years``: counting whole days in a long
        # interval is O(1) instead of a walk (the stream judges every closing dossier).
        self._t0 = date(years.start, 1, 1).toordinal()
        self._t1 = date(years.stop, 1, 1).toordinal()
        prefix = [0]
        for o in range(self._t0, self._t1):
            prefix.append(prefix[-1] + self._is_working(date.fromordinal(o)))
        self._prefix = prefix
        # is-working flag per day of the table (ordinal - t0), for the hot path
        self._working_flags = bytes(prefix[i + 1] - prefix[i] for i in range(len(prefix) - 1))
        self._sess_secs = [(_secs(s), _secs(e)) for s, e in self.sessions]
        self._sess_ends = [e for _, e in self._sess_secs]
        self._points: dict[datetime, tuple[int, float, float, bool]] = {}
        self._old_points: dict[datetime, tuple[int, float, float, bool]] = {}

    # --- days ---------------------------------------------------------------------------
    def _is_working(self, d: date) -> bool:
        if d in self.days_off:
            return False
        return d.weekday() not in self.weekend or d in self.working_days

    def is_working_day(self, d: date | datetime) -> bool:
        if isinstance(d, datetime):
            d = self._local(d).date()
        o = d.toordinal()
        if self._t0 <= o < self._t1:
            return self._prefix[o - self._t0 + 1] != self._prefix[o - self._t0]
        return self._is_working(d)

    def holiday_name(self, d: date) -> str | None:
        return self.days_off.get(d)

    def _working_days_before(self, o: int) -> int:
        """Working days in [t0, o) (ordinal o), extended by walking outside the table."""
        if self._t0 <= o <= self._t1:
            return self._prefix[o - self._t0]
        if o < self._t0:
            return -sum(self._is_working(date.fromordinal(x)) for x in range(o, self._t0))
        return self._prefix[-1] + sum(self._is_working(date.fromordinal(x)) for x in range(self._t1, o))

    def working_days_in(self, first: date, last: date) -> int:
        """Whole working days in [first, last] (inclusive)."""
        if last < first:
            return 0
        return self._working_days_before(last.toordinal() + 1) - self._working_days_before(first.toordinal())

    def next_working_day(self, d: date) -> date:
        d += timedelta(days=1)
        while not self.is_working_day(d):
            d += timedelta(days=1)
        return d

    # --- working time -------------------------------------------------------------------
    def _local(self, t: datetime) -> datetime:
        if t.tzinfo is None or t.utcoffset() is None:
            raise ValueError("timezone-aware datetimes only (Vietnam is +07:00)")
        return t.astimezone(self.tz)

    def _secs_into_day(self, d: date, s: float) -> float:
        """Working seconds of day ``d`` before second-of-day ``s``."""
        if not self.is_working_day(d):
            return 0.0
        total = 0.0
        for a, b in self._sess_secs:
            if s <= a:
                break
            total += min(s, b) - a
        return total

    def _point(self, t: datetime) -> tuple[int, float, float, bool]:
        """(day ordinal, second of day, working seconds of the day before it, working day?) of
        ``t`` in the calendar's time zone. Remembered per instant (bounded), as the stream
        judges a dossier's dates again on each of its events; not for ``fold=1`` datetimes
        (equal to their fold=0 twin in the same zone, another instant)."""
        p = None if t.fold else (self._points.get(t) or self._old_points.get(t))
        if p is None:
            lt = self._local(t)
            o = lt.toordinal()
            s = lt.hour * 3600 + lt.minute * 60 + lt.second + lt.microsecond / 1e6   # _secs
            i = o - self._t0
            working = (self._working_flags[i] == 1 if 0 <= i < len(self._working_flags)
                       else self._is_working(date.fromordinal(o)))
            before = 0.0
            if working:  # _secs_into_day(day, s)
                for a, b in self._sess_secs:
                    if s <= a:
                        break
                    before += min(s, b) - a
            p = (o, s, before, working)
            if t.fold:
                return p
        if len(self._points) >= POINTS_MEMO // 2 and t not in self._points:
            self._old_points, self._points = self._points, {}
        self._points[t] = p
        return p

    def working_days_between(self, a: datetime, b: datetime) -> float:
        """Working days (fractional) from ``a`` to ``b``; negative when ``b`` is before ``a``."""
        # The stream's hot path: both ends from the memo of points, days by ordinal in the
        # prefix table. Same arithmetic, in the same order, as _secs_into_day and
        # working_days_in on the local dates, so the results are bit for bit the same.
        points = self._points
        pa = points.get(a)
        if pa is None or a.fold:
            pa = self._point(a)
        pb = points.get(b)
        if pb is None or b.fold:
            pb = self._point(b)
        oa, sa, ia, wa = pa
        ob, sb, ib, _ = pb
        if ob < oa or (ob == oa and sb < sa):   # local b < local a
            return -self.working_days_between(b, a)
        if oa == ob:
            secs = ib - ia
        else:
            # whole working days in [day a + 1, day b - 1]
            whole = 0 if ob - 1 < oa + 1 else self._working_days_before(ob) - self._working_days_before(oa + 1)
            secs = (self.day_seconds if wa else 0.0) - ia + whole * self.day_seconds + ib
        return secs / self.day_seconds

    def add_working_days(self, start: datetime, days: float) -> datetime:
        """The instant ``days`` (>= 0, fractional) working days after ``start``.

        An exact multiple ending at a session's end returns that end (17:00), not the next
        morning. The result is in the calendar's time zone, rounded to the microsecond."""
        if days < 0:
            raise ValueError("days must be >= 0")
        local = self._local(start)
        if days == 0:
            return local
        remaining = days * self.day_seconds
        d = local.date()
        s = float(_secs(local.timetz()))
        while True:
            if self.is_working_day(d):
                left_today = self.day_seconds - self._secs_into_day(d, s)
                if remaining <= left_today + 1e-6:
                    return self._instant(d, self._secs_into_day(d, s) + remaining)
                remaining -= left_today
                # skip whole working days in one step when far from the end
                whole = int(remaining // self.day_seconds)
                if whole > 1:
                    d = self._skip_working_days(d, whole - 1)
                    remaining -= (whole - 1) * self.day_seconds
            d += timedelta(days=1)
            s = 0.0

    def _skip_working_days(self, d: date, n: int) -> date:
        """The n-th working day after d."""
        o = d.toordinal()
        if self._t0 <= o and o + n * 3 + 60 < self._t1:
            target = self._prefix[o - self._t0 + 1] + n  # working days up to and incl. the answer
            idx = bisect_right(self._prefix, target - 1, lo=o - self._t0 + 1)
            return date.fromordinal(self._t0 + idx - 1)
        for _ in range(n):
            d = self.next_working_day(d)
        return d

    def _instant(self, d: date, working_secs: float) -> datetime:
        """The time of day ``d`` at which ``working_secs`` of its working time have passed."""
        for a, b in self._sess_secs:
            length = b - a
            if working_secs <= length + 1e-6:
                s = a + min(working_secs, length)
                break
            working_secs -= length
        else:  # pragma: no cover - guarded by the caller
            s = self._sess_secs[-1][1]
        us = round(s * 1_000_000)
        return datetime.combine(d, time(0), self.tz) + timedelta(microseconds=us)


def _secs(t: time) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def build_calendar(overrides: Overrides | None = None, years: range = DEFAULT_YEARS,
                   sessions: tuple[tuple[time, time], ...] = DEFAULT_SESSIONS) -> WorkingCalendar:
    """Weekends + ``holidays`` (Vietnam) + overrides."""
    overrides = overrides if overrides is not None else load_overrides()
    vn = holidays_lib.country_holidays("VN", years=list(years))
    days_off = dict(vn.items())
    working = set(getattr(vn, "weekend_workdays", set()))
    days_off.update(overrides.days_off)
    working |= set(overrides.working_days)
    for d in overrides.not_days_off:
        days_off.pop(d, None)
    for d in overrides.days_off:
        working.discard(d)
    return WorkingCalendar(days_off, working, sessions=sessions, years=years)


@lru_cache(maxsize=1)
def default_calendar() -> WorkingCalendar:
    """The calendar with the shipped overrides, built once per process."""
    return build_calendar()
