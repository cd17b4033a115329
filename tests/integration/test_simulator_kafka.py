"""The simulator produces into the real broker: everything it says it sent arrives, keyed."""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date

import pytest
from kafka import KafkaConsumer, TopicPartition

from simulator import DOSSIER_TOPIC, RATING_TOPIC, Anomaly, SimConfig, run
from simulator.output import KafkaOutput

pytestmark = pytest.mark.integration


def read_all(settings, logical: str) -> list:
    topic = settings.topic(logical)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                             consumer_timeout_ms=5000)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        out = []
        while any(consumer.position(tp) < end[tp] for tp in parts):
            for records in consumer.poll(timeout_ms=2000, max_records=5000).values():
                out.extend(records)
        return out
    finally:
        consumer.close()


def test_simulated_day_arrives_complete_and_keyed(settings):
    cfg = SimConfig(start=date(2026, 11, 2), days=2, scale=0.3, seed=11,
                    anomalies=(Anomaly.parse("duplicates:0.01"), Anomaly.parse("malformed:0.01")))
    summary = run(cfg, KafkaOutput(settings))
    dossiers = read_all(settings, DOSSIER_TOPIC)
    ratings = read_all(settings, RATING_TOPIC)
    assert len(dossiers) == summary.events[DOSSIER_TOPIC] > 1000
    assert len(ratings) == summary.events[RATING_TOPIC] > 20
    # key = dossier code / kiosk id, so one dossier's events share a partition, in order sent
    partitions = defaultdict(set)
    for r in dossiers:
        partitions[r.key].add(r.partition)
    assert all(len(p) == 1 for p in partitions.values())
    assert {r.key.decode().rsplit("-", 2)[0] for r in dossiers} <= {u for u in _units()}
    assert all(r.key.startswith(b"KIOSK-") for r in ratings)
    # the broker keeps the duplicates: dedup is the pipeline's job
    values = Counter(r.value for r in dossiers + ratings)
    assert sum(v - 1 for v in values.values()) >= summary.anomalies["duplicate"] * 0.9
    # record timestamps carry the event time
    assert min(r.timestamp for r in dossiers) >= int(cfg.end.timestamp() * 1000) - 2 * 86400 * 1000


def _units():
    from schemas.reference import load_reference
    return load_reference().units


def _end_offsets(settings, logical: str) -> int:
    topic = settings.topic(logical)
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def test_a_slow_sender_is_not_held_back_by_chunking_and_failures_are_raised(settings):
    import time
    from datetime import datetime, timedelta, timezone

    from pulse.admin import create_topics
    out_settings = settings.with_(topic_prefix=f"{settings.topic_prefix}slow.")
    create_topics(out_settings)
    out = KafkaOutput(out_settings)
    now_ms = int(time.time() * 1000)
    before = _end_offsets(out_settings, DOSSIER_TOPIC)
    for i in range(5):   # far fewer than a chunk: the producer's sweep ships them anyway
        out.send_raw(DOSSIER_TOPIC, f"K-{i}".encode(), b"{}", now_ms)
    deadline = time.monotonic() + 10
    while _end_offsets(out_settings, DOSSIER_TOPIC) - before < 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _end_offsets(out_settings, DOSSIER_TOPIC) - before == 5   # before any flush or close
    # the broker refuses timestamps far in the future (Kafka 4: more than 1 h ahead): counted, raised
    future = int((datetime.now(timezone.utc) + timedelta(days=30)).timestamp() * 1000)
    out.send_raw(DOSSIER_TOPIC, b"K-future", b"{}", future)
    with pytest.raises(RuntimeError, match="1 of 6 events failed"):
        out.close()


def test_each_partition_keeps_the_order_sent(settings):
    """The sweeper (a slow sender's partial chunks) and full chunks from the caller's thread
    must queue in the order their records were taken: a dossier's events reordered in Kafka
    look, until the rest arrive, like illegal transitions. Small chunks and a sweeper every
    0.1 ms make the two paths meet often: without the fix this failed in 4 of 5 runs (a
    race, so not every run)."""
    out = KafkaOutput(settings, compression=None, chunk=500, sweep_s=0.0001)
    keys = [f"HS-ORDER-{k}".encode() for k in range(2)]
    n = 200_000
    for i in range(n):
        out.send_raw(DOSSIER_TOPIC, keys[i % len(keys)], str(i).encode(), 0)
    out.close()
    got = [r for r in read_all(settings, DOSSIER_TOPIC) if r.key.startswith(b"HS-ORDER-")]
    assert len(got) == n
    per_key: dict = defaultdict(list)
    for r in sorted(got, key=lambda r: (r.partition, r.offset)):
        per_key[r.key].append(int(r.value))
    assert all(seq == sorted(seq) for seq in per_key.values()), "a key's records were reordered"
