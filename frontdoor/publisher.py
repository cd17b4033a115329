"""Kafka producing for the front doors: acks=all, and an awaitable per message.

kafka-python's producer is thread-based: ``send()`` appends to a batch and a background
sender thread delivers it. We attach callbacks to the returned future that resolve an
asyncio future through ``loop.call_soon_threadsafe``, so the API waits for the broker's
acknowledgement without parking a thread per request, and many requests share batches
(linger_ms) — that is where throughput comes from.

``send()`` itself can block (waiting for topic metadata, or for buffer space); it runs in
a small thread pool so the event loop never blocks, and it is bounded by max_block_ms.
"""
from __future__ import annotations

import asyncio
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from pulse.config import Settings
from pulse.kafka_security import bootstrap_servers, kafka_python_kwargs


class PublishError(Exception):
    """Kafka did not acknowledge: the caller answers 503."""


def producer_config(settings: Settings, **overrides) -> dict:
    cfg = dict(
        **kafka_python_kwargs(settings),   # bootstrap servers, SASL / TLS (pulse.kafka_security)
        # the leader answers once every in-sync replica has the record, and a topic's
        # min.insync.replicas (KAFKA_MIN_INSYNC_REPLICAS, 2 in production) refuses the write
        # (-> 503) when fewer are in sync: a 201 means two brokers hold the rating (docs/KAFKA.md)
        acks="all",
        linger_ms=5,
        retries=5,
        max_block_ms=5_000,        # metadata / buffer waits
        bootstrap_timeout_ms=5_000,  # first connection (API started while Kafka is down)
        request_timeout_ms=5_000,
        delivery_timeout_ms=15_000,  # -> PublishError -> 503 within ~15 s when the broker is down
        client_id="motcua-frontdoor",
        enable_idempotence=True,
    )
    cfg.update(overrides)
    return cfg


def make_producer(settings: Settings, **overrides):
    from kafka import KafkaProducer
    return KafkaProducer(**producer_config(settings, **overrides))


def kafka_reachable(settings: Settings, timeout: float = 1.0) -> bool:
    """A TCP connection to any bootstrap server succeeds (cheap; used by /health)."""
    for hp in bootstrap_servers(settings):
        host, _, port = hp.rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
                return True
        except OSError:
            continue
    return False


class AsyncPublisher:
    """Owns one KafkaProducer (created lazily, so the API starts while Kafka is down)."""

    def __init__(self, settings: Settings, producer=None, ack_timeout_s: float = 20.0):
        self.settings = settings
        self._producer = producer
        self._owns = producer is None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="kafka-send")
        self.ack_timeout_s = ack_timeout_s
        self._last_fail = 0.0

    def _get(self):
        if self._producer is None:
            with self._lock:
                if self._producer is None:
                    if time.monotonic() - self._last_fail < 1.0:
                        raise PublishError("Kafka unavailable")
                    try:
                        self._producer = make_producer(self.settings)
                    except Exception as e:  # NoBrokersAvailable, timeouts
                        self._last_fail = time.monotonic()
                        raise PublishError(f"Kafka unavailable: {e}") from e
        return self._producer

    def _send(self, topic: str, key: bytes | None, value: bytes, loop, afut):
        kf = self._get().send(topic, key=key, value=value)

        def ok(md):
            loop.call_soon_threadsafe(_resolve, afut, md, None)

        def err(e):
            loop.call_soon_threadsafe(_resolve, afut, None, e)

        kf.add_callback(ok)
        kf.add_errback(err)

    async def publish_many(self, items: list[tuple[str, bytes | None, bytes]]) -> list[BaseException | None]:
        """Send every (topic, key, value); wait for all acks. One result per item: None = acked."""
        if not items:
            return []
        loop = asyncio.get_running_loop()
        futs = [loop.create_future() for _ in items]

        def send_all():
            for (t, k, v), f in zip(items, futs):
                try:
                    self._send(t, k, v, loop, f)
                except Exception as e:  # noqa: BLE001 - reported per item
                    loop.call_soon_threadsafe(_resolve, f, None, e)

        try:
            await loop.run_in_executor(self._pool, send_all)
        except Exception as e:  # noqa: BLE001
            return [e] * len(items)
        done, pending = await asyncio.wait(futs, timeout=self.ack_timeout_s)
        out: list[BaseException | None] = []
        for f in futs:
            if f in pending:
                f.cancel()
                out.append(PublishError("timed out waiting for Kafka acknowledgement"))
            else:
                out.append(f.exception())
        return out

    async def publish(self, topic: str, key: bytes | None, value: bytes) -> None:
        (res,) = await self.publish_many([(topic, key, value)])
        if res is not None:
            raise res if isinstance(res, PublishError) else PublishError(str(res))

    def close(self, timeout: float = 5.0) -> None:
        if self._producer is not None and self._owns:
            try:
                self._producer.flush(timeout=timeout)
                self._producer.close(timeout=timeout)
            except Exception:
                pass
        self._pool.shutdown(wait=False)


def _resolve(fut: asyncio.Future, md, exc) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc if isinstance(exc, BaseException) else PublishError(str(exc)))
    else:
        fut.set_result(md)
