"""Front doors against the real Kafka broker: HTTP API over loopback, importer, fuzzing."""
from __future__ import annotations

import copy
import json
import subprocess
import sys
import time

import httpx
import pytest

from frontdoor import credentials as credmod
from frontdoor.api import create_app
from frontdoor.credentials import CredentialStore, sign
from frontdoor.importer import main as importer_main, run_import
from pulse.config import REPO_ROOT
from pulse.topics import DOSSIER_EVENTS, RATINGS
from schemas.codec import decode_dossier, decode_rating
from tests.integration.frontdoor_support import (ThreadServer, free_port, fresh_settings, rating, read_topic,
                                                 write_credentials)
from tests.test_dvcqg import DOSSIER

pytestmark = pytest.mark.integration

UNIT = "000.00.01.H12"


@pytest.fixture(scope="module")
def fd(settings, tmp_path_factory):
    """One API (thread, real HTTP) on topics of its own, with a credentials file."""
    s = fresh_settings(settings)
    path = tmp_path_factory.mktemp("creds") / "credentials.yaml"
    tokens = write_credentials(path, [
        ("KIOSK-1", "kiosk", [UNIT]), ("KIOSK-2", "kiosk", [UNIT]), ("KIOSK-GONE", "kiosk", [UNIT]),
        ("SRC-H12", "source", [UNIT]), ("SRC-ALL", "source", ["*"]),
    ])
    assert credmod.main(["--file", str(path), "revoke", "KIOSK-GONE"]) == 0
    store = CredentialStore(path, reload_interval_s=0.2)
    with ThreadServer(create_app(s, store)) as srv:
        client = httpx.Client(base_url=srv.url, timeout=30)
        yield type("FD", (), dict(settings=s, tokens=tokens, url=srv.url, client=client, path=path, store=store))
        client.close()


def bearer(fd, cid):
    return {"Authorization": f"Bearer {fd.tokens[cid]}"}


def ratings_on_topic(s, rid=None):
    msgs = [decode_rating(m.value) for m in read_topic(s, RATINGS.name)]
    return [m for m in msgs if rid is None or m.rating_id == rid]


# ----------------------------------------------------------------------------- ratings

def test_valid_rating_is_acked_and_on_the_topic_once(fd):
    r = rating(kiosk="KIOSK-1", unit=UNIT, level=4, counter_id="3", criteria={"officer": 5})
    resp = fd.client.post("/v1/ratings", json=r, headers=bearer(fd, "KIOSK-1"))
    assert resp.status_code == 201, resp.text
    assert resp.json()["duplicate"] is False
    found = ratings_on_topic(fd.settings, r["rating_id"])
    assert len(found) == 1
    assert found[0].ingest_time is not None and found[0].level == 4 and found[0].kiosk_id == "KIOSK-1"


def test_resubmit_is_a_duplicate_not_a_second_message(fd):
    r = rating(kiosk="KIOSK-1", unit=UNIT)
    assert fd.client.post("/v1/ratings", json=r, headers=bearer(fd, "KIOSK-1")).status_code == 201
    again = fd.client.post("/v1/ratings", json=r, headers=bearer(fd, "KIOSK-1"))
    assert again.status_code == 200 and again.json()["duplicate"] is True
    changed = fd.client.post("/v1/ratings", json={**r, "level": 1}, headers=bearer(fd, "KIOSK-1"))
    assert changed.status_code == 409
    assert len(ratings_on_topic(fd.settings, r["rating_id"])) == 1


@pytest.mark.parametrize("mutate, field", [
    (lambda r: r.update(level=9), "level"),
    (lambda r: r.pop("unit_code"), "unit_code"),
    (lambda r: r.update(event_time="2025-11-20T08:30:00"), "event_time"),     # no offset
    (lambda r: r.update(rating_id="x"), "rating_id"),
    (lambda r: r.update(levle=5), "levle"),                                   # typo: unknown field
    (lambda r: r.update(level="5"), "level"),                                 # strict: "5" is not 5
])
def test_invalid_rating_422_names_the_field(fd, mutate, field):
    r = rating(kiosk="KIOSK-1", unit=UNIT)
    mutate(r)
    resp = fd.client.post("/v1/ratings", json=r, headers=bearer(fd, "KIOSK-1"))
    assert resp.status_code == 422, resp.text
    assert field in [e["field"] for e in resp.json()["errors"]]
    assert all(e["reason"] for e in resp.json()["errors"])


def test_not_json_is_422(fd):
    resp = fd.client.post("/v1/ratings", content=b"{not json", headers=bearer(fd, "KIOSK-1"))
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "$"


def test_oversize_413_by_content_length_and_by_stream(fd):
    big = b'{"comment": "' + b"x" * (fd.settings.max_request_bytes + 10) + b'"}'
    resp = fd.client.post("/v1/ratings", content=big, headers=bearer(fd, "KIOSK-1"))
    assert resp.status_code == 413

    def chunks():  # no Content-Length: chunked transfer, counted while reading
        for _ in range(fd.settings.max_request_bytes // 65536 + 2):
            yield b"x" * 65536
    resp = fd.client.post("/v1/ratings", content=chunks(), headers=bearer(fd, "KIOSK-1"))
    assert resp.status_code == 413


def test_signed_request_accepted_replay_and_stale_rejected(fd):
    body = json.dumps(rating(kiosk="KIOSK-2", unit=UNIT)).encode()
    h = sign(fd.tokens["KIOSK-2"], body)
    assert fd.client.post("/v1/ratings", content=body, headers=h).status_code == 201
    assert fd.client.post("/v1/ratings", content=body, headers=h).status_code == 401   # replay
    body2 = json.dumps(rating(kiosk="KIOSK-2", unit=UNIT)).encode()
    stale = sign(fd.tokens["KIOSK-2"], body2, timestamp=int(time.time()) - 3600)
    assert fd.client.post("/v1/ratings", content=body2, headers=stale).status_code == 401
    tampered = sign(fd.tokens["KIOSK-2"], body2)
    assert fd.client.post("/v1/ratings", content=body2.replace(b'"level": 5', b'"level": 1'),
                          headers=tampered).status_code == 401


def test_batch_per_item_results(fd):
    ok1, ok2 = rating(kiosk="KIOSK-1", unit=UNIT), rating(kiosk="KIOSK-1", unit=UNIT)
    bad = rating(kiosk="KIOSK-1", unit=UNIT, level=0)
    other = rating(kiosk="KIOSK-2", unit=UNIT)
    for path in ("/v1/ratings:batch", "/v1/ratings/batch"):
        resp = fd.client.post(path, json=[ok1, bad, other, ok2, ok1], headers=bearer(fd, "KIOSK-1"))
        assert resp.status_code == 200, resp.text
        st = [x["status"] for x in resp.json()["results"]]
        if path.endswith(":batch"):
            assert st == ["accepted", "invalid", "forbidden", "accepted", "duplicate"]
        else:
            assert st == ["duplicate", "invalid", "forbidden", "duplicate", "duplicate"]
    assert resp.json()["results"][1]["errors"][0]["field"] == "[1].level"
    on_topic = {m.rating_id for m in ratings_on_topic(fd.settings)}
    assert {ok1["rating_id"], ok2["rating_id"]} <= on_topic
    assert bad["rating_id"] not in on_topic and other["rating_id"] not in on_topic


def test_rate_limit_429_with_retry_after(settings, tmp_path):
    s = fresh_settings(settings, kiosk_rate_limit_per_minute=3)
    tokens = write_credentials(tmp_path / "c.yaml", [("KIOSK-RL", "kiosk", [UNIT])])
    with ThreadServer(create_app(s, CredentialStore(tmp_path / "c.yaml"))) as srv:
        h = {"Authorization": f"Bearer {tokens['KIOSK-RL']}"}
        codes = [httpx.post(srv.url + "/v1/ratings", json=rating(kiosk="KIOSK-RL", unit=UNIT), headers=h, timeout=30)
                 for _ in range(5)]
    assert [c.status_code for c in codes] == [201, 201, 201, 429, 429]
    assert int(codes[3].headers["Retry-After"]) >= 1
    assert len(ratings_on_topic(s)) == 3


# ----------------------------------------------------------------------------- credentials

def test_bad_credentials_publish_nothing(settings, tmp_path):
    """Missing, wrong, revoked, other kiosk, out-of-scope unit: 401/403 and the topic stays empty."""
    s = fresh_settings(settings)
    path = tmp_path / "c.yaml"
    tokens = write_credentials(path, [("K-A", "kiosk", [UNIT]), ("K-B", "kiosk", [UNIT]), ("S-A", "source", [UNIT])])
    store = CredentialStore(path, reload_interval_s=0.2)
    with ThreadServer(create_app(s, store)) as srv:
        c = httpx.Client(base_url=srv.url, timeout=30)
        r = rating(kiosk="K-A", unit=UNIT)
        tok = tokens["K-A"]
        cases = [
            ({}, 401),
            ({"Authorization": "Bearer"}, 401),
            ({"Authorization": "Basic Zm9vOmJhcg=="}, 401),
            ({"Authorization": f"Bearer {tok}x"}, 401),
            ({"Authorization": f"Bearer K-A.{'A' * 43}"}, 401),
            ({"Authorization": f"Bearer NOBODY.{tok.split('.', 1)[1]}"}, 401),
            ({"Authorization": f"Bearer {tokens['K-B']}"}, 403),          # another kiosk's id
            ({"X-Pulse-Key-Id": "K-A", "X-Pulse-Timestamp": str(int(time.time())), "X-Pulse-Signature": "00" * 32}, 401),
        ]
        for headers, code in cases:
            resp = c.post("/v1/ratings", json=r, headers=headers)
            assert resp.status_code == code, (headers, resp.text)
        assert c.post("/v1/ratings", json=rating(kiosk="S-A", unit="999.99.99.X99"),
                      headers={"Authorization": f"Bearer {tokens['S-A']}"}).status_code == 403   # unit out of scope
        assert c.post("/v1/ratings:batch", json=[r], headers={}).status_code == 401
        assert c.post("/v1/dossiers/sync", json=DOSSIER, headers={"Authorization": f"Bearer {tok}"}).status_code == 403
        # revoke through the CLI: the running API re-reads the file
        assert credmod.main(["--file", str(path), "revoke", "K-A"]) == 0
        time.sleep(0.5)
        resp = c.post("/v1/ratings", json=r, headers={"Authorization": f"Bearer {tok}"})
        assert resp.status_code == 403 and "revoked" in resp.json()["detail"]
        c.close()
    assert read_topic(s, RATINGS.name) == []
    assert read_topic(s, DOSSIER_EVENTS.name) == []


def test_credentials_cli_prints_token_once(tmp_path):
    path = tmp_path / "c.yaml"
    out = subprocess.run([sys.executable, "-m", "frontdoor.credentials", "--file", str(path), "add", "KIOSK-9",
                          "--kind", "kiosk", "--unit", UNIT], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    token = out.stdout.strip()
    assert token.startswith("KIOSK-9.") and token.split(".", 1)[1] not in path.read_text()
    listed = subprocess.run([sys.executable, "-m", "frontdoor.credentials", "--file", str(path), "list"],
                            capture_output=True, text=True, cwd=REPO_ROOT, check=True).stdout
    assert "KIOSK-9" in listed and token.split(".", 1)[1] not in listed and "active" in listed
    store = CredentialStore(path)
    assert store.authenticate({"authorization": f"Bearer {token}"}, b"").id == "KIOSK-9"


def test_kafka_down_is_503_not_2xx(settings, tmp_path):
    s = settings.with_(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    tokens = write_credentials(tmp_path / "c.yaml", [("K-D", "kiosk", [UNIT])])
    with ThreadServer(create_app(s, CredentialStore(tmp_path / "c.yaml"))) as srv:
        h = {"Authorization": f"Bearer {tokens['K-D']}"}
        resp = httpx.post(srv.url + "/v1/ratings", json=rating(kiosk="K-D", unit=UNIT), headers=h, timeout=60)
        assert resp.status_code == 503
        assert httpx.get(srv.url + "/health", timeout=10).status_code == 503


# ----------------------------------------------------------------------------- dossiers

def test_dossier_sync_and_reimport_produce_the_same_event_ids(fd, tmp_path):
    h = bearer(fd, "SRC-H12")
    resp = fd.client.post("/v1/dossiers/sync", json=DOSSIER, headers=h)
    assert resp.status_code == 200, resp.text
    ids = resp.json()["results"][0]["event_ids"]
    assert len(ids) == 6 and resp.json()["produced"] == 6
    again = fd.client.post("/v1/dossiers/sync", json={"data": [DOSSIER]}, headers=h)
    assert again.status_code == 200 and again.json()["produced"] == 0 and again.json()["duplicates"] == 6
    events = [decode_dossier(m.value) for m in read_topic(fd.settings, DOSSIER_EVENTS.name)]
    mine = [e for e in events if e.dossier_code == DOSSIER["MaHoSo"]]
    assert sorted(e.event_id for e in mine) == sorted(ids)
    assert {e.source_system for e in mine} == {"SRC-H12"}
    # the same export through the importer with the same source: the same ids (downstream dedups)
    f = tmp_path / "export.jsonl"
    f.write_text(json.dumps(DOSSIER, ensure_ascii=False) + "\n", encoding="utf-8")
    summary = run_import([f], fd.settings, kind="dvcqg", source="SRC-H12", progress=False)
    assert summary.accepted == 1 and summary.messages == 6 and not summary.rejected
    events = [decode_dossier(m.value) for m in read_topic(fd.settings, DOSSIER_EVENTS.name)]
    assert {e.event_id for e in events if e.dossier_code == DOSSIER["MaHoSo"]} == set(ids)


def test_dossier_sync_errors(fd):
    h = bearer(fd, "SRC-H12")
    bad = copy.deepcopy(DOSSIER)
    bad["QuaTrinhXuLy"][1]["ThoiDiemXuLy"] = "yesterday"
    resp = fd.client.post("/v1/dossiers/sync", json=bad, headers=h)
    assert resp.status_code == 422 and resp.json()["errors"][0]["field"] == "QuaTrinhXuLy[1].ThoiDiemXuLy"
    other_unit = {**copy.deepcopy(DOSSIER), "DonViXuLy": "000.00.01.H99", "MaHoSo": "H99-1"}
    for rec in other_unit["QuaTrinhXuLy"]:
        rec["MaHoSo"] = "H99-1"
    assert fd.client.post("/v1/dossiers/sync", json=other_unit, headers=h).status_code == 403
    resp = fd.client.post("/v1/dossiers/sync", json=[bad, other_unit], headers=h)
    assert resp.status_code == 200
    assert [x["status"] for x in resp.json()["results"]] == ["invalid", "forbidden"]
    assert resp.json()["results"][0]["errors"][0]["field"] == "[0].QuaTrinhXuLy[1].ThoiDiemXuLy"


# ----------------------------------------------------------------------------- importer

def test_importer_reports_bad_lines_and_imports_the_rest(settings, tmp_path, capsys, monkeypatch):
    s = fresh_settings(settings)
    f = tmp_path / "ratings.jsonl"
    good = [rating(kiosk="K-IMP", unit=UNIT) for _ in range(4)]
    lines = [json.dumps(good[0]), json.dumps(good[1]), "{broken json", "",
             json.dumps({**good[2], "level": 42}), json.dumps(good[2]), json.dumps({**good[3], "unit_code": None})]
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for k, v in (("KAFKA_BOOTSTRAP", s.kafka_bootstrap), ("PULSE_TOPIC_PREFIX", s.topic_prefix)):
        monkeypatch.setenv(k, v)
    code = importer_main([str(f), "--kind", "rating", "--quiet"])
    out = capsys.readouterr().out
    assert code == 1   # some lines rejected (the good ones are imported)
    assert "accepted: 3" in out and "rejected: 3" in out
    assert f"{f}:3: invalid JSON" in out
    assert f"{f}:5: level" in out
    assert f"{f}:7: unit_code" in out
    on_topic = [decode_rating(m.value) for m in read_topic(s, RATINGS.name)]
    assert sorted(m.rating_id for m in on_topic) == sorted(g["rating_id"] for g in good[:3])
    # CSV, same kind
    c = tmp_path / "ratings.csv"
    c.write_text("rating_id,event_time,kiosk_id,unit_code,level,criteria\n"
                 f"r-csv-00000001,2025-11-20T08:30:00+07:00,K-IMP,{UNIT},5,\"{{\"\"officer\"\": 4}}\"\n"
                 f"r-csv-00000002,2025-11-20T08:31:00+07:00,K-IMP,{UNIT},six,\n", encoding="utf-8")
    summary = run_import([c], s, kind="rating", progress=False)
    assert summary.accepted == 1 and [(r.line, "level" in r.reason) for r in summary.rejected] == [(3, True)]


# ----------------------------------------------------------------------------- fuzzing

def test_schemathesis_finds_no_server_errors(fd, tmp_path):
    """Fuzz every operation of /openapi.json against the running app on the real broker."""
    cmd = [str(REPO_ROOT / ".venv" / "bin" / "schemathesis"), "run", fd.url + "/openapi.json",
           "--checks", "not_a_server_error", "--max-examples", "40", "--phases", "examples,coverage,fuzzing",
           "-H", f"Authorization: Bearer {fd.tokens['SRC-ALL']}", "--seed", "1", "--no-color",
           "--generation-database", "none", "--max-time", "60", "--request-timeout", "30",
           "--report", "junit", "--report-dir", str(tmp_path)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=150, cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]


@pytest.mark.slow
def test_broker_dies_mid_flight_503(tmp_path):
    """Producer already connected, then the broker dies: the next rating is 503 (delivery timeout), not 2xx."""
    from pulse.admin import create_topics
    from pulse.config import Settings
    from tests.support.kafka import SINGLE_BROKER_ENV, start_broker
    broker = start_broker(tmp_path / "kafka")
    try:
        s = Settings.from_env(SINGLE_BROKER_ENV).with_(kafka_bootstrap=broker.bootstrap, topic_prefix="mid.")
        create_topics(s, (RATINGS,))
        tokens = write_credentials(tmp_path / "c.yaml", [("K-M", "kiosk", [UNIT])])
        with ThreadServer(create_app(s, CredentialStore(tmp_path / "c.yaml"))) as srv:
            h = {"Authorization": f"Bearer {tokens['K-M']}"}
            assert httpx.post(srv.url + "/v1/ratings", json=rating(kiosk="K-M", unit=UNIT), headers=h,
                              timeout=60).status_code == 201
            broker.kill()
            t0 = time.monotonic()
            resp = httpx.post(srv.url + "/v1/ratings", json=rating(kiosk="K-M", unit=UNIT), headers=h, timeout=60)
            assert resp.status_code == 503 and resp.headers.get("Retry-After")
            assert time.monotonic() - t0 < 30
    finally:
        broker.stop()
