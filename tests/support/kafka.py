"""Start the real Apache Kafka broker for tests, on free ports so it never collides with `make up`."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from deploy.local.kafka_broker import KafkaBroker, fetch_jars
from pulse.procs import free_port


# One broker: the settings a process that starts it (a bench script) builds from its
# environment must ask for replication 1 (the production defaults, RF 3 and min.insync 2,
# need a cluster: docs/KAFKA.md); a variable already set wins. The test session sets them
# itself (tests/conftest.py).
SINGLE_BROKER_ENV = {"KAFKA_REPLICATION_FACTOR": "1", "KAFKA_MIN_INSYNC_REPLICAS": "1",
                     "PULSE_PARTITIONS_DOSSIER_EVENTS": "4", "PULSE_PARTITIONS_RATINGS": "2"}


def start_broker(home: Path | None = None, port: int | None = None) -> KafkaBroker:
    for name, value in SINGLE_BROKER_ENV.items():
        os.environ.setdefault(name, value)
    home = home or Path(tempfile.mkdtemp(prefix="pulse-kafka-"))
    broker = KafkaBroker(home, port or free_port(), free_port(), libs=fetch_jars())
    broker.start()
    return broker
