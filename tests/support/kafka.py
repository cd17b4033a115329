"""Start the real Apache Kafka broker for tests, on free ports so it never collides with `make up`."""
from __future__ import annotations

import tempfile
from pathlib import Path

from deploy.local.kafka_broker import KafkaBroker, fetch_jars
from pulse.procs import free_port


def start_broker(home: Path | None = None, port: int | None = None) -> KafkaBroker:
    home = home or Path(tempfile.mkdtemp(prefix="pulse-kafka-"))
    broker = KafkaBroker(home, port or free_port(), free_port(), libs=fetch_jars())
    broker.start()
    return broker
