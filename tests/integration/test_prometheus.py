"""A real Prometheus (Debian's /usr/bin/prometheus) scrapes a real worker and a real API.

The worker runs as ``python -m streams worker`` on the session's broker and ClickHouse
endpoint (its own topics, group and database); the API runs in this process under uvicorn
(real HTTP on loopback). Prometheus gets a generated config (1 s scrapes, its own storage
folder, the production alerting rules of deploy/production/prometheus/alerts.yml) and is
asked through its HTTP query API, as an operator's dashboard would:

* both targets are up, and every production rule loads and evaluates without error;
* API responses are counted exactly by route template and status (201, 422, 401, and the
  sync route's 200);
* the ratings the API accepted are written by the worker, its messages counted, and their
  freshness is the seconds from event time to landed (small: they were made now);
* messages that are not JSON are dead letters counted under their rule
  (contract.invalid_json), exactly;
* a dossier synced with its promised date two hours away raises one ``due_soon`` alert;
* batch and ClickHouse insert latency histograms have their observations;
* no sink retried; the consumer lag is back to 0 on every assigned partition.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from pulse.config import REPO_ROOT
from tests.support.isolation import isolated

pytestmark = [pytest.mark.integration]

PROMETHEUS = Path("/usr/bin/prometheus")
ALERTS = REPO_ROOT / "deploy" / "production" / "prometheus" / "alerts.yml"
VN = timezone(timedelta(hours=7))
UNIT = "000.00.01.H24"          # a unit of the reference data: the worker accepts its ratings
N_ACCEPTED, N_INVALID, N_UNAUTHENTICATED, N_NOT_JSON = 3, 2, 1, 4


class PrometheusServer:
    """``prometheus`` on a free loopback port with a generated config and its own storage."""

    def __init__(self, home: Path, targets: dict[str, str]):
        from pulse.procs import free_port
        self.home, self.port = home, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        home.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": job, "metrics_path": "/metrics",
                                "static_configs": [{"targets": [target]}]} for job, target in targets.items()],
        }
        self.config = home / "prometheus.yml"
        self.config.write_text(json.dumps(config, indent=2))     # JSON is YAML
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "PrometheusServer":
        log = open(self.home / "prometheus.log", "ab")
        self.proc = subprocess.Popen(
            [str(PROMETHEUS), f"--config.file={self.config}", f"--storage.tsdb.path={self.home / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=1h"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(self.url + "/-/ready", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Prometheus did not become ready\n{self.tail()}")
            time.sleep(0.3)

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)

    def tail(self) -> str:
        p = self.home / "prometheus.log"
        return p.read_text(errors="replace")[-4000:] if p.exists() else ""

    def api(self, path: str, **params) -> dict:
        r = httpx.get(self.url + path, params=params, timeout=10)
        body = r.json()
        assert body.get("status") == "success", body
        return body["data"]

    def query(self, promql: str) -> list[dict]:
        """Instant vector: [{"metric": {...}, "value": [ts, "text"]}, ...]."""
        return self.api("/api/v1/query", query=promql)["result"]

    def values(self, promql: str) -> dict[tuple, float]:
        """{(label=value, ...) sorted, without __name__: value} of an instant query."""
        out = {}
        for r in self.query(promql):
            labels = tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__"))
            out[labels] = float(r["value"][1])
        return out

    def scalar(self, promql: str) -> float | None:
        res = self.query(promql)
        return float(res[0]["value"][1]) if len(res) == 1 else None

    def wait_for(self, promql: str, want: float, timeout: float = 120.0) -> None:
        """Until the query's single value is ``want`` (scrapes and commits take seconds)."""
        deadline, got = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            got = self.scalar(promql)
            if got == want:
                return
            time.sleep(0.5)
        raise AssertionError(f"{promql} = {got}, expected {want}")


def sync_payload(code: str) -> dict:
    """A dossier received 20 minutes ago whose promised date is two hours away: due soon."""
    now = datetime.now(VN).replace(microsecond=0)

    def f(t: datetime) -> str:
        return t.strftime("%Y%m%d%H%M%S")
    return {"MaHoSo": code, "MaTTHC": "1.001193", "MaLinhVuc": "TP-HT", "DonViXuLy": UNIT, "KenhThucHien": 1,
            "NgayNopHoSo": f(now - timedelta(minutes=30)), "NgayTiepNhan": f(now - timedelta(minutes=20)),
            "NgayHenTra": f(now + timedelta(hours=2)),
            "QuaTrinhXuLy": [{"ThoiDiemXuLy": f(now - timedelta(minutes=30)), "TrangThai": 1},
                             {"ThoiDiemXuLy": f(now - timedelta(minutes=20)), "TrangThai": 2}]}


@pytest.mark.skipif(not PROMETHEUS.exists(), reason="Debian's prometheus is not installed (make install-system)")
def test_prometheus_scrapes_worker_and_api(settings, tmp_path):
    from kafka import KafkaProducer

    from frontdoor.api import create_app
    from frontdoor.credentials import CredentialStore
    from pulse.topics import DOSSIER_EVENTS, RATINGS
    from tests.integration.frontdoor_support import ThreadServer, rating, write_credentials
    from tests.support.worker import start_worker

    s = isolated(settings, tmp_path, "prom")
    tokens = write_credentials(tmp_path / "credentials.yaml",
                               [("KIOSK-P1", "kiosk", [UNIT]), ("SRC-PROM", "source", [UNIT])])
    worker = start_worker(s)
    try:
        with ThreadServer(create_app(s, CredentialStore(tmp_path / "credentials.yaml"))) as api, \
                PrometheusServer(tmp_path / "prometheus", {"motcua-pulse-worker": f"127.0.0.1:{worker.web_port}",
                                                           "motcua-pulse-api": f"127.0.0.1:{api.port}"}) as prom:
            prom.wait_for('sum(up{job=~"motcua-pulse-worker|motcua-pulse-api"})', 2)
            # every production rule is loaded and evaluates on the real series
            groups = prom.api("/api/v1/rules")["groups"]
            rules = [r for g in groups for r in g["rules"]]
            assert len(rules) == 10, [r["name"] for r in rules]
            time.sleep(2)    # an evaluation round or two
            rules = [r for g in prom.api("/api/v1/rules")["groups"] for r in g["rules"]]
            assert {r["name"]: r.get("health") for r in rules} == {r["name"]: "ok" for r in rules}, rules

            # --- traffic: good and bad, through the API and straight into Kafka ---------------
            kiosk = {"Authorization": f"Bearer {tokens['KIOSK-P1']}"}
            with httpx.Client(base_url=api.url, timeout=30) as c:
                for _ in range(N_ACCEPTED):
                    r = c.post("/v1/ratings", json=rating(kiosk="KIOSK-P1", unit=UNIT), headers=kiosk)
                    assert r.status_code == 201, r.text
                for _ in range(N_INVALID):
                    r = c.post("/v1/ratings", json=rating(kiosk="KIOSK-P1", unit=UNIT, level=9), headers=kiosk)
                    assert r.status_code == 422, r.text
                for _ in range(N_UNAUTHENTICATED):
                    assert c.post("/v1/ratings", json=rating(kiosk="KIOSK-P1", unit=UNIT)).status_code == 401
                code = f"{UNIT}-PROM-{uuid.uuid4().hex[:6]}"
                r = c.post("/v1/dossiers/sync", json=sync_payload(code),
                           headers={"Authorization": f"Bearer {tokens['SRC-PROM']}"})
                assert r.status_code == 200 and r.json()["produced"] == 2, r.text
            p = KafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all")
            try:
                for i in range(N_NOT_JSON):
                    p.send(s.topic(DOSSIER_EVENTS.name), key=b"bad-%d" % i, value=b"{not json %d" % i)
                p.flush()
            finally:
                p.close()

            # --- the API's responses, counted exactly by route template and status ----------
            api_q = 'motcua_pulse_api_responses_total{job="motcua-pulse-api",route="%s",method="POST",status="%s"}'
            prom.wait_for(api_q % ("/v1/ratings", "201"), N_ACCEPTED)
            prom.wait_for(api_q % ("/v1/ratings", "422"), N_INVALID)
            prom.wait_for(api_q % ("/v1/ratings", "401"), N_UNAUTHENTICATED)
            prom.wait_for(api_q % ("/v1/dossiers/sync", "200"), 1)
            statuses = prom.values('sum by (status) (motcua_pulse_api_responses_total{route="/v1/ratings"})')
            assert statuses == {(("status", "201"),): N_ACCEPTED, (("status", "401"),): N_UNAUTHENTICATED,
                                (("status", "422"),): N_INVALID}, statuses
            prom.wait_for('motcua_pulse_api_request_duration_seconds_count{route="/v1/ratings",method="POST"}',
                          N_ACCEPTED + N_INVALID + N_UNAUTHENTICATED)

            # --- the worker: what it wrote, dead-lettered and alerted -----------------------
            prom.wait_for("motcua_pulse_ratings_written_total", N_ACCEPTED)
            prom.wait_for('motcua_pulse_dead_letters_total{kind="dossier",rule="contract.invalid_json"}', N_NOT_JSON)
            prom.wait_for("sum(motcua_pulse_dead_letters_total)", N_NOT_JSON)     # no other rule
            prom.wait_for("motcua_pulse_dossier_events_applied_total", 2)
            prom.wait_for('motcua_pulse_alerts_total{kind="due_soon"}', 1)
            prom.wait_for("sum(motcua_pulse_messages_total)", N_ACCEPTED + N_NOT_JSON + 2)
            by_topic = prom.values("sum by (topic) (motcua_pulse_messages_total)")
            assert by_topic == {(("topic", s.topic(RATINGS.name)),): N_ACCEPTED,
                                (("topic", s.topic(DOSSIER_EVENTS.name)),): N_NOT_JSON + 2}, by_topic

            fresh = prom.values(f'motcua_pulse_freshness_seconds{{topic="{s.topic(RATINGS.name)}"}}')
            assert fresh and all(0 <= v < 120 for v in fresh.values()), fresh

            batches = prom.scalar("motcua_pulse_batches_total")
            assert batches is not None and batches >= 1
            assert prom.scalar("motcua_pulse_batch_duration_seconds_count") == batches
            assert prom.scalar('motcua_pulse_batch_duration_seconds_bucket{le="+Inf"}') == batches
            inserts = prom.values("motcua_pulse_clickhouse_insert_duration_seconds_count")
            tables = {dict(k)["table"]: v for k, v in inserts.items()}
            assert tables["ratings"] >= 1 and tables["dead_letters"] >= 1 and tables["dossier_events"] >= 1, tables
            assert prom.scalar("sum(motcua_pulse_sink_retries_total)") == 0
            assert prom.scalar("sum(motcua_pulse_sink_outages_total)") == 0
            assert len(prom.values("motcua_pulse_sink_retries_total")) == 7      # one per ClickHouse table

            # --- lag back to 0 on every assigned partition (committed up to the end) ----------
            lags: dict = {}
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                lags = prom.values("motcua_pulse_consumer_lag_messages")
                if lags and all(v == 0 for v in lags.values()):
                    break
                time.sleep(0.5)
            want = DOSSIER_EVENTS.partition_count(s) + RATINGS.partition_count(s)
            assert len(lags) == want and all(v == 0 for v in lags.values()), lags
            ends = prom.values("motcua_pulse_end_offset")
            assert sum(v for v in ends.values() if v > 0) == N_ACCEPTED + N_NOT_JSON + 2, ends

            # none of the production alerts fires on a healthy pipeline
            firing = [a for a in prom.api("/api/v1/alerts")["alerts"] if a["state"] == "firing"]
            assert firing == [], firing
            assert worker.alive(), worker.tail()
    finally:
        worker.stop(timeout=30)
