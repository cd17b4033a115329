"""Secured Kafka (issue 21): every client through a SASL_SSL (SCRAM-SHA-512) listener of the
real broker, with certificates made in this test (tests/support/secure_broker.py), and the
failures an operator meets first: a wrong password, a wrong CA file.

The broker here has no PLAINTEXT listener at all, so a client that silently ignored the
security settings could not pass; ``test_the_listener_refuses_a_plaintext_client`` checks that.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import date

import pytest

from pulse.config import REPO_ROOT, Settings, SettingsError
from pulse.kafka_security import (KafkaAuthError, KafkaConnectError, KafkaTLSError, aiokafka_kwargs,
                                  check_connection, faust_broker_kwargs, kafka_python_kwargs)

WRONG = "not-the-password-9f3c"


# --------------------------------------------------------------------- settings (no broker)

def test_the_password_is_not_in_the_repr_and_can_come_from_a_file(tmp_path):
    secret = tmp_path / "kafka-password"
    secret.write_text("s3cret-from-file\n")   # as `echo s3cret > file` writes it
    s = Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "pulse",
                           "KAFKA_SASL_PASSWORD_FILE": str(secret)})
    assert kafka_python_kwargs(s)["sasl_plain_password"] == "s3cret-from-file"
    assert aiokafka_kwargs(s)["sasl_plain_password"] == "s3cret-from-file"
    assert faust_broker_kwargs(s)["broker_credentials"].password == "s3cret-from-file"
    # a child process gets the file's path, not its content
    assert "s3cret" not in repr(s) and "s3cret" not in "".join(s.to_env().values())
    assert Settings.from_env(s.to_env()) == s
    direct = Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "pulse",
                                "KAFKA_SASL_PASSWORD": "s3cret-direct"})
    assert "s3cret" not in repr(direct) and "s3cret" not in str(direct)
    assert kafka_python_kwargs(direct)["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kafka_python_kwargs(direct)["ssl_context"] is not None


@pytest.mark.parametrize("env,message", [
    ({"KAFKA_SECURITY_PROTOCOL": "TLS"}, "KAFKA_SECURITY_PROTOCOL='TLS': expected one of"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p",
      "KAFKA_SASL_MECHANISM": "SCRAM-SHA-1"}, "KAFKA_SASL_MECHANISM='SCRAM-SHA-1'"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_PASSWORD": "p"}, "needs KAFKA_SASL_USERNAME"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u"}, "needs KAFKA_SASL_PASSWORD_FILE"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p",
      "KAFKA_SASL_PASSWORD_FILE": "/etc/hostname"}, "not both"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u",
      "KAFKA_SASL_PASSWORD_FILE": "/nonexistent/secret"}, "KAFKA_SASL_PASSWORD_FILE='/nonexistent/secret'"),
    ({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CAFILE": "/nonexistent/ca.pem"}, "KAFKA_SSL_CAFILE="),
    ({"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}, "PLAINTEXT does not log in"),
    ({"KAFKA_SSL_CAFILE": "/etc/hostname"}, "PLAINTEXT does not use TLS"),
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p",
      "KAFKA_SSL_CHECK_HOSTNAME": "maybe"}, "KAFKA_SSL_CHECK_HOSTNAME='maybe'"),
])
def test_a_wrong_security_setting_fails_at_start_naming_its_variable(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_plaintext_default_adds_nothing():
    s = Settings()
    assert kafka_python_kwargs(s) == {"bootstrap_servers": ["127.0.0.1:9092"], "security_protocol": "PLAINTEXT"}
    assert faust_broker_kwargs(s) == {}


# --------------------------------------------------------------------- the secured broker

@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory):
    from tests.support.secure_broker import start_secure_broker
    broker = start_secure_broker(tmp_path_factory.mktemp("kafka-secure"))
    yield broker
    broker.stop()


@pytest.fixture
def secured(secure_broker, tmp_path) -> Settings:
    """Settings for the SASL_SSL listener as user 'pulse', password from a file, own topics."""
    from pulse.admin import create_topics
    secret = tmp_path / "kafka-password"
    secret.write_text(secure_broker.users["pulse"] + "\n")
    secret.chmod(0o600)
    tag = uuid.uuid4().hex[:8]
    from tests.support.kafka import SINGLE_BROKER_ENV     # one broker: RF 1 (docs/KAFKA.md)
    s = secure_broker.settings(Settings.from_env(SINGLE_BROKER_ENV).with_(
        state_dir=tmp_path / "state", topic_prefix=f"sec{tag}.", faust_app_id=f"motcua-sec-{tag}"))
    s = s.with_(kafka_sasl_password="", kafka_sasl_password_file=str(secret))
    s.validate()
    create_topics(s)
    return s


def _env(settings: Settings, **extra) -> dict:
    env = dict(os.environ)
    env.update(settings.to_env())
    env.update(extra)
    return env


@pytest.mark.integration
def test_kafka_python_and_aiokafka_produce_and_consume_over_sasl_ssl(secured):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    topic = secured.topic("security-roundtrip")

    p = KafkaProducer(**kafka_python_kwargs(secured), acks="all")
    for i in range(10):
        p.send(topic, key=b"k", value=b"kafka-python %d" % i)
    p.flush(30)
    p.close()

    async def aio() -> list[bytes]:
        producer = AIOKafkaProducer(**aiokafka_kwargs(secured), acks="all")
        await producer.start()
        try:
            for i in range(10):
                await producer.send_and_wait(topic, key=b"k", value=b"aiokafka %d" % i)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(topic, **aiokafka_kwargs(secured), auto_offset_reset="earliest",
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            got: list[bytes] = []
            deadline = time.monotonic() + 30
            while len(got) < 20 and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    got.extend(r.value for r in records)
            return got
        finally:
            await consumer.stop()

    via_aiokafka = asyncio.run(aio())
    c = KafkaConsumer(**kafka_python_kwargs(secured), enable_auto_commit=False, consumer_timeout_ms=5000)
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        c.seek_to_beginning(tp)
        via_kafka_python = [r.value for r in c]
    finally:
        c.close()
    expected = [b"kafka-python %d" % i for i in range(10)] + [b"aiokafka %d" % i for i in range(10)]
    assert via_aiokafka == expected
    assert via_kafka_python == expected


@pytest.mark.integration
def test_debug_logs_of_the_admin_client_do_not_carry_the_password(secured, caplog):
    """kafka-python's KafkaAdminClient logs its configuration at DEBUG; the password is
    masked there (pulse.kafka_security), the rest of the record stays."""
    import logging

    from kafka.admin import KafkaAdminClient
    password = kafka_python_kwargs(secured)["sasl_plain_password"]
    with caplog.at_level(logging.DEBUG, logger="kafka"):
        admin = KafkaAdminClient(**kafka_python_kwargs(secured), client_id="log-check", request_timeout_ms=10000)
        try:
            assert admin.list_topics() is not None
        finally:
            admin.close()
    started = [r.getMessage() for r in caplog.records if "Starting KafkaAdminClient" in r.getMessage()]
    assert started and "'sasl_plain_password': '***'" in started[0], started
    assert secured.kafka_sasl_username in started[0]
    assert password not in caplog.text


@pytest.mark.integration
def test_the_listener_refuses_a_plaintext_client(secured):
    plain = secured.with_(kafka_security_protocol="PLAINTEXT", kafka_sasl_username="", kafka_sasl_password_file="",
                          kafka_ssl_cafile="")
    with pytest.raises(KafkaConnectError):
        check_connection(plain, timeout_s=3)


@pytest.mark.integration
def test_pulse_topics_and_the_simulator_work_through_the_secured_listener(secured):
    from kafka import KafkaConsumer

    from simulator import DOSSIER_TOPIC, RATING_TOPIC, SimConfig, run
    from simulator.output import KafkaOutput
    fresh = secured.with_(topic_prefix=f"cli{uuid.uuid4().hex[:6]}.")
    out = subprocess.run([sys.executable, "-m", "pulse.cli", "topics"], env=_env(fresh), cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert f"{fresh.topic(DOSSIER_TOPIC)}" in out.stdout and "created" in out.stdout
    # On a fresh broker the first FindCoordinator creates __consumer_offsets and answers
    # COORDINATOR_NOT_AVAILABLE meanwhile (a broker's start-up, not security): ask again.
    for _ in range(10):
        lag = subprocess.run([sys.executable, "-m", "pulse.cli", "lag"], env=_env(fresh), cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=120)
        if "CoordinatorNotAvailable" not in lag.stderr:
            break
        time.sleep(1)
    assert lag.returncode == 0, lag.stderr

    summary = run(SimConfig(start=date(2026, 11, 2), days=1, scale=0.1, seed=5), KafkaOutput(fresh))
    c = KafkaConsumer(**kafka_python_kwargs(fresh), enable_auto_commit=False, consumer_timeout_ms=5000,
                      auto_offset_reset="earliest")
    try:
        c.subscribe([fresh.topic(DOSSIER_TOPIC), fresh.topic(RATING_TOPIC)])
        n = sum(1 for _ in c)
    finally:
        c.close()
    assert n == summary.events[DOSSIER_TOPIC] + summary.events[RATING_TOPIC] > 100


@pytest.mark.integration
def test_a_worker_processes_events_from_the_secured_broker_into_clickhouse(secured, clickhouse_endpoint):
    from simulator import DOSSIER_TOPIC, RATING_TOPIC, SimConfig, run
    from simulator.output import KafkaOutput
    from sinks.client import get_client
    from tests.support.worker import start_worker
    s = secured.with_(clickhouse_url=f"{clickhouse_endpoint.url.rstrip('/')}/motcua_sec_{uuid.uuid4().hex[:8]}",
                      kafka_session_timeout_s=6.0)
    summary = run(SimConfig(start=date(2026, 11, 2), days=1, scale=0.1, seed=8), KafkaOutput(s))
    with start_worker(s, log_path=s.state_dir / "worker.log") as w:
        client = get_client(s)
        try:
            deadline = time.monotonic() + 120
            got = (0, 0)
            want = (summary.events[DOSSIER_TOPIC], summary.events[RATING_TOPIC])
            while time.monotonic() < deadline:
                got = (client.command("SELECT count() FROM dossier_events FINAL"),
                       client.command("SELECT count() FROM ratings FINAL"))
                if got == want:
                    break
                time.sleep(1)
            assert got == want, w.tail()
        finally:
            client.close()


@pytest.mark.integration
def test_a_wrong_password_is_a_clear_error_within_seconds(secured, secure_broker, tmp_path):
    bad_file = tmp_path / "wrong-password"
    bad_file.write_text(WRONG)
    bad = secured.with_(kafka_sasl_password_file=str(bad_file))
    t0 = time.monotonic()
    with pytest.raises(KafkaAuthError) as e:
        check_connection(bad, timeout_s=10)
    took = time.monotonic() - t0
    msg = str(e.value)
    print(f"preflight, wrong password: {took:.2f} s: {msg}")
    assert took < 10
    assert "user 'pulse'" in msg and "SCRAM-SHA-512" in msg and secure_broker.bootstrap in msg
    assert WRONG not in msg and secure_broker.users["pulse"] not in msg

    # the CLI: exit code 2 and the same message, not a traceback after 30 s of retries
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "pulse.cli", "topics"], env=_env(bad), cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60)
    took = time.monotonic() - t0
    print(f"pulse topics, wrong password: exit {out.returncode} in {took:.2f} s: {out.stderr.strip()}")
    assert out.returncode == 2
    assert "refused the SASL login" in out.stderr and "user 'pulse'" in out.stderr
    assert "Traceback" not in out.stderr and WRONG not in out.stderr + out.stdout
    assert took < 20   # interpreter start + imports + the preflight

    # the worker: logs it and exits non-zero (it would otherwise never become ready)
    from tests.support.worker import start_worker
    w = start_worker(bad, wait=False, log_path=tmp_path / "worker.log")
    try:
        t0 = time.monotonic()
        code = w.proc.wait(timeout=60) if w.proc is not None else None
        took = time.monotonic() - t0
        log = w.logs[-1].read_text(errors="replace")
        print(f"worker, wrong password: exit {code} in {took:.2f} s")
        assert code not in (0, None)
        assert "refused the SASL login" in log and "user 'pulse'" in log and WRONG not in log
    finally:
        w.kill()


@pytest.mark.integration
def test_the_api_refuses_to_start_with_a_wrong_password(secured, tmp_path):
    from fastapi.testclient import TestClient

    from frontdoor.api import create_app
    from frontdoor.credentials import CredentialStore
    bad = secured.with_(kafka_sasl_password_file="", kafka_sasl_password=WRONG)
    app = create_app(bad, credentials=CredentialStore(tmp_path / "credentials.yaml"))
    with pytest.raises(KafkaAuthError, match="user 'pulse'"):
        with TestClient(app):
            pass


@pytest.mark.integration
def test_a_client_with_the_wrong_ca_fails_with_the_tls_message(secured, secure_broker):
    other = str(secure_broker.certs.other_ca_pem)
    bad = secured.with_(kafka_ssl_cafile=other)
    t0 = time.monotonic()
    with pytest.raises(KafkaTLSError) as e:
        check_connection(bad, timeout_s=10)
    took = time.monotonic() - t0
    print(f"preflight, wrong CA: {took:.2f} s: {e.value}")
    assert other in str(e.value) and "certificate" in str(e.value) and took < 10
    out = subprocess.run([sys.executable, "-m", "pulse.cli", "lag"], env=_env(bad), cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and other in out.stderr and "not trusted" in out.stderr

