"""Input topics in batches, below Faust's per-event layer.

Why: Faust hands every message to a stream one at a time. On this 2-core machine that
machinery (``Consumer._drain_messages`` awaits ``wait_first(callback(message), ...)`` per
message, which creates two tasks; the conductor takes a lock and decodes an ``Event``; the
stream's channel does another ``wait_first`` per ``get``) cost 100-240 µs per event, several
times the cost of validating and applying the event itself, and capped the worker at about
4,000 events/s. Our agents already work on batches (``take_events``), so the per-event hops
bought nothing.

What changes, and what does not:

* ``BatchingConsumer`` is Faust's own aiokafka consumer with one method replaced: the
  fetch loop (``_drain_messages``). For a topic that has an ``Inbox`` it converts a whole
  fetched partition batch to Faust ``Message`` objects, tracks them as unacked (so a
  rebalance waits for them exactly as it waits for stream events) and puts the list into
  the inbox in one step. Every other topic (changelogs during recovery, anything an agent
  reads) still goes through Faust's per-message callback unchanged.
* Offsets stay Faust's: a processed batch is acked with ``BatchingConsumer.ack_many``
  (``Consumer.ack``'s bookkeeping, for the whole batch under one lock); Faust commits
  the contiguous acked prefix on its own schedule and flushes the producer (table
  changelog) before committing. Read offsets and gaps are tracked as Faust does.
* Consumer group, partition assignment, table co-partitioning, changelog recovery,
  standby logic, flow control on rebalance: all unchanged. An inbox is registered with
  ``app.flow_control`` so a rebalance clears it like Faust clears stream queues; its
  messages are fetched again from the committed offset.
* Back-pressure: ``Inbox.put`` waits while the inbox holds ``max_buffered`` messages, so
  the fetch loop stops and aiokafka stops prefetching, as with a full stream buffer.
"""
from __future__ import annotations

import asyncio
import collections
import logging
import os
from typing import Any, AsyncIterator, Sequence

import faust
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger("motcua.streams.batching")

# PULSE_TRACE_OFFSETS=1: log every delivery, seek, ack and commit of the input topics (the
# kill -9 exactness test turns it on, so a failure there shows where offsets went).
TRACE = os.environ.get("PULSE_TRACE_OFFSETS", "") not in ("", "0")


def _ranges(messages) -> str:
    """'topic:partition first..last' per partition of a batch."""
    spans: dict = {}
    for m in messages:
        k = (m.topic, m.partition)
        lo, hi = spans.get(k, (m.offset, m.offset))
        spans[k] = (min(lo, m.offset), max(hi, m.offset))
    return " ".join(f"{t}:{p} {lo}..{hi}" for (t, p), (lo, hi) in sorted(spans.items()))


class Batch:
    """Messages taken together from one inbox, with the consumer generation they came in
    and the inbox's epoch (how many times it had been cleared) when they were taken."""

    __slots__ = ("messages", "generation", "epoch")

    def __init__(self, messages: list, generation: int, epoch: int = 0):
        self.messages = messages
        self.generation = generation
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.messages)


class Inbox:
    """Messages of one input topic waiting for its batch loop (a bounded deque)."""

    def __init__(self, app: faust.App, topic_name: str, max_buffered: int):
        self.app = app
        self.topic_name = topic_name
        self.max_buffered = max(1, int(max_buffered))
        self._messages: collections.deque = collections.deque()
        self._generation = None
        self._epoch = 0           # +1 at every clear (revocation): what came before is void
        self._ready = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()

    def __len__(self) -> int:
        return len(self._messages)

    @property
    def epoch(self) -> int:
        return self._epoch

    async def put(self, messages: Sequence, generation: int, epoch: int | None = None) -> bool:
        """Add fetched messages; False if the inbox was cleared (a revocation) since
        ``epoch`` (the fetch loop's reading of ``inbox.epoch`` when it decided to deliver
        them; default: now) or while this waited for room. They are then dropped and
        fetched again from the committed offset. Added after the clear they would be
        processed while the messages cleared before them are not, and Faust commits the
        first run of acked offsets whatever lies below it (seen in the two-worker bench:
        6,355 events skipped in one partition; and 568 when the clear came between the
        fetch loop's flow check and the first step of this coroutine, which runs as a task
        of ``wait_first``)."""
        if epoch is None:
            epoch = self._epoch
        while len(self._messages) >= self.max_buffered and self._epoch == epoch:
            self._space.clear()
            await self._space.wait()
        if self._epoch != epoch:
            self.forget(messages)
            return False
        if generation != self._generation:
            # messages of an earlier assignment are fetched again after the rebalance
            self.forget(self._messages)
            self._messages.clear()
            self._generation = generation
        self._messages.extend(messages)
        self._ready.set()
        return True

    def clear(self) -> None:
        """Called by ``app.flow_control.clear()`` when partitions are revoked. The dropped
        messages are fetched again from the committed offset, so they are no longer waited
        for: Faust's revocation waits until no tracked message is unacked (``wait_empty``),
        and relies on dropped ones being garbage collected, which a reference held anywhere
        (the fetch loop's last batch) would prevent for ever.

        mode's ``FlowControlEvent.resume()`` also clears every managed queue, after Faust
        has sought to the committed offsets. Messages fetched in between are valid and are
        NOT fetched again (the consumer's position is past them), while Faust commits the
        first run of acked offsets whatever lies below it: clearing them there lost input
        under kill -9. So a clear while flow is active (the resume) keeps the messages."""
        if self.app.flow_control.is_active():
            return
        self._epoch += 1
        self.forget(self._messages)
        self._messages.clear()
        self._space.set()

    def forget(self, messages) -> None:
        """Stop tracking messages that will not be acked (they are fetched again)."""
        unacked = getattr(self.app.consumer, "_unacked_messages", None)
        if unacked is not None:
            for m in messages:
                unacked.discard(m)

    async def take(self, max_events: int, within: float) -> Batch:
        """Up to ``max_events`` messages: as soon as that many are here, or ``within``
        seconds after the first one arrived."""
        loop = asyncio.get_running_loop()
        while not self._messages:
            self._ready.clear()
            await self._ready.wait()
        deadline = loop.time() + within
        while len(self._messages) < max_events:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), remaining)
            except asyncio.TimeoutError:
                break
            if not self._messages:  # cleared by a rebalance while we waited
                return await self.take(max_events, within)
        q = self._messages
        n = min(max_events, len(q))
        batch = Batch([q.popleft() for _ in range(n)], self._generation, self._epoch)
        if len(q) < self.max_buffered:
            self._space.set()
        return batch

    async def batches(self, max_events: int, within: float) -> AsyncIterator[Batch]:
        while True:
            yield await self.take(max_events, within)

    def owns(self, batch: Batch) -> bool:
        """Still the assignment the batch was fetched under: no revocation since it was
        taken (the inbox not cleared) and the same consumer generation."""
        return batch.epoch == self._epoch and batch.generation == self.app.consumer_generation_id

    def ack(self, batch: Batch) -> None:
        """Mark every message of a processed batch done; Faust commits them in order."""
        self.app.consumer.ack_many(batch.messages)
        if TRACE:
            log.info("trace ack gen %s %s", batch.generation, _ranges(batch.messages))


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
        if TRACE:
            log.info("trace seek to committed: %s", {f"{tp.topic}:{tp.partition}": o
                                                     for tp, o in self._read_offset.items()})

    async def _commit(self, offsets) -> bool:
        ok = await super()._commit(offsets)
        if TRACE:
            log.info("trace commit %s: %s", ok, {f"{tp.topic}:{tp.partition}": o for tp, o in offsets.items()})
        return ok

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - exercised end to end
        inboxes: dict[str, Inbox] = getattr(self.app, "inboxes", {})
        callback = self.callback
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        read_offset = self._read_offset
        to_message = self._to_message
        acks_enabled_for = self.app.topics.acks_enabled_for
        commit_every = self._commit_every
        track = self._unacked_messages.add
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
                        for r in recs:
                            await self.wait_first(callback(to_message(tp, r)), self.suspend_flow.wait())
                            read_offset[tp] = r.offset
                    else:
                        if TRACE:
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
    """A Faust app whose consumer delivers the topics given to ``inbox()`` in batches."""

    def _new_transport(self):
        transport = super()._new_transport()
        if not isinstance(transport, faust_aiokafka.Transport):
            raise RuntimeError(f"batched input needs the aiokafka transport, not {type(transport).__name__}")
        transport.Consumer = BatchingConsumer
        return transport

    def inbox(self, topic: faust.TopicT, max_buffered: int) -> Inbox:
        """Subscribe to ``topic`` and receive its messages in an Inbox instead of a stream."""
        if not hasattr(self, "inboxes"):
            self.inboxes = {}
        (name,) = topic.topics
        box = Inbox(self, name, max_buffered)
        self.inboxes[name] = box
        self.topics.add(topic)          # the conductor subscribes to it with the agents' topics
        self.flow_control.manage_queue(box)  # cleared on rebalance like a stream's queue
        return box
