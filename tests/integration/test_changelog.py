"""Changelog records sent in whole record batches (streams.changelog) arrive as sent: every
record, in order, in its partition, with one acknowledged future per batch."""
from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from streams.changelog import send_in_batches

pytestmark = pytest.mark.integration


def _read(bootstrap: str, topic: str, partition: int) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        end = consumer.end_offsets([tp])[tp]
        out = []
        while consumer.position(tp) < end:
            for records in consumer.poll(timeout_ms=2000).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def test_records_arrive_in_order_one_future_per_batch(settings):
    topic = settings.topic("changelog-batches")
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()
    # ~200-byte values and 4 KiB batches: dozens of batches, and one record larger than a
    # whole batch (the first record of a batch always goes in)
    records = [(f"HS-{i:05d}".encode(), (f'{{"n":{i},"pad":"' + "x" * 180 + '"}').encode()) for i in range(400)]
    records.insert(123, (b"HS-BIG", b"y" * 10_000))

    async def send():
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, max_batch_size=4096,
                                    linger_ms=5)
        await producer.start()
        try:
            futures = await send_in_batches(producer, topic, 1, records)
            return futures, await asyncio.gather(*futures)
        finally:
            await producer.stop()

    futures, acks = asyncio.run(send())
    assert 15 < len(futures) < len(records)
    assert all(a.topic == topic and a.partition == 1 for a in acks)
    got = _read(settings.kafka_bootstrap, topic, 1)
    assert [(r.key, r.value) for r in got] == records
    assert [r.offset for r in got] == list(range(len(records)))
    assert _read(settings.kafka_bootstrap, topic, 0) == []
