"""Where simulated events go: the Kafka topics, JSON-lines files, or nowhere (timing).

Why the Kafka output uses aiokafka's batch API and not kafka-python (the stack's producer
elsewhere): the simulator must sustain 20,000 events/s into the broker (issue 3), and
kafka-python 3.0.12 spends ~40 µs of Python per record (future, record accumulator,
per-record batch append), which alone caps a core at ~20-25k events/s before any event is
generated. aiokafka 0.14 (already installed for Faust) builds record batches in Cython:
``create_batch()`` / ``append()`` / ``send_batch()`` cost a few µs per record, so a single
process generates and produces well past the target. Records are grouped per partition
here (the same murmur2 partitioning as kafka-python's default partitioner, so a dossier's
events still share a partition and keep their order), acks=all, and every failed batch is
counted and raised at ``close()`` - never silent.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

from aiokafka.partitioner import murmur2   # the same hash as kafka-python's default partitioner

from pulse.config import Settings
from pulse.kafka_security import aiokafka_kwargs, preflight
from pulse.topics import DOSSIER_EVENTS, RATINGS
from simulator.model import SimEvent

LOGICAL_TOPICS = {DOSSIER_EVENTS.name, RATINGS.name}


def best_compression() -> str | None:
    """zstd when its library is importable, else lz4, else none (the codec for the broker path)."""
    for codec, module in (("zstd", "zstandard"), ("lz4", "lz4.frame")):
        try:
            __import__(module)
            return codec
        except ImportError:
            continue
    return None


class _BatchProducer:
    """aiokafka's producer on its own event loop in a daemon thread, fed whole chunks of
    records per partition from the caller's thread (``send``); ``flush`` ships what is
    buffered and waits until the broker acknowledged everything (acks=all)."""

    def __init__(self, kafka_kwargs: dict, *, compression: str | None, chunk: int, linger_ms: int,
                 max_batch_size: int, max_pending_chunks: int = 64, sweep_s: float = 0.1,
                 client_id: str = "motcua-simulator"):
        import asyncio
        import threading

        from aiokafka import AIOKafkaProducer
        self._asyncio = asyncio
        self.chunk = chunk
        self.errors = 0
        self.first_error: BaseException | None = None
        self._buffers: dict[tuple[str, int], list] = {}
        self._inflight: list = []   # (records, future of the broker's acknowledgement)
        self._slots = threading.Semaphore(max_pending_chunks)   # back-pressure on the caller
        self._lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="simulator-producer", daemon=True)
        self._thread.start()

        async def start():
            producer = AIOKafkaProducer(**kafka_kwargs, acks="all", linger_ms=linger_ms,
                                        max_batch_size=max_batch_size, max_request_size=8 * 1024 * 1024,
                                        compression_type=compression, client_id=client_id,
                                        request_timeout_ms=60_000)
            await producer.start()
            return producer, asyncio.Queue()
        try:
            self.aio, self._queue = self._call(start(), 60)
        except BaseException:
            self._stop_loop()
            raise
        self._worker = asyncio.run_coroutine_threadsafe(self._ship_chunks(), self.loop)
        self._sweeper = asyncio.run_coroutine_threadsafe(self._sweep(sweep_s), self.loop)

    def _call(self, coro, timeout: float | None):
        return self._asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def partitions_for(self, topic: str) -> set[int]:
        return self._call(self.aio.partitions_for(topic), 60)

    def send(self, topic: str, partition: int, key: bytes, value: bytes, timestamp_ms: int) -> None:
        with self._lock:
            buf = self._buffers.get((topic, partition))
            if buf is None:
                buf = self._buffers[(topic, partition)] = []
            buf.append((key, value, timestamp_ms))
            full = len(buf) >= self.chunk
        if full:
            self._ship((topic, partition))

    def submit(self, topic: str, partition: int, records: list) -> None:
        """Ship ``records`` [(key, value, timestamp_ms), ...] for one partition as they are
        (after what ``send`` buffered for it, so a partition's records keep their order)."""
        self._ship((topic, partition), records)

    def _ship(self, tp: tuple[str, int], records: list | None = None) -> None:
        """Queue what is buffered for ``tp`` (then ``records``) for the producer task. Taking
        the buffer and registering its queueing callback happen under the lock, as in
        _sweep, and the loop runs callbacks in the order registered: the order is kept."""
        with self._lock:
            wanted = bool(self._buffers.get(tp)) + bool(records)
        for _ in range(wanted):
            self._slots.acquire()   # back-pressure: waits while max_pending_chunks are queued
        with self._lock:
            buf = self._buffers.pop(tp, None)   # only this thread adds; _sweep may have taken it
            for chunk in (buf, records):
                if chunk:
                    self.loop.call_soon_threadsafe(self._queue.put_nowait, (tp[0], tp[1], chunk))
            unused = wanted - bool(buf) - bool(records)
        for _ in range(unused):
            self._slots.release()

    async def _sweep(self, every: float) -> None:
        """Every ``every`` seconds queue whatever is buffered: a slow sender's (``--rate``,
        a live feed) records do not wait for a full chunk."""
        while True:
            await self._asyncio.sleep(every)
            with self._lock:
                for tp, buf in list(self._buffers.items()):
                    if buf and self._slots.acquire(blocking=False):
                        del self._buffers[tp]
                        # call_soon, not put_nowait: a chunk that ``_ship`` took just before
                        # is queued by a callback still waiting in the loop; callbacks run in
                        # the order registered, so this one goes after it (put directly, it
                        # overtook it: a partition's records reordered in Kafka)
                        self.loop.call_soon(self._queue.put_nowait, (tp[0], tp[1], buf))

    def _failed(self, n: int, exc: BaseException) -> None:
        with self._lock:
            self.errors += n
            if self.first_error is None:
                self.first_error = exc

    def _check(self, n: int, fut) -> None:
        if fut.cancelled():
            self._failed(n, RuntimeError("batch cancelled"))
        elif fut.exception() is not None:
            self._failed(n, fut.exception())

    async def _settle(self, wait: bool) -> None:
        """Count the failures of acknowledged batches (and with ``wait``, wait for all)."""
        if wait and self._inflight:
            await self._asyncio.wait([f for _, f in self._inflight])
        still = []
        for n, fut in self._inflight:
            if fut.done():
                self._check(n, fut)
            else:
                still.append((n, fut))
        self._inflight = still

    async def _ship_chunks(self) -> None:
        """One task, chunks in the order submitted: a partition's records keep their order."""
        aio, queue = self.aio, self._queue
        while True:
            topic, partition, records = await queue.get()
            try:
                batch, n = aio.create_batch(), 0
                for key, value, ts in records:
                    if batch.append(key=key, value=value, timestamp=ts) is None:
                        await self._send_batch(batch, n, topic, partition)
                        batch, n = aio.create_batch(), 0
                        if batch.append(key=key, value=value, timestamp=ts) is None:
                            raise ValueError(f"a record of {len(value)} bytes does not fit in a batch")
                    n += 1
                if n:
                    await self._send_batch(batch, n, topic, partition)
            except Exception as exc:   # noqa: BLE001 - counted, raised at close()
                self._failed(len(records), exc)
            finally:
                self._slots.release()
                queue.task_done()

    async def _send_batch(self, batch, n: int, topic: str, partition: int) -> None:
        try:
            fut = await self.aio.send_batch(batch, topic, partition=partition)
        except Exception as exc:   # noqa: BLE001
            self._failed(n, exc)
            return
        self._inflight.append((n, fut))
        if len(self._inflight) > 256:
            await self._settle(False)

    def flush(self, timeout: float | None = 60.0) -> None:
        """Ship every buffered record and wait until the broker acknowledged all of them."""
        with self._lock:
            pending = [tp for tp, buf in self._buffers.items() if buf]
        for tp in pending:
            self._ship(tp)

        async def drain():
            await self._queue.join()
            await self.aio.flush()
            await self._settle(True)
        self._call(drain(), timeout)

    def close(self, timeout: float | None = 60.0) -> None:
        try:
            self.flush(timeout)
        finally:
            try:
                self._worker.cancel()
                self._sweeper.cancel()
                self._call(self.aio.stop(), timeout)
            finally:
                self._stop_loop()

    def _stop_loop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self.loop.close()


class KafkaOutput:
    """Into the Kafka topics: aiokafka batch producer (see the module docstring), acks=all,
    records grouped per partition in chunks of ``chunk``; ``.producer.flush()`` waits for
    every acknowledgement, ``close()`` raises if any event failed to reach the broker."""

    def __init__(self, settings: Settings, *, compression: str | None = "auto", linger_ms: int = 5,
                 batch_size: int = 1024 * 1024, chunk: int = 2000, sweep_s: float = 0.1):
        self.topics = {name: settings.topic(name) for name in LOGICAL_TOPICS}
        # A wrong password or CA file: a clear error now (pulse.kafka_security) instead of
        # aiokafka's "Unable to bootstrap" after its retries.
        preflight(settings)
        # bootstrap servers and SASL / TLS from the one place that knows them
        self.producer = _BatchProducer(
            aiokafka_kwargs(settings),
            compression=best_compression() if compression == "auto" else compression,
            chunk=chunk, linger_ms=linger_ms, max_batch_size=batch_size, sweep_s=sweep_s)
        self.sent = 0
        self._partitions: dict[tuple[str, bytes], int] = {}
        self._counts: dict[str, int] = {}

    @property
    def errors(self) -> int:
        return self.producer.errors

    def _partition(self, topic: str, key: bytes) -> int:
        # The same partition kafka-python's default partitioner picks (murmur2 of the key),
        # cached: a dossier sends ~5 events and a kiosk hundreds, and murmur2 is pure Python.
        cache = self._partitions
        p = cache.get((topic, key))
        if p is None:
            if self._counts.get(topic) is None:
                self._counts[topic] = len(self.producer.partitions_for(topic))
            p = (murmur2(key) & 0x7FFFFFFF) % self._counts[topic]
            if len(cache) > 200_000:
                cache.clear()
            cache[(topic, key)] = p
        return p

    def send(self, ev: SimEvent) -> None:
        self.send_raw(ev.topic, ev.key, ev.value, int(ev.event_time.timestamp() * 1000))

    def send_raw(self, logical_topic: str, key: bytes, value: bytes, timestamp_ms: int) -> None:
        topic = self.topics[logical_topic]
        self.producer.send(topic, self._partition(topic, key), key, value, timestamp_ms)
        self.sent += 1

    def partition_counts(self) -> dict[str, int]:
        """Partitions per logical topic (for partitioning elsewhere: simulator.parallel)."""
        for topic in self.topics.values():
            if topic not in self._counts:
                self._counts[topic] = len(self.producer.partitions_for(topic))
        return {name: self._counts[topic] for name, topic in self.topics.items()}

    def send_chunk(self, logical_topic: str, partition: int, records: list) -> None:
        """Records ``(key, value, timestamp_ms)`` already partitioned the default way, in order."""
        self.producer.submit(self.topics[logical_topic], partition, records)
        self.sent += len(records)

    def close(self, timeout: float = 60.0) -> None:
        self.producer.close(timeout)
        if self.errors:
            raise RuntimeError(f"{self.errors} of {self.sent} events failed to reach the broker: "
                               f"{self.producer.first_error!r}")

def _raw_send(output):
    """output.send_raw if it has one, else an adapter over send()."""
    if hasattr(output, "send_raw"):
        return output.send_raw
    from datetime import datetime, timezone

    def send_raw(topic, key, value, ts_ms):
        output.send(SimEvent(topic, key, value, datetime.fromtimestamp(ts_ms / 1000, timezone.utc)))
    return send_raw


class Output(Protocol):
    """What the simulator sends its events to (KafkaOutput, FilesOutput, NullOutput)."""

    def send(self, ev: SimEvent) -> None: ...

    def close(self) -> None: ...


class FilesOutput:
    """One JSON-lines file per logical topic (``dossier-events.jsonl``, ``ratings.jsonl``),
    the bulk-import format: raw bytes, one event per line (broken events included as sent)."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.files = {name: (self.dir / f"{name}.jsonl").open("wb") for name in LOGICAL_TOPICS}
        self.sent = 0

    def send(self, ev: SimEvent) -> None:
        f = self.files[ev.topic]
        f.write(ev.value.replace(b"\n", b" "))
        f.write(b"\n")
        self.sent += 1

    def close(self) -> None:
        for f in self.files.values():
            f.close()


class NullOutput:
    def __init__(self):
        self.sent = 0

    def send(self, ev: SimEvent) -> None:
        self.sent += 1

    def close(self) -> None:
        pass


class Throttle:
    """Keep to ``rate`` events per second on average (checked every 100 events)."""

    def __init__(self, rate: float | None):
        self.rate = rate
        self.t0 = time.perf_counter()
        self.n = 0

    def tick(self, n: int = 1) -> None:
        if not self.rate:
            return
        before, self.n = self.n, self.n + n
        if self.n // 100 != before // 100:
            ahead = self.n / self.rate - (time.perf_counter() - self.t0)
            if ahead > 0:
                time.sleep(ahead)
