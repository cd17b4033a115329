"""Working-day calendar on real Vietnamese dates (2025-2026)."""
from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta, timezone

import pytest

from rules.calendar import (VIETNAM_TZ, Overrides, WorkingCalendar, build_calendar, default_calendar,
                            load_overrides)


def at(y, m, d, hh=0, mm=0):
    return datetime(y, m, d, hh, mm, tzinfo=VIETNAM_TZ)


@pytest.fixture(scope="module")
def cal() -> WorkingCalendar:
    return default_calendar()


def test_tet_2026_is_five_weekdays_off(cal):
    # Tết Bính Ngọ: Mon 16 - Fri 20 Feb 2026, with weekends 14-22 Feb (9 days).
    for d in range(14, 23):
        assert not cal.is_working_day(date(2026, 2, d)), d
    assert cal.is_working_day(date(2026, 2, 13)) and cal.is_working_day(date(2026, 2, 23))
    assert "Lunar New Year" in cal.holiday_name(date(2026, 2, 17))
    # Friday before Tết 08:00 + 1 working day -> Monday after Tết 08:00
    assert cal.add_working_days(at(2026, 2, 13, 8), 1) == at(2026, 2, 23, 8)
    assert cal.working_days_in(date(2026, 2, 1), date(2026, 2, 28)) == 15


def test_reunification_and_labour_day_2026(cal):
    # Thu 30/4 and Fri 1/5 off, Hùng Kings' day (Sun 26/4) observed Mon 27/4.
    assert not cal.is_working_day(date(2026, 4, 30))
    assert not cal.is_working_day(date(2026, 5, 1))
    assert not cal.is_working_day(date(2026, 4, 27))
    assert cal.is_working_day(date(2026, 4, 28)) and cal.is_working_day(date(2026, 4, 29))
    assert cal.is_working_day(date(2026, 5, 4))
    # Wed 29/4 17:00 -> next working time is Mon 4/5 07:30
    assert cal.add_working_days(at(2026, 4, 29, 17), 0.5) == at(2026, 5, 4, 11, 15)


def test_national_day_2026_two_days_and_swap(cal):
    # 2/9 (Wed) and the adjacent 1/9 (Tue) off; Mon 31/8 bridged, made up on Sat 22/8.
    assert not cal.is_working_day(date(2026, 9, 1))
    assert not cal.is_working_day(date(2026, 9, 2))
    assert not cal.is_working_day(date(2026, 8, 31))
    assert cal.is_working_day(date(2026, 8, 22))  # a Saturday worked
    assert cal.is_working_day(date(2026, 9, 3))


def test_swapped_days_2025(cal):
    # 30/4 - 4/5/2025: Fri 2/5 off, made up on Sat 26/4.
    assert cal.is_working_day(date(2025, 4, 26))
    assert not cal.is_working_day(date(2025, 5, 2))
    # Fri 25/4 17:00 + 0.5 day lands on the worked Saturday morning
    assert cal.add_working_days(at(2025, 4, 25, 17), 0.5) == at(2025, 4, 26, 11, 15)
    # National Day 2025: Mon 1/9 and Tue 2/9
    assert not cal.is_working_day(date(2025, 9, 1)) and not cal.is_working_day(date(2025, 9, 2))
    # Tết Ất Tỵ 2025: Mon 27 - Fri 31 Jan
    days = [date(2025, 1, 24) + timedelta(days=i) for i in range(11)]  # Fri 24/1 .. Mon 3/2
    assert [cal.is_working_day(d) for d in days] == [True] + [False] * 9 + [True]


def test_weekends(cal):
    assert not cal.is_working_day(date(2026, 11, 7))   # Saturday
    assert not cal.is_working_day(date(2026, 11, 8))   # Sunday
    assert cal.is_working_day(date(2026, 11, 9))
    assert cal.working_days_between(at(2026, 11, 6, 17), at(2026, 11, 9, 7, 30)) == 0
    # Friday 16:00 -> Monday 08:00 is 1h + 0.5h of working time
    assert cal.working_days_between(at(2026, 11, 6, 16), at(2026, 11, 9, 8)) == pytest.approx(1.5 / 7.5)


def test_fractional_days_follow_sessions(cal):
    mon = (2026, 11, 2)
    assert cal.add_working_days(at(*mon, 7, 30), 1) == at(*mon, 17)          # end of day, not next morning
    assert cal.add_working_days(at(*mon, 8), 0.5) == at(*mon, 13, 45)        # 3.75 h, across lunch
    # from lunch: 13:30-17:00 (3.5 h) then 0.25 h next morning
    assert cal.add_working_days(at(*mon, 12), 0.5) == at(2026, 11, 3, 7, 45)
    assert cal.add_working_days(at(*mon, 20), 0.5) == at(2026, 11, 3, 11, 15)  # after hours: from next morning
    assert cal.working_days_between(at(*mon, 7, 30), at(*mon, 11, 30)) == pytest.approx(4 / 7.5)
    assert cal.working_days_between(at(*mon, 11, 30), at(*mon, 13, 30)) == 0   # lunch does not count


def test_signed_and_timezones(cal):
    a, b = at(2026, 11, 2, 8), at(2026, 11, 4, 8)
    assert cal.working_days_between(a, b) == pytest.approx(2)
    assert cal.working_days_between(b, a) == pytest.approx(-2)
    # the same instant in UTC counts the same
    from datetime import timezone
    assert cal.working_days_between(a.astimezone(timezone.utc), b) == pytest.approx(2)
    with pytest.raises(ValueError):
        cal.working_days_between(datetime(2026, 11, 2, 8), b)
    with pytest.raises(ValueError):
        cal.add_working_days(a, -1)


def test_vietnam_culture_day_2026(cal):
    # 24/11/2026 (Tuesday) per holidays 0.109; the simulator's November demo crosses it.
    assert not cal.is_working_day(date(2026, 11, 24))
    assert cal.add_working_days(at(2026, 11, 23, 8), 1) == at(2026, 11, 25, 8)


def test_round_trip_add_then_count(cal):
    rnd = random.Random(20261101)
    for _ in range(3000):
        start = at(2025, 1, 1) + timedelta(minutes=rnd.randrange(0, 2 * 365 * 24 * 60))
        days = rnd.choice([0.5, 1, 2, 3, 5, 7, 10, 15, 20, 30]) * rnd.choice([1, 1, 1, rnd.random()])
        end = cal.add_working_days(start, days)
        assert end >= start
        assert cal.working_days_between(start, end) == pytest.approx(days, abs=1e-9)
        # the deadline always falls inside working time of a working day
        assert cal.is_working_day(end.date())
        assert any(s <= end.timetz().replace(tzinfo=None) <= e for s, e in cal.sessions)


def test_overrides_file_and_configurable_sessions():
    ov = load_overrides()
    assert date(2025, 4, 26) in ov.working_days and date(2025, 5, 2) in ov.days_off
    # an override adds a day off and a make-up day the package does not know
    extra = Overrides(days_off={date(2026, 12, 31): "test"}, working_days={date(2026, 12, 26): "test"},
                      not_days_off={})
    custom = build_calendar(extra, years=range(2026, 2027),
                            sessions=((time(8, 0), time(12, 0)), (time(13, 0), time(17, 0))))
    assert not custom.is_working_day(date(2026, 12, 31)) and custom.is_working_day(date(2026, 12, 26))
    assert custom.day_seconds == 8 * 3600
    assert custom.add_working_days(at(2026, 12, 1, 8), 0.5) == at(2026, 12, 1, 12)
    # outside the precomputed span the calendar still answers (by walking)
    assert custom.is_working_day(date(2027, 1, 4))
    assert custom.working_days_in(date(2027, 1, 4), date(2027, 1, 8)) == 5


# --------------------------------------------------------------------------- working_days_between, exactly
# ``reference_working_days_between`` is the method as first written (dates, no memo); the hot
# path (points remembered per instant, days by ordinal) must return the very same floats.

def _secs_of(t) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def reference_working_days_between(cal: WorkingCalendar, a: datetime, b: datetime) -> float:
    la, lb = cal._local(a), cal._local(b)
    if lb < la:
        return -reference_working_days_between(cal, b, a)
    da, db = la.date(), lb.date()
    sa, sb = _secs_of(la.timetz()), _secs_of(lb.timetz())
    if da == db:
        secs = cal._secs_into_day(db, sb) - cal._secs_into_day(da, sa)
    else:
        whole = cal.working_days_in(da + timedelta(days=1), db - timedelta(days=1))
        secs = ((cal.day_seconds if cal.is_working_day(da) else 0.0) - cal._secs_into_day(da, sa)
                + whole * cal.day_seconds + cal._secs_into_day(db, sb))
    return secs / cal.day_seconds


def _random_instants(rnd: random.Random, start: datetime, days: int, n: int) -> list[datetime]:
    out = []
    for _ in range(n):
        t = start + timedelta(seconds=rnd.randrange(days * 86400),
                              microseconds=rnd.choice((0, 0, rnd.randrange(10**6))))
        if rnd.random() < 0.1:   # session edges, lunch, midnight
            t = t.replace(hour=rnd.choice((0, 7, 11, 13, 17, 23)), minute=rnd.choice((0, 30, 59)), second=0,
                          microsecond=0)
        out.append(t.astimezone(rnd.choice((VIETNAM_TZ, timezone.utc, timezone(timedelta(hours=7)))))
                   if rnd.random() < 0.5 else t)
    return out


def test_working_days_between_is_bit_for_bit_the_reference(cal):
    rnd = random.Random(41)
    points = _random_instants(rnd, at(2024, 12, 20), 500, 1500)
    for _ in range(20000):
        a, b = rnd.choice(points), rnd.choice(points)
        if rnd.random() < 0.3:   # same day, often
            b = a + timedelta(minutes=rnd.randrange(-600, 600))
        assert cal.working_days_between(a, b) == reference_working_days_between(cal, a, b), (a, b)


def test_working_days_between_outside_the_table_and_with_a_tiny_memo(monkeypatch):
    import rules.calendar as calmod
    monkeypatch.setattr(calmod, "POINTS_MEMO", 8)   # the memo turns over all the time
    small = build_calendar(years=range(2026, 2027))
    rnd = random.Random(5)
    points = _random_instants(rnd, at(2025, 10, 1), 500, 400)   # 2025 and 2027: walked, not tabled
    for _ in range(5000):
        a, b = rnd.choice(points), rnd.choice(points)
        assert small.working_days_between(a, b) == reference_working_days_between(small, a, b), (a, b)
    assert len(small._points) <= 4 and len(small._old_points) <= 4


def test_working_days_between_with_fold_twins():
    """Two datetimes of a zone with summer time at the same wall time of its autumn fold
    (fold=0, fold=1) are equal and hash alike but are an hour apart: the memo of points
    must not answer one with the other's."""
    from zoneinfo import ZoneInfo
    paris = ZoneInfo("Europe/Paris")
    cal = WorkingCalendar({}, set(), weekend=frozenset(), years=range(2026, 2027))   # Vietnam's time
    first = datetime(2026, 10, 25, 2, 30, tzinfo=paris)           # 00:30 UTC, 07:30 in Vietnam
    second = datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=paris)  # 01:30 UTC, 08:30 in Vietnam
    assert first == second and hash(first) == hash(second)
    start = at(2026, 10, 23, 9)
    for a, b in ((start, first), (start, second), (first, second), (second, first), (second, start)):
        assert cal.working_days_between(a, b) == reference_working_days_between(cal, a, b), (a, b)
    assert cal.working_days_between(first, second) == pytest.approx(1 / 7.5)


def test_no_working_time_across_the_2026_breaks(cal):
    # The exact-deadline cases in tests/test_timeliness.py rest on these: the gaps below hold
    # no working time at all, so only an instant comparison can tell "late" there.
    assert cal.working_days_between(at(2026, 2, 13, 17), at(2026, 2, 23, 7, 30)) == 0    # Tết Bính Ngọ
    assert cal.working_days_between(at(2026, 4, 29, 17), at(2026, 5, 4, 7, 30)) == 0     # 30/4 - 1/5
    assert cal.working_days_between(at(2026, 8, 28, 17), at(2026, 9, 3, 7, 30)) == 0     # 31/8 - 2/9
    assert cal.working_days_between(at(2026, 5, 5, 17), at(2026, 5, 5, 17, 30)) == 0     # after hours
    # the made-up Saturday 22/8/2026 has a full day of working time
    assert cal.working_days_between(at(2026, 8, 22, 7, 30), at(2026, 8, 22, 17)) == pytest.approx(1)
