"""The Faust app of motcua-pulse, built from Settings by ``build(settings)``.

Run a worker: ``python -m streams worker -l info``.

The pipeline, as registered here (each step in its own module):

* ``apply_status_changes``: dossier-events in batches (streams.inbox) -> streams.dossiers
  (validate, apply, judge, rows) -> streams.checkpoint (ClickHouse, then table changelog,
  dead letters and alerts, then ack).
* ``rate_service``: ratings in batches -> streams.ratings -> streams.checkpoint.
* ``mark_overdue_dossiers`` (timer): streams.deadlines -> ``due_soon`` / ``overdue`` alerts
  and the state row with ``overdue=1`` the moment the promised date passes.
* ``raise_threshold_alerts`` (leader timer): streams.alerts, over ClickHouse.
* ``record_pipeline_metrics`` (timer): streams.metrics -> ``pipeline_metrics``.
* ``unstick_flow_control`` (timer): streams.watchdog.
* pages: streams.web.

Input topics are read as raw bytes (the per-event Checker decodes them); the dossier table
is co-partitioned with ``dossier-events`` (same key, same partition count). Everything
below Faust's public API is in streams.faust_adapter.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import time
from datetime import datetime, timezone
from typing import Any

from pulse import topics
from pulse.config import Settings
from streams import faust_adapter
from streams.alerts import ThresholdAlerts, send_alerts
from streams.checkpoint import BatchLoop, write_all
from streams.deadlines import scan
from streams.dossiers import prepare_dossier_batch
from streams.faust_adapter import BatchingApp, ConsumerView, DurableTable
from streams.inbox import Inbox
from streams.metrics import metric_rows, partition_lags
from streams.ratings import prepare_rating_batch
from streams.runtime import Outputs, Runtime
from streams.transitions import confirm
from streams.eviction import evict
from streams.watchdog import Watchdog

log = logging.getLogger("motcua.streams")
UTC = timezone.utc


def _broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip()]


def faust_app(settings: Settings) -> BatchingApp:
    from pulse.kafka_security import KafkaConnectError, faust_broker_kwargs, preflight
    try:
        # A secured broker with a wrong password or CA file: fail here saying what is wrong
        # (user, mechanism, CA file); Faust's own failure reads "Unable to bootstrap".
        # (PLAINTEXT: nothing to check; the worker waits for a broker that is down, as before.)
        preflight(settings)
    except KafkaConnectError as e:
        log.error("worker cannot connect to Kafka: %s", e)
        raise
    datadir = settings.state_dir / "faust" / settings.faust_app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    session = float(settings.kafka_session_timeout_s)
    app = BatchingApp(
        settings.faust_app_id,
        broker=_broker_urls(settings.kafka_bootstrap),
        **faust_broker_kwargs(settings),   # SASL / TLS credentials (pulse.kafka_security)
        store=settings.faust_store,
        datadir=str(datadir),
        web_port=settings.faust_web_port,
        web_host="127.0.0.1",
        broker_session_timeout=session,
        broker_heartbeat_interval=max(0.5, session / 3),
        broker_rebalance_timeout=max(10.0, 2 * session),
        broker_commit_interval=settings.tunables.commit_interval_s,
        # Fetch well ahead of processing: each fetch is a round trip to Faust's consumer
        # thread, and a partition without prefetched records waits a broker round trip.
        # With one batch per fetch (the old setting) the batch loop waited for input about
        # half the time (measured in stage_s.wait_input).
        broker_max_poll_records=max(2000, 4 * settings.stream_batch_size),
        consumer_max_fetch_size=8 * 1024 * 1024,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=max(16384, 4 * settings.stream_batch_size),
        table_standby_replicas=0,
        # Faust's own topics (the table's changelog, repartitions) co-partitioned with
        # dossier-events, replicated like the pipeline's topics (pulse.config, docs/KAFKA.md)
        topic_partitions=topics.DOSSIER_EVENTS.partition_count(settings),
        topic_replication_factor=settings.kafka_replication_factor,
        topic_allow_declare=True,
        producer_linger_ms=5,
        # a batch's changelog (one record per changed dossier, ~0.5 KB) in few requests: with
        # the 16 KiB default a 2,000-event batch took ~75 produce batches to acknowledge
        producer_max_batch_size=512 * 1024,
        key_serializer="raw",
        value_serializer="raw",
    )
    app.trace_offsets = settings.trace_offsets
    return app


class Pulse:
    """The app and what it is built of: topics, inboxes, the dossier table, and the
    Runtime (built at start-up, once ClickHouse is migrated)."""

    def __init__(self, settings: Settings):
        faust_adapter.check_versions()
        self.settings = settings
        self.app = app = faust_app(settings)
        self.view = ConsumerView(app)

        def topic(spec: topics.TopicSpec):
            return app.topic(settings.topic(spec.name), partitions=spec.partition_count(settings), key_type=bytes,
                             replicas=settings.kafka_replication_factor, config=spec.config(settings),
                             value_type=bytes, key_serializer="raw", value_serializer="raw")
        self.dossier_events = topic(topics.DOSSIER_EVENTS)
        self.ratings = topic(topics.RATINGS)
        self.outputs = Outputs(
            # dossier_code (utf-8 bytes) -> (compact event, ...) (streams.core): the applied-event set of each dossier
            table=app.tables.add(DurableTable(app, name="dossier-events-applied", default=None,
                                              partitions=topics.DOSSIER_EVENTS.partition_count(settings),
                                              key_type=bytes,
                                              beacon=app.tables.beacon,
                                              # compaction that keeps a restart's recovery short
                                              extra_topic_configs={
                                                  **faust_adapter.CHANGELOG_TOPIC_CONFIGS,
                                                  # acks=all means 2 copies (pulse.config, docs/KAFKA.md)
                                                  "min.insync.replicas": settings.kafka_min_insync_replicas})),
            dead_letters=topic(topics.DEAD_LETTERS), alerts=topic(topics.ALERTS),
            dossier_state=topic(topics.DOSSIER_STATE))
        # the input topics, delivered in batches (bounded: the fetch loop waits when they are full)
        buffered = 4 * settings.stream_batch_size
        self.dossier_inbox = Inbox(app, self.dossier_events.get_topic_name(), buffered, settings.trace_offsets)
        self.ratings_inbox = Inbox(app, self.ratings.get_topic_name(), buffered, settings.trace_offsets)
        app.add_inbox(self.dossier_events, self.dossier_inbox)
        app.add_inbox(self.ratings, self.ratings_inbox)
        self.inputs = {self.dossier_events.get_topic_name(), self.ratings.get_topic_name()}
        self.runtime: Runtime | None = None
        self._runtime_ready = asyncio.Event()
        self.threshold_alerts = ThresholdAlerts(settings, settings.tunables.alert_min_count)
        self.watchdog: Watchdog | None = None
        self._service_index: Any = None   # streams.service_index.ServiceIndexJob, on the leader's first tick
        self._register()

    def ready(self) -> bool:
        rt = self.runtime
        return bool(rt is not None and rt.ready and self.view.recovered()
                    and rt.deadlines.generation == self.app.consumer_generation_id)

    async def _runtime(self) -> Runtime:
        await self._runtime_ready.wait()
        assert self.runtime is not None
        return self.runtime

    def _register(self) -> None:
        app, t = self.app, self.settings.tunables

        @app.task
        async def prepare_runtime():
            """Migrations, row-layout check, checker and sinks at start-up, before the first
            batch; and the GX child started while the worker joins its group."""
            self.runtime = await asyncio.to_thread(Runtime.build, self.settings, self.outputs)
            self.runtime.quality.start_child()
            self.watchdog = Watchdog(self.runtime, self.view, app.consumer.assignment, self.inputs)
            self._runtime_ready.set()

        @app.task
        async def apply_status_changes():
            """Dossier status events -> validated, de-duplicated, applied in event-time order."""
            rt = await self._runtime()
            await BatchLoop(rt, self.dossier_inbox, prepare_dossier_batch, depth=t.pipeline_depth).run()

        @app.task
        async def rate_service():
            """Kiosk ratings -> validated, de-duplicated by rating_id -> ClickHouse ratings."""
            rt = await self._runtime()
            await BatchLoop(rt, self.ratings_inbox, prepare_rating_batch).run()

        @app.timer(interval=t.overdue_scan_interval_s)
        async def mark_overdue_dossiers():
            """Open dossiers whose deadline passes become overdue now, without another event;
            illegal transitions still there after their grace period are alerted."""
            rt = self.runtime
            if rt is None or not self.view.recovered():
                return
            table = self.outputs.table
            gen = app.consumer_generation_id
            if rt.deadlines.generation != gen:
                now = datetime.now(UTC)
                # one pass over the dossiers held (a state at a time: all of them at once
                # would be ~1 KiB per dossier), feeding both indexes
                rt.transitions.rebuild((), now)

                def held():
                    for k, ev in list(table.items()):
                        if ev:
                            st = rt.logic.state(k.decode() if isinstance(k, bytes) else k, ev, now)
                            rt.transitions.consider(st, now)
                            yield st
                n = rt.deadlines.rebuild(held(), now)
                rt.deadlines.generation = gen
                # what the table holds now lives on: keep it out of the cyclic GC's scans
                gc.collect()
                gc.freeze()
                rt.ready = True
                log.info("pulse: worker ready (generation %s, %d partitions, %d open dossiers with a deadline)",
                         gen, len(app.consumer.assignment()), n)
            now = datetime.now(UTC)
            rows, alerts, ch_only = scan(rt, lambda code: table.get(code.encode()), now)
            alerts += confirm(rt, lambda code: table.get(code.encode()), now)
            if rows or alerts or ch_only:
                await write_all([(rt.sinks.dossier_state, rows), (rt.sinks.alerts, alerts + ch_only)])
                rt.metrics.alerted(alerts + ch_only)
                await send_alerts(self.outputs.alerts, alerts)
            rt.quality.maybe_run(rt.sinks.dq_results)

        @app.timer(interval=t.alert_eval_interval_s, on_leader=True)
        async def raise_threshold_alerts():
            """Shares below thresholds over the alert window, silent kiosks/units (exact: ClickHouse FINAL)."""
            rt = self.runtime
            if rt is None:
                return
            try:
                alerts = await asyncio.to_thread(self._evaluate_threshold_alerts)
            except Exception:  # noqa: BLE001 - ClickHouse may be down; the next tick retries
                log.warning("threshold alerts skipped", exc_info=True)
                return
            if alerts:
                await write_all([(rt.sinks.alerts, alerts)])
                rt.metrics.alerted(alerts)
                await send_alerts(self.outputs.alerts, alerts)

        @app.timer(interval=t.service_index_interval_s, on_leader=True)
        async def compute_service_index():
            """The national service index per unit, month to date (and past periods once) -> service_index."""
            if self.runtime is None:
                return
            try:
                await asyncio.to_thread(self._compute_service_index)
            except Exception:  # noqa: BLE001 - ClickHouse may be down; the next tick retries
                log.warning("service index skipped", exc_info=True)

        @app.timer(interval=t.metrics_interval_s)
        async def record_pipeline_metrics():
            """Consumer lag per partition, freshness, events/s -> pipeline_metrics."""
            rt = self.runtime
            if rt is None or not rt.ready:
                return
            lags = partition_lags(self.view, app.consumer.assignment(), self.inputs)
            rows = metric_rows(lags, rt.metrics, now=datetime.now(UTC), worker=rt.worker_name,
                               group=self.settings.faust_app_id)
            if rows:
                await rt.sinks.pipeline_metrics.write_async(rows)
            log.info("pulse metrics: %s", rt.metrics.as_dict())

        # Checked every few seconds; a scan runs every eviction_interval_s, or sooner once
        # eviction_every_events were applied since the last one: a backlog or a replay applies
        # 10,000+ events per second per worker (a province-year in minutes, bench_year), and by
        # the wall clock alone the table grew by 300 s of input between scans (~0.7 KiB per
        # event: about 2 GiB per worker).
        eviction_last: dict = {"wall": 0.0, "applied": 0}

        @app.timer(interval=min(t.eviction_interval_s, t.eviction_check_s))
        async def evict_closed_dossiers():
            """Closed dossiers past the retention leave the table (streams.eviction)."""
            rt = self.runtime
            if rt is None or not self.ready() or t.closed_retention_s <= 0:
                return
            now, applied = time.monotonic(), rt.metrics.applied
            wall_due = now - eviction_last["wall"] >= t.eviction_interval_s
            events_due = applied - eviction_last["applied"] >= t.eviction_every_events
            if not (wall_due or events_due):
                return
            eviction_last.update(wall=now, applied=applied)
            await evict(rt, self.outputs.table, app.consumer.assignment(), self.dossier_events.get_topic_name())

        @app.timer(interval=0.5)
        async def follow_recovery():
            """Samples the table's changelog recovery for the status page (where each
            partition's reading began: ConsumerView.recovery)."""
            self.view.recovery()

        @app.timer(interval=t.reference_poll_interval_s)
        async def reload_reference_catalogue():
            """A newer reference catalogue (pulse reference import) in force without a restart (streams.catalogue)."""
            rt = self.runtime
            if rt is None:
                return
            from streams import catalogue
            try:
                found = await asyncio.to_thread(catalogue.newer, self.settings, rt.catalogue_version, rt.logic.calendar)
            except Exception:  # noqa: BLE001 - ClickHouse may be down; the next tick retries
                log.warning("reference catalogue check skipped", exc_info=True)
                return
            if found is not None:
                catalogue.swap(rt, found)

        @app.timer(interval=2.0)
        async def unstick_flow_control():
            """streams.watchdog: resume partitions left suspended; exit on a stall."""
            rt = self.runtime
            if (rt is None or self.watchdog is None or not rt.ready or self.view.in_recovery()
                    or app.rebalancing):
                return
            self.watchdog.tick()

        from streams import web
        web.register(app, self)

    def _evaluate_threshold_alerts(self) -> list[dict]:
        from sinks.client import get_client
        client = get_client(self.settings)
        try:
            return self.threshold_alerts.evaluate(client)
        finally:
            client.close()

    def _compute_service_index(self) -> int:
        from sinks.client import get_client
        from streams.service_index import ServiceIndexJob
        if self._service_index is None:   # built on first use: reads the YAML and reference data
            self._service_index = ServiceIndexJob(self.settings)
        if self.runtime is not None:      # scored against the reference catalogue in force (streams.catalogue)
            self._service_index.ref = self.runtime.reference
        client = get_client(self.settings)
        try:
            return self._service_index.run(client)
        finally:
            client.close()


def build(settings: Settings) -> Pulse:
    """The worker's app, topics, table and timers, from ``settings``."""
    return Pulse(settings)
