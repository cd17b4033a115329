"""Bounded state: closed dossiers leave the table and come back exactly for a late event.

The batch path is the worker's own (streams.dossiers, streams.eviction) over in-memory
outputs; "ClickHouse" is what the dossier_events sink received, read back through the same
row conversion as the real History (compact_from_row). The same flow on the real broker
and ClickHouse is tests/integration/test_eviction_worker.py.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from pulse import topics
from schemas.codec import encode
from schemas.contracts import DossierEvent, SupplementRound
from schemas.reference import load_reference
from sinks.rows import DOSSIER_EVENT_COLUMNS, DOSSIER_STATE_COLUMNS, dossier_event_row
from streams.checkpoint import process_batch
from streams.core import compact, from_ms, merge
from streams.dossiers import prepare_dossier_batch
from streams.eviction import compact_from_row, evict, evictable, needs_history, partition_of
from tests.support.inmemory import Msg, make_runtime

VN = timezone(timedelta(hours=7))
REF = load_reference()
UNIT = next(u for u in REF.units.values() if u.kind == "commune")
PROC = REF.procedures_at("commune")[0]
DAY_MS = 86_400_000


def _events(code, t0, closed=True):
    common = dict(source_system="test", dossier_code=code, procedure_code=PROC.code,
                  procedure_field=PROC.field_code, unit_code=UNIT.code)
    evs = [DossierEvent(event_id=f"{code}-event-1", event_time=t0, status=2, received_at=t0,
                        promised_at=t0 + timedelta(days=5), has_digitised_components=True, **common),
           DossierEvent(event_id=f"{code}-event-2", event_time=t0 + timedelta(hours=2), status=5,
                        supplements=[SupplementRound(requested_at=t0 + timedelta(hours=2),
                                                     old_promised_at=t0 + timedelta(days=5))], **common)]
    if closed:
        evs.append(DossierEvent(event_id=f"{code}-event-3", event_time=t0 + timedelta(days=1), status=9,
                                finished_at=t0 + timedelta(days=1), **common))
    late = DossierEvent(event_id=f"{code}-event-4", event_time=t0 + timedelta(days=2), status=10,
                        returned_at=t0 + timedelta(days=2), electronic_result=True, **common)
    return evs, late


class SinkHistory:
    """Earlier events from the rows the dossier_events sink received (times as ms there)."""

    def __init__(self, sink):
        self.sink = sink
        self.queries = []

    def events_of(self, codes):
        self.queries.append(sorted(codes))
        out = {}
        times = {"event_time", "submitted_at", "received_at", "promised_at", "finished_at", "returned_at",
                 "refused_at"}
        for row in self.sink.rows:
            d = dict(zip(DOSSIER_EVENT_COLUMNS, row))
            if d["dossier_code"] not in codes:
                continue
            d = {k: (from_ms(v) if k in times and isinstance(v, int) else v) for k, v in d.items()}
            d["supplements"] = [tuple(from_ms(x) if isinstance(x, int) else x for x in s) for s in d["supplements"]]
            out.setdefault(d["dossier_code"], []).append(compact_from_row(d))
        return out


def _msgs(evs, start=0):
    return [Msg("t.dossier-events", 0, start + i, encode(e), datetime.now(VN).timestamp()) for i, e in enumerate(evs)]


def test_a_clickhouse_row_is_the_streams_compact_event():
    evs, late = _events("D-ROW", datetime(2026, 3, 2, 9, tzinfo=VN))
    names = ("requested_at", "resumed_at", "old_promised_at", "new_promised_at")
    for ev in evs + [late]:
        row = dict(zip(DOSSIER_EVENT_COLUMNS, dossier_event_row(ev)))
        assert compact_from_row(row) == compact(ev)
        # as clickhouse-connect returns the named Tuple(requested_at, ...) of a query: dicts
        row["supplements"] = [dict(zip(names, s)) for s in row["supplements"]]
        assert compact_from_row(row) == compact(ev)


def test_what_is_evicted_and_what_needs_history():
    t = 100 * DAY_MS
    closed_old = ("D-A", ((("e1", t - 9 * DAY_MS, 2) + (None,) * 13), (("e2", t - 8 * DAY_MS, 9) + (None,) * 13)))
    closed_new = ("D-B", ((("e1", t - 2 * DAY_MS, 2) + (None,) * 13), (("e2", t - DAY_MS, 10) + (None,) * 13)))
    open_old = ("D-C", ((("e1", t - 30 * DAY_MS, 4) + (None,) * 13),))
    in_flight = ("D-D", ((("e1", t - 30 * DAY_MS, 9) + (None,) * 13),))
    keys = evictable([closed_old, closed_new, open_old, in_flight], t, 7 * DAY_MS, skip={"D-D"})
    assert keys == ["D-A"]
    new = [("n1", t, 1) + (None,) * 13]
    assert not needs_history(new, t, 7 * DAY_MS)                                  # a new dossier's start
    assert needs_history([("x", t, 10) + (None,) * 13], t, 7 * DAY_MS)            # a late "returned"
    assert needs_history([("x", t - 8 * DAY_MS, 2) + (None,) * 13], t, 7 * DAY_MS)  # older than the retention
    # the same partition as kafka-python's default partitioner (its own murmur2; the front
    # doors produce with it), computed here with aiokafka's
    from kafka.partitioner.default import murmur2
    for code in (b"D-1", b"000.34.50.H24-261104-0024", b"x" * 40):
        assert partition_of(code, 4) == (murmur2(code) & 0x7FFFFFFF) % 4


def test_an_evicted_dossier_comes_back_exactly_for_a_late_event():
    rt = make_runtime()
    rt.quality.maybe_run = lambda dq_sink, force=False: None
    rt.history = history = SinkHistory(rt.sinks.dossier_events)
    table = rt.outputs.table
    t0 = datetime.now(VN) - timedelta(days=30)
    all_events = {}
    msgs = []
    for i in range(6):
        evs, late = _events(f"D-EV{i}", t0 + timedelta(hours=i), closed=i % 3 != 0)
        all_events[f"D-EV{i}"] = (evs, late)
        msgs += evs
    asyncio.run(process_batch(rt, prepare_dossier_batch, _msgs(msgs)))
    assert history.queries == []                       # new dossiers: no history looked up
    # a fresh event elsewhere moves the stream's clock to now
    fresh, _ = _events("D-NOW", datetime.now(VN) - timedelta(minutes=5), closed=False)
    asyncio.run(process_batch(rt, prepare_dossier_batch, _msgs(fresh, 100)))
    from faust.types import TP
    # every partition of the topic as the settings size it (pulse.topics): this worker owns them all
    assignment = {TP("t.dossier-events", p) for p in range(topics.DOSSIER_EVENTS.partition_count(rt.settings))}
    n = asyncio.run(evict(rt, table, assignment, "t.dossier-events"))
    closed = {c for c in all_events if int(c[-1]) % 3 != 0}
    assert n == len(closed) and not closed & {k.decode() for k in table}
    assert {k.decode() for k, _ in table.tombstones} == closed and rt.metrics.evicted == len(closed)
    # late events for every dossier, evicted or not
    before = len(rt.sinks.dossier_state.rows)
    lates = [late for _, late in all_events.values()]
    asyncio.run(process_batch(rt, prepare_dossier_batch, _msgs(lates, 200)))
    assert history.queries == [sorted(closed)] and rt.metrics.restored == len(closed)
    now = datetime.now(timezone.utc)
    for row in rt.sinks.dossier_state.rows[before:]:
        st = dict(zip(DOSSIER_STATE_COLUMNS, row))
        evs, late = all_events[st["dossier_code"]]
        expected = rt.logic.state(st["dossier_code"], merge(None, [compact(e) for e in evs + [late]])[0], now)
        assert row[:-1] == expected.row[:-1], st["dossier_code"]
        assert st["version"] == 2 * len(evs + [late]) + expected.overdue
    # the restored dossiers are back in the table with all their events
    for code in closed:
        assert [c[0] for c in table[code.encode()]] == [e.event_id for e in all_events[code][0]] + [f"{code}-event-4"]


def test_a_read_back_duplicate_puts_the_dossier_back_in_the_table():
    """The replay after a crash: an out-of-order event (status 5 before its 'received') was
    written to ClickHouse, but the crash lost the table's change. Replayed, it is read back
    as a duplicate of itself; the dossier must still go back into the table, or its late
    predecessor (status 2: a new dossier's start, no read-back) starts a set without it."""
    rt = make_runtime()
    rt.quality.maybe_run = lambda dq_sink, force=False: None
    rt.history = SinkHistory(rt.sinks.dossier_events)
    table = rt.outputs.table
    evs, _ = _events("D-DUP", datetime.now(VN) - timedelta(days=1), closed=False)     # 2, 5
    asyncio.run(process_batch(rt, prepare_dossier_batch, _msgs([evs[1]])))            # the 5 first
    table.clear()                                                                      # the crash
    asyncio.run(process_batch(rt, prepare_dossier_batch, _msgs([evs[1]])))            # replayed
    assert [c[0] for c in table[b"D-DUP"]] == [evs[1].event_id]
    asyncio.run(process_batch(rt, prepare_dossier_batch, _msgs([evs[0]], 1)))         # the late 2
    assert [c[0] for c in table[b"D-DUP"]] == [evs[0].event_id, evs[1].event_id]
    st = dict(zip(DOSSIER_STATE_COLUMNS, rt.sinks.dossier_state.rows[-1]))
    assert st["version"] == 2 * 2 and st["status"] == 5
