"""A worker SIGKILLed after it built state comes back: its status page shows the changelog
recovery's progress, then it processes again, and the state is exact afterwards.

On the REAL broker and ClickHouse endpoint. A simulated month (duplicates, out-of-order and
malformed messages) is processed, the worker is killed with SIGKILL and started again; its
``/pulse/status/`` page is polled through the restart. Checked:

* the dossier table's changelog topic has the compaction configs of
  streams.faust_adapter.CHANGELOG_TOPIC_CONFIGS and the broker's log cleaner is on (what
  keeps a restart's recovery short after a year);
* while the worker recovers it is not ready, and its ``recovery`` block names the
  partitions and the changelog offsets to read (as many as the changelog holds: its end
  minus its earliest offsets); when done it reports 100% and how long it took;
* it then processes the rest of the month, and ClickHouse equals the batch recomputation
  from every raw event (the kill -9 exactness test's oracle).
"""
from __future__ import annotations

import time

import pytest

from tests.integration.test_worker_exactness import assert_exact, produce, simulated_month, wait_consumed

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def changelog_topic(s) -> str:
    # Faust's name for a table's changelog: <app id>-<table name>-changelog (streams.app)
    return f"{s.faust_app_id}-dossier-events-applied-changelog"


def changelog_extent(s) -> int:
    """Offsets in the changelog now: end minus earliest, over its partitions."""
    from kafka import KafkaConsumer, TopicPartition
    c = KafkaConsumer(bootstrap_servers=s.kafka_bootstrap)
    try:
        topic = changelog_topic(s)
        tps = [TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic) or ())]
        ends, begins = c.end_offsets(tps), c.beginning_offsets(tps)
        return sum(ends[tp] - begins[tp] for tp in tps)
    finally:
        c.close()


def described_configs(s, resource_type, name: str) -> dict:
    """``{config: value}`` of a topic or broker, defaults included (kafka-python 3's shape:
    {resource type: {name: {config: {data}}}})."""
    from kafka.admin import ConfigResource, KafkaAdminClient
    admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    try:
        res = admin.describe_configs([ConfigResource(resource_type, name, None)], config_filter="all")
        (by_name,) = res.values()
        (configs,) = by_name.values()
        return {k: (v.get("value") if isinstance(v, dict) else v) for k, v in configs.items()}
    finally:
        admin.close()


def test_killed_worker_shows_recovery_then_processes_and_is_exact(settings, tmp_path):
    from kafka.admin import ConfigResourceType

    from streams.faust_adapter import CHANGELOG_TOPIC_CONFIGS
    from tests.support.worker import start_worker

    s, events = simulated_month(settings, tmp_path, "restart")
    first, rest = events[: len(events) * 3 // 4], events[len(events) * 3 // 4:]
    worker = start_worker(s, {"PULSE_TRACE_OFFSETS": "1"}, log_path=tmp_path / "worker.log")
    try:
        produce(s, first)
        wait_consumed(s, worker)
        before = worker.status()
        assert before["recovery"]["active"] is False, before["recovery"]

        # the changelog as declared: compacted eagerly, small segments; the cleaner running
        cfg = described_configs(s, ConfigResourceType.TOPIC, changelog_topic(s))
        assert cfg["cleanup.policy"] == "compact", cfg
        for key, value in CHANGELOG_TOPIC_CONFIGS.items():
            assert float(cfg[key]) == float(value), (key, cfg[key], value)
        broker = described_configs(s, ConfigResourceType.BROKER, "1")
        assert broker["log.cleaner.enable"] == "true", broker.get("log.cleaner.enable")
        worker.kill()
        # measured once the worker is dead: a live one still writes (eviction tombstones)
        extent = changelog_extent(s)
        assert extent > 1000, extent        # the state it built: one record per dossier change
        t_kill = time.monotonic()
        worker.start(wait=False)
        samples = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            st = worker.status()
            if st:
                samples.append(st)
                if st.get("ready"):
                    break
            time.sleep(0.05)
        ready_after = time.monotonic() - t_kill
        assert samples and samples[-1].get("ready"), worker.tail()

        recovering = [st["recovery"] for st in samples if st["recovery"]["partitions"] > 0]
        assert recovering, [st["recovery"] for st in samples][:5]
        # never ready while the table is being recovered
        assert all(not st["ready"] for st in samples if st["recovery"]["active"]), samples
        # the offsets it had to read are the changelog's (one offset of slack per partition:
        # Faust counts from the offset before the earliest)
        total = max(r["offsets_total"] for r in recovering)
        partitions = max(r["partitions"] for r in recovering)
        # at most the changelog's extent (one offset of slack per partition); fewer when the
        # broker's cleaner has compacted part of it already (eager configs above: a full-suite
        # run read 2,824 of an extent of 2,938), and never nothing
        assert 0 < total <= extent + partitions, (total, extent, partitions)
        done = samples[-1]["recovery"]
        assert done["active"] is False and done["percent"] == 100.0, done
        assert done["offsets_done"] == done["offsets_total"] == total, done
        assert done["last_s"] is not None and 0 <= done["last_s"] < ready_after, done

        # processing again: the rest of the month
        produce(s, rest)
        wait_consumed(s, worker)
        after = worker.status()
        assert after["metrics"]["events"] > 0, after["metrics"]
    finally:
        worker.stop()
    summary = assert_exact(s, events, [worker])
    progress = [f"{r['percent']}%" for r in recovering]
    print(f"\n{summary}; ready {ready_after:.1f} s after the kill, recovery of {total:,} changelog offsets "
          f"over {partitions} partitions in {done['last_s']} s; progress seen {progress[:12]}")
