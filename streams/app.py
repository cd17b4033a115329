"""The ONE Faust app of motcua-pulse, built from Settings.

Run a worker:  ``python -m streams worker -l info``  (or ``faust -A streams.app worker``).

Everything comes from ``pulse.config.Settings.from_env()``: broker (KAFKA_BOOTSTRAP),
session timeout (KAFKA_SESSION_TIMEOUT_S; ~6 s locally so a restarted worker rejoins in
seconds), table store (FAUST_STORE: ``memory://`` or ``rocksdb://``), web port
(FAUST_WEB_PORT), data dir (PULSE_STATE_DIR/faust/<app id>), topic names (pulse.topics
with PULSE_TOPIC_PREFIX), ClickHouse (CLICKHOUSE_URL).

Input topics are read as raw bytes (the per-event Checker decodes them) and delivered in
batches to inboxes (streams.batching: Faust's consumer, group, offsets and tables, without its
per-event stream layer); the state table is co-partitioned with ``dossier-events`` (same
key, same partition count).
"""
from __future__ import annotations

import faust

from pulse import topics as T
from pulse.config import Settings
from streams.batching import BatchingApp
from streams.changelog import send_in_batches

# Tunables that are not domain configuration (Settings.extra may override them).
DEFAULTS = {
    "overdue_scan_interval_s": 1.0,      # how often the deadline index is scanned
    "metrics_interval_s": 5.0,           # pipeline_metrics rows
    "alert_eval_interval_s": 30.0,       # share / silence alerts evaluated over ClickHouse
    "alert_min_count": 10,               # fewer dossiers/ratings in the window: no share alert
    # GX micro-batches (agents.gx_due): a light stream is validated whole every
    # gx_batch_seconds; once gx_batch_rows wait (under load), one run per gx_min_interval_s
    # on the newest gx_batch_rows (a sample). A run costs ~0.3 s of CPU whatever its
    # size (0.32 s for 1,000 rows, 0.37 s for 5,000, 0.42 s for 10,000, measured), so the
    # cadence is what costs: one run per 5 s was 6-11 µs of CPU per event in a two-worker
    # run at 17,600 events/s.
    "gx_batch_rows": 10_000,
    "gx_batch_seconds": 10.0,
    "gx_min_interval_s": 30.0,
    "gx_enabled": True,
    # CPU priority of the GX child (os.nice increment). Data-quality reporting is a sample
    # off the hot path: when the machine is saturated it should wait, not the stream. A
    # starved child just runs less often (one run at a time, the newest rows).
    "gx_nice": 10,
    "rating_recent_ids": 200_000,        # bounded recent-id set for the rating counters
    "commit_interval_s": 1.0,
    "publish_state": False,              # also publish state rows to the compacted dossier-state topic
    "stall_exit_s": 60.0,                # no input this long with lag and idle sinks: exit for a restart (0 = never)
    # prepared batches waiting while one is being finished: the CPU work of the next ones
    # overlaps the ClickHouse insert and broker acks of the current one (bench_pipeline:
    # one worker 13.0k events/s at depth 1, 14.5k at 2, 16.6k at 4, same session); 6
    # covers the sinks' minimum interval below at 20,000 events/s; 8 covers the longer busy
    # interval (1.2 s) only just: a batch waits for that interval, then for the insert
    # (0.1-0.3 s). At 16 the workers no longer stall behind their inserts (simulated feed,
    # same run, 2 December: depth 8 19,038 and 20,250 events/s, 88-89% of the cores busy;
    # depth 20 20,645 and 20,508, 92-93%). Each batch in flight is ~2,000 events.
    "pipeline_depth": 16,
    # at most one insert per table per this many seconds while batches keep coming: a chDB
    # insert costs ~25 ms of CPU whatever its size, and once batches no longer waited for
    # each other every batch was its own insert (endpoint 20-22 µs of CPU per event, vs
    # 11-15 µs at 0.3-0.5 s in the same session; freshness p99 at 1,000 events/s 0.38 s)
    "sink_min_interval_s": 0.3,
    # ... growing with the rows a sink receives, up to this interval at this many rows per
    # second (sinks.writer.insert_interval). Two workers on two cores, same session:
    # 20,720 events/s with endpoint 9 µs of CPU per event at a fixed 0.6 s, 18,061 and
    # 12 µs at 0.3 s; a light stream keeps the short interval (freshness). Then 1.2 s at
    # 6,000 rows/s (from 0.8 s at 10,000): endpoint 7 µs of CPU per event, from 11-13, and
    # 23,101 events/s steady (lifecycles feed; 20,079-21,373 in the runs before it that day);
    # at 1,000 events/s a worker's sink is at ~0.375 s instead of ~0.33.
    "sink_busy_interval_s": 1.2,
    "sink_busy_rows_per_s": 6_000,
}


def tunable(settings: Settings, name: str):
    return (settings.extra or {}).get(name, DEFAULTS[name])


def _broker_urls(bootstrap: str) -> list[str]:
    return [f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip()]


def create_app(settings: Settings) -> BatchingApp:
    datadir = settings.state_dir / "faust" / settings.faust_app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    session = float(settings.kafka_session_timeout_s)
    app = BatchingApp(
        settings.faust_app_id,
        broker=_broker_urls(settings.kafka_bootstrap),
        store=settings.faust_store,
        datadir=str(datadir),
        web_port=settings.faust_web_port,
        web_host="127.0.0.1",
        broker_session_timeout=session,
        broker_heartbeat_interval=max(0.5, session / 3),
        broker_rebalance_timeout=max(10.0, 2 * session),
        broker_commit_interval=float(tunable(settings, "commit_interval_s")),
        # Fetch well ahead of processing: each fetch is a round trip to Faust's consumer
        # thread, and a partition without prefetched records waits a broker round trip.
        # With one batch per fetch (the old setting) the batch loop waited for input about
        # half the time (measured in stage_s.wait_input).
        broker_max_poll_records=max(2000, 4 * settings.stream_batch_size),
        consumer_max_fetch_size=8 * 1024 * 1024,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=max(16384, 4 * settings.stream_batch_size),
        table_standby_replicas=0,
        topic_partitions=T.DOSSIER_EVENTS.partitions,
        topic_allow_declare=True,
        producer_linger_ms=5,
        # a batch's changelog (one record per changed dossier, ~0.5 KB) in few requests: with
        # the 16 KiB default a 2,000-event batch took ~75 produce batches to acknowledge
        producer_max_batch_size=512 * 1024,
        key_serializer="raw",
        value_serializer="raw",
    )
    app.pulse_settings = settings  # type: ignore[attr-defined]
    return app


settings = Settings.from_env()
app = create_app(settings)


def _topic(spec: T.TopicSpec, **kw):
    return app.topic(settings.topic(spec.name), partitions=spec.partitions,
                     key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw", **kw)


dossier_events_topic = _topic(T.DOSSIER_EVENTS)
ratings_topic = _topic(T.RATINGS)
dead_letters_topic = _topic(T.DEAD_LETTERS)
alerts_topic = _topic(T.ALERTS)
dossier_state_topic = _topic(T.DOSSIER_STATE)

# The input topics, delivered in batches (bounded: the fetch loop waits when they are full).
dossier_inbox = app.inbox(dossier_events_topic, max_buffered=4 * settings.stream_batch_size)
ratings_inbox = app.inbox(ratings_topic, max_buffered=4 * settings.stream_batch_size)


class DurableTable(faust.Table):
    """A Faust table whose batch writes return awaitable changelog sends (``put_many``).

    Why awaited: a batch's offsets may be committed only once its table changes are in the
    changelog, or a crash leaves committed input whose effect the recovered table has lost
    (the next event of that dossier is then applied to a stale event set). Faust's own
    guard, ``producer.flush()`` before each commit, gives up after 0.1 s without progress
    (``ProducerBuffer.flush_atmost``), which on a loaded machine let commits overtake the
    changelog in the kill -9 test. So the batch loop awaits the sends of its batch.

    Why in bulk (``put_many``): ``table[key] = value`` goes through Faust's per-message
    layers (a pending message and a future per key, the producer buffer task, topic
    preparation, sensors): tens of µs per dossier, a large share of the worker's CPU. A
    batch's changes go straight to the store and to the producer instead, as the same
    changelog records (key, JSON value, the source message's partition) that Faust's
    recovery reads back."""

    def reader(self):
        """``key -> value or None`` for the batch path: the memory store's own dict lookup,
        without ``table.get``'s layers (Mapping.get, the table's and the store's
        ``__getitem__``, the get sensors), ~3 µs per dossier of a worker's ~55 µs per event.
        Other stores (RocksDB) go through ``get`` as before."""
        from faust.stores.memory import Store as MemoryStore
        store = self.data
        if isinstance(store, MemoryStore) and isinstance(getattr(store, "data", None), dict):
            return store.data.get
        return self.get

    async def put_many(self, items) -> list:
        """``table[key] = value`` for each ``(key, value, partition)``; returns the changelog
        sends' futures (resolved by the broker's ack)."""
        from faust.serializers.codecs import dumps
        data = self.data
        topic, serializer = self.changelog_topic.get_topic_name(), self.value_serializer
        if serializer == "json":
            # what Faust's json codec writes for these values (orjson's bytes), without its
            # codec lookup and layers per record
            import orjson
            encode = orjson.dumps
        else:
            def encode(value):
                return dumps(serializer, value)
        records: dict[int, list] = {}
        for key, value, partition in items:
            data[key] = value
            records.setdefault(partition, []).append((key, encode(value)))
        # the aiokafka producer under Faust's (the app's transport is always aiokafka)
        producer = self.app.producer._ensure_producer()
        sent = []
        for partition, recs in records.items():
            sent += await send_in_batches(producer, topic, partition, recs)
        return sent


# dossier_code (utf-8 bytes) -> (compact event, ...) (streams.core): the applied-event set of each dossier.
dossier_table = app.tables.add(DurableTable(
    app,
    name="dossier-events-applied",
    default=None,
    partitions=T.DOSSIER_EVENTS.partitions,
    key_type=bytes,
    beacon=app.tables.beacon,
))

# Register the agents, timers and pages.
from streams import agents  # noqa: E402,F401
