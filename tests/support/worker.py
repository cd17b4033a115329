"""Start the Faust worker (``python -m streams worker``) as a subprocess for tests and benches.

    w = start_worker(settings)          # returns once partitions are assigned and tables recovered
    w.kill()                            # SIGKILL (an unclean crash)
    w.restart()                         # start again with the same settings, wait until ready
    w.stop()                            # SIGTERM, clean shutdown

Readiness is the worker's own ``GET /pulse/status/`` page answering ``"ready": true``
(set by the overdue timer after the rebalance and table recovery of the current
generation), so a restarted worker is ready only when it has rebuilt its state.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from pulse.config import REPO_ROOT, Settings
from pulse.procs import free_port


KAFKA_SECURITY_ENV = ("KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD",
                     "KAFKA_SASL_PASSWORD_FILE", "KAFKA_SSL_CAFILE", "KAFKA_SSL_CERTFILE", "KAFKA_SSL_KEYFILE",
                     "KAFKA_SSL_CHECK_HOSTNAME")


def worker_env(settings: Settings, web_port: int, extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env.update({
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "CLICKHOUSE_URL": settings.clickhouse_url,
        "PULSE_TOPIC_PREFIX": settings.topic_prefix,
        "FAUST_APP_ID": settings.faust_app_id,
        "PULSE_STATE_DIR": str(settings.state_dir),
        "FAUST_WEB_PORT": str(web_port),
        "FAUST_STORE": settings.faust_store,
        "KAFKA_SESSION_TIMEOUT_S": str(settings.kafka_session_timeout_s),
        "STREAM_BATCH_SIZE": str(settings.stream_batch_size),
        "STREAM_BATCH_WINDOW_S": str(settings.stream_batch_window_s),
        "EARLY_MIN_WORKING_DAYS": str(settings.early_min_working_days),
        "OVERDUE_WARNING_HOURS": str(settings.overdue_warning_hours),
        "ALERT_WINDOW_MINUTES": str(settings.alert_window_minutes),
        "PYTHONUNBUFFERED": "1",
    })
    # How the worker reaches a secured broker (tests/integration/test_kafka_security.py); for
    # the PLAINTEXT default these are the defaults, so a test's own environment cannot leak in.
    full = settings.to_env()
    env.update({k: full[k] for k in KAFKA_SECURITY_ENV})
    env.update(extra or {})
    return env


@dataclass
class WorkerHandle:
    settings: Settings
    env: dict | None = None
    log_path: Path | None = None
    ready_timeout: float = 120.0
    web_port: int = 0
    proc: subprocess.Popen | None = None
    starts: int = 0
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}/pulse/status/"

    def start(self, wait: bool = True) -> "WorkerHandle":
        self.web_port = free_port()
        self.starts += 1
        base = self.log_path or (Path(self.settings.state_dir) / "worker.log")
        log = base.with_name(f"{base.stem}.{self.starts}{base.suffix}")
        log.parent.mkdir(parents=True, exist_ok=True)
        self.logs.append(log)
        out = open(log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker", "-l", "info", "--web-port", str(self.web_port),
             "--web-host", "127.0.0.1"],
            env=worker_env(self.settings, self.web_port, self.env), cwd=REPO_ROOT,
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        out.close()
        if wait:
            self.wait_ready()
        return self

    def status(self) -> dict | None:
        try:
            with urllib.request.urlopen(self.url, timeout=2) as r:
                return json.loads(r.read())
        except Exception:  # noqa: BLE001 - not up yet
            return None

    def wait_ready(self, timeout: float | None = None) -> dict:
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}\n{self.tail()}")
            st = self.status()
            if st and st.get("ready"):
                return st
            time.sleep(0.3)
        raise TimeoutError(f"worker not ready after {timeout or self.ready_timeout:.0f} s\n{self.tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit, no producer flush."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM and wait for a clean exit (SIGKILL after ``timeout``)."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)

    def restart(self, wait: bool = True) -> "WorkerHandle":
        self.kill()
        return self.start(wait=wait)

    def tail(self, lines: int = 60) -> str:
        if not self.logs or not self.logs[-1].exists():
            return ""
        text = self.logs[-1].read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.logs[-1]} ---\n" + "\n".join(text)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop(timeout=20)


def start_worker(settings: Settings, env: dict | None = None, *, wait: bool = True,
                 log_path: Path | None = None, ready_timeout: float = 120.0) -> WorkerHandle:
    """Start ``python -m streams worker`` for ``settings`` (extra ``env`` on top); wait until ready."""
    return WorkerHandle(settings, env=env, log_path=log_path, ready_timeout=ready_timeout).start(wait=wait)
