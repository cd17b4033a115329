"""10,000 malformed messages through the REAL broker: the worker survives, nothing is lost.

Malformed dossier events and ratings (bad JSON, wrong types, oversize, invalid UTF-8,
unknown fields, missing fields, tombstones, and contract-valid events breaking data rules)
are mixed with valid simulated events and produced to the input topics. When the worker
has consumed everything:

* it never crashed (same process throughout);
* processed + dead-lettered == sent, counted in ClickHouse (distinct accepted event and
  rating ids + distinct dead letters);
* every dead letter keeps the exact bytes that were sent (invalid UTF-8 included) and
  names the expected rule.
"""
from __future__ import annotations

import json
import random
import time
from collections import Counter
from datetime import date

import pytest

from tests.support.isolation import isolated

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_MALFORMED = 10_000


def valid_events(n_max: int):
    from simulator.model import SimConfig, generate
    out = []
    for ev in generate(SimConfig(start=date(2026, 11, 2), days=2, scale=0.3)):
        if ev.anomaly is None:
            out.append(ev)
        if len(out) >= n_max:
            break
    return out


def malform(kind: str, base: dict, i: int, rnd: random.Random) -> tuple[bytes | None, str]:
    """One malformed message and the rule its dead letter must name."""
    d = dict(base)
    id_key = "event_id" if kind == "dossier" else "rating_id"
    d[id_key] = f"{d[id_key]}-bad{i:05d}"
    c = i % 10
    if c == 0:
        return json.dumps(d).encode()[: rnd.randint(1, 40)], "contract.invalid_json"
    if c == 1:
        raw = json.dumps(d, ensure_ascii=False).encode()
        cut = rnd.randint(1, len(raw) - 1)
        return raw[:cut] + b"\xff\xfe" + raw[cut:], "contract.invalid_utf8"
    if c == 2:
        return json.dumps(dict(d, status="4") if kind == "dossier" else dict(d, level="5")).encode(), "contract.wrong_type"
    if c == 3:
        return json.dumps(dict(d, comment="x" * 70_000) if kind == "rating" else dict(d, handler="x" * 70_000)).encode(), \
            "contract.oversize"
    if c == 4:
        return json.dumps(dict(d, colour="red")).encode(), "contract.unknown_field"
    if c == 5:
        d.pop("unit_code")
        return json.dumps(d).encode(), "contract.missing_field"
    if c == 6:
        return b"[1, 2, 3]", "contract.not_an_object"
    if c == 7:
        return (None if i % 20 == 7 else b""), "contract.invalid_json"
    if c == 8:
        d["unit_code"] = "000.00.99.NOWHERE"
        return json.dumps(d, ensure_ascii=False).encode(), ("dossier.unit_known" if kind == "dossier" else "rating.unit_known")
    return json.dumps(d, ensure_ascii=False).encode() + b"}}", "contract.invalid_json"


def test_malformed_messages_are_dead_lettered_and_the_worker_survives(settings, tmp_path):
    from kafka import KafkaProducer

    from sinks.client import get_client
    from tests.support.worker import start_worker

    s = isolated(settings, tmp_path, "malformed")
    valid = valid_events(2000)
    bases = {"dossier": next(json.loads(e.value) for e in valid if e.topic == "dossier-events"),
             "rating": next(json.loads(e.value) for e in valid if e.topic == "ratings")}
    rnd = random.Random(4)
    malformed = []  # (topic, raw, expected rule)
    for i in range(N_MALFORMED):
        kind = "dossier" if i % 3 else "rating"
        raw, rule = malform(kind, bases[kind], i, rnd)
        malformed.append(("dossier-events" if kind == "dossier" else "ratings", raw, rule))
    # interleave the valid events among the malformed ones
    messages = [(t, r) for t, r, _ in malformed] + [(e.topic, e.value) for e in valid]
    rnd.shuffle(messages)
    sent = len(messages)

    worker = start_worker(s)
    try:
        pid = worker.proc.pid
        p = KafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all", linger_ms=20,
                          batch_size=512 * 1024, max_request_size=4 * 1024 * 1024)
        try:
            for topic, raw in messages:
                p.send(s.topic(topic), value=raw, key=b"k%d" % rnd.randint(0, 50))
            p.flush()
        finally:
            p.close()

        client = get_client(s)
        db = s.clickhouse_url.rstrip("/").rsplit("/", 1)[1]
        deadline = time.monotonic() + 600
        counts = None
        while time.monotonic() < deadline:
            assert worker.alive(), f"worker crashed\n{worker.tail()}"
            try:
                counts = client.query(
                    f"SELECT (SELECT uniqExact(event_id) FROM {db}.dossier_events), "
                    f"(SELECT uniqExact(rating_id) FROM {db}.ratings), "
                    f"(SELECT uniqExact(topic, partition, offset) FROM {db}.dead_letters)").result_rows[0]
            except Exception:  # noqa: BLE001 - tables may not exist yet
                counts = None
            if counts and sum(counts) >= sent:
                break
            time.sleep(2)
        assert counts is not None, worker.tail()
        processed, ratings, dead = counts
        assert worker.alive() and worker.proc.pid == pid, "the worker must not have crashed or restarted"
        assert processed + ratings + dead == sent, (counts, sent)
        assert processed + ratings == len(valid)
        assert dead == N_MALFORMED

        res = client.query(f"SELECT topic, raw, rules FROM {db}.dead_letters FINAL",
                           column_formats={"raw": "bytes"})
        got = Counter((t.rsplit(".", 1)[-1], bytes(r)) for t, r, _ in res.result_rows)
        want = Counter((t, r if r is not None else b"") for t, r, _ in malformed)
        assert got == want, "dead letters must keep the exact bytes sent"
        rules_by_raw = {}
        for t, r, rules in res.result_rows:
            rules_by_raw.setdefault((t.rsplit(".", 1)[-1], bytes(r)), set()).update(rules)
        for t, r, rule in malformed:
            assert rule in rules_by_raw[(t, r if r is not None else b"")], (rule, r[:80] if r else r)

        # The worker's GX micro-batches saw every contract-valid dossier event, those failing a
        # data rule among them (a passing event's row is built only when a micro-batch takes
        # it); all of them by now: a light stream is validated whole every 10 s
        dossiers = sum(1 for e in valid if e.topic == "dossier-events")
        deadline, unit_known = time.monotonic() + 90, []
        while time.monotonic() < deadline:
            unit_known = client.query(f"SELECT success, unexpected_count, element_count FROM {db}.dq_results FINAL "
                                      "WHERE suite = 'dossier_events' AND rule = 'dossier.unit_known'").result_rows
            if sum(n for _, _, n in unit_known) >= dossiers and not all(ok for ok, _, _ in unit_known):
                break
            time.sleep(2)
        assert not all(ok for ok, _, _ in unit_known), (unit_known, worker.tail())
        assert sum(n for _, _, n in unit_known) >= dossiers, unit_known
    finally:
        worker.stop(timeout=30)
