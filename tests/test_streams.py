"""The worker's batch logic without a broker or ClickHouse: batches through the real checker, rules and
row builders, with in-memory sinks, table and topics.

The integration behaviour (offsets, changelog recovery, kill -9) is tested on the real
broker in tests/integration/test_worker_exactness.py.
"""
from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone

import pytest

from schemas.codec import encode
from schemas.contracts import DossierEvent, KioskRating
from schemas.reference import load_reference

from pulse.config import Settings
from sinks.rows import DOSSIER_STATE_COLUMNS
from streams.checkpoint import BatchLoop, Rebalanced, process_batch
from streams.core import compact, merge
from streams.dossiers import prepare_dossier_batch
from streams.inbox import Inbox
from streams.metrics import GC_CLOCK, Metrics
from streams.ratings import prepare_rating_batch
from streams.runtime import Runtime
from tests.support.inmemory import Msg, make_runtime

VN = timezone(timedelta(hours=7))
NOW = datetime.now(VN).replace(microsecond=0)
REF = load_reference()
UNIT = next(u for u in REF.units.values() if u.kind == "commune")
PROC = REF.procedures_at("commune")[0]


def state_of(row) -> dict:
    """A dossier_state row by column name."""
    return dict(zip(DOSSIER_STATE_COLUMNS, row))


@pytest.fixture()
def rt():
    r = make_runtime()
    r.quality.maybe_run = lambda dq_sink, force=False: None     # no GX child in unit tests
    r.ready = True
    return r


def quick_runtime() -> Runtime:
    """A runtime whose batch loop takes what is there after 10 ms."""
    r = make_runtime(Settings().with_(stream_batch_window_s=0.01))
    r.quality.maybe_run = lambda dq_sink, force=False: None
    r.ready = True
    return r


def process_dossier_batch(rt, messages, owned=lambda: True):
    return process_batch(rt, prepare_dossier_batch, messages, owned)


def process_rating_batch(rt, messages, owned=lambda: True):
    return process_batch(rt, prepare_rating_batch, messages, owned)


def dossier_events(code: str, t0: datetime, finish: bool = True, promised_in=timedelta(days=10)):
    common = dict(source_system="test", dossier_code=code, procedure_code=PROC.code,
                  procedure_field=PROC.field_code, unit_code=UNIT.code)
    evs = [DossierEvent(event_id=f"{code}-event-1", event_time=t0, status=2, received_at=t0,
                        promised_at=t0 + promised_in, **common),
           DossierEvent(event_id=f"{code}-event-2", event_time=t0 + timedelta(hours=1), status=4, **common)]
    if finish:
        evs.append(DossierEvent(event_id=f"{code}-event-3", event_time=t0 + timedelta(hours=3), status=9,
                                finished_at=t0 + timedelta(hours=3), **common))
    return evs


def as_messages(evs, start_offset=0, partition=0):
    return [Msg("t.dossier-events", partition, start_offset + i,
                e if isinstance(e, bytes) else encode(e), NOW.timestamp())
            for i, e in enumerate(evs)]


def run(coro):
    return asyncio.run(coro)


def test_batch_applies_events_writes_rows_and_dead_letters(rt):
    evs = dossier_events("D-1", NOW - timedelta(days=2))
    run(process_dossier_batch(rt, as_messages(evs + [b"{broken"])))
    assert len(rt.sinks.dossier_events.rows) == 3
    (state,) = rt.sinks.dossier_state.rows
    assert state_of(state)["dossier_code"] == "D-1" and state_of(state)["status"] == 9
    assert state_of(state)["outcome"] == "early" and state_of(state)["version"] == 2 * 3
    assert len(rt.sinks.dead_letters.rows) == 1 and rt.sinks.dead_letters.rows[0]["rules"] == ["contract.invalid_json"]
    assert rt.outputs.dead_letters.sent and rt.metrics.dead_letters == 1
    assert [c[0] for c in rt.outputs.table[b"D-1"]] == ["D-1-event-1", "D-1-event-2", "D-1-event-3"]


def test_duplicates_are_not_applied_twice_and_replay_is_a_no_op(rt):
    evs = dossier_events("D-2", NOW - timedelta(days=2))
    msgs = as_messages(evs + [evs[1]])                # a duplicate inside the batch
    run(process_dossier_batch(rt, msgs))
    assert rt.metrics.duplicates == 1 and len(rt.sinks.dossier_events.rows) == 3
    before = list(rt.sinks.dossier_state.rows)
    run(process_dossier_batch(rt, msgs))       # replay after a crash
    assert rt.sinks.dossier_state.rows == before and rt.metrics.duplicates == 5
    assert len(rt.sinks.dossier_events.rows) == 3


def test_out_of_order_arrival_gives_the_state_of_event_time_order(rt):
    evs = dossier_events("D-3", NOW - timedelta(days=2))
    run(process_dossier_batch(rt, as_messages([evs[2]])))          # finished arrives first
    run(process_dossier_batch(rt, as_messages([evs[0]], 1)))
    run(process_dossier_batch(rt, as_messages([evs[1]], 2)))
    last = rt.sinks.dossier_state.rows[-1]
    assert state_of(last)["status"] == 9 and state_of(last)["outcome"] == "early" and state_of(last)["version"] == 6
    # same as applying them in order in one go
    logic = rt.logic
    expected = logic.state("D-3", merge(None, [compact(e) for e in evs])[0], datetime.now(timezone.utc))
    assert last[:-1] == expected.row[:-1]
    # versions only grow
    versions = [state_of(r)["version"] for r in rt.sinks.dossier_state.rows]
    assert versions == sorted(versions)


def test_illegal_transition_is_flagged_with_an_alert_not_applied():
    rt = make_runtime(Settings().with_tunables(illegal_transition_grace_s=0))     # alert at once
    rt.quality.maybe_run = lambda dq_sink, force=False: None
    evs = dossier_events("D-4", NOW - timedelta(days=2))
    late = DossierEvent(event_id="D-4-event-9", event_time=NOW - timedelta(hours=1), status=4, source_system="test",
                        dossier_code="D-4", procedure_code=PROC.code, procedure_field=PROC.field_code,
                        unit_code=UNIT.code)
    run(process_dossier_batch(rt, as_messages(evs + [late])))
    (state,) = rt.sinks.dossier_state.rows
    assert state_of(state)["status"] == 9             # still finished
    assert [a["kind"] for a in rt.sinks.alerts.rows] == ["illegal_transition"]
    assert "không hợp lệ" in rt.sinks.alerts.rows[0]["message"]
    assert rt.metrics.illegal_transitions == 1


def test_an_illegal_transition_is_alerted_only_if_still_there_after_the_grace_period(rt):
    """A late sync: the dossier's 'finished' arrives before its 'received' (1 -> 9 looks
    illegal until the 2 arrives). Healed within the grace period: no alert, counted as healed.
    A real one (a 4 after the 9): alerted once its grace period is over."""
    from streams.transitions import confirm
    table = rt.outputs.table
    t0 = NOW - timedelta(days=2)
    common = dict(source_system="test", dossier_code="D-LATE", procedure_code=PROC.code,
                  procedure_field=PROC.field_code, unit_code=UNIT.code)
    evs = [DossierEvent(event_id="D-LATE-1", event_time=t0, status=1, submitted_at=t0, **common),
           DossierEvent(event_id="D-LATE-2", event_time=t0 + timedelta(hours=1), status=2,
                        received_at=t0 + timedelta(hours=1), promised_at=t0 + timedelta(days=5), **common),
           DossierEvent(event_id="D-LATE-3", event_time=t0 + timedelta(hours=3), status=9,
                        finished_at=t0 + timedelta(hours=3), **common)]
    run(process_dossier_batch(rt, as_messages([evs[0], evs[2]])))          # 1 -> 9: the 2 is late
    assert rt.sinks.alerts.rows == [] and len(rt.transitions.heap) == 1
    run(process_dossier_batch(rt, as_messages([evs[1]], 2)))               # ... and arrives: 1 -> 2 -> 9
    later = datetime.now(timezone.utc) + timedelta(seconds=rt.tunables.illegal_transition_grace_s + 1)
    assert confirm(rt, lambda code: table.get(code.encode()), later) == []
    assert rt.metrics.illegal_transitions == 0 and rt.metrics.illegal_transitions_healed == 1

    evs = dossier_events("D-REAL", NOW - timedelta(days=2))
    again = DossierEvent(event_id="D-REAL-event-9", event_time=NOW - timedelta(hours=1), status=4,
                         source_system="test", dossier_code="D-REAL", procedure_code=PROC.code,
                         procedure_field=PROC.field_code, unit_code=UNIT.code)
    run(process_dossier_batch(rt, as_messages(evs + [again], 10)))
    now = datetime.now(timezone.utc)
    assert confirm(rt, lambda code: table.get(code.encode()), now) == []    # not yet: within the grace period
    later = now + timedelta(seconds=rt.tunables.illegal_transition_grace_s + 1)
    (alert,) = confirm(rt, lambda code: table.get(code.encode()), later)
    assert alert["kind"] == "illegal_transition" and alert["dossier_code"] == "D-REAL"
    assert rt.metrics.illegal_transitions == 1 and rt.transitions.heap == []


def test_open_dossier_is_indexed_and_a_passed_deadline_is_overdue(rt):
    evs = dossier_events("D-5", NOW - timedelta(days=1), finish=False, promised_in=timedelta(days=2))
    run(process_dossier_batch(rt, as_messages(evs)))
    assert state_of(rt.sinks.dossier_state.rows[-1])["overdue"] is False and rt.deadlines.overdue and rt.deadlines.warn
    evs = dossier_events("D-6", NOW - timedelta(days=3), finish=False, promised_in=timedelta(days=1))
    run(process_dossier_batch(rt, as_messages(evs, 10)))
    row = rt.sinks.dossier_state.rows[-1]
    assert state_of(row)["dossier_code"] == "D-6" and state_of(row)["overdue"] is True
    assert state_of(row)["version"] == 2 * 2 + 1


def test_ratings_batch_dedupes_by_rating_id(rt):
    def rating(i, level=5):
        return KioskRating(rating_id=f"R-000000{i}", event_time=NOW - timedelta(minutes=5), kiosk_id="K1",
                           unit_code=UNIT.code, level=level)
    msgs = [Msg("t.ratings", 0, i, encode(r), NOW.timestamp())
            for i, r in enumerate([rating(1), rating(2, 2), rating(1)])]
    run(process_rating_batch(rt, msgs))
    assert [r[0] for r in rt.sinks.ratings.rows] == ["R-0000001", "R-0000002"]
    assert rt.metrics.rating_duplicates == 1

    # a batch dropped after it was prepared (its partitions reassigned) is delivered again
    # later: its ratings are then written, not taken for duplicates of themselves
    again = [Msg("t.ratings", 0, 10 + i, encode(rating(3 + i)), NOW.timestamp()) for i in range(2)]
    with pytest.raises(Rebalanced):
        run(process_rating_batch(rt, again, owned=lambda: False))
    rt.sinks.ratings.rows.clear()
    run(process_rating_batch(rt, again))
    assert [r[0] for r in rt.sinks.ratings.rows] == ["R-0000003", "R-0000004"]


def test_shuffled_batches_converge_to_the_same_states(rt):
    rng = random.Random(3)
    all_events = []
    for i in range(40):
        all_events += dossier_events(f"D-S{i}", NOW - timedelta(days=3, hours=i), finish=bool(i % 3))
    msgs = all_events + rng.sample(all_events, 15)
    rng.shuffle(msgs)
    for k in range(0, len(msgs), 7):
        run(process_dossier_batch(rt, as_messages(msgs[k:k + 7], k)))
    final = {}
    for r in rt.sinks.dossier_state.rows:
        st = state_of(r)
        if st["dossier_code"] not in final or st["version"] >= state_of(final[st["dossier_code"]])["version"]:
            final[st["dossier_code"]] = r
    logic = rt.logic
    now = datetime.now(timezone.utc)
    for i in range(40):
        code = f"D-S{i}"
        evs = [compact(e) for e in all_events if e.dossier_code == code]
        assert final[code][:-1] == logic.state(code, merge(None, evs)[0], now).row[:-1]


class FakeConsumer:
    def __init__(self):
        self.acked = []

    def ack_many(self, messages):
        self.acked.extend(messages)


class FakeApp:
    def __init__(self):
        from mode.utils.queues import FlowControlEvent
        self.consumer_generation_id = 1
        self.consumer = FakeConsumer()
        self.consumer._unacked_messages = set()
        self.flow_control = FlowControlEvent(initially_suspended=False)   # Faust's own kind


def test_inbox_batches_by_size_and_time_and_waits_when_full():
    app = FakeApp()

    async def go():
        box = Inbox(app, "t.dossier-events", max_buffered=5)
        await box.put([1, 2, 3], generation=1)
        b = await box.take(2, within=0.0)
        assert b.messages == [1, 2] and b.generation == 1
        t0 = asyncio.get_running_loop().time()
        b = await box.take(10, within=0.2)        # only one left: returns after the window
        assert b.messages == [3] and asyncio.get_running_loop().time() - t0 >= 0.19
        await box.put([4, 5, 6, 7, 8], generation=1)
        blocked = asyncio.ensure_future(box.put([9], generation=1))
        await asyncio.sleep(0.05)
        assert not blocked.done()                 # full: the fetch loop waits
        assert (await box.take(3, within=0)).messages == [4, 5, 6]
        await asyncio.wait_for(blocked, 1)
        app.flow_control.manage_queue(box)
        app.flow_control.suspend()                 # a rebalance: suspend, then clear
        app.flow_control.clear()                   # drops what was not taken
        assert len(box) == 0
        await box.put([10], generation=2)
        b = await box.take(5, within=0)
        assert b.messages == [10] and box.owns(b) is False   # generation 2 is not the app's (1)
        # resuming the flow also clears managed queues, after Faust's seek to the committed
        # offsets: what was fetched since then is not fetched again, so the inbox keeps it
        await box.put([11, 12], generation=2)
        app.flow_control.resume()
        assert (await asyncio.wait_for(box.take(5, within=0), 2)).messages == [11, 12]
    run(go())


def test_a_revocation_voids_what_the_inbox_held_took_or_was_about_to_take():
    """Fetched messages waiting for room when the inbox is cleared are dropped, not added
    after the clear (they would be processed while the ones cleared before them are not);
    so are those the fetch loop decided to deliver before the clear whose put task only
    runs after it (the two-worker bench lost a partition's first 568 events that way);
    batches taken before the clear are no longer owned."""
    app = FakeApp()

    async def go():
        box = Inbox(app, "t.dossier-events", max_buffered=2)
        app.flow_control.manage_queue(box)
        await box.put([1, 2], generation=1)
        taken = await box.take(1, within=0)
        await box.put([3], generation=1)
        waiting = asyncio.ensure_future(box.put([4, 5], generation=1))   # inbox full: waits
        await asyncio.sleep(0.02)
        # decided after the fetch loop's flow check; wait_first runs it as a task, later
        decided = asyncio.ensure_future(box.put([7], 1, box.epoch))
        app.flow_control.suspend()
        app.flow_control.clear()                   # the revocation
        assert await asyncio.wait_for(waiting, 1) is False
        assert await asyncio.wait_for(decided, 1) is False
        assert len(box) == 0 and not box.owns(taken)
        app.flow_control.resume()
        assert await box.put([6], generation=1) is True
        b = await box.take(5, within=0)
        assert b.messages == [6] and box.owns(b)
    run(go())


def test_batch_loop_acks_only_after_processing_and_drops_reassigned_batches():
    """The real batch loop of the worker (``BatchLoop``) over an inbox, without a broker."""
    rt = quick_runtime()
    app = FakeApp()
    msgs = as_messages(dossier_events("D-TC", NOW - timedelta(days=2)))

    async def go():
        box = Inbox(app, "t.dossier-events", max_buffered=100)
        loop_task = asyncio.ensure_future(BatchLoop(rt, box, prepare_dossier_batch).run())
        await box.put(msgs, generation=1)
        await eventually(lambda: app.consumer.acked)
        assert app.consumer.acked == msgs
        assert rt.sinks.dossier_state.rows and state_of(rt.sinks.dossier_state.rows[-1])["dossier_code"] == "D-TC"
        # a batch whose partitions were reassigned while it was written: not acked, table untouched
        app.consumer.acked.clear()
        gate = asyncio.Event()
        real_write = rt.sinks.dossier_events.write_async

        async def slow_write(rows, wait=False):
            app.consumer_generation_id = 2       # the rebalance happens during the write
            gate.set()
            return await real_write(rows)
        rt.sinks.dossier_events.write_async = slow_write
        late = as_messages(dossier_events("D-TC2", NOW - timedelta(days=2)), 10)
        await box.put(late, generation=1)
        await asyncio.wait_for(gate.wait(), 2)
        await asyncio.sleep(0.1)
        assert app.consumer.acked == []
        assert b"D-TC2" not in rt.outputs.table
        loop_task.cancel()
    run(go())


def test_a_batch_is_acked_only_once_the_broker_has_its_changelog():
    """Offsets must not run ahead of the table's changelog: a crash between the commit and
    the changelog write would recover a table missing the batch (seen under kill -9 when
    Faust's pre-commit flush gave up after 0.1 s)."""
    rt = quick_runtime()
    app = FakeApp()
    msgs = as_messages(dossier_events("D-CL", NOW - timedelta(days=2)))
    rt.outputs.table.hold = True

    async def go():
        box = Inbox(app, "t.dossier-events", max_buffered=100)
        loop_task = asyncio.ensure_future(BatchLoop(rt, box, prepare_dossier_batch).run())
        await box.put(msgs, generation=1)
        await eventually(lambda: rt.outputs.table.sends)
        await asyncio.sleep(0.1)
        assert b"D-CL" in rt.outputs.table and app.consumer.acked == []   # set, sent, not yet confirmed
        for fut in rt.outputs.table.sends:
            fut.set_result(None)
        await eventually(lambda: app.consumer.acked)
        assert app.consumer.acked == msgs
        loop_task.cancel()
    run(go())


def test_gx_runs_every_batch_seconds_when_light_and_every_min_interval_under_load():
    from streams.quality import gx_due
    # light: 4,000 rows waiting of a 10,000 cap -> every 10 s
    assert not gx_due([4000, 0], 10_000, 9.9, 10.0, 30.0)
    assert gx_due([4000, 0], 10_000, 10.0, 10.0, 30.0)
    # under load (a suite at its cap): the longer cadence, whichever suite is loaded
    assert not gx_due([10_000, 5], 10_000, 29.0, 10.0, 30.0)
    assert not gx_due([5, 10_000], 10_000, 29.0, 10.0, 30.0)
    assert gx_due([10_000, 5], 10_000, 30.0, 10.0, 30.0)
    # nothing waiting: never, even forced; forced with rows: now
    assert not gx_due([0, 0], 10_000, 1e9, 10.0, 30.0, force=True)
    assert gx_due([1, 0], 10_000, 0.0, 10.0, 30.0, force=True)


def test_gx_micro_batch_sees_every_contract_valid_event_including_rejected_ones(rt):
    """GX must see data-rule failures (here: an unknown unit), not only accepted events;
    bytes that are not even JSON have no row to validate."""
    good = dossier_events("D-GX", NOW - timedelta(days=2), finish=False)
    unknown_unit = DossierEvent(event_id="D-GX2-event-1", event_time=NOW - timedelta(days=1), status=2,
                                source_system="test", dossier_code="D-GX2", procedure_code=PROC.code,
                                procedure_field=PROC.field_code, unit_code="999.99.99.H99")
    run(process_dossier_batch(rt, as_messages(good + [unknown_unit, b"{broken"])))
    rows = [v.row for v in rt.quality.waiting["dossier_events"]]     # (a passing event's row, built when read)
    assert [r["unit_code"] for r in rows] == [UNIT.code, UNIT.code, "999.99.99.H99"]
    assert len(rt.sinks.dead_letters.rows) == 2   # the unknown unit and the broken bytes


async def eventually(cond, seconds: float = 2.0) -> None:
    """Wait (polling) until ``cond()`` is true, at most ``seconds``; the assertions follow."""
    for _ in range(int(seconds / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)


def hold_clickhouse_writes(rt) -> asyncio.Event:
    """The dossier events' ClickHouse writes stay in flight until the returned event is set."""
    gate = asyncio.Event()
    real_wait = rt.sinks.dossier_events.wait_async

    async def slow_wait(ticket):
        await gate.wait()
        return await real_wait(ticket)
    rt.sinks.dossier_events.wait_async = slow_wait
    return gate


def test_a_batch_prepared_while_the_previous_is_still_being_written_builds_on_it(rt):
    """Pipelining: batch B is applied in memory on top of batch A, whose ClickHouse write is
    still in flight (A is not in the table yet); finishing A then B leaves the union."""
    evs = dossier_events("D-PIPE", NOW - timedelta(days=2))
    gate = hold_clickhouse_writes(rt)

    async def go():
        a = await prepare_dossier_batch(rt, as_messages(evs[:2]), generation=1)
        b = await prepare_dossier_batch(rt, as_messages(evs[2:], 2), generation=1)
        assert b"D-PIPE" not in rt.outputs.table            # nothing in the table before ClickHouse has it
        assert state_of(rt.sinks.dossier_state.rows[-1])["status"] == 9   # B's state already folds A's events: finished
        gate.set()
        await a.finish()
        await b.finish()
        assert [c[0] for c in rt.outputs.table[b"D-PIPE"]] == [e.event_id for e in evs]
        assert rt.overlay.sets == {}
        # a new consumer generation starts from the table, not from in-memory states
        rt.overlay.sets[b"D-OTHER"] = ["stale"]
        await prepare_dossier_batch(rt, [], generation=2)
        assert rt.overlay.sets == {}
    run(go())


def test_a_dropped_batch_of_an_old_assignment_leaves_the_new_assignments_batches_alone(rt):
    """Pipelining across a rebalance: A (old assignment) is still being written when C (new
    assignment, same dossier, re-fetched from the committed offset) is prepared. A is then
    dropped; D, prepared after that, must still build on C, not on the table."""
    evs = dossier_events("D-REB", NOW - timedelta(days=2))
    gate = hold_clickhouse_writes(rt)

    async def go():
        a = await prepare_dossier_batch(rt, as_messages(evs[:2]), generation=1)
        c = await prepare_dossier_batch(rt, as_messages(evs[:2]), generation=2)
        gate.set()
        with pytest.raises(Rebalanced):
            await a.finish(owned=lambda: False)
        d = await prepare_dossier_batch(rt, as_messages(evs[2:], 2), generation=2)
        await c.finish()
        await d.finish()
        assert [x[0] for x in rt.outputs.table[b"D-REB"]] == [e.event_id for e in evs]
    run(go())


def test_messages_dropped_by_a_rebalance_are_no_longer_waited_for():
    """Faust's revocation waits until no tracked message is unacked; messages the inbox drops
    (fetched again later) must stop being tracked even while something still holds them."""
    import weakref as _weakref


    class Tracked:
        pass
    app = FakeApp()
    app.consumer._unacked_messages = _weakref.WeakSet()
    msgs = [Tracked() for _ in range(5)]
    for m in msgs:
        app.consumer._unacked_messages.add(m)

    async def go():
        box = Inbox(app, "t.dossier-events", max_buffered=100)
        await box.put(msgs[:3], generation=1)
        app.flow_control.suspend()                # revocation: suspend, then clear
        box.clear()
        assert set(app.consumer._unacked_messages) == set(msgs[3:])
        await box.put(msgs[3:4], generation=1)
        await box.put([], generation=2)           # next assignment: earlier messages dropped
        assert set(app.consumer._unacked_messages) == {msgs[4]}
    run(go())


def test_the_gx_child_runs_niced_and_ends_when_its_worker_is_killed():
    """A real worker-like process starts the GX pool child, then dies by SIGKILL; the child
    must not stay behind (the worker is crash-only, so this happens on every crash). The
    child runs at the lower CPU priority it was given once started up (the stream comes
    first; in the worker, ``dq.warm`` lowers it after loading GX)."""
    import os
    import signal
    import subprocess
    import sys
    import time
    code = ("import sys, time; from streams import dq; "
            "import os; p = dq.pool(nice=7); p.submit(dq._lower_priority).result(60); "
            "print(p.submit(os.getpid).result(60), flush=True); time.sleep(600)")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        child = int(parent.stdout.readline())
        os.kill(child, 0)                                    # the child is up
        assert os.getpriority(os.PRIO_PROCESS, child) - os.getpriority(os.PRIO_PROCESS, 0) == 7
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                os.kill(child, 0)
            except ProcessLookupError:
                break
            if open(f"/proc/{child}/stat").read().rsplit(")", 1)[1].split()[0] == "Z":
                break                                        # exited, not yet reaped by init
            time.sleep(0.2)
        else:
            os.kill(child, signal.SIGKILL)
            raise AssertionError(f"GX child {child} outlived its killed worker")
    finally:
        if parent.poll() is None:
            parent.kill()


def test_gc_thresholds_from_the_environment_or_the_default():
    from streams.__main__ import GC_THRESHOLDS, gc_thresholds
    assert gc_thresholds("") == GC_THRESHOLDS
    assert gc_thresholds(" 700,10,10 ") == (700, 10, 10)
    for bad in ("700,10", "a,b,c", "0,10,10", "1,2,3,4"):
        with pytest.raises(SystemExit, match="PULSE_GC_THRESHOLD"):
            gc_thresholds(bad)


def test_bulk_ack_keeps_fausts_books_as_acking_one_by_one(monkeypatch):
    """``BatchingConsumer.ack_many`` leaves the consumer's offsets bookkeeping exactly as
    Faust's ``Consumer.ack`` message by message: duplicates, messages already acked, offsets
    below the committed one, a topic without acks."""
    from faust.types import TP, Message

    from streams.app import faust_app
    app = faust_app(Settings())
    topic = Settings().topic("dossier-events")
    # the conductor lists the input topics as acked once the app has subscribed (at start)
    monkeypatch.setattr(app.topics, "_acking_topics", {topic})
    assert app.topics.acks_enabled_for(topic) and not app.topics.acks_enabled_for("not-ours")

    def messages():
        ms = [Message(topic, p, o, 0.0, 0, [], b"k", b"v", None) for p in (0, 1) for o in range(10, 20)]
        ms += [Message(topic, 0, 12, 0.0, 0, [], b"k", b"v", None),       # the same offset again
               Message("not-ours", 0, 3, 0.0, 0, [], b"k", b"v", None)]
        ms[3].acked = True                                                 # acked before
        return ms

    books = []
    for bulk in (False, True):
        consumer = app._new_consumer()
        consumer._committed_offset[TP(topic, 1)] = 15                   # 10..14 of partition 1 are old
        ms = messages()
        consumer._unacked_messages.update(ms)
        if bulk:
            assert consumer.ack_many(ms) == 14
        else:
            for m in ms:
                consumer.ack(m)
        books.append(({tp: list(v) for tp, v in consumer._acked.items() if v},
                      {tp: set(v) for tp, v in consumer._acked_index.items() if v}, consumer._n_acked,
                      sorted((m.topic, m.partition, m.offset) for m in consumer._unacked_messages),
                      [m.acked for m in ms]))
    assert books[0] == books[1]
    assert books[1][2] == 14 and all(books[1][4])


def test_the_gc_clock_is_installed_once_and_counts_collections():
    """However many Metrics a process builds, the GC is timed by one callback (each extra
    one ran at every collection and logged each long pause again); the status page's
    figures are that clock's."""
    import gc
    for _ in range(3):
        Metrics()
    assert sum(cb is GC_CLOCK for cb in gc.callbacks) == 1
    n = GC_CLOCK.collections
    gc.collect()
    m = Metrics().as_dict()
    assert m["gc_collections"] == GC_CLOCK.collections >= n + 1
    assert m["gc_s"] == round(GC_CLOCK.s, 3) and GC_CLOCK.s > 0
    assert sum(cb is GC_CLOCK for cb in gc.callbacks) == 1
