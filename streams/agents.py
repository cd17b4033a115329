"""Agents, timers and pages of the Faust app (registered by importing streams.app).

Reading order:

* ``apply_status_changes``: dossier-events in batches (``dossier_inbox``, streams.batching) ->
  ``validate_dossier_events`` (per-event Checker; rejects -> dead letters) ->
  merge into each dossier's applied-event set (duplicates by event_id are no-ops) ->
  fold + judge -> ClickHouse rows (raw events, state, dead letters, alerts), AWAITED ->
  only then the state table is updated and the batch may be acked/committed.
* ``rate_service``: ratings in batches -> check -> dead letters / ``ratings`` table.
* ``mark_overdue_dossiers`` (timer): the deadline index -> ``due_soon`` and ``overdue``
  alerts and the state row with ``overdue=1`` the moment the promised date passes.
* ``raise_threshold_alerts`` (leader timer): on-time / satisfaction shares below the
  thresholds over the alert window, silent kiosks and units (ClickHouse, exact).
* ``record_pipeline_metrics`` (timer): lag, freshness, events/s -> ``pipeline_metrics``.

Exactness under kill -9 (Faust is at-least-once):
1. ClickHouse writes of a batch complete BEFORE the table update, and the batch's
   messages are acked (``Inbox.ack``) only once the broker has acknowledged its changelog,
   dead letters and alerts (``_ack_batches``; Faust's own pre-commit flush gives up after
   0.1 s). So committed offsets => rows in ClickHouse and changelog written; the changelog
   never holds a state ClickHouse lacks.
2. A replay re-applies events: those in the applied set are no-ops; the others produce the
   same rows with the same deterministic versions (streams.core) -> ReplacingMergeTree
   keeps one. While ClickHouse is down the sink blocks the agent: nothing is acked.
3. Any exception in a batch crashes the worker instead of acking a half-processed batch.
4. A batch fetched before a rebalance is not applied to the table after it (``Inbox.owns``:
   same consumer generation, inbox not cleared since): its partitions may belong to another
   worker now, which replays them.
"""
from __future__ import annotations

import asyncio
import gc
import hashlib
import heapq
import logging
import operator
import os
import socket
import time
from collections import OrderedDict, defaultdict
from datetime import datetime, timedelta, timezone

from faust.web import Request, Response, View

from streams import batching
from streams.app import (alerts_topic, app, dead_letters_topic, dossier_events_topic, dossier_inbox,
                         dossier_state_topic, dossier_table, ratings_inbox, ratings_topic, settings, tunable)
from streams.core import (ID, T, DossierLogic, deadline_alert, compact, illegal_transition_alert, merge_fresh,
                          share_alert, silence_alert, to_ms)

log = logging.getLogger("motcua.streams")
_TOPIC_PARTITION = operator.attrgetter("topic", "partition")
# Events validated (a quarter as many dossiers applied) between two yields to the event loop
# while a batch is prepared. The loop also runs the producer's and the sinks' I/O and the
# finishing and acking of earlier batches: run through in one go (~0.1 s of CPU per
# 2,000-event batch) a batch held all of them up that long.
_SLICE = 256
UTC = timezone.utc


def _utcnow() -> datetime:
    return datetime.now(UTC)


class GCClock:
    """The cyclic GC's share of the process: time, collections, the longest one (a pause of
    the whole worker; one longer than 0.2 s is logged). The dossier table is millions of
    long-lived containers, so it is worth watching. One per process (``GC_CLOCK``), in
    ``gc.callbacks`` once however many ``Metrics`` are built (tests build many)."""

    def __init__(self):
        self.s = 0.0
        self.max_s = 0.0
        self.collections = 0
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = time.thread_time()
            return
        took = time.thread_time() - self._t0
        self.s += took
        self.collections += 1
        if took > self.max_s:
            self.max_s = took
        if took > 0.2:
            log.warning("pulse: GC of generation %s took %.2f s (%s objects collected, counts now %s)",
                        info.get("generation"), took, info.get("collected"), gc.get_count())

    def install(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)


GC_CLOCK = GCClock()


class Metrics:
    def __init__(self):
        self.events = defaultdict(int)          # (topic, partition) -> processed messages
        self.freshness_ms = {}                  # (topic, partition) -> now - max event_time at write
        self.duplicates = 0
        self.dead_letters = 0
        self.illegal_transitions = 0
        self.applied = 0
        self.ratings = 0
        self.rating_duplicates = 0
        self.overdue_marked = 0
        self.due_soon = 0
        self.batches = 0
        self.last_batch_s = 0.0
        # CPU-side time per stage of the dossier batches (where a batch's time goes)
        self.stage_s = {"validate": 0.0, "apply": 0.0, "write_wait": 0.0, "kafka_side": 0.0,
                        "wait_input": 0.0, "wait_finish": 0.0, "ack_wait": 0.0}
        self._prev = (time.monotonic(), 0)
        self._sinks: list = []
        GC_CLOCK.install()

    def total(self) -> int:
        return sum(self.events.values())

    def count(self, messages) -> None:
        """A batch's messages, per (topic, partition)."""
        events = self.events
        for tp in map(_TOPIC_PARTITION, messages):
            events[tp] += 1

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_") and not isinstance(v, dict)} | {
            "events": self.total(), "gc_s": round(GC_CLOCK.s, 3), "gc_max_s": round(GC_CLOCK.max_s, 3),
            "gc_collections": GC_CLOCK.collections,
            "stage_s": {k: round(v, 3) for k, v in self.stage_s.items()},
            "sinks": {sk.name: {"batches": sk.stats.batches, "insert_s": round(sk.stats.insert_s, 3),
                                "retries": sk.stats.retries} for sk in self._sinks if sk.stats.batches}}


class Runtime:
    """Per-process resources, built once on first use (migrations, checker, sinks)."""

    def __init__(self):
        from expectations.checks import Checker
        from schemas.reference import load_reference
        from sinks.client import get_client
        from sinks.migrate import migrate_settings
        from sinks.rows import SINK_KEYS, TABLE_COLUMNS
        from sinks.writer import ClickHouseSink

        migrate_settings(settings, log=log.info)
        self.reference = load_reference()
        self.checker = Checker.from_suites(self.reference, settings)
        self.logic = DossierLogic.from_settings(settings, reference=self.reference)
        factory = (lambda: get_client(settings))

        def sink(table, max_rows=20_000, **kw):
            return ClickHouseSink(factory, table, TABLE_COLUMNS[table], key_columns=SINK_KEYS[table],
                                  max_rows=max_rows, max_seconds=0.2, max_buffer_rows=max(100_000, 4 * max_rows),
                                  min_interval_s=float(tunable(settings, "sink_min_interval_s")),
                                  busy_interval_s=float(tunable(settings, "sink_busy_interval_s")),
                                  busy_rows_per_s=float(tunable(settings, "sink_busy_rows_per_s")), name=table, **kw)
        self.events_sink = sink("dossier_events")
        self.state_sink = sink("dossier_state")
        self.ratings_sink = sink("ratings")
        self.dead_sink = sink("dead_letters", max_rows=5000)
        self.alerts_sink = sink("alerts", max_rows=5000)
        self.dq_sink = sink("dq_results", max_rows=5000)
        self.metrics_sink = sink("pipeline_metrics", max_rows=5000)
        self.metrics = Metrics()
        self.metrics._sinks = [self.events_sink, self.state_sink, self.ratings_sink, self.dead_sink,
                               self.alerts_sink, self.dq_sink, self.metrics_sink]
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"
        self.started_at = _utcnow()
        # deadline index: heaps of (when_ms, dossier_code, event_count)
        self.overdue_heap: list = []
        self.warn_heap: list = []
        self.index_generation = None
        self.gx_verdicts = {"dossier_events": [], "ratings": []}   # verdicts waiting for the GX micro-batch
        self.gx_last = time.monotonic()
        self.gx_task: asyncio.Task | None = None
        self.recent_ratings: OrderedDict = OrderedDict()   # rating ids finished (bounded)
        self.ratings_in_flight: dict = {}                  # rating ids of prepared, unfinished batches
        self.overlay_generation_ratings = None
        # dossier_code -> event set of a batch applied in memory whose ClickHouse write is
        # still in flight (the table gets it after the write); see prepare_dossier_batch
        self.overlay: dict = {}
        self.overlay_generation = None
        self.ready = False

    # -- deadline index ---------------------------------------------------------------------
    def index(self, st, now: datetime, rebuilt: bool = False) -> list[dict]:
        """Track an open dossier's deadline; returns alerts due right now (overdue found here)."""
        if not st.facts.is_open or st.judgement.deadline is None:
            return []
        dl = st.deadline_ms
        n = st.facts.event_count
        if st.overdue:
            return []
        warn_ms = dl - int(settings.overdue_warning_hours * 3600 * 1000)
        heapq.heappush(self.overdue_heap, (dl, st.code, n))
        if warn_ms > to_ms(now) or not rebuilt:
            heapq.heappush(self.warn_heap, (warn_ms, st.code, n))
        return []

    def rebuild_index(self) -> int:
        now = _utcnow()
        self.overdue_heap, self.warn_heap = [], []
        n = 0
        for key, events in list(dossier_table.items()):
            if not events:
                continue
            code = key.decode() if isinstance(key, bytes) else key
            st = self.logic.state(code, events, now)
            if st.facts.is_open and st.judgement.deadline is not None:
                # also the already-overdue ones: their overdue row may not be written yet
                heapq.heappush(self.overdue_heap, (st.deadline_ms, code, st.facts.event_count))
                warn_ms = st.deadline_ms - int(settings.overdue_warning_hours * 3600 * 1000)
                if warn_ms > to_ms(now):
                    heapq.heappush(self.warn_heap, (warn_ms, code, st.facts.event_count))
                n += 1
        return n

    def alert_fresh(self, deadline: datetime, now: datetime) -> bool:
        """Overdue alerts are for deadlines passing now, not for a month of history replayed."""
        return deadline >= now - timedelta(minutes=settings.alert_window_minutes)


_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime()
    return _runtime


def _msg_time(m) -> datetime:
    ts = m.timestamp
    return datetime.fromtimestamp(ts, UTC) if ts else _utcnow()


async def _write_all(pairs) -> None:
    """Buffer every (sink, rows) then wait until all are in ClickHouse (blocks during outages)."""
    await _wait_writes(await _start_writes(pairs))


async def _send_alerts(rt: Runtime, alerts: list[dict], to_topic: bool = True) -> list:
    """Hand the alerts to the producer; returns the sends' futures (resolved on the broker's ack)."""
    import json
    sent = []
    if not alerts or not to_topic:
        return sent
    for a in alerts:
        v = dict(a, raised_at=a["raised_at"].isoformat())
        sent.append(await alerts_topic.send(key=a["alert_id"].encode(),
                                            value=json.dumps(v, ensure_ascii=False).encode()))
    return sent


async def _send_dead_letters(dead) -> list:
    return [await dead_letters_topic.send(key=d.kafka_key(), value=d.to_kafka_value()) for d in dead]


async def _confirmed(sent: list) -> None:
    """Wait until the broker has acknowledged every send of a batch (its dead letters, alerts
    and table changelog). Only then may the batch be acked: a committed offset must never
    stand for output that a crash could still lose. A failed send raises (crash-only)."""
    if sent:
        await asyncio.gather(*sent)


# ----------------------------------------------------------------------------- dossiers

def _validate(rt: Runtime, messages, now: datetime, check, kind: str, suite: str):
    """Per-event checks: (accepted [(message, verdict)], dead letters).

    Every contract-valid event, accepted or not, joins the GX micro-batch: the
    data-quality board then shows the data rules failing (unknown unit, dates out of
    order), not only a suite that passes on events already filtered. (Its verdict joins:
    the row is flattened only if the micro-batch takes it, see maybe_validate_micro_batch.)"""
    from expectations.deadletter import DeadLetter
    accepted, dead = [], []
    waiting = rt.gx_verdicts[suite]
    for m in messages:
        v = check(m.value, now)
        if v.event is not None:
            waiting.append(v)
        if v.ok:
            accepted.append((m, v))
        else:
            dead.append(DeadLetter.from_failures(topic=m.topic, partition=m.partition, offset=m.offset, raw=m.value,
                                                 failures=v.failures, received_at=_msg_time(m), kind=kind))
    return accepted, dead


def validate_dossier_events(rt: Runtime, messages, now: datetime):
    return _validate(rt, messages, now, rt.checker.check_dossier, "dossier", "dossier_events")


class Rebalanced(Exception):
    """The partitions of a batch were reassigned while it was being written."""


async def _start_writes(pairs) -> list:
    """Buffer every (sink, rows); returns what ``_wait_writes`` waits on (blocks only when a
    sink's buffer is full, i.e. during a ClickHouse outage)."""
    return [(sink, await sink.write_async(rows)) for sink, rows in pairs if rows]


async def _wait_writes(tickets) -> None:
    # wait on all at once: each wait asks its sink to flush now, so the inserts run in parallel
    await asyncio.gather(*(sink.wait_async(ticket) for sink, ticket in tickets))


class PreparedDossierBatch:
    """A dossier batch validated and applied in memory, its ClickHouse rows handed to the
    sinks. ``finish`` waits until ClickHouse has them, then does the Kafka side."""

    def __init__(self, rt, messages, accepted, dead, updates, states, alerts, tickets, now, t0, times, counts,
                 latest_ms):
        self.rt, self.messages, self.accepted, self.dead = rt, messages, accepted, dead
        self.updates, self.states, self.alerts, self.tickets = updates, states, alerts, tickets
        self.now, self.t0, self.times, self.counts = now, t0, times, counts
        self.latest_ms = latest_ms   # (topic, partition) -> newest accepted event time (ms)

    def _leave_overlay(self) -> None:
        """Remove this batch's states from the overlay, unless a later batch replaced them."""
        overlay = self.rt.overlay
        for key, merged, _ in self.updates:
            if overlay.get(key) is merged:
                del overlay[key]

    async def finish(self, owned=lambda: True) -> list:
        """ClickHouse has the batch, then the table and Kafka outputs. Returns the Kafka
        sends, which the broker must acknowledge before the batch is acked (_confirmed)."""
        rt, now = self.rt, self.now
        t2 = time.monotonic()
        await _wait_writes(self.tickets)
        t3 = time.monotonic()
        if not owned():
            # drop this batch's in-memory states (later batches of the old assignment are
            # dropped the same way; the new assignment's batches start from the table)
            self._leave_overlay()
            raise Rebalanced()
        # ClickHouse has every row of the batch: now the Kafka side (changelog, dead letters, alerts).
        sent = await _send_dead_letters(self.dead)
        sent += await _send_alerts(rt, self.alerts)
        # the table (its changelog in the dossier's own partition, as Faust co-partitions it)
        sent += await dossier_table.put_many([(key, merged, msg.partition) for key, merged, msg in self.updates])
        self._leave_overlay()
        if tunable(settings, "publish_state"):
            import json
            for st in self.states:
                sent.append(await dossier_state_topic.send(key=st.code.encode(),
                                                           value=json.dumps(st.row, default=str).encode()))
        for st in self.states:
            rt.index(st, now)

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
        m.dead_letters += len(self.dead)
        m.applied += applied
        done_ms = to_ms(_utcnow())
        m.count(self.messages)
        for tp, t in self.latest_ms.items():
            m.freshness_ms[tp] = done_ms - t
        m.last_batch_s = time.monotonic() - self.t0
        maybe_validate_micro_batch(rt)
        return sent


async def prepare_dossier_batch(rt: Runtime, messages, generation=None) -> PreparedDossierBatch:
    """Validate a batch, apply it to the dossiers' event sets IN MEMORY and hand its rows to
    the sinks. A dossier's current set is the newest one: from a batch still being written
    (``rt.overlay``) or else from the table. Nothing reaches the table before ``finish``."""
    from sinks.rows import dossier_event_row_of
    if generation is not None and generation != rt.overlay_generation:
        rt.overlay.clear()
        rt.overlay_generation = generation
    t0 = time.monotonic()
    now = _utcnow()
    accepted, dead = [], []
    for i in range(0, len(messages), _SLICE):
        a, d = validate_dossier_events(rt, messages[i:i + _SLICE], now)
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
        if c[T] > latest.get(tp, -1 << 62):
            latest[tp] = c[T]

    event_rows, state_rows, alerts, updates, states = [], [], [], [], []
    dups = 0
    overlay = rt.overlay
    table_get = dossier_table.reader()
    for n, (code, (ctx, compacts, sources)) in enumerate(by_code.items(), 1):
        if not n % (_SLICE // 4):
            await asyncio.sleep(0)
        key = code.encode()
        current = overlay.get(key)
        if current is None:
            current = table_get(key)
        merged, fresh, d = merge_fresh(current, compacts)
        dups += d
        if not fresh:
            continue
        if d:  # the sources of the events applied (merge_fresh keeps the compact objects)
            applied_ids = set(map(id, fresh))
            sources = [src for c, src in zip(compacts, sources) if id(c) in applied_ids]
        for ev, m, c in sources:
            event_rows.append(dossier_event_row_of(c, ev, m.topic, m.partition, m.offset))
        st = rt.logic.state(code, merged, now)
        state_rows.append(st.row)
        if st.facts.illegal_transitions and {c[ID] for c in compacts}.intersection(st.facts.illegal_event_ids):
            rt.metrics.illegal_transitions += 1
            alerts.append(illegal_transition_alert(st, now))
        if st.overdue and rt.alert_fresh(st.judgement.deadline, now):
            alerts.append(deadline_alert("overdue", st, now))
        updates.append((key, merged, ctx))
        overlay[key] = merged
        states.append(st)

    dl_rows = [d.to_row() for d in dead]
    t2 = time.monotonic()
    tickets = await _start_writes([(rt.events_sink, event_rows), (rt.state_sink, state_rows),
                                   (rt.dead_sink, dl_rows), (rt.alerts_sink, alerts)])
    return PreparedDossierBatch(rt, messages, accepted, dead, updates, states, alerts, tickets, now, t0,
                                (t1, t2), (dups, len(event_rows)), latest)


async def process_dossier_batch(rt: Runtime, messages, owned=lambda: True) -> None:
    """One batch start to end: prepare, then finish (``owned()`` False after the ClickHouse
    writes -> Rebalanced, the table left alone)."""
    prepared = await prepare_dossier_batch(rt, messages)
    await _confirmed(await prepared.finish(owned))


def gx_due(waiting: list[int], cap: int, since_s: float, every_s: float, loaded_every_s: float,
           force: bool = False) -> bool:
    """Whether a GX run is due, given the rows waiting per suite (each at most ``cap``) and
    the seconds since the last run. A light stream: every ``every_s``, on every row. Once a
    suite has more rows than a run takes (the cap: under load), one run per
    ``loaded_every_s`` on the newest rows: a run's cost is nearly fixed, so its cadence is
    what costs. ``force``: now, if anything waits."""
    if not any(waiting):
        return False
    if force:
        return True
    loaded = any(n >= cap for n in waiting)
    return since_s >= (loaded_every_s if loaded else every_s)


def maybe_validate_micro_batch(rt: Runtime, force: bool = False) -> None:
    """GX on micro-batches (every T seconds) in a child process, off the hot path.

    Under load GX sees a SAMPLE: at most ``gx_batch_rows`` rows per suite (the newest), one
    run per ``gx_min_interval_s``. A GX run costs ~0.3 s of CPU plus ~10 µs per
    row, so validating every row in runs as often as batches come would take much of one
    of the machine's two cores at 20,000 events/s; the per-event Checker applies the same
    suites to every event anyway (dead letters are never sampled).
    The data-quality board reads rates (share of rows failing each rule), which a sample of
    the newest rows estimates; each dq_results row carries the batch size it was run on."""
    if not tunable(settings, "gx_enabled"):
        for k in rt.gx_verdicts:
            rt.gx_verdicts[k] = []
        return
    cap = int(tunable(settings, "gx_batch_rows"))
    for waiting in rt.gx_verdicts.values():
        if len(waiting) > cap:
            del waiting[: len(waiting) - cap]
    if rt.gx_task is not None and not rt.gx_task.done():
        return
    if not gx_due([len(r) for r in rt.gx_verdicts.values()], cap, time.monotonic() - rt.gx_last,
                  float(tunable(settings, "gx_batch_seconds")), float(tunable(settings, "gx_min_interval_s")),
                  force):
        return
    # the verdicts' rows (a passing event's row is built here, when a micro-batch takes it)
    batches = {k: [verdict.row for verdict in v] for k, v in rt.gx_verdicts.items() if v}
    rt.gx_verdicts = {"dossier_events": [], "ratings": []}
    rt.gx_last = time.monotonic()
    rt.gx_task = asyncio.ensure_future(_run_gx(rt, batches))


async def _run_gx(rt: Runtime, batches: dict) -> None:
    from streams import dq
    try:
        payload = {}
        for suite, batch in batches.items():
            ids = "|".join(str(r.get("event_id") or r.get("rating_id")) for r in batch)
            payload[suite] = (f"{suite}:{hashlib.blake2b(ids.encode(), digest_size=12).hexdigest()}", batch)
        child = dq.pool(nice=int(tunable(settings, "gx_nice")))
        rows = await asyncio.get_running_loop().run_in_executor(child, dq.validate, payload)
        if rows:
            await rt.dq_sink.write_async(rows)
    except Exception:  # noqa: BLE001 - data-quality reporting must not stop the pipeline
        log.exception("GX micro-batch failed")


def _crash(what: str) -> None:
    """Crash-only: log, then end the process; the supervisor restarts it and the replay
    from the committed offsets is exact (nothing acked was left half done)."""
    log.critical("pulse: %s failed; exiting for a restart", what, exc_info=True)
    logging.shutdown()
    os._exit(1)


async def _run_batches(inbox, prepare, in_flight: int = 1) -> None:
    """Three stages, so that the CPU work of one batch overlaps the waits of the previous
    ones: this loop takes a batch and ``prepare``s it (validate, apply in memory, hand rows
    to the sinks); ``_finish_batches`` waits for its rows in ClickHouse, then updates the
    table and sends its Kafka outputs; ``_ack_batches`` waits for the broker's
    acknowledgements of those and acks the batch. All in order; at most ``in_flight``
    batches wait between two stages."""
    rt = runtime()
    queue: asyncio.Queue = asyncio.Queue(maxsize=max(1, in_flight))
    acks: asyncio.Queue = asyncio.Queue(maxsize=max(1, in_flight))
    finisher = asyncio.ensure_future(_finish_batches(inbox, queue, acks))
    acker = asyncio.ensure_future(_ack_batches(inbox, acks))
    waits = rt.metrics.stage_s
    size, window = settings.stream_batch_size, settings.stream_batch_window_s
    try:
        while True:
            t0 = time.monotonic()
            batch = await inbox.take(size, window)
            t1 = time.monotonic()
            waits["wait_input"] += t1 - t0
            if not inbox.owns(batch):
                inbox.forget(batch.messages)
                continue
            prepared = await prepare(rt, batch.messages, batch.generation)
            t2 = time.monotonic()
            await queue.put((batch, prepared))
            waits["wait_finish"] += time.monotonic() - t2
    except asyncio.CancelledError:
        finisher.cancel()
        acker.cancel()
        raise
    except BaseException:  # noqa: BLE001
        _crash("batch processing")


async def _finish_batches(inbox, queue: asyncio.Queue, acks: asyncio.Queue) -> None:
    try:
        while True:
            batch, prepared = await queue.get()
            try:
                sent = await prepared.finish(owned=lambda: inbox.owns(batch))
            except Rebalanced:
                log.info("pulse: batch of %d messages dropped: partitions reassigned meanwhile", len(batch))
                inbox.forget(batch.messages)
                continue
            await acks.put((batch, sent))
    except asyncio.CancelledError:
        raise
    except BaseException:  # noqa: BLE001
        _crash("finishing a batch")


async def _ack_batches(inbox, acks: asyncio.Queue) -> None:
    waits = runtime().metrics.stage_s
    try:
        while True:
            batch, sent = await acks.get()
            t0 = time.monotonic()
            await _confirmed(sent)
            waits["ack_wait"] += time.monotonic() - t0
            inbox.ack(batch)
    except asyncio.CancelledError:
        raise
    except BaseException:  # noqa: BLE001
        _crash("confirming a batch")


@app.task
async def apply_status_changes():
    """Dossier status events -> validated, de-duplicated, applied in event-time order."""
    await _run_batches(dossier_inbox, prepare_dossier_batch, in_flight=int(tunable(settings, "pipeline_depth")))


# ----------------------------------------------------------------------------- ratings

def validate_ratings(rt: Runtime, messages, now: datetime):
    return _validate(rt, messages, now, rt.checker.check_rating, "rating", "ratings")


class PreparedRatingBatch:
    def __init__(self, rt, messages, accepted, dead, rows, ids, tickets):
        self.rt, self.messages, self.accepted, self.dead, self.rows, self.tickets = \
            rt, messages, accepted, dead, rows, tickets
        self.ids = ids       # rating ids this batch writes (not yet "seen" until it is finished)

    async def finish(self, owned=lambda: True) -> list:
        rt = self.rt
        await _wait_writes(self.tickets)
        if not owned():
            for rid in self.ids:
                rt.ratings_in_flight.pop(rid, None)
            raise Rebalanced()
        sent = await _send_dead_letters(self.dead)
        # only now are these ratings done: a batch dropped before this point must not make
        # its re-delivered messages look like duplicates
        seen, cap = rt.recent_ratings, int(tunable(settings, "rating_recent_ids"))
        for rid in self.ids:
            rt.ratings_in_flight.pop(rid, None)
            seen[rid] = None
        while len(seen) > cap:
            seen.popitem(last=False)
        m = rt.metrics
        m.ratings += len(self.rows)
        m.dead_letters += len(self.dead)
        done = _utcnow()
        for msg, v in self.accepted:
            m.freshness_ms[(msg.topic, msg.partition)] = int((done - v.event.event_time).total_seconds() * 1000)
        m.count(self.messages)
        maybe_validate_micro_batch(rt)
        return sent


async def prepare_rating_batch(rt: Runtime, messages, generation=None) -> PreparedRatingBatch:
    from sinks.rows import rating_row
    if generation is not None and generation != rt.overlay_generation_ratings:
        rt.ratings_in_flight.clear()      # batches of an earlier assignment are not finished
        rt.overlay_generation_ratings = generation
    now = _utcnow()
    accepted, dead = validate_ratings(rt, messages, now)
    rows, ids = [], []
    seen, in_flight = rt.recent_ratings, rt.ratings_in_flight
    for m, v in accepted:
        r = v.event
        if r.rating_id in seen or r.rating_id in in_flight:
            rt.metrics.rating_duplicates += 1
            continue
        in_flight[r.rating_id] = None
        ids.append(r.rating_id)
        # written even if a previous run wrote it (ReplacingMergeTree on rating_id)
        rows.append(rating_row(r, m.topic, m.partition, m.offset))
    tickets = await _start_writes([(rt.ratings_sink, rows), (rt.dead_sink, [d.to_row() for d in dead])])
    if batching.TRACE:
        log.info("trace ratings prepared gen %s %s: %d rows, %d dead, %d already seen", generation,
                 batching._ranges(messages), len(rows), len(dead), len(accepted) - len(rows))
    return PreparedRatingBatch(rt, messages, accepted, dead, rows, ids, tickets)


async def process_rating_batch(rt: Runtime, messages, owned=lambda: True) -> None:
    prepared = await prepare_rating_batch(rt, messages)
    await _confirmed(await prepared.finish(owned))


@app.task
async def rate_service():
    """Kiosk ratings -> validated, de-duplicated by rating_id -> ClickHouse ratings."""
    await _run_batches(ratings_inbox, prepare_rating_batch)


# ----------------------------------------------------------------------------- timers

def _recovered() -> bool:
    rec = getattr(app.tables, "recovery", None)
    return bool(rec is not None and rec.completed.is_set() and not app.rebalancing
                and not getattr(app, "in_recovery", False))


@app.timer(interval=float(tunable(settings, "overdue_scan_interval_s")))
async def mark_overdue_dossiers():
    """Open dossiers whose promised date passes become overdue now, without another event."""
    rt = runtime()
    if not _recovered():
        return
    gen = app.consumer_generation_id
    if rt.index_generation != gen:
        n = rt.rebuild_index()
        rt.index_generation = gen
        # what the table holds now lives on: keep it out of the cyclic GC's scans
        gc.collect()
        gc.freeze()
        rt.ready = True
        log.info("pulse: worker ready (generation %s, %d partitions, %d open dossiers with a deadline)",
                 gen, len(app.consumer.assignment()), n)
    now = _utcnow()
    now_ms = to_ms(now)
    rows, alerts, ch_only = [], [], []
    while rt.warn_heap and rt.warn_heap[0][0] <= now_ms:
        _, code, n = heapq.heappop(rt.warn_heap)
        events = dossier_table.get(code.encode())
        if not events or len(events) != n:
            continue  # changed since: re-indexed by the change
        st = rt.logic.state(code, events, now)
        if st.facts.is_open and not st.overdue and st.judgement.deadline is not None:
            alerts.append(deadline_alert("due_soon", st, now))
            rt.metrics.due_soon += 1
    while rt.overdue_heap and rt.overdue_heap[0][0] < now_ms:
        _, code, n = heapq.heappop(rt.overdue_heap)
        events = dossier_table.get(code.encode())
        if not events or len(events) != n:
            continue
        st = rt.logic.state(code, events, now)
        if not st.overdue:
            continue
        rows.append(st.row)
        rt.metrics.overdue_marked += 1
        if rt.alert_fresh(st.judgement.deadline, now):
            a = deadline_alert("overdue", st, now)
            # a deadline that passed before this process started may have been announced
            # already on the topic: ClickHouse only (same alert_id, deduplicated there)
            (alerts if st.judgement.deadline >= rt.started_at else ch_only).append(a)
    if rows or alerts or ch_only:
        await _write_all([(rt.state_sink, rows), (rt.alerts_sink, alerts + ch_only)])
        await _send_alerts(rt, alerts)
    maybe_validate_micro_batch(rt)


@app.timer(interval=float(tunable(settings, "alert_eval_interval_s")), on_leader=True)
async def raise_threshold_alerts():
    """Shares below thresholds over the alert window, silent kiosks/units (exact: ClickHouse FINAL)."""
    rt = runtime()
    try:
        alerts = await asyncio.to_thread(_threshold_alerts, rt)
    except Exception:  # noqa: BLE001 - ClickHouse may be down; the next tick retries
        log.warning("threshold alerts skipped", exc_info=True)
        return
    if alerts:
        await _write_all([(rt.alerts_sink, alerts)])
        await _send_alerts(rt, alerts)


_reported: set = set()


def _threshold_alerts(rt: Runtime) -> list[dict]:
    from sinks.client import get_client
    now = _utcnow()
    w = int(settings.alert_window_minutes)
    min_n = int(tunable(settings, "alert_min_count"))
    out = []
    client = get_client(settings)
    try:
        # windows aligned on the alert window, ending at the newest event time seen (so a
        # replayed history raises the alerts of its own time, once: deterministic ids)
        q_ontime = f"""
            SELECT unit_code, toStartOfInterval(closed_at, INTERVAL {w} MINUTE) AS ws,
                   countIf(outcome IN ('early','on_time')) AS good, count() AS n
            FROM dossier_state FINAL
            WHERE outcome IN ('early','on_time','late') AND closed_at >= now64(3) - INTERVAL {2 * w} MINUTE
            GROUP BY unit_code, ws HAVING n >= {min_n} AND good / n < {float(settings.ontime_alert_threshold)}"""
        for unit, ws, good, n in client.query(q_ontime).result_rows:
            out.append(share_alert("ontime_low", unit, good / n, settings.ontime_alert_threshold, n,
                                   ws, ws + timedelta(minutes=w), now))
        q_sat = f"""
            SELECT unit_code, toStartOfInterval(event_time, INTERVAL {w} MINUTE) AS ws,
                   countIf(level >= 4) AS good, count() AS n
            FROM ratings FINAL
            WHERE event_time >= now64(3) - INTERVAL {2 * w} MINUTE
            GROUP BY unit_code, ws HAVING n >= {min_n} AND good / n < {float(settings.satisfaction_alert_threshold)}"""
        for unit, ws, good, n in client.query(q_sat).result_rows:
            out.append(share_alert("satisfaction_low", unit, good / n, settings.satisfaction_alert_threshold, n,
                                   ws, ws + timedelta(minutes=w), now))
        # silent: seen within the last day, not within the configured minutes
        q_kiosk = f"""
            SELECT unit_code, kiosk_id, max(event_time) AS last FROM ratings
            WHERE event_time >= now64(3) - INTERVAL 1 DAY GROUP BY unit_code, kiosk_id
            HAVING last < now64(3) - INTERVAL {int(settings.silent_kiosk_minutes)} MINUTE"""
        for unit, kiosk, last in client.query(q_kiosk).result_rows:
            out.append(silence_alert(unit, kiosk, last, settings.silent_kiosk_minutes, now))
        q_unit = f"""
            SELECT unit_code, max(event_time) AS last FROM dossier_events
            WHERE event_time >= now64(3) - INTERVAL 1 DAY GROUP BY unit_code
            HAVING last < now64(3) - INTERVAL {int(settings.silent_unit_minutes)} MINUTE"""
        for unit, last in client.query(q_unit).result_rows:
            out.append(silence_alert(unit, "", last, settings.silent_unit_minutes, now))
    finally:
        client.close()
    fresh = [a for a in out if a["alert_id"] not in _reported]
    _reported.update(a["alert_id"] for a in fresh)
    return fresh


@app.timer(interval=float(tunable(settings, "metrics_interval_s")))
async def record_pipeline_metrics():
    """Consumer lag per partition, freshness, events/s -> pipeline_metrics."""
    rt = runtime()
    if not rt.ready:
        return
    now = _utcnow()
    t, total = time.monotonic(), rt.metrics.total()
    pt, ptotal = rt.metrics._prev
    rate = (total - ptotal) / max(1e-3, t - pt)
    rt.metrics._prev = (t, total)
    consumer = app.consumer
    group = settings.faust_app_id
    inputs = {dossier_events_topic.get_topic_name(), ratings_topic.get_topic_name()}
    rows = []
    for tp in sorted(consumer.assignment()):
        if tp.topic not in inputs:
            continue
        try:
            end = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - not fetched yet
            end = -1
        committed = consumer._committed_offset.get(tp)
        committed = -1 if committed is None else int(committed)
        lag = max(0, end - committed) if end is not None and end >= 0 and committed >= 0 else (end or 0)
        rows.append({"ts": now, "worker": rt.worker_name, "consumer_group": group, "topic": tp.topic,
                     "partition": tp.partition, "committed_offset": committed, "end_offset": end or -1,
                     "lag": lag, "freshness_ms": rt.metrics.freshness_ms.get((tp.topic, tp.partition), 0),
                     "events_per_s": rate})
    if rows:
        await rt.metrics_sink.write_async(rows)
    log.info("pulse metrics: %s", rt.metrics.as_dict())


_watch = {"events": -1, "stalled_ticks": 0}


def _flow_state() -> dict:
    c = app.consumer
    return {"buffered": sorted(f"{tp.topic}:{tp.partition}" for tp in getattr(c, "_buffered_partitions", ())),
            "paused": sorted(f"{tp.topic}:{tp.partition}" for tp in getattr(c, "_paused_partitions", ())),
            "flow_active": bool(getattr(c, "flow_active", True)), "in_recovery": bool(getattr(app, "in_recovery", 0))}


@app.timer(interval=2.0)
async def unstick_flow_control():
    """Watchdog for a Faust/mode flow-control stall seen under kill -9 tests: a partition taken
    out of the fetch set when its stream buffer was under pressure (Consumer.on_buffer_full)
    is sometimes never put back (the pressure-drop callback does not fire), and the worker
    idles with lag. When nothing was received for two ticks while partitions sit in the
    "buffered" set, put them back (Consumer.on_buffer_drop) and say so in the log."""
    rt = _runtime
    if rt is None or not rt.ready or getattr(app, "in_recovery", False) or app.rebalancing:
        return
    consumer = app.consumer
    buffered = set(getattr(consumer, "_buffered_partitions", ()))
    total = rt.metrics.total()
    progressed = total != _watch["events"]
    _watch["events"] = total
    if progressed:
        _watch["stalled_ticks"] = 0
        _watch["since"] = time.monotonic()
        return
    _watch.setdefault("since", time.monotonic())
    _maybe_exit_on_stall(rt)
    if not buffered:
        _watch["stalled_ticks"] = 0
        return
    _watch["stalled_ticks"] += 1
    if _watch["stalled_ticks"] >= 2:
        log.warning("pulse: no input for %d ticks with fetching suspended on %s; resuming them (%s)",
                    _watch["stalled_ticks"], sorted(map(str, buffered)), _flow_state())
        for tp in buffered:
            consumer.on_buffer_drop(tp)
        rt.metrics.flow_unstuck = getattr(rt.metrics, "flow_unstuck", 0) + 1
        _watch["stalled_ticks"] = 0


def _input_lag() -> int:
    consumer = app.consumer
    inputs = {dossier_events_topic.get_topic_name(), ratings_topic.get_topic_name()}
    lag = 0
    for tp in consumer.assignment():
        if tp.topic not in inputs:
            continue
        try:
            end = consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - not fetched yet
            continue
        committed = consumer._committed_offset.get(tp)
        if end is not None and committed is not None:
            lag += max(0, end - committed)
    return lag


def _maybe_exit_on_stall(rt: Runtime) -> None:
    """Crash-only safety net for the stall above when partitions are NOT in the buffered set
    (seen with a small stream_buffer_maxsize): input lag, no message received for
    ``stall_exit_s`` and no row waiting in any sink (so not ClickHouse backpressure) ->
    log the evidence and exit; the supervisor restarts the worker and, the pipeline being
    exact under kill -9, nothing is lost or doubled."""
    limit = float(tunable(settings, "stall_exit_s"))
    if limit <= 0 or time.monotonic() - _watch["since"] < limit:
        return
    sinks = (rt.events_sink, rt.state_sink, rt.ratings_sink, rt.dead_sink, rt.alerts_sink)
    if any(sk.pending for sk in sinks):
        return
    lag = _input_lag()
    if lag <= 0:
        return
    chains = {t.get_name(): _await_chain(t.get_coro()) for t in asyncio.all_tasks()}
    log.error("pulse: stream stalled for %.0f s with input lag %d and idle sinks; exiting for a restart. "
              "flow=%s tasks=%s", time.monotonic() - _watch["since"], lag, _flow_state(), chains)
    logging.shutdown()
    os._exit(70)


@app.task
async def prepare_runtime():
    """Migrations, checker and sinks at start-up, before the first batch; and the GX child
    started, GX loaded in it, while the worker joins its group. Done at the first
    micro-batch instead, that took ~2.8 s of CPU in the middle of the load on a machine
    with two cores (bench_pipeline, the worker's GX child). Niced, it uses what is idle."""
    runtime()
    if tunable(settings, "gx_enabled"):
        from streams import dq
        global _gx_warm
        _gx_warm = dq.pool(nice=int(tunable(settings, "gx_nice"))).submit(dq.warm)


_gx_warm = None   # the GX child's start-up (a concurrent Future): done once GX is loaded in it


def _gx_state() -> str:
    """'off', 'starting' or 'ready' (GX loaded in the child; 'failed' if that raised)."""
    if not tunable(settings, "gx_enabled"):
        return "off"
    if _gx_warm is None or not _gx_warm.done():
        return "starting"
    return "failed" if _gx_warm.exception() is not None else "ready"


# ----------------------------------------------------------------------------- web

def _await_chain(obj, depth: int = 0) -> list[str]:
    """Where a coroutine / async generator chain is suspended (innermost last)."""
    out = []
    while obj is not None and depth < 60:
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "ag_frame", None) or getattr(obj, "gi_frame", None)
        if frame is not None:
            out.append(f"{frame.f_code.co_filename.rsplit('/', 3)[-1]}:{frame.f_lineno} {frame.f_code.co_name}")
        nxt = getattr(obj, "cr_await", None) or getattr(obj, "ag_await", None) or getattr(obj, "gi_yieldfrom", None)
        if nxt is None and hasattr(obj, "_coro"):
            nxt = obj._coro
        obj = nxt
        depth += 1
    return out


@app.page("/pulse/debug/")
class PulseDebug(View):
    """Where every asyncio task of the worker is suspended (diagnosing stalls)."""

    async def get(self, request: Request) -> Response:
        tasks = {}
        for t in asyncio.all_tasks():
            chain = _await_chain(t.get_coro())
            if any("streams" in c or "take_events" in c or "agent" in c for c in chain):
                tasks[t.get_name()] = chain
        return self.json({"flow": _flow_state(), "tasks": tasks})


@app.page("/pulse/status/")
class PulseStatus(View):
    """Readiness and counters: ``ready`` once partitions are assigned and tables recovered;
    ``gx``: the data-quality child's start-up ('starting', 'ready', 'off', 'failed'), which
    the stream does not wait for."""

    async def get(self, request: Request) -> Response:
        rt = _runtime
        ready = bool(rt is not None and rt.ready and _recovered()
                     and rt.index_generation == app.consumer_generation_id)
        body = {"ready": ready, "gx": _gx_state(), "generation": app.consumer_generation_id,
                "assigned": sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment()),
                "metrics": rt.metrics.as_dict() if rt else {}, "flow": _flow_state()}
        return self.json(body)
