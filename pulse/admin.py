"""Create the pipeline's topics (declared in pulse.topics) with kafka-python's admin client."""
from __future__ import annotations

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from pulse.config import Settings
from pulse.kafka_security import kafka_python_kwargs
from pulse.topics import ALL_TOPICS, TopicSpec


def create_topics(settings: Settings, specs: tuple[TopicSpec, ...] = ALL_TOPICS) -> list[str]:
    """Create missing topics; return the names created. Existing topics are left as they are."""
    admin = KafkaAdminClient(**kafka_python_kwargs(settings), client_id="pulse-admin", request_timeout_ms=30000)
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(settings.topic(s.name), num_partitions=s.partitions, replication_factor=1,
                        topic_configs=s.config())
               for s in specs if settings.topic(s.name) not in existing]
        if new:
            try:
                admin.create_topics(new, timeout_ms=30000)
            except TopicAlreadyExistsError:
                pass  # created concurrently by another process: that is fine
        return [t.name for t in new]
    finally:
        admin.close()


def consumer_lag(settings: Settings, group_id: str) -> dict[str, int]:
    """Messages not yet consumed by ``group_id``, per topic (summed over partitions)."""
    from kafka import KafkaConsumer
    admin = KafkaAdminClient(**kafka_python_kwargs(settings), request_timeout_ms=10000)
    try:
        committed = admin.list_group_offsets(group_id).get(group_id, {})
    finally:
        admin.close()
    if not committed:
        return {}
    consumer = KafkaConsumer(**kafka_python_kwargs(settings))
    try:
        ends = consumer.end_offsets(list(committed))
    finally:
        consumer.close()
    lag: dict[str, int] = {}
    for tp, meta in committed.items():
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, ends.get(tp, 0) - meta.offset)
    return lag
