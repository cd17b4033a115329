"""Lifecycle rules: legal transitions and the order-independent fold (rules/lifecycle.py)."""
from __future__ import annotations

import itertools
import random

import pytest
from datetime import datetime, timedelta, timezone

from rules.lifecycle import (CLOSED, FINISHED, NOT_ACCEPTED, RETURNED, STOPPED, SUPPLEMENT, WITHDRAWN, DossierFacts,
                             EventFacts, Round, fold, fold_rows, is_legal_transition)

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


# --------------------------------------------------------------------------- the one-pass fold
# ``reference_fold`` is the fold as first written (field by field over the applied events, one
# EventFacts per event); the one-pass fold over event rows must give exactly its facts.

def _first(values):
    for v in values:
        if v is not None:
            return v
    return None


def _reference_rounds(applied):
    listed = {}
    for e in applied:
        for r in e.supplements:
            cur = listed.setdefault(r.requested_at, [r.requested_at, None, None, None])
            for i, v in enumerate((r.resumed_at, r.old_promised_at, r.new_promised_at), start=1):
                if cur[i] is None and v is not None:
                    cur[i] = v
    derived = []
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
        for r in rounds:
            if r[1] is None:
                for d in derived:
                    if d[1] is not None and d[1] > r[0] and d[0] <= d[1]:
                        r[1] = d[1]
                        break
    return tuple(Round(*r) for r in rounds)


def reference_fold(dossier_code, events):
    seen = {}
    for e in events:
        seen.setdefault(e.event_id, e)
    ordered = sorted(seen.values(), key=lambda e: (e.event_time, e.event_id))
    if not ordered:
        return None
    status = None
    applied, illegal = [], []
    for e in ordered:
        if not is_legal_transition(status, e.status):
            illegal.append(e.event_id)
            if status in CLOSED:
                continue
        status = e.status
        applied.append(e)
    rev = applied[::-1]
    status_times = {}
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
        rounds=_reference_rounds(applied),
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


def random_events(rng: random.Random, code: str = "D1", t0: datetime = T0) -> list[EventFacts]:
    """A messy dossier: any statuses (legal or not), ties on time, duplicated ids with other
    content, dates present or not, supplement rounds listed or not, in any order."""
    def when(hours_max=400):
        return t0 + timedelta(minutes=15 * rng.randrange(hours_max * 4))

    def maybe(p=0.4):
        return when() if rng.random() < p else None
    requested = [when() for _ in range(3)]
    events = []
    n = rng.randrange(1, 10)
    ids = [f"{code}-ev-{i:03d}" for i in range(n)]
    path = [rng.choice((1, 2)), 4] + [rng.choice((4, 5, 5, 6, 9, 10, 3, 7, 8, 2, 1)) for _ in range(n)]
    for i in range(n):
        status = path[i] if rng.random() < 0.8 else rng.randrange(1, 11)
        sup = tuple(Round(r, maybe(0.5), maybe(0.5), maybe(0.5)) for r in rng.sample(requested, rng.randrange(0, 3))
                    ) if rng.random() < 0.3 else ()
        events.append(EventFacts(
            event_id=rng.choice(ids) if rng.random() < 0.15 else ids[i],
            event_time=when(40) if rng.random() < 0.2 else t0 + timedelta(hours=3 * i),
            status=status, unit_code=rng.choice(("", "U1", "U2")), procedure_code=rng.choice(("", "P1")),
            procedure_field=rng.choice(("", "F1", "F2")), channel=rng.choice((1, 2, 3)),
            submitted_at=maybe(0.3), received_at=maybe(0.3), promised_at=maybe(0.4), finished_at=maybe(0.15),
            returned_at=maybe(0.15), refused_at=maybe(0.1), supplements=sup,
            digitised=rng.random() < 0.2, electronic_result=rng.random() < 0.2, vneid=rng.random() < 0.2,
            paid_online=rng.choice((0, 0, 1, 2)),
        ))
    rng.shuffle(events)
    return events


def test_one_pass_fold_matches_the_field_by_field_reference():
    rng = random.Random(20260302)
    for k in range(3000):
        events = random_events(rng, code=f"D{k}")
        ref = reference_fold(f"D{k}", events)
        got = fold(f"D{k}", events)
        assert got == ref and repr(got) == repr(ref), events   # repr: bool vs int, tz, ...
    assert fold("D0", []) is None and reference_fold("D0", []) is None


def _ms(t):
    return None if t is None else int(t.timestamp() * 1000)


def ms_rows(events) -> list[list]:
    """EventFacts as the stream stores them: event rows with epoch-millisecond times."""
    return [[e.event_id, _ms(e.event_time), e.status, e.unit_code, e.procedure_code, e.procedure_field,
             e.channel, _ms(e.submitted_at), _ms(e.received_at), _ms(e.promised_at), _ms(e.finished_at),
             _ms(e.returned_at), _ms(e.refused_at),
             [[_ms(r.requested_at), _ms(r.resumed_at), _ms(r.old_promised_at), _ms(r.new_promised_at)]
              for r in e.supplements],
             (1 if e.digitised else 0) | (2 if e.electronic_result else 0) | (4 if e.vneid else 0),
             e.paid_online] for e in events]


def test_fold_rows_on_millisecond_keys_matches_the_fold_on_datetimes():
    """The stream folds rows whose times are epoch milliseconds, turned into datetimes by
    ``when`` at the end: same facts as folding the datetimes themselves."""
    rng = random.Random(7)

    def when(v):
        return datetime.fromtimestamp(v / 1000, VN)
    for k in range(1000):
        events = random_events(rng, code=f"D{k}")
        got = fold_rows(f"D{k}", ms_rows(events), when)
        ref = reference_fold(f"D{k}", events)
        assert got == ref and repr(got) == repr(ref)



def test_positional_constructor_builds_the_same_frozen_instance():
    from dataclasses import FrozenInstanceError, astuple

    from rules.lifecycle import positional
    make = positional(Round)
    t = datetime(2026, 5, 4, 9, 30, tzinfo=timezone(timedelta(hours=7)))
    values = (t, None, t + timedelta(days=2), None)
    got, want = make(*values), Round(*values)
    assert got == want and repr(got) == repr(want) and hash(got) == hash(want) and astuple(got) == values
    with pytest.raises(FrozenInstanceError):
        got.resumed_at = t
    with pytest.raises(TypeError, match="4 values expected"):
        make(t)
