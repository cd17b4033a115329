"""Redrive on the real broker and ClickHouse endpoint: original bytes re-published once.

Dead letters rejected for an unknown unit are written to ``dead_letters``; after the unit is
added to the reference data, ``redrive`` re-publishes exactly those (byte for byte, to their
input topic, acks=all) and marks them; a second run re-publishes nothing. Also runs the CLI
in --dry-run mode against the same database.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from pulse.config import REPO_ROOT, Settings

from tests.support.isolation import isolated

pytestmark = [pytest.mark.integration]


def consume_all(s: Settings, topic: str, expect: int, timeout_s: float = 20.0) -> list[bytes]:
    from kafka import KafkaConsumer
    c = KafkaConsumer(s.topic(topic), bootstrap_servers=s.kafka_bootstrap, auto_offset_reset="earliest",
                      enable_auto_commit=False, consumer_timeout_ms=int(timeout_s * 1000), group_id=None)
    out = []
    try:
        for m in c:
            out.append(m.value)
            if len(out) >= expect + 5:
                break
    finally:
        c.close()
    return out


def test_redrive_after_reference_fix(settings, tmp_path):
    from kafka import KafkaProducer

    from expectations.checks import Checker
    from expectations.deadletter import DeadLetter
    from expectations.redrive import main as cli_main  # noqa: F401 - importable
    from expectations.redrive import mark_redriven, read_dead_letters, redrive
    from schemas.reference import load_reference
    from sinks.client import get_client
    from sinks.migrate import migrate_settings

    s = isolated(settings, tmp_path, "redrive")
    migrate_settings(s, log=lambda *a, **k: None)
    client = get_client(s)
    db = s.clickhouse_url.rstrip("/").rsplit("/", 1)[1]

    ref = load_reference()
    unit = sorted(ref.units)[0]
    proc = next(iter(ref.procedures.values()))
    now = datetime.now(timezone.utc)
    new_unit = "000.00.77.NEWUNIT"

    def dossier(i, unit_code):
        return {"event_id": f"evt-redrive-{i:06d}", "event_time": (now - timedelta(hours=1)).isoformat(),
                "source_system": "motcua-test", "dossier_code": f"D-{i:05d}", "procedure_code": proc.code,
                "procedure_field": proc.field_code, "unit_code": unit_code, "status": 1}

    before = Checker.from_suites(ref, s)
    raws = [json.dumps(dossier(i, new_unit), ensure_ascii=False).encode() for i in range(5)]
    raws.append(json.dumps(dossier(99, unit) | {"status": 11}).encode())   # stays broken
    raws.append(b"\xff\xfe not json \x80")                                  # stays broken
    letters = []
    for off, raw in enumerate(raws):
        v = before.check_dossier(raw, now)
        assert not v.ok
        letters.append(DeadLetter.from_failures(topic=s.topic("dossier-events"), partition=0, offset=off, raw=raw,
                                                failures=v.failures, received_at=now - timedelta(minutes=5),
                                                kind="dossier"))
    cols = list(DeadLetter.ROW_COLUMNS)
    client.insert(f"{db}.dead_letters", [[d.to_row()[c] for c in cols] for d in letters], column_names=cols)

    back = read_dead_letters(client, db, rule="dossier.unit_known", since=None, source=None, kind=None, limit=None)
    assert sorted(d.raw for d in back) == sorted(raws[:5])
    everything = read_dead_letters(client, db, rule=None, since=now - timedelta(hours=1), source=None,
                                   kind="dossier", limit=None)
    assert sorted(d.raw for d in everything) == sorted(raws)  # invalid UTF-8 comes back byte-exact
    assert read_dead_letters(client, db, rule="dossier.*", since=None, source="motcua-test", kind=None, limit=None)

    fixed = replace(ref, units={**ref.units, new_unit: ref.units[unit]})
    after = Checker.from_suites(fixed, s)
    producer = KafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all")
    try:
        letters_now = read_dead_letters(client, db, rule=None, since=None, source=None, kind=None, limit=None)
        first = redrive(letters_now, after, producer, client=client, database=db, now=now)
        assert (first.scanned, first.republished, first.still_failing) == (7, 5, 2)
        second = redrive(read_dead_letters(client, db, rule=None, since=None, source=None, kind=None, limit=None),
                         after, producer, client=client, database=db, now=now)
        assert (second.scanned, second.republished) == (2, 0)
    finally:
        producer.close()
    published = consume_all(s, "dossier-events", expect=5)
    assert sorted(published) == sorted(raws[:5])  # original bytes, exactly once

    marked = client.query(f"SELECT count() FROM {db}.dead_letters FINAL WHERE redriven_at IS NOT NULL").result_rows[0][0]
    assert marked == 5
    assert mark_redriven(client, db, [], now) == 0

    env = dict(os.environ, CLICKHOUSE_URL=s.clickhouse_url, KAFKA_BOOTSTRAP=s.kafka_bootstrap,
               PULSE_TOPIC_PREFIX=s.topic_prefix)
    out = subprocess.run([sys.executable, "-m", "expectations.redrive", "--dry-run", "--kind", "dossier"],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "scanned 2 dead letters" in out.stdout and "would re-publish 0" in out.stdout
