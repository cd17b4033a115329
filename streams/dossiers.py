"""Dossier status events, a batch at a time: validate -> apply -> judge -> rows -> table.

``prepare_dossier_batch``: the per-event Checker (rejects -> dead letters); each dossier's
new events merged into its applied-event set (duplicates by event id are no-ops, an
event arriving before its predecessor is inserted where it belongs); the set folded and
judged (streams.core.DossierLogic); the rows handed to the sinks (raw events, state, dead
letters, alerts). IN MEMORY only: the table is not touched.

``PreparedDossierBatch.finish``: once ClickHouse has every row, the table update (its
changelog), the dead letters and the alerts go to Kafka; the batch loop
(streams.checkpoint) waits for the broker's acknowledgements, then acks the batch.

A batch is prepared while earlier ones are still being written (pipeline depth): a
dossier's current set is then the newest one, from a batch still in flight (``Overlay``)
or else from the table.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone

from rules.lifecycle import ROW_ID, ROW_TIME, to_ms
from sinks.rows import dossier_event_row_of
from streams.alerts import send_alerts
from streams.checkpoint import Rebalanced, start_writes, wait_writes
from streams.core import compact, deadline_alert, illegal_transition_alert, merge_fresh
from streams.eviction import needs_history
from streams.validate import send_dead_letters, validate

log = logging.getLogger("motcua.streams.dossiers")
UTC = timezone.utc
# Events validated (a quarter as many dossiers applied) between two yields to the event loop
# while a batch is prepared. The loop also runs the producer's and the sinks' I/O and the
# finishing and acking of earlier batches: run through in one go (~0.1 s of CPU per
# 2,000-event batch) a batch held all of them up that long.
SLICE = 256


class Overlay:
    """dossier key -> event set of a batch applied in memory whose ClickHouse write is still
    in flight (the table gets it after the write), for the consumer generation it was
    prepared in: a new generation (rebalance) starts from the table."""

    def __init__(self):
        self.sets: dict = {}
        self.generation = None
        # keys of the batch being prepared right now: prepare reads the table across awaits
        # (a ClickHouse read-back, yields to the loop), so eviction must leave them alone
        self.preparing: set = set()

    def enter(self, generation) -> None:
        if generation is not None and generation != self.generation:
            self.sets.clear()
            self.generation = generation


class PreparedDossierBatch:
    """A dossier batch validated and applied in memory, its ClickHouse rows handed to the
    sinks. ``finish`` waits until ClickHouse has them, then does the Kafka side."""

    def __init__(self, rt, messages, accepted, dead, updates, states, alerts, tickets, now, t0, times, counts,
                 latest_ms):
        self.rt, self.messages, self.accepted, self.dead = rt, messages, accepted, dead
        self.updates, self.states, self.alerts, self.tickets = updates, states, alerts, tickets
        self.now, self.t0, self.times, self.counts = now, t0, times, counts
        self.latest_ms = latest_ms   # (topic, partition) -> newest accepted event time (ms)
        self.to_watch: list = []     # states with an illegal transition, watched once the batch is in the table

    def _leave_overlay(self) -> None:
        """Remove this batch's states from the overlay, unless a later batch replaced them."""
        sets = self.rt.overlay.sets
        for key, merged, _ in self.updates:
            if sets.get(key) is merged:
                del sets[key]

    async def finish(self, owned=lambda: True) -> list:
        """ClickHouse has the batch, then the table and Kafka outputs. Returns the Kafka
        sends, which the broker must acknowledge before the batch is acked."""
        rt = self.rt
        out = rt.outputs
        t2 = time.monotonic()
        await wait_writes(self.tickets)
        t3 = time.monotonic()
        if not owned():
            # drop this batch's in-memory states (later batches of the old assignment are
            # dropped the same way; the new assignment's batches start from the table)
            self._leave_overlay()
            raise Rebalanced()
        # ClickHouse has every row of the batch: now the Kafka side (changelog, dead letters, alerts).
        sent = await send_dead_letters(out.dead_letters, self.dead)
        sent += await send_alerts(out.alerts, self.alerts)
        # the table (its changelog in the dossier's own partition, as Faust co-partitions it)
        sent += await out.table.put_many([(key, merged, msg.partition) for key, merged, msg in self.updates])
        self._leave_overlay()
        if rt.tunables.publish_state:
            import json
            for st in self.states:
                sent.append(await out.dossier_state.send(key=st.code.encode(),
                                                         value=json.dumps(st.row, default=str).encode()))
        for st in self.states:
            rt.deadlines.track(st)
        for st in self.to_watch:
            rt.transitions.watch(st, self.now)

        m = rt.metrics
        t4 = time.monotonic()
        st_s = m.stage_s
        t1, t_written = self.times
        st_s["validate"] += t1 - self.t0
        st_s["apply"] += t_written - t1
        st_s["write_wait"] += t3 - t2
        st_s["kafka_side"] += t4 - t3
        dups, applied = self.counts
        m.batches += 1
        m.duplicates += dups
        m.dead_lettered(self.dead)
        m.alerted(self.alerts)
        m.applied += applied
        done_ms = to_ms(datetime.now(UTC))
        m.count(self.messages)
        for tp, t in self.latest_ms.items():
            m.freshness_ms[tp] = done_ms - t
        m.batch_done(time.monotonic() - self.t0)
        rt.quality.maybe_run(rt.sinks.dq_results)
        return sent


async def read_back(rt, by_code: dict, overlay: dict, table_get) -> dict:
    """The earlier events, from ClickHouse, of the batch's dossiers that are neither in the
    table nor in flight and may have been evicted (streams.eviction.needs_history): one
    query for the batch, run in a thread. ``{code: event set}`` of those found."""
    retention_ms = int(rt.tunables.closed_retention_s * 1000)
    if rt.history is None or retention_ms <= 0:
        return {}
    clocks = rt.clocks
    codes = [code for code, (m, compacts, _) in by_code.items()
             if overlay.get(key := code.encode()) is None and table_get(key) is None
             and needs_history(compacts, clocks.get((m.topic, m.partition), 0), retention_ms)]
    if not codes:
        return {}
    rt.metrics.history_queries += 1
    found = await asyncio.to_thread(rt.history.events_of, codes)
    rt.metrics.restored += len(found)
    return {code: merge_fresh(None, events)[0] for code, events in found.items()}


async def prepare_dossier_batch(rt, messages, generation=None) -> PreparedDossierBatch:
    """Validate a batch, apply it to the dossiers' event sets IN MEMORY and hand its rows to
    the sinks. Nothing reaches the table before ``finish``."""
    rt.overlay.enter(generation)
    t0 = time.monotonic()
    now = datetime.now(UTC)
    accepted, dead = [], []
    check, waiting = rt.checker.check_dossier, rt.quality.waiting["dossier_events"]
    for i in range(0, len(messages), SLICE):
        a, d = validate(messages[i:i + SLICE], now, check, "dossier", waiting)
        accepted += a
        dead += d
        await asyncio.sleep(0)
    t1 = time.monotonic()
    by_code: dict[str, list] = {}
    latest: dict = {}           # (topic, partition) -> newest event time (ms) of the batch
    for m, v in accepted:
        ev = v.event
        c = compact(ev)
        entry = by_code.get(ev.dossier_code)
        if entry is None:
            by_code[ev.dossier_code] = [m, [c], [(ev, m, c)]]
        else:
            entry[1].append(c)
            entry[2].append((ev, m, c))
        tp = (m.topic, m.partition)
        if c[ROW_TIME] > latest.get(tp, -1 << 62):
            latest[tp] = c[ROW_TIME]

    clocks = rt.clocks
    for tp, t in latest.items():
        if t > clocks.get(tp, -1 << 62):
            clocks[tp] = t

    event_rows, state_rows, alerts, updates, states, to_watch = [], [], [], [], [], []
    dups = 0
    overlay = rt.overlay.sets
    table_get = rt.outputs.table.reader()
    rt.overlay.preparing = {code.encode() for code in by_code}
    history = await read_back(rt, by_code, overlay, table_get)
    for n, (code, (ctx, compacts, sources)) in enumerate(by_code.items(), 1):
        if not n % (SLICE // 4):
            await asyncio.sleep(0)
        key = code.encode()
        current = overlay.get(key)
        restored = False
        if current is None:
            current = table_get(key)
            if current is None:
                current = history.get(code)     # an evicted dossier's earlier events (streams.eviction)
                restored = current is not None
        merged, fresh, dup = merge_fresh(current, compacts)
        dups += dup
        if not fresh and not restored:
            continue
        # A set read back with nothing new (the replay of a batch whose events reached
        # ClickHouse just before a crash) still goes on: into the table, or the dossier stays
        # out of it and a later event that looks like a new dossier's start is folded
        # without these; and its state row is written again (same version, one row in
        # ClickHouse), since the crash may have come between the two inserts. (Both seen
        # under kill -9 in the exactness test: an event set of 4 instead of 5; 68 dossiers
        # with events and no state row.)
        if dup:  # the sources of the events applied (merge_fresh keeps the compact objects)
            applied_ids = set(map(id, fresh))
            sources = [src for c, src in zip(compacts, sources) if id(c) in applied_ids]
        for ev, m, c in sources:
            event_rows.append(dossier_event_row_of(c, ev, m.topic, m.partition, m.offset))
        st = rt.logic.state(code, merged, now)
        state_rows.append(st.row)
        if st.facts.illegal_transitions and {c[ROW_ID] for c in compacts}.intersection(st.facts.illegal_event_ids):
            if rt.transitions.grace_ms <= 0:
                rt.metrics.illegal_transitions += 1
                alerts.append(illegal_transition_alert(st, now))
            else:
                to_watch.append(st)     # alerted only if still illegal after the grace period
        if st.overdue and rt.alert_fresh(st.judgement.deadline, now):
            alerts.append(deadline_alert("overdue", st, now))
        updates.append((key, merged, ctx))
        overlay[key] = merged
        states.append(st)

    rt.overlay.preparing = set()
    dl_rows = [d.to_row() for d in dead]
    t2 = time.monotonic()
    s = rt.sinks
    tickets = await start_writes([(s.dossier_events, event_rows), (s.dossier_state, state_rows),
                                  (s.dead_letters, dl_rows), (s.alerts, alerts)])
    prepared = PreparedDossierBatch(rt, messages, accepted, dead, updates, states, alerts, tickets, now, t0,
                                    (t1, t2), (dups, len(event_rows)), latest)
    prepared.to_watch = to_watch
    return prepared
