"""A small, fully explicit working-day calendar for hand-computed rule tests.

Mon-Fri are working days except the listed holidays; a working day counts 24 hours, so
``working_days_between`` is the fraction of working-day time between two instants. The
production calendar (rules/calendar.py) is tested by its owner; the timeliness tests run
both on this one (hand-computed numbers) and on the default calendar (Vietnam's holidays).
"""
from __future__ import annotations

from datetime import date, datetime, time, timedelta


class FakeCalendar:
    def __init__(self, holidays=(), swapped_working=()):
        self.holidays = set(holidays)
        self.swapped_working = set(swapped_working)

    def is_working_day(self, d: date) -> bool:
        if d in self.swapped_working:
            return True
        return d.weekday() < 5 and d not in self.holidays

    def working_days_between(self, a: datetime, b: datetime) -> float:
        if b <= a:
            return 0.0
        total = 0.0
        d = a.date()
        while d <= b.date():
            if self.is_working_day(d):
                start = datetime.combine(d, time(0), a.tzinfo)
                end = start + timedelta(days=1)
                lo, hi = max(start, a), min(end, b)
                if hi > lo:
                    total += (hi - lo).total_seconds() / 86400.0
            d += timedelta(days=1)
        return total

    def add_working_days(self, start: datetime, days: int) -> datetime:
        d, n = start, 0
        while n < days:
            d += timedelta(days=1)
            if self.is_working_day(d.date()):
                n += 1
        return d
