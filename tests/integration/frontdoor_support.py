"""Helpers for the front-door tests and bench: run the API, read a topic back, credentials."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from frontdoor.credentials import Credential, new_credential, save_file
from pulse.config import REPO_ROOT, Settings
from pulse.topics import DOSSIER_EVENTS, RATINGS

VN = timezone(timedelta(hours=7))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fresh_settings(base: Settings, **changes) -> Settings:
    """Same broker, a topic prefix of its own (so 'the topic stays empty' is checkable)."""
    from pulse.admin import create_topics
    s = base.with_(topic_prefix=f"fd{uuid.uuid4().hex[:8]}.", **changes)
    create_topics(s, (RATINGS, DOSSIER_EVENTS))
    return s


def write_credentials(path: Path, specs: list[tuple[str, str, list[str]]]) -> dict[str, str]:
    """Create a credentials file; return {id: token}."""
    creds: dict[str, Credential] = {}
    tokens = {}
    for cid, kind, units in specs:
        c, tok = new_credential(cid, kind, units)
        creds[cid] = c
        tokens[cid] = tok
    save_file(path, creds)
    return tokens


def rating(rid: str | None = None, kiosk: str = "KIOSK-1", unit: str = "000.00.01.H12", level: int = 5, **kw) -> dict:
    return {"rating_id": rid or f"r-{uuid.uuid4().hex}", "event_time": datetime.now(VN).isoformat(timespec="milliseconds"),
            "kiosk_id": kiosk, "unit_code": unit, "level": level, **kw}


def read_topic(settings: Settings, logical: str, timeout: float = 10.0) -> list:
    """Every message currently on the topic (all partitions, from the beginning to the end offsets)."""
    from kafka import KafkaConsumer, TopicPartition
    topic = settings.topic(logical)
    c = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False,
                      group_id=None, consumer_timeout_ms=1000, request_timeout_ms=30000)
    try:
        deadline = time.monotonic() + timeout
        parts = c.partitions_for_topic(topic)
        while not parts and time.monotonic() < deadline:
            time.sleep(0.2)
            parts = c.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts or [])]
        if not tps:
            return []
        c.assign(tps)
        c.seek_to_beginning(*tps)
        end = c.end_offsets(tps)
        out = []
        while any(c.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for recs in c.poll(timeout_ms=500, max_records=50_000).values():
                out.extend(recs)
        return out
    finally:
        c.close()


class ThreadServer:
    """The API under uvicorn in a thread of the test process (real HTTP on loopback)."""

    def __init__(self, app, port: int | None = None):
        import uvicorn
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                                    access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("API did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(timeout=15)


class ProcessServer:
    """``python -m frontdoor`` in its own process (bench and load test)."""

    def __init__(self, settings: Settings, credentials: Path, log: Path, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.settings, self.credentials, self.log = settings, credentials, log
        self.proc: subprocess.Popen | None = None

    def __enter__(self):
        env = dict(os.environ, KAFKA_BOOTSTRAP=self.settings.kafka_bootstrap,
                   PULSE_TOPIC_PREFIX=self.settings.topic_prefix,
                   KIOSK_RATE_LIMIT_PER_MINUTE=str(self.settings.kiosk_rate_limit_per_minute),
                   MAX_REQUEST_BYTES=str(self.settings.max_request_bytes),
                   PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self._logf = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "frontdoor", "--host", "127.0.0.1", "--port", str(self.port),
                                      "--credentials", str(self.credentials)],
                                     cwd=REPO_ROOT, env=env, stdout=self._logf, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"API process did not become healthy; see {self.log}")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logf.close()
