"""On-time judgement on hand-computed cases, with holidays (rules/timeliness.py).

Calendar for the hand-computed numbers: tests/support/fakecal.FakeCalendar, Mon-Fri except
30 April and 1 May 2026 (Thu, Fri), a working day = 24 h. Around that long weekend:
Tue 28/4, Wed 29/4 work; Thu 30/4, Fri 1/5 holidays; Sat 2/5, Sun 3/5 weekend; Mon 4/5 works.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from rules.lifecycle import EventFacts, Round, fold
from rules.timeliness import Outcome, finish_time, is_overdue, judge, shift_working_days
from tests.support.fakecal import FakeCalendar

VN = timezone(timedelta(hours=7))
CAL = FakeCalendar(holidays={date(2026, 4, 30), date(2026, 5, 1)})


def t(day: str, hm: str = "00:00") -> datetime:
    return datetime.fromisoformat(f"2026-{day}T{hm}:00").replace(tzinfo=VN)


def dossier(*events, code="D1"):
    evs = []
    for i, e in enumerate(events):
        status, when, extra = e[0], e[1], (e[2] if len(e) > 2 else {})
        evs.append(EventFacts(event_id=f"{code}-ev-{i:03d}", event_time=when, status=status,
                              unit_code="U1", procedure_code="P1", procedure_field="F1", **extra))
    return fold(code, evs)


RECEIVED = (2, t("04-28", "08:00"), {"received_at": t("04-28", "08:00"), "promised_at": t("05-04", "17:00")})


def j(f, **kw):
    kw.setdefault("early_min_working_days", 1.0)
    return judge(f, CAL, **kw)


def test_on_time_same_day_before_promise():
    f = dossier(RECEIVED, (4, t("04-28", "09:00")), (9, t("05-04", "10:00")))
    r = j(f)
    assert r.outcome is Outcome.ON_TIME
    assert r.slack_working_days == pytest.approx(7 / 24)


def test_early_counts_working_days_only_holidays_excluded():
    # 29/4 10:00 -> 4/5 17:00 = 14/24 (29/4) + 0 (30/4, 1/5 holidays, weekend) + 17/24 = 1.29 wd
    f = dossier(RECEIVED, (9, t("04-29", "10:00")))
    r = j(f)
    assert r.slack_working_days == pytest.approx(31 / 24)
    assert r.outcome is Outcome.EARLY
    # with a stricter "early" (2 working days) it is only on time; without the holidays it would be 3.29
    assert judge(f, CAL, early_min_working_days=2.0).outcome is Outcome.ON_TIME
    assert judge(f, FakeCalendar(), early_min_working_days=2.0).outcome is Outcome.EARLY


def test_late_after_promise_even_by_an_hour():
    f = dossier(RECEIVED, (9, t("05-04", "18:00")))
    assert j(f).outcome is Outcome.LATE
    assert j(f).slack_working_days == pytest.approx(-1 / 24)


def test_finished_on_a_holiday_after_promise_is_late_by_no_working_time():
    # promised Wed 29/4 17:00; finished on the holiday 30/4: 7/24 of 29/4 elapsed -> late
    f = dossier((2, t("04-28", "08:00"), {"promised_at": t("04-29", "17:00")}), (9, t("04-30", "10:00")))
    r = j(f)
    assert r.outcome is Outcome.LATE and r.slack_working_days == pytest.approx(-7 / 24)


def test_finish_precedence_finished_before_returned():
    f = dossier(RECEIVED, (9, t("05-04", "16:00")), (10, t("05-06", "09:00")))
    assert finish_time(f) == (t("05-04", "16:00"), "finished")
    assert j(f).outcome is Outcome.ON_TIME
    only_returned = dossier(RECEIVED, (4, t("04-28", "09:00")), (10, t("05-06", "09:00")))
    assert finish_time(only_returned) == (t("05-06", "09:00"), "returned")
    assert j(only_returned).outcome is Outcome.LATE
    # NgayKetThucXuLy carried on the event wins over the event's own time
    carried = dossier(RECEIVED, (9, t("05-05", "09:00"), {"finished_at": t("05-04", "09:00")}))
    assert finish_time(carried)[0] == t("05-04", "09:00")


@pytest.mark.parametrize("status,outcome", [(7, Outcome.WITHDRAWN), (8, Outcome.STOPPED)])
def test_withdrawn_and_stopped_are_their_own_outcomes(status, outcome):
    f = dossier(RECEIVED, (4, t("04-28", "09:00")), (status, t("05-06", "09:00")))
    r = j(f)
    assert r.outcome is outcome and r.finish_time == t("05-06", "09:00")


def test_refused_at_reception():
    f = dossier((1, t("04-28", "08:00")), (3, t("04-28", "09:00"), {"refused_at": t("04-28", "08:30")}))
    r = j(f)
    assert r.outcome is Outcome.REFUSED and r.finish_time == t("04-28", "08:30")


def test_supplement_wait_shifts_the_deadline_by_working_days_waited():
    # wait Tue 28/4 17:00 -> Wed 29/4 17:00 = 1 wd; deadline 4/5 17:00 + 1 wd = Tue 5/5 17:00
    rnd = Round(t("04-28", "17:00"), t("04-29", "17:00"), t("05-04", "17:00"), t("05-20", "17:00"))
    f = dossier(RECEIVED, (5, t("04-28", "17:00")), (4, t("04-29", "17:00"), {"supplements": (rnd,)}),
                (9, t("05-05", "12:00")))
    r = j(f)
    assert r.wait_working_days == pytest.approx(1.0)
    assert r.deadline == t("05-05", "17:00")
    assert r.slack_working_days == pytest.approx(5 / 24)
    assert r.outcome is Outcome.ON_TIME  # late without the shift
    # the unit's own NgayHenTraMoi (20/5) is not trusted: finishing 7/5 is late
    f2 = dossier(RECEIVED, (5, t("04-28", "17:00")), (4, t("04-29", "17:00"), {"supplements": (rnd,)}),
                 (9, t("05-07", "12:00")))
    assert j(f2).outcome is Outcome.LATE
    # resolution time excludes the wait: 28/4 08:00 -> 5/5 12:00 = 16/24+1+1+12/24 = 3.17 wd, minus 1
    assert r.resolution_working_days == pytest.approx(16 / 24 + 2 + 12 / 24 - 1)


def test_supplement_round_derived_from_status_history_when_not_listed():
    f = dossier(RECEIVED, (5, t("04-28", "17:00")), (4, t("04-29", "17:00")), (9, t("05-05", "12:00")))
    assert len(f.rounds) == 1 and f.rounds[0].resumed_at == t("04-29", "17:00")
    assert j(f).outcome is Outcome.ON_TIME


def test_second_supplement_round_is_late_whatever_the_times():
    f = dossier(RECEIVED, (5, t("04-28", "10:00")), (4, t("04-28", "11:00")),
                (5, t("04-28", "12:00")), (4, t("04-28", "13:00")), (9, t("04-28", "14:00")))
    assert len(f.rounds) == 2
    assert j(f).outcome is Outcome.LATE


def test_apology_letter_new_date_does_not_make_a_late_dossier_on_time():
    f = dossier(RECEIVED, (4, t("05-05", "09:00"), {"promised_at": t("05-08", "17:00")}),
                (9, t("05-06", "09:00")))
    assert f.promised_at == t("05-08", "17:00") and f.first_promised_at == t("05-04", "17:00")
    assert j(f).outcome is Outcome.LATE


def test_no_promised_date_uses_the_procedures_legal_working_days():
    rec = (2, t("04-28", "08:00"), {"received_at": t("04-28", "08:00")})
    # elapsed 28/4 08:00 -> 4/5 08:00 = 16/24 + 1 + 8/24 = 2.0 wd vs 3 legal: 1 wd early
    early = dossier(rec, (9, t("05-04", "08:00")))
    assert j(early, legal_working_days=3).outcome is Outcome.EARLY
    assert j(early, legal_working_days=3).slack_working_days == pytest.approx(1.0)
    # -> 5/5 09:00 = 16/24+1+1+9/24 = 3.04 wd > 3: late
    late = dossier(rec, (9, t("05-05", "09:00")))
    assert j(late, legal_working_days=3).outcome is Outcome.LATE
    # no promise, no legal time: cannot be late
    assert j(late).outcome is Outcome.ON_TIME


def test_open_dossier_counts_by_the_period_end():
    f = dossier(RECEIVED, (4, t("04-28", "09:00")))
    assert j(f).outcome is Outcome.OPEN
    assert j(f, as_of=t("04-30", "23:59")).outcome is Outcome.OPEN   # still within its deadline
    assert j(f, as_of=t("05-31", "23:59")).outcome is Outcome.LATE   # past it at the period's end


def test_open_dossier_waiting_for_the_citizen_is_not_late_and_not_overdue():
    f = dossier(RECEIVED, (5, t("04-29", "08:00")))
    r = j(f, as_of=t("05-20", "00:00"))
    assert r.outcome is Outcome.OPEN and r.deadline is None
    assert not is_overdue(f, j(f), t("05-20", "00:00"))


def test_overdue_is_the_deadline_passing_in_wall_clock_time():
    f = dossier(RECEIVED, (4, t("04-28", "09:00")))
    r = j(f)
    assert r.deadline == t("05-04", "17:00")
    assert not is_overdue(f, r, t("05-04", "16:59"))
    assert is_overdue(f, r, t("05-04", "17:01"))
    closed = dossier(RECEIVED, (9, t("05-05", "09:00")))
    assert not is_overdue(closed, j(closed), t("05-06", "00:00"))


def test_shift_working_days_skips_holidays_and_weekends():
    assert shift_working_days(CAL, t("04-29", "17:00"), 1.0) == t("05-04", "17:00")
    assert shift_working_days(CAL, t("04-29", "12:00"), 0.5) == t("04-30", "00:00")
    assert shift_working_days(CAL, t("04-29", "12:00"), 0.75) == t("05-04", "06:00")


def test_default_calendar_vietnam_holidays():
    cal_mod = pytest.importorskip("rules.calendar")
    cal = cal_mod.default_calendar()
    # 30/4 and 1/5 are public holidays in Vietnam; 2 September (National Day) too
    assert not cal.is_working_day(date(2026, 4, 30))
    assert not cal.is_working_day(date(2026, 5, 1))
    assert not cal.is_working_day(date(2026, 9, 2))
    # same dossier as the hand-computed early case: the holidays keep it at ~1.3 wd, early
    f = dossier(RECEIVED, (9, t("04-29", "10:00")))
    r = judge(f, cal, early_min_working_days=1.0)
    assert r.outcome in (Outcome.EARLY,)
    assert judge(f, cal, early_min_working_days=2.5).outcome is Outcome.ON_TIME


# --------------------------------------------------------------------------- issue 18
# Exact deadlines and the two supplement readings, on the PRODUCTION calendar
# (rules/calendar.py: sessions 07:30-11:30 and 13:30-17:00, so 1 working day = 7.5 h) and
# real 2026 dates. Days off used below (rules/calendar.py + calendar_overrides.yaml, checked
# in tests/test_calendar.py): Tết Bính Ngọ Sat 14 - Sun 22 Feb (Mon 16 - Fri 20 off);
# Mon 27/4 (Hùng Kings' day observed), Thu 30/4, Fri 1/5; Mon 31/8 (bridged, made up on
# Sat 22/8, a working day), Tue 1/9, Wed 2/9. Every expected instant is written by hand.

from rules.calendar import default_calendar  # noqa: E402
from rules.timeliness import SupplementReading  # noqa: E402

VNC = default_calendar()
SHIFT, NEW = SupplementReading.SHIFT_BY_WAIT, SupplementReading.NEW_PROMISE
H = 1 / 7.5   # one working hour, in working days


def at(m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(2026, m, d, hh, mm, tzinfo=VN)


def vj(f, reading=SHIFT, **kw):
    kw.setdefault("early_min_working_days", 1.0)
    return judge(f, VNC, supplement_reading=reading, **kw)


def received(when: datetime, promised: datetime | None):
    extra = {"received_at": when}
    if promised is not None:
        extra["promised_at"] = promised
    return (2, when, extra)


def with_round(rec, requested, resumed, finished=None, *, old=None, new=None):
    """Dossier: received, a supplement round (status 5 -> 4, listed with its dates), finished."""
    rnd = Round(requested, resumed, old, new)
    evs = [rec, (4, rec[1] + timedelta(minutes=30)), (5, requested, {"supplements": (Round(requested, None, old),)})]
    if resumed is not None:
        evs.append((4, resumed, {"supplements": (rnd,)}))
    if finished is not None:
        evs.append((9, finished))
    return dossier(*evs)


@pytest.mark.parametrize("reading", [SHIFT, NEW])
def test_finished_after_hours_on_the_promised_day_is_late(reading):
    # promised Tue 5/5 17:00; finished 17:30 the same day: no working time in between, but
    # after the promised instant -> late (it used to be on time: slack 0)
    f = dossier(received(at(5, 4, 8), at(5, 5, 17)), (9, at(5, 5, 17, 30)))
    r = vj(f, reading)
    assert r.outcome is Outcome.LATE
    assert r.deadline == at(5, 5, 17) and r.judged_at == at(5, 5, 17, 30)
    assert r.slack_working_days == pytest.approx(0.0)
    assert (r.basis, r.reading, r.is_open, r.clock_stopped) == ("promised", reading.value, False, False)
    # exactly at the promised instant: on time
    exact = dossier(received(at(5, 4, 8), at(5, 5, 17)), (9, at(5, 5, 17)))
    assert vj(exact, reading).outcome is Outcome.ON_TIME


def test_finished_on_saturday_for_a_friday_promise_is_late():
    # promised Fri 8/5 17:00; Sat 9/5 09:00 and Mon 11/5 07:30 (first working minute) are both
    # after it with no working time in between -> late
    for fin in (at(5, 9, 9), at(5, 11, 7, 30)):
        f = dossier(received(at(5, 4, 8), at(5, 8, 17)), (9, fin))
        r = vj(f)
        assert r.outcome is Outcome.LATE, fin
        assert r.slack_working_days == pytest.approx(0.0)
    # Fri 8/5 15:30 -> 17:00 = 1.5 h = 0.2 wd before: on time, not early
    f = dossier(received(at(5, 4, 8), at(5, 8, 17)), (9, at(5, 8, 15, 30)))
    r = vj(f)
    assert r.outcome is Outcome.ON_TIME and r.slack_working_days == pytest.approx(1.5 * H)


def test_open_dossier_at_a_period_end_after_its_promise_in_non_working_time_is_late():
    # promised Fri 29/5 17:00; the month ends Sun 31/5 23:59:59: no working time between, the
    # period's end is after the promise -> late (it used to stay open: slack 0)
    f = dossier(received(at(5, 25, 8), at(5, 29, 17)), (4, at(5, 25, 9)))
    month_end = datetime(2026, 5, 31, 23, 59, 59, tzinfo=VN)
    r = vj(f, as_of=month_end)
    assert r.outcome is Outcome.LATE and r.judged_at == month_end and r.is_open
    assert r.slack_working_days == pytest.approx(0.0)
    # a period ending exactly at the promise: still open, not late
    assert vj(f, as_of=at(5, 29, 17)).outcome is Outcome.OPEN
    # overdue the same way: strictly after the instant, at any hour
    s = vj(f)
    assert s.outcome is Outcome.OPEN and s.deadline == at(5, 29, 17) and s.judged_at is None
    assert not s.overdue_at(at(5, 29, 17)) and not is_overdue(f, s, at(5, 29, 17))
    assert s.overdue_at(at(5, 29, 17) + timedelta(milliseconds=1))
    assert s.overdue_at(at(5, 30, 8)) and is_overdue(f, s, at(5, 30, 8))   # Saturday morning


def test_promised_on_a_holiday_and_a_legal_deadline_across_30_april():
    # NgayHenTra on Thu 30/4 10:00 (a public holiday): finished Mon 4/5 08:00 is after it
    # (0.5 h of working time after: 07:30-08:00) -> late; finished on the holiday before 10:00 -> on time
    late = dossier(received(at(4, 28, 8), at(4, 30, 10)), (9, at(5, 4, 8)))
    r = vj(late)
    assert r.outcome is Outcome.LATE and r.slack_working_days == pytest.approx(-0.5 * H)
    assert vj(dossier(received(at(4, 28, 8), at(4, 30, 10)), (9, at(4, 30, 9)))).outcome is Outcome.ON_TIME
    # no NgayHenTra, legal time 1.5 wd from Wed 29/4 08:00: 29/4 gives 3.5 h + 3.5 h = 7 h,
    # 11.25 h needed, 4.25 h left; 30/4, 1/5 off, 2-3/5 weekend; Mon 4/5 07:30 + 4 h = 11:30,
    # + 0.25 h after lunch = 13:45
    rec = (2, at(4, 29, 8), {"received_at": at(4, 29, 8)})
    f = dossier(rec, (9, at(5, 4, 13, 45)))
    r = vj(f, legal_working_days=1.5)
    assert r.deadline == at(5, 4, 13, 45) and r.basis == "legal_time"
    assert r.outcome is Outcome.ON_TIME
    r = vj(dossier(rec, (9, at(5, 4, 13, 46))), legal_working_days=1.5)
    assert r.outcome is Outcome.LATE
    # legal deadline at the end of a day, finished that evening: late (used to be on time)
    # Wed 29/4 08:00 + 7 h = 17:00 the same day; finished 18:00
    r = vj(dossier(rec, (9, at(4, 29, 18))), legal_working_days=7 * H)
    assert r.deadline == at(4, 29, 17) and r.outcome is Outcome.LATE


def test_tet_2026_no_working_time_but_nine_days_late():
    # promised Fri 13/2 17:00 (the last working day before Tết); finished Mon 23/2 07:30, the
    # first working minute after it: 0 working time in between, 10 days later -> late
    f = dossier(received(at(2, 9, 8), at(2, 13, 17)), (9, at(2, 23, 7, 30)))
    r = vj(f)
    assert r.outcome is Outcome.LATE and r.slack_working_days == pytest.approx(0.0)


def test_tet_2026_supplement_round_both_readings():
    # received Thu 12/2 08:00, promised Wed 25/2 17:00; documents requested Fri 13/2 10:00,
    # brought Mon 23/2 09:00. Wait: 13/2 10:00-11:30 (1.5 h) + 13:30-17:00 (3.5 h); 14-22/2 off;
    # 23/2 07:30-09:00 (1.5 h) = 6.5 h.
    # SHIFT_BY_WAIT: 25/2 17:00 + 6.5 h -> Thu 26/2 07:30-11:30 (4 h) + 13:30 + 2.5 h = 16:00.
    # NEW_PROMISE: the unit's NgayHenTraMoi, Fri 27/2 17:00.
    rec = received(at(2, 12, 8), at(2, 25, 17))
    kw = dict(old=at(2, 25, 17), new=at(2, 27, 17))
    f = with_round(rec, at(2, 13, 10), at(2, 23, 9), at(2, 26, 16, 30), **kw)
    s, n = vj(f, SHIFT), vj(f, NEW)
    assert s.wait_working_days == pytest.approx(6.5 * H)
    assert s.deadline == at(2, 26, 16) and n.deadline == at(2, 27, 17)
    assert (s.reading, n.reading) == ("shift_by_wait", "new_promise")
    assert (s.basis, n.basis) == ("promised", "new_promise")
    assert s.outcome is Outcome.LATE          # 16:30 > 16:00
    # NEW_PROMISE: 26/2 16:30 -> 27/2 17:00 = 0.5 + 7.5 h = 8 h = 1.07 wd >= 1: early;
    # with early at 1.5 wd it is only on time
    assert n.outcome is Outcome.EARLY and n.slack_working_days == pytest.approx(8 * H)
    assert vj(f, NEW, early_min_working_days=1.5).outcome is Outcome.ON_TIME
    exact = with_round(rec, at(2, 13, 10), at(2, 23, 9), at(2, 26, 16), **kw)
    assert vj(exact, SHIFT).outcome is Outcome.ON_TIME


def test_30_april_supplement_round_both_readings():
    # received Tue 28/4 08:00, promised Wed 6/5 17:00; requested Wed 29/4 15:00, brought
    # Mon 4/5 10:00. Wait: 29/4 15:00-17:00 (2 h); 30/4, 1/5 off, 2-3/5 weekend; 4/5 07:30-10:00
    # (2.5 h) = 4.5 h. SHIFT: 6/5 17:00 + 4.5 h -> Thu 7/5 07:30 + 4 h = 11:30, + 0.5 h = 14:00.
    # NEW_PROMISE: the unit kept NgayHenTraMoi at Wed 6/5 17:00.
    rec = received(at(4, 28, 8), at(5, 6, 17))
    f = with_round(rec, at(4, 29, 15), at(5, 4, 10), at(5, 7, 13), old=at(5, 6, 17), new=at(5, 6, 17))
    s, n = vj(f, SHIFT), vj(f, NEW)
    assert s.deadline == at(5, 7, 14) and n.deadline == at(5, 6, 17)
    # 13:00 -> 14:00 is lunch until 13:30, then 0.5 h of working time
    assert s.outcome is Outcome.ON_TIME and s.slack_working_days == pytest.approx(0.5 * H)
    assert n.outcome is Outcome.LATE
    # resolution excludes the wait: 28/4 08:00 -> 7/5 13:00 = 28/4 7 h, 29/4 7.5, 4/5 7.5,
    # 5/5 7.5, 6/5 7.5, 7/5 07:30-11:30 4 h = 41 h; minus 4.5 h = 36.5 h
    assert s.resolution_working_days == pytest.approx(36.5 * H)


def test_national_day_2026_swap_supplement_round_both_readings():
    # received Wed 26/8 08:00, promised Fri 4/9 17:00; requested Thu 27/8 16:00, brought
    # Thu 3/9 08:30. Wait: 27/8 16:00-17:00 (1 h) + Fri 28/8 (7.5 h); 29-30/8 weekend; Mon 31/8
    # (bridged), 1/9, 2/9 off; 3/9 07:30-08:30 (1 h) = 9.5 h.
    # SHIFT: 4/9 17:00 + 9.5 h -> 5-6/9 weekend, Mon 7/9 7.5 h (17:00), Tue 8/9 07:30 + 2 h = 09:30.
    # NEW_PROMISE: NgayHenTraMoi Mon 7/9 17:00.
    rec = received(at(8, 26, 8), at(9, 4, 17))
    kw = dict(old=at(9, 4, 17), new=at(9, 7, 17))
    f = with_round(rec, at(8, 27, 16), at(9, 3, 8, 30), at(9, 8, 9), **kw)
    s, n = vj(f, SHIFT), vj(f, NEW)
    assert s.wait_working_days == pytest.approx(9.5 * H)
    assert s.deadline == at(9, 8, 9, 30) and n.deadline == at(9, 7, 17)
    assert s.outcome is Outcome.ON_TIME and n.outcome is Outcome.LATE
    # finished at NgayHenTraMoi exactly: on time under both
    f = with_round(rec, at(8, 27, 16), at(9, 3, 8, 30), at(9, 7, 17), **kw)
    assert vj(f, SHIFT).outcome is Outcome.ON_TIME and vj(f, NEW).outcome is Outcome.ON_TIME
    # finished Fri 4/9 09:30 under SHIFT: 4/9 09:30-17:00 = 2 + 3.5 h, 7/9 7.5 h, 8/9 2 h = 15 h
    # = 2 wd before the deadline: early
    f = with_round(rec, at(8, 27, 16), at(9, 3, 8, 30), at(9, 4, 9, 30), **kw)
    r = vj(f, SHIFT)
    assert r.outcome is Outcome.EARLY and r.slack_working_days == pytest.approx(15 * H)


def test_the_made_up_saturday_22_august_counts():
    # received Fri 21/8 13:30, legal 1 wd: 21/8 13:30-17:00 = 3.5 h, 4 h left on the worked
    # Saturday 22/8: 07:30 + 4 h = 11:30
    rec = (2, at(8, 21, 13, 30), {"received_at": at(8, 21, 13, 30)})
    r = vj(dossier(rec, (9, at(8, 22, 11))), legal_working_days=1)
    assert r.deadline == at(8, 22, 11, 30) and r.outcome is Outcome.ON_TIME
    assert vj(dossier(rec, (9, at(8, 22, 12))), legal_working_days=1).outcome is Outcome.LATE


@pytest.mark.parametrize("reading", [SHIFT, NEW])
def test_apology_letter_re_promise_without_a_round_stays_late(reading):
    # received Mon 4/5 08:00, promised Wed 6/5 17:00; on 6/5 16:00 the unit sends the apology
    # letter with a new date, Mon 11/5 17:00 (NgayHenTra changes, no supplement round);
    # finished Fri 8/5 10:00: before the new date, after the first one -> late
    f = dossier(received(at(5, 4, 8), at(5, 6, 17)), (4, at(5, 6, 16), {"promised_at": at(5, 11, 17)}),
                (9, at(5, 8, 10)))
    assert f.promised_at == at(5, 11, 17) and f.first_promised_at == at(5, 6, 17) and not f.rounds
    r = vj(f, reading)
    assert r.outcome is Outcome.LATE and r.deadline == at(5, 6, 17)
    # still open on 7/5 08:00: overdue against the first promise, not the apology's date
    open_ = dossier(received(at(5, 4, 8), at(5, 6, 17)), (4, at(5, 6, 16), {"promised_at": at(5, 11, 17)}))
    assert vj(open_, reading).overdue_at(at(5, 7, 8))


def test_new_promise_after_the_deadline_had_passed_does_not_excuse():
    # promised Wed 6/5 17:00; documents requested only Thu 7/5 09:00 (already late), brought
    # Fri 8/5 09:00 with NgayHenTraMoi Tue 12/5 17:00; finished Mon 11/5 10:00.
    rec = received(at(5, 4, 8), at(5, 6, 17))
    f = with_round(rec, at(5, 7, 9), at(5, 8, 9), at(5, 11, 10), old=at(5, 6, 17), new=at(5, 12, 17))
    n = vj(f, NEW)
    assert n.deadline == at(5, 12, 17) and n.outcome is Outcome.LATE
    # SHIFT: wait 7/5 09:00 -> 8/5 09:00 = 7.5 h = 1 wd; 6/5 17:00 + 1 wd = Thu 7/5 17:00 < 11/5
    s = vj(f, SHIFT)
    assert s.deadline == at(5, 7, 17) and s.outcome is Outcome.LATE
    # the same round asked for in time (Wed 6/5 09:00 -> Thu 7/5 09:00): the new promise counts,
    # 11/5 10:00 -> 12/5 17:00 = 1.5 + 3.5 + 7.5 h = 12.5 h = 1.67 wd before it: early
    f = with_round(rec, at(5, 6, 9), at(5, 7, 9), at(5, 11, 10), old=at(5, 6, 17), new=at(5, 12, 17))
    assert vj(f, NEW).outcome is Outcome.EARLY
    assert vj(f, NEW).slack_working_days == pytest.approx(12.5 * H)
    # SHIFT: 6/5 17:00 + 1 wd = 7/5 17:00: late on 11/5
    assert vj(f, SHIFT).outcome is Outcome.LATE


@pytest.mark.parametrize("reading", [SHIFT, NEW])
def test_supplement_round_still_open(reading):
    # received Mon 4/5 08:00, promised Fri 8/5 17:00; documents requested Wed 6/5 10:00, not
    # yet brought (status 5); the unit already wrote NgayHenTraMoi Wed 13/5 17:00 on the round
    rec = received(at(5, 4, 8), at(5, 8, 17))
    f = dossier(rec, (4, at(5, 4, 9)),
                (5, at(5, 6, 10), {"supplements": (Round(at(5, 6, 10), None, at(5, 8, 17), at(5, 13, 17)),)}))
    assert f.waiting_for_citizen and f.rounds[-1].resumed_at is None
    r = vj(f, reading)   # as the stream judges it: clock stopped, no deadline, never overdue
    assert r.outcome is Outcome.OPEN and r.deadline is None and r.clock_stopped and r.is_open
    assert not r.overdue_at(at(6, 30, 12)) and not is_overdue(f, r, at(6, 30, 12))
    # at the month's end it is judged at its request (6/5 10:00 <= 8/5 17:00): not late
    p = vj(f, reading, as_of=datetime(2026, 5, 31, 23, 59, 59, tzinfo=VN))
    assert p.outcome is Outcome.OPEN and p.judged_at == at(5, 6, 10)
    # 6/5 10:00 -> 8/5 17:00 = 1.5 + 3.5 + 7.5 + 7.5 = 20 h before the promise
    assert p.slack_working_days == pytest.approx(20 * H)
    # requested only Mon 11/5 09:00, after the promise: late at the period's end
    g = dossier(rec, (4, at(5, 4, 9)),
                (5, at(5, 11, 9), {"supplements": (Round(at(5, 11, 9), None, at(5, 8, 17), at(5, 15, 17)),)}))
    q = vj(g, reading, as_of=datetime(2026, 5, 31, 23, 59, 59, tzinfo=VN))
    assert q.outcome is Outcome.LATE and q.judged_at == at(5, 11, 9)


@pytest.mark.parametrize("reading", [SHIFT, NEW])
def test_second_round_is_late_under_both_readings(reading):
    rec = received(at(5, 4, 8), at(5, 15, 17))
    f = dossier(rec, (5, at(5, 4, 10)), (4, at(5, 4, 11)), (5, at(5, 5, 10)), (4, at(5, 5, 11)),
                (9, at(5, 5, 14)))
    assert len(f.rounds) == 2 and vj(f, reading).outcome is Outcome.LATE


def test_new_promise_without_ngayhentramoi_falls_back_to_the_shift():
    # rounds seen only in the status history carry no NgayHenTraMoi: NEW_PROMISE cannot apply
    # wait Tue 5/5 10:00 -> Wed 6/5 10:00 = 7.5 h = 1 wd: 6/5 17:00 + 1 wd = Thu 7/5 17:00
    f = dossier(received(at(5, 4, 8), at(5, 6, 17)), (5, at(5, 5, 10)), (4, at(5, 6, 10)), (9, at(5, 7, 16)))
    r = vj(f, NEW)
    assert r.reading == "shift_by_wait" and r.deadline == at(5, 7, 17) and r.outcome is Outcome.ON_TIME
    assert r == vj(f, SHIFT)


def test_reading_accepts_codes_and_rejects_unknown_ones():
    f = dossier(received(at(5, 4, 8), at(5, 6, 17)), (9, at(5, 6, 10)))
    assert vj(f, "new_promise").reading == "new_promise" and vj(f, "shift_by_wait").reading == "shift_by_wait"
    assert judge(f, VNC).reading == "shift_by_wait"     # the default
    with pytest.raises(ValueError):
        vj(f, "newest")


def test_closed_outcomes_carry_the_new_fields():
    f = dossier(received(at(5, 4, 8), at(5, 6, 17)), (7, at(5, 5, 9)))
    r = vj(f)
    assert (r.outcome, r.judged_at, r.is_open, r.clock_stopped, r.basis) == (
        Outcome.WITHDRAWN, at(5, 5, 9), False, False, "")
    assert not r.overdue_at(at(6, 1))
    none = dossier((2, at(5, 4, 8), {"received_at": at(5, 4, 8)}), (9, at(6, 30, 9)))
    r = vj(none)
    assert r.outcome is Outcome.ON_TIME and r.deadline is None and r.basis == ""


def test_fast_constructor_builds_the_dataclass_instance():
    from rules.timeliness import Judgement, _judgement
    args = (Outcome.LATE, at(5, 5, 17, 30), at(5, 5, 17), 0.0, 0.25, 3.5, at(5, 5, 17, 30), False, False,
            "new_promise", "promised")
    a, b = _judgement(*args), Judgement(*args)
    assert a == b and repr(a) == repr(b) and hash(a) == hash(b) and type(a) is Judgement
    from dataclasses import FrozenInstanceError
    with pytest.raises(FrozenInstanceError):
        a.outcome = Outcome.EARLY   # still frozen
