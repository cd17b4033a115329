"""Session fixtures on real components: the Apache Kafka broker and the chDB endpoint.

Both start once per test session on free ports, in temporary folders, so tests never touch
a running `make up` stack. ``settings`` points the pipeline at them, with a topic prefix
unique to the session.
"""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from pulse.config import Settings
from tests.support.kafka import SINGLE_BROKER_ENV

# The test broker is a single node: replication factor 1, and today's partition counts
# (the production defaults in pulse.config are sized for a province cluster: RF 3,
# min.insync 2, 12 / 6 partitions). Set here, before any Settings is built, so every
# Settings.from_env() of the session and every child process (worker, API) has them,
# whatever the shell exports (tests/integration/test_kafka_cluster.py gives its own
# settings, RF 3, to the processes it starts on its three-broker cluster).
os.environ.update(SINGLE_BROKER_ENV)


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory):
    from tests.support.kafka import start_broker
    broker = start_broker(tmp_path_factory.mktemp("kafka"))
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def clickhouse_endpoint(tmp_path_factory):
    from tests.support.endpoint import start_endpoint
    handle = start_endpoint(tmp_path_factory.mktemp("chdb"))
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def settings(kafka_broker, clickhouse_endpoint, tmp_path_factory) -> Settings:
    from pulse.admin import create_topics
    tag = uuid.uuid4().hex[:8]
    s = Settings.from_env().with_(
        state_dir=Path(tmp_path_factory.mktemp("state")),
        kafka_bootstrap=kafka_broker.bootstrap,
        clickhouse_url=f"{clickhouse_endpoint.url.rstrip('/')}/motcua",
        topic_prefix=f"t{tag}.",
        faust_app_id=f"motcua-pulse-test-{tag}",
    )
    create_topics(s)
    return s
