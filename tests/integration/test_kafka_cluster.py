"""A real three-broker KRaft cluster (issue 21): topics with the production replication
settings, and one broker SIGKILLed and brought back under a steady load through the kiosk
API and the sync API, with the real worker writing to ClickHouse.

What must hold: every rating answered 201 and every dossier answered 200 (the sync API's
success) is in ClickHouse exactly once, nothing is counted twice in what the boards read,
the API answers only 201/200 or a 503 that says why, and no request hangs past its timeout.
"""
from __future__ import annotations

import copy
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from pulse.config import Settings
from pulse.topics import ALL_TOPICS, DOSSIER_EVENTS, RATINGS
from tests.integration.frontdoor_support import ThreadServer, rating, write_credentials

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REQUEST_TIMEOUT_S = 30.0        # the client's; the API gives up on Kafka after ~20 s (503)
RETRIES = 4                     # a kiosk resends a 503 (same rating_id) a few times
# the settings the cluster's processes get on top of the session's single-broker ones
# a unit and a procedure of the reference data (schemas/reference/), so nothing is dead-lettered
UNIT, PROCEDURE, FIELD = "000.00.01.H24", "2.000488", "TP-LLTP"
CLUSTER_ENV = ("KAFKA_REPLICATION_FACTOR", "KAFKA_MIN_INSYNC_REPLICAS",
               "PULSE_PARTITIONS_DOSSIER_EVENTS", "PULSE_PARTITIONS_RATINGS")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    from tests.support.cluster import start_cluster
    t = time.monotonic()
    c = start_cluster(tmp_path_factory.mktemp("kafka-cluster"))
    print(f"\nthree-broker cluster up in {time.monotonic() - t:.1f} s")
    yield c
    c.stop()


@pytest.fixture(scope="module")
def cs(cluster, clickhouse_endpoint, tmp_path_factory) -> Settings:
    """Settings on the cluster with the production replication defaults (RF 3, min.insync 2)."""
    prod = Settings()
    tag = uuid.uuid4().hex[:8]
    return Settings.from_env().with_(
        kafka_bootstrap=cluster.bootstrap,
        clickhouse_url=f"{clickhouse_endpoint.url.rstrip('/')}/motcua",
        topic_prefix=f"kc{tag}.", faust_app_id=f"motcua-cluster-{tag}",
        state_dir=Path(tmp_path_factory.mktemp("cluster-state")),
        kafka_replication_factor=prod.kafka_replication_factor,
        kafka_min_insync_replicas=prod.kafka_min_insync_replicas)


def _admin(s: Settings):
    from pulse.admin import _admin as admin
    return admin(s)


def _describe(s: Settings, names: list[str], timeout: float = 30.0) -> dict[str, dict]:
    """Topic metadata, retried while a node is down or metadata is still spreading."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            a = _admin(s)
            try:
                got = {t["name"]: t for t in a.describe_topics(names)}
            finally:
                a.close()
            if all(got.get(n, {}).get("partitions") for n in names):
                return got
        except Exception:  # noqa: BLE001 - a node just killed is still in the metadata
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise TimeoutError(f"no metadata for {names} after {timeout:.0f} s")
        time.sleep(0.3)


def _min_insync(s: Settings, topic: str) -> str:
    from kafka.admin import ConfigResource, ConfigResourceType
    a = _admin(s)
    try:
        got = a.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"min.insync.replicas": None})],
                                 config_filter="all")["topic"]
    finally:
        a.close()
    return got[topic]["min.insync.replicas"]["value"]


def test_topics_get_replication_factor_and_min_insync_from_settings(cs, cluster):
    from pulse.admin import sync_topics
    assert (cs.kafka_replication_factor, cs.kafka_min_insync_replicas) == (3, 2)   # the production defaults
    reports = sync_topics(cs)
    assert all(r.created and r.ok for r in reports), [(r.name, r.problems) for r in reports]
    names = [cs.topic(s.name) for s in ALL_TOPICS]
    described = _describe(cs, names)
    for spec in ALL_TOPICS:
        parts = described[cs.topic(spec.name)]["partitions"]
        assert len(parts) == spec.partition_count(cs), spec.name
        assert all(len(p["replica_nodes"]) == 3 and len(set(p["replica_nodes"])) == 3 for p in parts), (spec.name, parts)
    assert {n: _min_insync(cs, n) for n in names} == {n: "2" for n in names}
    # a second run: nothing to create, nothing differs
    again = sync_topics(cs)
    assert not any(r.created or r.changes or r.problems for r in again), again


# ------------------------------------------------------------------------------ load

def _dossier(code: str) -> dict:
    from tests.test_dvcqg import DOSSIER
    d = copy.deepcopy(DOSSIER)
    d.update(MaHoSo=code, DonViXuLy=UNIT, MaTTHC=PROCEDURE, MaLinhVuc=FIELD)
    for rec in d["QuaTrinhXuLy"]:
        rec["MaHoSo"] = code
    return d


@dataclass
class Outcome:
    kind: str                    # "rating" | "dossier"
    key: str                     # rating_id | dossier code
    statuses: list[int | str] = field(default_factory=list)    # one per attempt; "timeout" / error name
    messages: list[str] = field(default_factory=list)           # the 503s' bodies
    event_ids: list[str] = field(default_factory=list)
    longest_s: float = 0.0
    done_at: float = 0.0         # time.monotonic() of the last answer

    @property
    def accepted(self) -> bool:
        return bool(self.statuses) and self.statuses[-1] == (201 if self.kind == "rating" else 200)


class Load:
    """Ratings and dossier syncs from two client threads, resending a 503 like a kiosk or a
    unit system would (same ids), until stopped."""

    def __init__(self, url: str, kiosks: dict[str, str], source_token: str, tag: str):
        self.url, self.kiosks, self.source_token, self.tag = url, kiosks, source_token, tag
        self.stop = threading.Event()
        self.outcomes: list[Outcome] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._ratings, daemon=True),
                        threading.Thread(target=self._dossiers, daemon=True)]

    def start(self) -> "Load":
        for t in self.threads:
            t.start()
        return self

    def finish(self) -> list[Outcome]:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=RETRIES * (REQUEST_TIMEOUT_S + 1) + 10)
            assert not t.is_alive(), "a load thread hangs"
        return self.outcomes

    def _send(self, client: httpx.Client, o: Outcome, path: str, body, headers: dict, ok: int) -> None:
        for attempt in range(RETRIES):
            t = time.monotonic()
            try:
                r = client.post(path, json=body, headers=headers)
                status: int | str = r.status_code
                if status == 503:
                    o.messages.append(r.text)
                if status == ok and o.kind == "dossier":
                    o.event_ids = [e for res in r.json()["results"] for e in res["event_ids"]]
            except httpx.TimeoutException:
                status = "timeout"
            except httpx.HTTPError as e:
                status = type(e).__name__
            o.done_at = time.monotonic()
            o.longest_s = max(o.longest_s, o.done_at - t)
            o.statuses.append(status)
            if status != 503:
                return
            time.sleep(0.5 * (attempt + 1))

    def _ratings(self) -> None:
        kiosks = list(self.kiosks)
        with httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT_S) as client:
            n = 0
            while not self.stop.is_set():
                kiosk = kiosks[n % len(kiosks)]
                r = rating(rid=f"rc-{self.tag}-{n:05d}", kiosk=kiosk, unit=UNIT, level=1 + n % 5)
                o = Outcome("rating", r["rating_id"])
                self._send(client, o, "/v1/ratings", r, {"Authorization": f"Bearer {self.kiosks[kiosk]}"}, 201)
                with self.lock:
                    self.outcomes.append(o)
                n += 1
                time.sleep(0.05)

    def _dossiers(self) -> None:
        with httpx.Client(base_url=self.url, timeout=REQUEST_TIMEOUT_S) as client:
            n = 0
            while not self.stop.is_set():
                code = f"{UNIT}-{self.tag}-{n:05d}"
                o = Outcome("dossier", code)
                self._send(client, o, "/v1/dossiers/sync", _dossier(code),
                           {"Authorization": f"Bearer {self.source_token}"}, 200)
                with self.lock:
                    self.outcomes.append(o)
                n += 1
                time.sleep(0.2)


def _leader_of(s: Settings, topic: str, partition: int = 0) -> int:
    parts = _describe(s, [topic])[topic]["partitions"]
    return next(p["leader_id"] for p in parts if p["partition_index"] == partition)


def _wait_in_sync(s: Settings, names: list[str], replicas: int, timeout: float = 90.0) -> float:
    """Until every partition of ``names`` has ``replicas`` in-sync replicas; seconds waited."""
    t0 = time.monotonic()
    while True:
        got = _describe(s, names)
        if all(len(p["isr_nodes"]) == replicas for n in names for p in got[n]["partitions"]):
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            raise TimeoutError(f"ISR not back to {replicas} after {timeout:.0f} s: "
                               f"{[(n, p['partition_index'], p['isr_nodes']) for n in names for p in got[n]['partitions']]}")
        time.sleep(0.5)


def _in_clickhouse(client, table: str, key: str, ids: list[str]) -> dict[str, int]:
    """id -> rows for it, as the boards read the table (FINAL: one row per key) and raw."""
    out: dict[str, int] = {}
    for i in range(0, len(ids), 2000):
        chunk = ids[i:i + 2000]
        rows = client.query(f"SELECT {key}, count() FROM {table} FINAL WHERE {key} IN {{ids:Array(String)}} "
                            f"GROUP BY {key}", parameters={"ids": chunk}).result_rows
        out.update({k: n for k, n in rows})
    return out


def test_a_broker_killed_under_load_loses_nothing_and_counts_nothing_twice(cs, cluster, tmp_path):
    from frontdoor.api import create_app
    from frontdoor.credentials import CredentialStore
    from pulse.admin import sync_topics
    from sinks.client import get_client
    from tests.support.worker import start_worker

    tag = uuid.uuid4().hex[:6]
    s = cs.with_(topic_prefix=f"kl{tag}.", faust_app_id=f"motcua-cluster-load-{tag}")
    sync_topics(s)
    full = s.to_env()
    worker_env = {k: full[k] for k in CLUSTER_ENV}
    creds = tmp_path / "credentials.yaml"
    kiosk_ids = [f"KC-{tag}-{i}" for i in range(4)]
    tokens = write_credentials(creds, [(k, "kiosk", ["*"]) for k in kiosk_ids] + [("SRC-CLUSTER", "source", ["*"])])
    ratings_topic, events_topic = s.topic(RATINGS.name), s.topic(DOSSIER_EVENTS.name)
    figures: dict[str, float] = {}
    with start_worker(s, env=worker_env, log_path=tmp_path / "worker.log", ready_timeout=180) as worker:
        with ThreadServer(create_app(s, CredentialStore(creds))) as api:
            # the worker's own topics (Faust: topic_replication_factor) are replicated like ours
            changelog = f"{s.faust_app_id}-dossier-events-applied-changelog"
            parts = _describe(s, [changelog])[changelog]["partitions"]
            assert len(parts) == DOSSIER_EVENTS.partition_count(s)
            assert all(len(p["replica_nodes"]) == 3 for p in parts), parts
            assert _min_insync(s, changelog) == "2"
            load = Load(api.url, {k: tokens[k] for k in kiosk_ids}, tokens["SRC-CLUSTER"], tag).start()
            time.sleep(6)
            victim = _leader_of(s, ratings_topic)            # in-flight produce requests are cut off
            t = time.monotonic()
            cluster.kill(victim)
            time.sleep(10)                                   # fenced after ~3 s; the load goes on
            t_restart = time.monotonic()
            cluster.restart(victim)
            cluster.wait_brokers(3)
            t_up = time.monotonic()
            figures["restart_s"] = t_up - t_restart
            figures["outage_s"] = t_up - t
            figures["isr_back_s"] = _wait_in_sync(s, [ratings_topic, events_topic], 3)
            time.sleep(4)
            outcomes = load.finish()
        ratings = [o for o in outcomes if o.kind == "rating"]
        dossiers = [o for o in outcomes if o.kind == "dossier"]
        accepted_r = [o.key for o in ratings if o.accepted]
        accepted_d = [o for o in dossiers if o.accepted]
        accepted_events = [e for o in accepted_d for e in o.event_ids]
        # the answers: only success or a 503 that says why; none hangs
        statuses = {st for o in outcomes for st in o.statuses}
        assert statuses <= {200, 201, 503}, sorted(map(str, statuses))
        assert all(m and "Kafka" in m for o in outcomes for m in o.messages), [m for o in outcomes for m in o.messages][:3]
        assert max(o.longest_s for o in outcomes) < REQUEST_TIMEOUT_S
        # two brokers of three are a writable cluster: requests succeed while the third is down
        during_outage = sum(1 for o in outcomes if o.accepted and t < o.done_at < t_up)
        assert during_outage > 0, "no request succeeded while the broker was down"
        done = sorted(o.done_at for o in outcomes)
        figures["stall_s"] = max(b - a for a, b in zip(done, done[1:]))    # longest time without an answer
        assert len(accepted_r) >= 0.9 * len(ratings) and len(accepted_d) >= 0.9 * len(dossiers), \
            (len(accepted_r), len(ratings), len(accepted_d), len(dossiers))
        assert all(len(o.event_ids) == 6 for o in accepted_d)
        # downstream: wait for the worker to have written everything acknowledged
        client = get_client(s)
        try:
            deadline = time.monotonic() + 150
            while True:
                got_r = _in_clickhouse(client, "ratings", "rating_id", accepted_r)
                got_e = _in_clickhouse(client, "dossier_events", "event_id", accepted_events)
                if (len(got_r) == len(accepted_r) and len(got_e) == len(accepted_events)) or time.monotonic() > deadline:
                    break
                time.sleep(2)
            missing_r = sorted(set(accepted_r) - set(got_r))
            missing_e = sorted(set(accepted_events) - set(got_e))
            assert not missing_r and not missing_e, (
                f"answered success but not in ClickHouse: {len(missing_r)} ratings e.g. {missing_r[:3]}, "
                f"{len(missing_e)} events e.g. {missing_e[:3]}\n{worker.tail()}")
            assert {k: n for k, n in got_r.items() if n != 1} == {}
            assert {k: n for k, n in got_e.items() if n != 1} == {}
            # what the boards count: ratings per kiosk, dossiers and their applied events
            refused = [o.key for o in ratings if not o.accepted]
            maybe = _in_clickhouse(client, "ratings", "rating_id", refused) if refused else {}
            assert all(n == 1 for n in maybe.values())     # a rating never acknowledged may land, once
            counted = client.query("SELECT count() FROM ratings FINAL WHERE kiosk_id IN {k:Array(String)}",
                                   parameters={"k": kiosk_ids}).result_rows[0][0]
            assert counted == len(accepted_r) + len(maybe)
            codes = [o.key for o in accepted_d]
            state = client.query("SELECT dossier_code, count(), max(version) FROM dossier_state FINAL "
                                 "WHERE dossier_code IN {c:Array(String)} GROUP BY dossier_code",
                                 parameters={"c": codes}).result_rows
            assert len(state) == len(codes)
            assert {c: (n, v) for c, n, v in state if (n, v // 2) != (1, 6)} == {}    # one row, 6 distinct events
            raw_dups = client.query("SELECT count() - uniqExact(rating_id) FROM ratings WHERE kiosk_id IN {k:Array(String)}",
                                    parameters={"k": kiosk_ids}).result_rows[0][0]
        finally:
            client.close()
    n503 = sum(st == 503 for o in outcomes for st in o.statuses)
    print(f"\nbroker {victim} killed: {len(ratings)} ratings ({len(accepted_r)} 201), {len(dossiers)} dossiers "
          f"({len(accepted_d)} 200, {len(accepted_events)} events), {n503} answers 503 (resent), "
          f"{during_outage} succeeded while it was down; longest time without an answer {figures['stall_s']:.1f} s; outage {figures['outage_s']:.1f} s (restart "
          f"{figures['restart_s']:.1f} s), ISR back "
          f"{figures['isr_back_s']:.1f} s after; slowest answer {max(o.longest_s for o in outcomes):.1f} s; "
          f"raw duplicate rating rows {raw_dups}")
