"""The order of a batch's life, owned by one object: ``BatchLoop``.

1. **take** a batch from the inbox (streams.inbox);
2. **prepare** it (validate, apply in memory, hand its rows to the ClickHouse sinks):
   ``streams.dossiers.prepare_dossier_batch`` / ``streams.ratings.prepare_rating_batch``;
3. **finish** it: wait until ClickHouse has every row, then update the table and send the
   Kafka outputs (changelog, dead letters, alerts); a batch whose partitions were
   reassigned meanwhile raises ``Rebalanced`` and is dropped (fetched again elsewhere);
4. **confirm**: wait until the broker has acknowledged those sends;
5. **ack** the batch's messages; Faust commits the acked offsets in order.

So a committed offset always stands for rows in ClickHouse and a changelog written, and a
crash between any two steps replays the batch, which is exact (duplicates by event id are
no-ops, rows carry deterministic versions). Any other exception ends the process
(crash-only, ``crash``): nothing half done is acked, and the supervisor restarts it.

Three stages run concurrently so that the CPU work of one batch (prepare) overlaps the
waits of the previous ones (ClickHouse insert, broker acks); all in order, at most
``depth`` batches waiting between two stages.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Awaitable, Callable

log = logging.getLogger("motcua.streams.checkpoint")


class Rebalanced(Exception):
    """The partitions of a batch were reassigned while it was being written."""


async def confirmed(sent: list) -> None:
    """Wait until the broker has acknowledged every send of a batch (its dead letters, alerts
    and table changelog). Only then may the batch be acked: a committed offset must never
    stand for output that a crash could still lose. A failed send raises (crash-only)."""
    if sent:
        await asyncio.gather(*sent)


def crash(what: str) -> None:
    """Crash-only: log, then end the process; the supervisor restarts it and the replay
    from the committed offsets is exact (nothing acked was left half done)."""
    log.critical("pulse: %s failed; exiting for a restart", what, exc_info=True)
    logging.shutdown()
    os._exit(1)


Prepare = Callable[..., Awaitable]     # (runtime, messages, generation) -> prepared batch with .finish(owned)


class BatchLoop:
    """take -> prepare -> finish -> confirm -> ack, for one inbox (see the module docstring)."""

    def __init__(self, rt, inbox, prepare: Prepare, *, depth: int = 1):
        self.rt, self.inbox, self.prepare = rt, inbox, prepare
        self.depth = max(1, depth)
        self.stage_s = rt.metrics.stage_s

    async def run(self) -> None:
        prepared_q: asyncio.Queue = asyncio.Queue(maxsize=self.depth)
        finished_q: asyncio.Queue = asyncio.Queue(maxsize=self.depth)
        finisher = asyncio.ensure_future(self._finish(prepared_q, finished_q))
        acker = asyncio.ensure_future(self._ack(finished_q))
        settings = self.rt.settings
        size, window = settings.stream_batch_size, settings.stream_batch_window_s
        waits = self.stage_s
        try:
            while True:
                t0 = time.monotonic()
                batch = await self.inbox.take(size, window)
                t1 = time.monotonic()
                waits["wait_input"] += t1 - t0
                if not self.inbox.owns(batch):
                    self.inbox.forget(batch.messages)
                    continue
                prepared = await self.prepare(self.rt, batch.messages, batch.generation)
                t2 = time.monotonic()
                await prepared_q.put((batch, prepared))
                waits["wait_finish"] += time.monotonic() - t2
        except asyncio.CancelledError:
            finisher.cancel()
            acker.cancel()
            raise
        except BaseException:  # noqa: BLE001
            crash("batch processing")

    async def _finish(self, prepared_q: asyncio.Queue, finished_q: asyncio.Queue) -> None:
        inbox = self.inbox
        try:
            while True:
                batch, prepared = await prepared_q.get()
                try:
                    sent = await prepared.finish(owned=lambda batch=batch: inbox.owns(batch))
                except Rebalanced:
                    log.info("pulse: batch of %d messages dropped: partitions reassigned meanwhile", len(batch))
                    inbox.forget(batch.messages)
                    continue
                await finished_q.put((batch, sent))
        except asyncio.CancelledError:
            raise
        except BaseException:  # noqa: BLE001
            crash("finishing a batch")

    async def _ack(self, finished_q: asyncio.Queue) -> None:
        waits = self.stage_s
        try:
            while True:
                batch, sent = await finished_q.get()
                t0 = time.monotonic()
                await confirmed(sent)
                waits["ack_wait"] += time.monotonic() - t0
                self.inbox.ack(batch)
        except asyncio.CancelledError:
            raise
        except BaseException:  # noqa: BLE001
            crash("confirming a batch")


async def process_batch(rt, prepare: Prepare, messages, owned=lambda: True) -> None:
    """One batch start to end, outside the loop: prepare, finish, confirm (tests, benches)."""
    prepared = await prepare(rt, messages)
    await confirmed(await prepared.finish(owned))


async def start_writes(pairs) -> list:
    """Buffer every (sink, rows); returns what ``wait_writes`` waits on (blocks only when a
    sink's buffer is full, i.e. during a ClickHouse outage)."""
    return [(sink, await sink.write_async(rows)) for sink, rows in pairs if rows]


async def wait_writes(tickets) -> None:
    # wait on all at once: each wait asks its sink to flush now, so the inserts run in parallel
    await asyncio.gather(*(sink.wait_async(ticket) for sink, ticket in tickets))


async def write_all(pairs) -> None:
    """Buffer every (sink, rows) then wait until all are in ClickHouse (blocks during outages)."""
    await wait_writes(await start_writes(pairs))
