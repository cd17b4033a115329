"""Lifecycle rules: legal transitions and the order-independent fold (rules/lifecycle.py)."""
from __future__ import annotations

import itertools
import random
from datetime import datetime, timedelta, timezone

from rules.lifecycle import EventFacts, fold, is_legal_transition

VN = timezone(timedelta(hours=7))
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=VN)


def ev(i, status, hours, **kw):
    return EventFacts(event_id=f"D1-ev-{i:03d}", event_time=T0 + timedelta(hours=hours), status=status,
                      unit_code="U1", procedure_code="P1", procedure_field="F1", **kw)


def test_legal_transitions():
    assert is_legal_transition(None, 1) and is_legal_transition(None, 2)
    assert is_legal_transition(1, 2) and is_legal_transition(2, 4) and is_legal_transition(4, 4)
    assert is_legal_transition(4, 5) and is_legal_transition(5, 4) and is_legal_transition(4, 9)
    assert is_legal_transition(9, 10) and is_legal_transition(4, 10) and is_legal_transition(1, 3)
    assert not is_legal_transition(None, 9)
    assert not is_legal_transition(10, 4) and not is_legal_transition(9, 4)
    assert not is_legal_transition(7, 2) and not is_legal_transition(3, 4) and not is_legal_transition(8, 9)
    assert not is_legal_transition(4, 1) and not is_legal_transition(5, 5)


def test_fold_is_independent_of_arrival_order_and_duplicates():
    events = [ev(0, 1, 0, submitted_at=T0), ev(1, 2, 1, received_at=T0 + timedelta(hours=1),
                                                promised_at=T0 + timedelta(days=5)),
              ev(2, 4, 2), ev(3, 5, 3), ev(4, 4, 30), ev(5, 9, 50, electronic_result=True), ev(6, 10, 60)]
    ref = fold("D1", events)
    rng = random.Random(7)
    for _ in range(30):
        shuffled = events + rng.sample(events, 3)
        rng.shuffle(shuffled)
        assert fold("D1", shuffled) == ref
    assert ref.status == 10 and ref.event_count == 7 and ref.illegal_transitions == 0
    assert ref.finished_at == T0 + timedelta(hours=50) and ref.returned_at == T0 + timedelta(hours=60)
    assert len(ref.rounds) == 1 and ref.rounds[0].resumed_at == T0 + timedelta(hours=30)
    assert ref.electronic_result and not ref.is_open


def test_fold_of_a_prefix_then_a_late_predecessor_matches_the_whole():
    events = [ev(0, 2, 0), ev(1, 4, 1), ev(2, 9, 2)]
    for perm in itertools.permutations(events):
        assert fold("D1", perm) == fold("D1", events)
    partial = fold("D1", [events[0], events[2]])   # 2 -> 9 is legal (a system skipping 4)
    assert partial.status == 9 and partial.illegal_transitions == 0


def test_event_after_a_closed_status_is_flagged_and_ignored():
    events = [ev(0, 2, 0), ev(1, 9, 1), ev(2, 10, 2), ev(3, 4, 3, promised_at=T0 + timedelta(days=9))]
    f = fold("D1", events)
    assert f.status == 10 and f.illegal_transitions == 1 and f.illegal_event_ids == ("D1-ev-003",)
    assert f.promised_at is None and f.event_count == 4
    assert f.last_event_time == T0 + timedelta(hours=3)


def test_illegal_move_between_open_statuses_is_flagged_but_applied():
    f = fold("D1", [ev(0, 4, 0), ev(1, 2, 1)])
    assert f.illegal_transitions == 2 and f.status == 2   # None -> 4 and 4 -> 2
