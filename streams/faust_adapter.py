"""Every use of faust-streaming's (and mode's) private API, in one module.

The worker uses Faust's consumer group, offsets, tables, changelog recovery and web
server as they are. Three things it needs go below Faust's public API, and all of them are
here, nowhere else:

* **Batched input** (``BatchingConsumer``, ``BatchingApp``). Faust hands every message to a
  stream one at a time. On this 2-core machine that machinery (``Consumer._drain_messages``
  awaits ``wait_first(callback(message), ...)`` per message, which creates two tasks; the
  conductor takes a lock and decodes an ``Event``; the stream's channel does another
  ``wait_first`` per ``get``) cost 100-240 µs per event, several times the cost of
  validating and applying the event itself, and capped the worker at about 4,000
  events/s. ``BatchingConsumer`` replaces the fetch loop only: for a topic that has an
  ``Inbox`` (streams.inbox) it converts a whole fetched partition batch to Faust
  ``Message`` objects, tracks them as unacked (so a rebalance waits for them exactly as
  it waits for stream events) and puts the list into the inbox in one step. Every other
  topic goes through Faust's per-message callback, except the dossier table's changelog
  while it is recovered: a fetched batch of its records is applied to the memory store in
  one step (``_recover_in_bulk``, ``DurableTable.apply_recovered``) and Faust's recovery
  books are moved on, so a restart reads a year's changelog back in seconds, not minutes.
  Offsets stay Faust's: a processed batch is acked with ``ack_many`` (``Consumer.ack``'s
  bookkeeping, for the whole batch under one lock); Faust commits the contiguous acked
  prefix on its own schedule. Back-pressure: ``Inbox.put`` waits while the inbox is full,
  so the fetch loop stops and aiokafka stops prefetching.
* **Batched table writes** (``DurableTable``): a batch's changes go straight to the store
  and to the producer as the same changelog records Faust's recovery reads back, with
  the sends' futures returned so the batch is acked only once the broker has them.
* **Read-only views of the consumer** for metrics and the watchdog (``ConsumerView``):
  committed offsets, partitions whose fetching is suspended, recovery state.

Input was lost here twice before this was fenced. A faust-streaming or mode upgrade may
rename or change any of it, so ``check_versions()`` refuses, at start, a version this
module has not been tested with, and tests/test_faust_contract.py checks every private
name used here (``PRIVATE_NAMES``) exists with the shape relied on. Upgrading means: run
that contract test and the kill -9 exactness test on the new version, then add it to
``TESTED``.
"""
from __future__ import annotations

import asyncio
import logging
import weakref
from importlib import metadata
from typing import Any, Callable, Sequence, cast

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger("motcua.streams.faust_adapter")

# Versions this module was tested with (contract test + kill -9 exactness test).
TESTED = {"faust-streaming": ("0.15.3",), "mode-streaming": ("0.7.1",), "aiokafka": ("0.14.0",)}

# Every private attribute this module relies on, by owner (checked by the contract test).
PRIVATE_NAMES = {
    "faust.transport.drivers.aiokafka.Consumer": (
        "_drain_messages", "_wait_next_records", "_to_message", "_add_gap", "_commit",
        "_committed_offset", "_acked_index", "_acked", "_unacked_messages", "_n_acked",
        "_waiting_for_ack", "_read_offset", "_commit_every", "_buffered_partitions",
        "_paused_partitions", "_stopped", "on_buffer_drop", "flow_active", "suspend_flow"),
    "faust.App": ("_new_transport",),
    "faust.Table": ("data",),
    "faust.stores.memory.Store": ("data", "_key_partition"),
    "faust.transport.drivers.aiokafka.Producer": ("_ensure_producer",),
    "faust.tables.manager.TableManager": ("recovery", "changelog_queue"),
    # recovery progress on the status page (ConsumerView.recovery): the Recovery service's books
    "faust.tables.recovery.Recovery": ("_recovery_started_at", "_recovery_ended_at", "in_recovery", "active_tps",
                                       "active_offsets", "active_highwaters",
                                       # the bulk recovery path (BatchingConsumer._recover_in_bulk)
                                       "tp_to_table", "buffers", "_active_events_received_at"),

    "faust.types.tuples": ("ack_lock",),
    "mode.utils.futures": ("notify",),
}


class UntestedVersion(RuntimeError):
    """A faust-streaming / mode / aiokafka version this adapter was not tested with."""


def installed_versions() -> dict[str, str]:
    return {name: metadata.version(name) for name in TESTED}


def check_versions(versions: dict[str, str] | None = None) -> None:
    """Refuse to start on a version the private API below was not tested with."""
    versions = installed_versions() if versions is None else versions
    wrong = {n: v for n, v in versions.items() if v not in TESTED.get(n, ())}
    if wrong:
        found = ", ".join(f"{n} {v}" for n, v in sorted(wrong.items()))
        tested = ", ".join(f"{n} {'/'.join(vs)}" for n, vs in sorted(TESTED.items()))
        raise UntestedVersion(
            f"streams.faust_adapter uses private parts of Faust and was tested with {tested}; "
            f"installed: {found}. Run tests/test_faust_contract.py and the kill -9 exactness test "
            f"(tests/integration/test_worker_exactness.py) on this version, then add it to "
            f"streams.faust_adapter.TESTED.")


def untrack(consumer: Any, messages) -> None:
    """Stop tracking messages that will not be acked (they are fetched again): Faust's
    revocation waits until no tracked message is unacked."""
    unacked = getattr(consumer, "_unacked_messages", None)
    if unacked is not None:
        for m in messages:
            unacked.discard(m)


# Where each active changelog partition's reading began in the current recovery, per
# Recovery service: (its _recovery_started_at, {tp: offset}). Noted by the fetch loop
# before it hands a partition's first records on (BatchingConsumer._bulk_recovery), and
# by the status page's sampling if that comes first. Sampling alone is not enough: the bulk
# path reads a partition's changelog in tens of milliseconds, so a first sample often
# came after the end and reported a recovery of 0 offsets (CI, test_restart).
_RECOVERY_BEGIN: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def recovery_begin(rec: Any) -> dict:
    """``{tp: offset}`` where the current recovery of ``rec`` began reading each partition."""
    started = rec._recovery_started_at
    entry = _RECOVERY_BEGIN.get(rec)
    if entry is None or entry[0] != started:
        entry = (started, {})
        _RECOVERY_BEGIN[rec] = entry
    return entry[1]


class ConsumerView:
    """What the worker reads of Faust's consumer and app state (read-only, plus one resume)."""

    def __init__(self, app: Any):
        self.app: Any = app

    def committed(self, tp) -> int | None:
        value = self.app.consumer._committed_offset.get(tp)
        return None if value is None else int(value)

    def highwater(self, tp) -> int | None:
        try:
            return self.app.consumer.highwater(tp)
        except Exception:  # noqa: BLE001 - not fetched yet
            return None

    def buffered(self) -> set:
        """Partitions whose fetching Faust suspended because a stream buffer was full."""
        return set(getattr(self.app.consumer, "_buffered_partitions", ()))

    def paused(self) -> set:
        return set(getattr(self.app.consumer, "_paused_partitions", ()))

    def resume_buffered(self, tps) -> None:
        for tp in tps:
            self.app.consumer.on_buffer_drop(tp)

    def flow_active(self) -> bool:
        return bool(getattr(self.app.consumer, "flow_active", True))

    def in_recovery(self) -> bool:
        return bool(getattr(self.app, "in_recovery", False))

    def recovery(self) -> dict:
        """Changelog recovery of this worker's active table partitions, for the status page:
        ``active``, ``partitions``, changelog ``offsets_done`` / ``offsets_total`` since the
        recovery started (offsets, not records: compaction leaves gaps), ``percent``,
        ``eta_s`` at the rate so far; and ``last_s``, how long the last finished one took.
        A restarted worker does not process input before it is done (Faust resumes the
        streams after recovery), so this is what a restart waits for."""
        from time import monotonic
        rec = getattr(self.app.tables, "recovery", None)
        if rec is None:
            return {"active": False, "partitions": 0}
        started, ended = rec._recovery_started_at, rec._recovery_ended_at
        active = bool(rec.in_recovery)
        tps = list(rec.active_tps)
        offsets, highwaters = rec.active_offsets, rec.active_highwaters
        # where this recovery began reading each partition (recovery_begin: noted by the
        # fetch loop before the first records are applied, or by the first sample here)
        begin = recovery_begin(rec)
        done = total = 0
        for tp in tps:
            off, hw = offsets.get(tp), highwaters.get(tp)
            if off is None or hw is None:
                continue
            first = begin.setdefault(tp, off)
            total += max(0, hw - first)
            done += max(0, min(off, hw) - first)
        out: dict = {"active": active, "partitions": len(tps), "offsets_done": done, "offsets_total": total,
                     "percent": round(100.0 * done / total, 1) if total else (0.0 if active else 100.0),
                     "eta_s": None}
        if active and started is not None:
            elapsed = monotonic() - started
            out["elapsed_s"] = round(elapsed, 1)
            if done and total > done:
                out["eta_s"] = round(elapsed * (total - done) / done, 1)
        if started is not None and ended is not None and ended >= started:
            out["last_s"] = round(ended - started, 2)
        return out

    def recovered(self) -> bool:
        """Tables recovered from their changelogs and no rebalance under way."""
        rec = getattr(self.app.tables, "recovery", None)
        return bool(rec is not None and rec.completed.is_set() and not self.app.rebalancing
                    and not self.in_recovery())


# The dossier table's changelog topic, as Faust declares it (it only creates a missing topic:
# an existing one keeps its configs until altered, e.g. with kafka-configs.sh --alter).
# A restarted worker reads back every record of its partitions that the broker's log
# cleaner has not removed yet: the newest record of each live key, tombstones younger than
# delete.retention.ms, and the "dirty" part: the uncleaned tail, which always includes the
# active segment (never cleaned). With Kafka's defaults (1 GiB segments rolled weekly,
# cleaning once half the log is dirty, tombstones kept a day) a year's changelog (one record
# per event applied, ~0.7 KB each) stays mostly uncleaned and recovery reads it nearly
# whole. Here the active segment is at most 16 MiB (~23,000 records) per partition and rolls
# every 5 minutes; cleaning starts at 10% dirty and any record is cleanable after 10
# minutes; an evicted dossier's tombstone is kept 60 s after cleaning (a replayed backlog
# evicts hundreds of thousands of dossiers an hour, and every tombstone kept is read back at
# a restart). A recovery that misses a tombstone removed under it keeps that closed
# dossier's full event set, the same set ClickHouse would give back (streams.eviction), and
# the next eviction scan removes it again.
CHANGELOG_TOPIC_CONFIGS = {
    "segment.bytes": 16 * 1024 * 1024,
    "segment.ms": 5 * 60 * 1000,
    "min.cleanable.dirty.ratio": 0.1,
    "max.compaction.lag.ms": 10 * 60 * 1000,
    "delete.retention.ms": 60 * 1000,
    "min.compaction.lag.ms": 0,
}


class BatchingConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, delivering whole fetched batches to inboxes."""

    def ack_many(self, messages: Sequence) -> int:
        """``Consumer.ack`` of each message, in order: the same bookkeeping, step by step
        (faust-streaming 0.15's ``Consumer.ack``), under ONE acquisition of Faust's ack lock,
        with one acks-enabled check per topic and one wake-up of the commit's waiters at
        the end instead of one per message (~1.5 µs per message, 2-3% of a worker's CPU).
        Returns how many were newly acked."""
        from faust.types.tuples import ack_lock
        from mode.utils.futures import notify
        committed_offsets, acked_index_of, acked_of = self._committed_offset, self._acked_index, self._acked
        unacked, acks_enabled_for = self._unacked_messages, self.app.topics.acks_enabled_for
        enabled: dict = {}
        n = 0
        with ack_lock:
            try:
                for message in messages:
                    if message.acked:
                        continue
                    message.acked = True
                    topic = message.topic
                    on = enabled.get(topic)
                    if on is None:
                        on = enabled[topic] = acks_enabled_for(topic)
                    if not on:
                        continue
                    tp, offset = message.tp, message.offset
                    committed = committed_offsets[tp]
                    if committed is None or offset >= committed:
                        acked_index = acked_index_of[tp]
                        if offset not in acked_index:
                            unacked.discard(message)
                            acked_index.add(offset)
                            acked_of[tp].append(offset)
                            n += 1
            finally:
                self._n_acked += n
                notify(self._waiting_for_ack)
        return n

    async def perform_seek(self) -> None:
        """Every input partition back to its committed offset, including those never
        committed: aiokafka's ``seek_to_committed`` leaves a partition without a committed
        offset (or at 0) where it is, so messages fetched and then dropped there (a rebalance
        clearing an inbox) would be skipped, not read again."""
        await super().perform_seek()
        inboxes = getattr(self.app, "inboxes", {})
        fresh = {tp: 0 for tp in self.assignment()
                 if tp.topic in inboxes and not self._read_offset.get(tp)}
        if fresh:
            await self.seek_wait(fresh)
        if getattr(self.app, "trace_offsets", False):
            log.info("trace seek to committed: %s", {f"{tp.topic}:{tp.partition}": o
                                                     for tp, o in self._read_offset.items()})

    async def _commit(self, offsets) -> bool:
        ok = await super()._commit(offsets)
        if getattr(self.app, "trace_offsets", False):
            log.info("trace commit %s: %s", ok, {f"{tp.topic}:{tp.partition}": o for tp, o in offsets.items()})
        return ok

    def _bulk_recovery(self, tp) -> tuple[Any, Any] | None:
        """(recovery service, table) when ``tp`` is an active changelog partition under
        recovery of a DurableTable on the memory store, and nothing of it is queued for
        Faust's own recovery loop (so the bulk path cannot overtake an older record of the
        same key); else None (Faust's per-record path). Either way, for an active changelog
        partition under recovery, it first notes where this recovery began reading it
        (``recovery_begin``): the fetch loop calls it before any record of the fetch is
        applied, on both paths, so the status page's progress counts every offset read."""
        tables: Any = self.app.tables
        rec = tables.recovery
        if not rec.in_recovery or tp not in rec.active_tps:
            return None
        start = rec.active_offsets.get(tp)
        if start is not None:
            recovery_begin(rec).setdefault(tp, start)
        table = rec.tp_to_table.get(tp)
        if not isinstance(table, DurableTable) or table.bulk_recovery_store() is None:
            return None
        if not tables.changelog_queue.empty():
            return None
        pending = rec.buffers.get(table)
        if pending:               # delivered one by one before, not applied yet: first
            table.apply_changelog_batch(pending)
            pending.clear()
        return rec, table

    def _recover_in_bulk(self, tp, recs, rec, table) -> bool:
        """Apply a fetched batch of changelog records in one step and move Faust's recovery
        books on as its loop would; True when the partition is now fully read.

        Why: Faust's recovery takes one record at a time through the consumer callback, the
        conductor (an Event decoded per record), a queue and its recovery loop: 112 µs of CPU
        per changelog offset, measured in bench_year (241,505 offsets in 21.3 s), so a
        province-year's changelog took minutes to read back."""
        from time import monotonic
        table.apply_recovered(recs)
        last = recs[-1].offset
        rec.active_offsets[tp] = last
        rec._active_events_received_at[tp] = monotonic()
        highwater = rec.active_highwaters.get(tp)
        return highwater is not None and last >= highwater

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - exercised end to end
        inboxes: dict = getattr(self.app, "inboxes", {})
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        read_offset = self._read_offset
        to_message = self._to_message
        acks_enabled_for = self.app.topics.acks_enabled_for
        commit_every = self._commit_every
        track = self._unacked_messages.add
        trace = getattr(self.app, "trace_offsets", False)
        records: Any
        recs: Any
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                records, active = await self._wait_next_records(1.0)
                await self.sleep(0)
                if records is None or self.should_stop:
                    continue
                if not self.flow_active:
                    try:  # as Consumer.getmany: back to the committed offsets
                        await self.perform_seek()
                    except Exception as exc:  # noqa: BLE001
                        log.warning("seek while flow not active failed: %r", exc)
                    continue
                generation = self.app.consumer_generation_id
                for tp, recs in records.items():
                    if not self.flow_active or self.app.consumer_generation_id != generation:
                        break
                    if not (active is None or tp in active or tp in self._buffered_partitions):
                        continue
                    self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                    r_offset = read_offset[tp]
                    if r_offset is not None:
                        recs = [r for r in recs if r.offset >= r_offset]
                    if not recs:
                        continue
                    inbox = inboxes.get(tp.topic)
                    if acks_enabled_for(tp.topic):
                        # offsets that never arrive (compaction, transaction markers) count as acked
                        prev = r_offset
                        for r in recs:
                            if prev and r.offset - prev > 1:
                                if inbox is not None:
                                    # an input topic written without transactions has no gaps:
                                    # say so, a gap counts as processed when offsets are committed
                                    log.warning("pulse: offsets %d..%d of %s:%d never arrived; counted as done",
                                                prev + 1, r.offset - 1, tp.topic, tp.partition)
                                await self._add_gap(tp, prev + 1, r.offset)
                            prev = r.offset
                    if inbox is None:
                        recovering = self._bulk_recovery(tp)
                        if recovering is not None:
                            if self._recover_in_bulk(tp, recs, *recovering):
                                # the recovery loop only notices the end when an event
                                # arrives (or after 5 s without one): the partition's last
                                # record once more, already applied, so it is skipped
                                await self.wait_first(callback(to_message(tp, recs[-1])), self.suspend_flow.wait())
                            read_offset[tp] = recs[-1].offset
                            continue
                        for r in recs:
                            await self.wait_first(callback(to_message(tp, r)), self.suspend_flow.wait())
                            read_offset[tp] = r.offset
                    else:
                        if trace:
                            log.info("trace deliver gen %s %s:%d %d..%d (read offset %s)", generation, tp.topic,
                                     tp.partition, recs[0].offset, recs[-1].offset, r_offset)
                        msgs = [to_message(tp, r) for r in recs]
                        for m in msgs:
                            track(m)
                        # the epoch now, right after the flow check: the put runs later, as a task
                        put = inbox.put(msgs, generation, inbox.epoch)
                        res = await self.wait_first(put, self.suspend_flow.wait())
                        if put in res.done and res.results[res.done.index(put)]:
                            read_offset[tp] = recs[-1].offset
                        elif put not in res.done:  # flow suspended (rebalance) first: fetched again
                            inbox.forget(msgs)
                        del msgs
                    if commit_every is not None and self._n_acked >= commit_every:
                        self._n_acked = 0
                        await self.commit()
                records = recs = None  # hold no messages while waiting for the next fetch
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)


class BatchingApp(faust.App):
    """A Faust app whose consumer delivers the topics given to ``add_inbox()`` in batches."""

    trace_offsets = False     # log deliveries, seeks and commits of the input topics

    def _new_transport(self):
        transport = super()._new_transport()
        if not isinstance(transport, faust_aiokafka.Transport):
            raise RuntimeError(f"batched input needs the aiokafka transport, not {type(transport).__name__}")
        transport.Consumer = BatchingConsumer
        return transport

    def add_inbox(self, topic: faust.TopicT, box) -> None:
        """Subscribe to ``topic`` and deliver its messages to ``box`` (a streams.inbox.Inbox)
        instead of a stream."""
        if not hasattr(self, "inboxes"):
            self.inboxes = {}
        (name,) = topic.topics
        self.inboxes[name] = box
        self.topics.add(topic)          # the conductor subscribes to it with the agents' topics
        self.flow_control.manage_queue(box)  # cleared on rebalance like a stream's queue


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

    def snapshot(self) -> list:
        """The table's ``(key, value)`` pairs now, as a list (the memory store's dict copied in
        one C call; other stores through ``items``)."""
        from faust.stores.memory import Store as MemoryStore
        store = self.data
        if isinstance(store, MemoryStore) and isinstance(getattr(store, "data", None), dict):
            return list(store.data.items())
        return list(self.items())

    def bulk_recovery_store(self) -> dict | None:
        """The memory store's dict when recovery can go in bulk (``apply_recovered``), else None."""
        from faust.stores.memory import Store as MemoryStore
        store = self.data
        if isinstance(store, MemoryStore) and isinstance(getattr(store, "data", None), dict):
            return cast(dict, store.data)
        return None

    def apply_recovered(self, records) -> int:
        """Changelog records of one partition, in offset order, applied to the memory store
        as Faust's recovery applies them (``Table.apply_changelog_batch``: the newest record
        of a key wins, a null value deletes the key), with the changelog topic's own key and
        value decoding, but only for the newest record of each key: a dossier's earlier
        records in the same fetch are superseded, so they are never decoded. Returns the
        keys applied."""
        data = self.bulk_recovery_store()
        assert data is not None, "bulk recovery needs the memory store"
        key_partition = cast(Any, self.data)._key_partition
        newest: dict = {}
        for r in records:
            newest[r.key] = r
        topic: Any = self.changelog_topic
        loads_key, loads_value = self.app.serializers.loads_key, self.app.serializers.loads_value
        for raw_key, r in newest.items():
            key = self._to_key(loads_key(self.key_type, raw_key, serializer=topic.key_serializer))
            if r.value is None:
                data.pop(key, None)
                key_partition.pop(key, None)
            else:
                data[key] = self._to_value(loads_value(self.value_type, r.value, serializer=topic.value_serializer))
                key_partition[key] = r.partition
        return len(newest)

    async def evict_many(self, items) -> list:
        """``del table[key]`` for each ``(key, partition)``: out of the store, and a tombstone
        (null value) on the changelog partition, so recovery drops the key too; returns the
        sends' futures."""
        from streams.changelog import send_in_batches
        data = self.data
        records: dict[int, list] = {}
        for key, partition in items:
            try:
                del data[key]
            except KeyError:
                continue
            records.setdefault(partition, []).append((key, None))
        producer = cast(Any, self.app.producer)._ensure_producer()
        sent = []
        topic = self.changelog_topic.get_topic_name()
        for partition, recs in records.items():
            sent += await send_in_batches(producer, topic, partition, recs)
        return sent

    async def put_many(self, items) -> list:
        """``table[key] = value`` for each ``(key, value, partition)``; returns the changelog
        sends' futures (resolved by the broker's ack)."""
        from faust.serializers.codecs import dumps

        from streams.changelog import send_in_batches
        data = self.data
        topic, serializer = self.changelog_topic.get_topic_name(), self.value_serializer
        encode: Callable[[Any], bytes]
        if serializer == "json":
            # what Faust's json codec writes for these values (orjson's bytes), without its
            # codec lookup and layers per record
            import orjson
            encode = orjson.dumps
        else:
            def encode(value: Any) -> bytes:
                return dumps(serializer, value)
        records: dict[int, list] = {}
        for key, value, partition in items:
            data[key] = value
            records.setdefault(partition, []).append((key, encode(value)))
        # the aiokafka producer under Faust's (the app's transport is always aiokafka)
        producer = cast(Any, self.app.producer)._ensure_producer()
        sent = []
        for partition, recs in records.items():
            sent += await send_in_batches(producer, topic, partition, recs)
        return sent
