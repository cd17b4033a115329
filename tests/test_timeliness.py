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
