"""Where simulated events go: the Kafka topics, JSON-lines files, or nowhere (timing)."""
from __future__ import annotations

import time
from pathlib import Path

from pulse.config import Settings
from pulse.topics import DOSSIER_EVENTS, RATINGS
from simulator.model import SimEvent

LOGICAL_TOPICS = {DOSSIER_EVENTS.name, RATINGS.name}


def best_compression() -> str | None:
    """lz4 when its library is importable (cheapest CPU per byte), else zstd, else none."""
    for codec, module in (("lz4", "lz4.frame"), ("zstd", "zstandard")):
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
            buffer_memory=128 * 1024 * 1024,
            max_request_size=4 * 1024 * 1024,
            compression_type=best_compression() if compression == "auto" else compression,
            retries=5,
            client_id="motcua-simulator",
        )
        self.sent = 0
        self.errors = 0

    def _failed(self, _exc) -> None:
        self.errors += 1

    def send(self, ev: SimEvent) -> None:
        fut = self.producer.send(self.topics[ev.topic], key=ev.key, value=ev.value,
                                 timestamp_ms=int(ev.event_time.timestamp() * 1000))
        fut.add_errback(self._failed)
        self.sent += 1

    def close(self, timeout: float = 60.0) -> None:
        self.producer.flush(timeout)
        self.producer.close(timeout)
        if self.errors:
            raise RuntimeError(f"{self.errors} of {self.sent} events failed to reach the broker")


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
