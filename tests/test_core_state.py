"""DossierLogic.state on the stream's compact events == the straightforward path, exactly.

The straightforward path is the one first written: one EventFacts per compact event
(``facts_of``), the field-by-field fold (tests/test_lifecycle.py: ``reference_fold``), the
judgement on a calendar whose ``working_days_between`` is the date-based original
(tests/test_calendar.py), and the row as first built. ``repr`` of the row, the facts and the
judgement, and the version must be identical (the kill -9 exactness test relies on them).
"""
from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta, timezone

import pytest

from rules.calendar import WorkingCalendar, default_calendar
from rules.timeliness import is_overdue, judge
from streams.core import DossierLogic, compact, facts_of, merge
from tests.test_calendar import reference_working_days_between
from tests.test_lifecycle import ms_rows, random_events, reference_fold

VN = timezone(timedelta(hours=7))


class ReferenceCalendar(WorkingCalendar):
    def working_days_between(self, a, b):
        return reference_working_days_between(self, a, b)


@pytest.fixture(scope="module")
def calendars():
    cal = default_calendar()
    fresh = WorkingCalendar(cal.days_off, set(cal.working_days), sessions=cal.sessions)
    ref = ReferenceCalendar(cal.days_off, set(cal.working_days), sessions=cal.sessions)
    return fresh, ref


def reference_state(code, events, now, cal, legal_days):
    f = reference_fold(code, [facts_of(c) for c in events])
    j = judge(f, cal, early_min_working_days=1.0, legal_working_days=legal_days(f.procedure_code))
    overdue = is_overdue(f, j, now)
    version = 2 * f.event_count + (1 if overdue else 0)
    closed_at = j.finish_time if not f.is_open else None
    row = [
        f.dossier_code, f.unit_code, f.procedure_code, f.procedure_field, f.channel, f.status,
        f.submitted_at, f.received_at, f.promised_at, f.finished_at, f.returned_at, f.refused_at,
        closed_at, len(f.rounds), round(j.wait_working_days, 4), j.outcome.value,
        None if j.resolution_working_days is None else round(j.resolution_working_days, 4),
        f.is_open, overdue, j.deadline, j.reading, f.digitised, f.paid_online > 0, f.vneid, f.electronic_result,
        f.first_event_time, f.last_event_time, version, now,
    ]
    return f, j, overdue, version, row


def assert_same(st, ref):
    f, j, overdue, version, row = ref
    assert repr(st.row) == repr(row)
    assert repr(st.facts) == repr(f) and st.facts == f
    assert repr(st.judgement) == repr(j) and st.judgement == j
    assert (st.overdue, st.version) == (overdue, version)


def test_state_of_simulated_streams_is_the_reference(calendars):
    """The simulator's province feed (duplicates, out-of-order events), merged batch by batch
    as streams/dossiers.py does; every state of every batch, both from the very lists (memory
    store) and from lists read back as JSON (changelog)."""
    from schemas.codec import decode_dossier
    from simulator import DOSSIER_TOPIC, Anomaly, SimConfig, generate
    cal, ref_cal = calendars
    cfg = SimConfig(start=date(2026, 4, 20), days=8, scale=0.2, seed=11,
                    supplement_share=0.3, second_supplement_share=0.3, not_accepted_share=0.05,
                    withdrawn_share=0.05, stopped_share=0.05,
                    anomalies=(Anomaly("duplicates", share=0.05), Anomaly("out_of_order", share=0.1)))
    evs = [decode_dossier(e.value) for e in generate(cfg)
           if e.topic == DOSSIER_TOPIC and not (e.anomaly or "").startswith("malformed")]
    legal = {"days": None}

    def legal_days(code):
        return legal["days"]
    logic = DossierLogic(cal, legal_days=legal_days)
    now = cfg.end - timedelta(days=3)
    table, n = {}, 0
    for i in range(0, len(evs), 150):
        by_code = {}
        for ev in evs[i:i + 150]:
            by_code.setdefault(ev.dossier_code, []).append(compact(ev))
        for code, cs in by_code.items():
            merged, applied, _ = merge(table.get(code), cs)
            if not applied:
                continue
            table[code] = merged
            legal["days"] = (None, 3.0, 0.5)[n % 3]
            assert_same(logic.state(code, merged, now, now), reference_state(code, merged, now, ref_cal, legal_days))
            copy = json.loads(json.dumps(merged))
            assert_same(logic.state(code, copy, now, now), reference_state(code, copy, now, ref_cal, legal_days))
            n += 1
    assert n > 500


def test_state_of_messy_compact_lists_is_the_reference(calendars):
    """Lists no merge would produce: unsorted, duplicated ids with other content, illegal
    statuses, dates or not, listed supplement rounds; ``now`` before, during and after."""
    cal, ref_cal = calendars
    logic = DossierLogic(cal, legal_days=lambda code: 2.0 if code == "P1" else None)
    rng = random.Random(99)
    for k in range(2000):
        t0 = datetime(2026, 4, 27, 8, 0, tzinfo=VN) + timedelta(days=rng.randrange(60), minutes=rng.randrange(600))
        events = random_events(rng, code=f"D{k}", t0=t0)
        rows = ms_rows(events)
        now = t0 + timedelta(days=rng.choice((0, 2, 10, 40)))
        assert_same(logic.state(f"D{k}", rows, now, now),
                    reference_state(f"D{k}", rows, now, ref_cal, logic.legal_days))
