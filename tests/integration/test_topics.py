"""`pulse topics` on the real broker: creates what is missing with the settings, applies the
safe changes, and refuses to repartition a keyed topic, naming the way to grow it."""
from __future__ import annotations

import dataclasses
import uuid

import pytest

from pulse.cli import topics_command
from pulse.config import Settings
from pulse.topics import ALL_TOPICS, DEAD_LETTERS, DOSSIER_EVENTS, RATINGS

pytestmark = pytest.mark.integration


@pytest.fixture
def s(settings) -> Settings:
    """A topic prefix of its own: every test starts with no topics."""
    return settings.with_(topic_prefix=f"tp{uuid.uuid4().hex[:8]}.")


def _admin(s: Settings):
    from pulse.admin import _admin as admin
    return admin(s)


def _partitions(s: Settings, spec) -> int:
    import time
    a = _admin(s)
    try:
        for _ in range(50):     # metadata follows the controller a moment later
            (t,) = a.describe_topics([s.topic(spec.name)])
            if t["partitions"]:
                return len(t["partitions"])
            time.sleep(0.1)
        return 0
    finally:
        a.close()


def _config(s: Settings, spec, key: str, expect: str | None = None) -> str:
    """A topic config's value; with ``expect``, waits up to 10 s for it (a change reaches the
    broker's config cache a moment after the admin call returns)."""
    import time

    from kafka.admin import ConfigResource, ConfigResourceType
    deadline = time.monotonic() + 10
    while True:
        a = _admin(s)
        try:
            got = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, s.topic(spec.name), configs={key: None})],
                                     config_filter="all")
        finally:
            a.close()
        value = got["topic"][s.topic(spec.name)][key]["value"]
        if expect is None or value == expect or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_creates_every_topic_with_the_settings_then_finds_nothing_to_do(s, capsys):
    s = s.with_(kafka_partitions_dossier_events=3, kafka_partitions_ratings=5)
    assert topics_command(s) == 0
    out = capsys.readouterr().out
    assert out.count("created") == len(ALL_TOPICS), out
    assert _partitions(s, DOSSIER_EVENTS) == 3 and _partitions(s, RATINGS) == 5
    assert _config(s, DOSSIER_EVENTS, "retention.ms") == str(DOSSIER_EVENTS.retention_ms)
    assert _config(s, DOSSIER_EVENTS, "min.insync.replicas") == "1"
    assert topics_command(s) == 0
    out = capsys.readouterr().out
    assert out.count(" ok\n") == len(ALL_TOPICS), out


def test_applies_min_insync_and_retention_to_existing_topics(s, capsys):
    from pulse.admin import sync_topics
    assert topics_command(s) == 0
    # an operator shortened the retention by hand; the spec says 90 days: put back
    a = _admin(s)
    try:
        from kafka.admin import ConfigResource, ConfigResourceType
        a.alter_configs([ConfigResource(ConfigResourceType.TOPIC, s.topic(DEAD_LETTERS.name),
                                        configs={"retention.ms": "60000"})])
    finally:
        a.close()
    assert _config(s, DEAD_LETTERS, "retention.ms", expect="60000") == "60000"
    dry = {r.spec.name: r for r in sync_topics(s, apply=False)}
    assert dry["dead-letters"].changes == [f"retention.ms 60000 -> {DEAD_LETTERS.retention_ms}"]
    assert _config(s, DEAD_LETTERS, "retention.ms") == "60000"          # a dry run changes nothing
    assert topics_command(s) == 0
    assert "changed: retention.ms 60000" in capsys.readouterr().out
    assert _config(s, DEAD_LETTERS, "retention.ms", expect=str(DEAD_LETTERS.retention_ms)) == str(DEAD_LETTERS.retention_ms)
    # an unkeyed topic may grow in place (nothing relies on where its keys land)
    wider = dataclasses.replace(DEAD_LETTERS, partitions=3)
    (r,) = sync_topics(s, (wider,))
    assert r.changes == ["partitions 1 -> 3"] and r.ok
    assert _partitions(s, DEAD_LETTERS) == 3


def test_never_repartitions_a_keyed_topic_and_names_the_way_to_grow(s, capsys):
    assert topics_command(s) == 0
    capsys.readouterr()
    grown = s.with_(kafka_partitions_dossier_events=s.kafka_partitions_dossier_events * 2)
    assert topics_command(grown) == 1
    err = capsys.readouterr().err
    assert "PULSE_PARTITIONS_DOSSIER_EVENTS" in err and "never repartitioned in place" in err
    assert "pulse replay" in err and "PULSE_TOPIC_PREFIX" in err
    # both co-partitioned topics are refused, and nothing was changed
    assert s.topic("dossier-events") in err and s.topic("dossier-state") in err
    assert _partitions(s, DOSSIER_EVENTS) == s.kafka_partitions_dossier_events
    # fewer than the topic has: refused too (the worker must know the real count)
    assert topics_command(s.with_(kafka_partitions_ratings=1)) == 1
    assert f"set PULSE_PARTITIONS_RATINGS={s.kafka_partitions_ratings}" in capsys.readouterr().err
    # the documented way: a new prefix gets the new count
    fresh = grown.with_(topic_prefix=f"tp{uuid.uuid4().hex[:8]}.")
    assert topics_command(fresh) == 0
    assert _partitions(fresh, DOSSIER_EVENTS) == 2 * s.kafka_partitions_dossier_events


def test_replication_above_the_brokers_fails_at_once_saying_so(s, capsys):
    import time
    t = time.monotonic()
    assert topics_command(s.with_(kafka_replication_factor=3, kafka_min_insync_replicas=2)) == 2
    err = capsys.readouterr().err
    assert time.monotonic() - t < 10
    assert "KAFKA_REPLICATION_FACTOR=3" in err and "1 live broker" in err and "KAFKA_REPLICATION_FACTOR=1" in err
    from pulse.admin import TopicsError, create_topics
    with pytest.raises(TopicsError, match="1 live broker"):
        create_topics(s.with_(kafka_replication_factor=2))
    a = _admin(s)
    try:
        assert not [t for t in a.list_topics() if t.startswith(s.topic_prefix)]   # nothing half-created
    finally:
        a.close()


def test_settings_refuse_min_insync_above_the_replication_factor():
    from pulse.config import SettingsError
    with pytest.raises(SettingsError, match="KAFKA_MIN_INSYNC_REPLICAS=3"):
        Settings.from_env({"KAFKA_REPLICATION_FACTOR": "2", "KAFKA_MIN_INSYNC_REPLICAS": "3"})
    with pytest.raises(SettingsError, match="PULSE_PARTITIONS_RATINGS=0"):
        Settings.from_env({"PULSE_PARTITIONS_RATINGS": "0"})
    prod = Settings()
    assert (prod.kafka_replication_factor, prod.kafka_min_insync_replicas) == (3, 2)
    assert DOSSIER_EVENTS.partition_count(prod) == 12 and RATINGS.partition_count(prod) == 6
