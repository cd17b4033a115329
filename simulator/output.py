"""Where simulated events go: the Kafka topics, JSON-lines files, or nowhere (timing)."""
from __future__ import annotations

import time
from pathlib import Path

from kafka.partitioner.default import murmur2

from pulse.config import Settings
from pulse.topics import DOSSIER_EVENTS, RATINGS
from simulator.model import SimEvent

LOGICAL_TOPICS = {DOSSIER_EVENTS.name, RATINGS.name}


def best_compression() -> str | None:
    """zstd when its library is importable, else lz4, else none. Measured with kafka-python
    3.0.12 (bench/bench_simulator.py's machine): zstd 25k, lz4 23k, none 10k events/s."""
    for codec, module in (("zstd", "zstandard"), ("lz4", "lz4.frame")):
        try:
            __import__(module)
            return codec
        except ImportError:
            continue
    return None


class KafkaOutput:
    """kafka-python producer, acks=all, batched: linger 20 ms, 512 KiB batches."""

    def __init__(self, settings: Settings, *, compression: str | None = "auto", linger_ms: int = 20,
                 batch_size: int = 512 * 1024):
        from kafka import KafkaProducer
        self.topics = {name: settings.topic(name) for name in LOGICAL_TOPICS}
        self.producer = KafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap,
            acks="all",
            linger_ms=linger_ms,
            batch_size=batch_size,
            max_request_size=4 * 1024 * 1024,
            compression_type=best_compression() if compression == "auto" else compression,
            retries=5,
            client_id="motcua-simulator",
        )
        self.sent = 0
        self.errors = 0
        self._partitions: dict[tuple[str, bytes], int] = {}
        self._counts: dict[str, int] = {}

    def _failed(self, _exc) -> None:
        self.errors += 1

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
        fut = self.producer.send(topic, key=key, value=value, partition=self._partition(topic, key),
                                 timestamp_ms=timestamp_ms)
        fut.add_errback(self._failed)
        self.sent += 1

    def close(self, timeout: float = 60.0) -> None:
        self.producer.flush(timeout)
        self.producer.close(timeout)
        if self.errors:
            raise RuntimeError(f"{self.errors} of {self.sent} events failed to reach the broker")


def _raw_send(output):
    """output.send_raw if it has one, else an adapter over send()."""
    if hasattr(output, "send_raw"):
        return output.send_raw
    from datetime import datetime, timezone

    def send_raw(topic, key, value, ts_ms):
        output.send(SimEvent(topic, key, value, datetime.fromtimestamp(ts_ms / 1000, timezone.utc)))
    return send_raw


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

    def tick(self) -> None:
        if not self.rate:
            return
        self.n += 1
        if self.n % 100 == 0:
            ahead = self.n / self.rate - (time.perf_counter() - self.t0)
            if ahead > 0:
                time.sleep(ahead)
