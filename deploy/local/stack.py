"""The whole pipeline on one machine: ``make up`` / ``make down`` / ``make status``.

Parts, in start order: Kafka broker → ClickHouse endpoint (chDB) → schema migrations and
reference data → topics → Faust worker → kiosk API → Superset with the boards → demo feed.
Each part is a detached process with a pid file and a log under ``.state/``; ``up`` starts
only what is not running (so a second ``up`` changes nothing, and a killed part is
restarted from its kept data), ``down`` stops everything cleanly and keeps the data.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from pulse import procs
from pulse.config import REPO_ROOT, Settings

PY = sys.executable
DEMO_KIOSK = "KIOSK-DEMO-01"
SUPERSET_PY = str(REPO_ROOT / ".venv-superset" / "bin" / "python")
MANAGE_SUPERSET = str(REPO_ROOT / "deploy" / "superset" / "manage.py")
# One broker: replication factor 1 (the production defaults, RF 3 and min.insync 2, need a
# cluster), and the partition counts the local topics were created with (a keyed topic's
# count never changes in place: docs/KAFKA.md). A variable the shell exports wins.
LOCAL_KAFKA_ENV = {"KAFKA_REPLICATION_FACTOR": "1", "KAFKA_MIN_INSYNC_REPLICAS": "1",
                   "PULSE_PARTITIONS_DOSSIER_EVENTS": "4", "PULSE_PARTITIONS_RATINGS": "2"}


def _env(s: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "PULSE_STATE_DIR": str(s.state_dir),
        "KAFKA_BOOTSTRAP": s.kafka_bootstrap,
        "CLICKHOUSE_URL": s.clickhouse_url,
        "PULSE_TOPIC_PREFIX": s.topic_prefix,
        "FAUST_APP_ID": s.faust_app_id,
        "KAFKA_REPLICATION_FACTOR": str(s.kafka_replication_factor),
        "KAFKA_MIN_INSYNC_REPLICAS": str(s.kafka_min_insync_replicas),
        "PULSE_PARTITIONS_DOSSIER_EVENTS": str(s.kafka_partitions_dossier_events),
        "PULSE_PARTITIONS_RATINGS": str(s.kafka_partitions_ratings),
        "PYTHONPATH": str(REPO_ROOT),
    })
    return env


@dataclass
class Part:
    name: str
    url: str
    check: Callable[[], bool]
    start: Callable[[], object]
    stop: Callable[[], None]
    pid: Callable[[], int | None]


class Stack:
    def __init__(self, s: Settings):
        self.s = s
        self.run = s.state_dir / "run"
        self.logs = s.state_dir / "logs"
        ch = urlparse(s.clickhouse_url)
        self.ch_host, self.ch_port = ch.hostname or "127.0.0.1", ch.port or 8123
        from deploy.local.kafka_broker import KafkaBroker
        port = int(s.kafka_bootstrap.rsplit(":", 1)[1])
        self.broker = KafkaBroker(s.state_dir / "kafka", port, s.kafka_controller_port)

    # -- generic detached python processes -------------------------------------------
    def _pid_file(self, name: str) -> Path:
        return self.run / f"{name}.pid"

    def _log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def _pid(self, name: str) -> int | None:
        pid = procs.read_pid(self._pid_file(name))
        return pid if procs.pid_alive(pid) else None

    def _spawn(self, name: str, cmd: list[str], ready: Callable[[], bool], timeout: float = 120) -> None:
        proc = procs.spawn(cmd, self._log(name), self._pid_file(name), env=_env(self.s), cwd=REPO_ROOT)
        procs.wait_until(ready, timeout, name, interval=0.3, alive=lambda: proc.poll() is None,
                         log=self._log(name))

    def _stop(self, name: str, timeout: float = 30) -> None:
        procs.terminate(self._pid(name), timeout=timeout)
        self._pid_file(name).unlink(missing_ok=True)

    # -- parts ---------------------------------------------------------------------------
    def parts(self) -> list[Part]:
        s = self.s
        ch_ping = f"http://{self.ch_host}:{self.ch_port}/ping"
        api = f"http://{s.api_host}:{s.api_port}"
        superset = f"http://127.0.0.1:{s.superset_port}"
        return [
            Part("kafka", s.kafka_bootstrap, self.broker.healthy, lambda: self.broker.start(),
                 self.broker.stop, self.broker.pid),
            Part("clickhouse", f"http://{self.ch_host}:{self.ch_port}", lambda: procs.http_ok(ch_ping),
                 self._start_clickhouse, lambda: self._stop("clickhouse"), lambda: self._pid("clickhouse")),
            Part("worker", f"http://127.0.0.1:{s.faust_web_port}/pulse/status/", self._worker_ready,
                 self._start_worker, lambda: self._stop("worker", 60), lambda: self._pid("worker")),
            Part("kiosk-api", f"{api}/docs", lambda: procs.http_ok(f"{api}/health"),
                 self._start_api, lambda: self._stop("kiosk-api"), lambda: self._pid("kiosk-api")),
            Part("superset", superset, lambda: procs.http_ok(f"{superset}/health"),
                 self._start_superset, self._stop_superset, self._superset_pid),
            Part("demo-feed", "simulator → Kafka", lambda: bool(self._pid("demo-feed")),
                 self._start_feed, lambda: self._stop("demo-feed"), lambda: self._pid("demo-feed")),
        ]

    def _start_clickhouse(self) -> None:
        path = self.s.state_dir / "clickhouse"
        path.mkdir(parents=True, exist_ok=True)
        self._spawn("clickhouse", [PY, "-m", "deploy.local.chdb_endpoint", "--path", str(path),
                                   "--host", self.ch_host, "--port", str(self.ch_port)],
                    lambda: procs.http_ok(f"http://{self.ch_host}:{self.ch_port}/ping"), timeout=60)

    def _prepare_data(self) -> None:
        """Schema migrations, reference data and topics: idempotent, run on every up."""
        from sinks.client import get_client
        from sinks.migrate import migrate_settings
        from sinks.reference import load_reference_tables
        applied = migrate_settings(self.s, log=lambda *a: None)
        if applied:
            print(f"  applied ClickHouse migrations: {', '.join(map(str, applied))}")
        client = get_client(self.s)
        try:
            load_reference_tables(client)
        finally:
            client.close()
        from pulse.admin import create_topics
        created = create_topics(self.s)
        if created:
            print(f"  created topics: {', '.join(created)}")

    def _worker_ready(self) -> bool:
        # Ready = partitions assigned and tables recovered (the worker's own status page).
        import urllib.request
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.s.faust_web_port}/pulse/status/", timeout=2) as r:
                return bool(json.loads(r.read()).get("ready"))
        except Exception:
            return False

    def _start_worker(self) -> None:
        # Supervised: the worker exits on purpose when its watchdog sees a stall.
        self._spawn("worker", [PY, "-m", "deploy.local.supervise", "--",
                               PY, "-m", "streams", "worker", "-l", "info",
                               "--web-port", str(self.s.faust_web_port), "--web-host", "127.0.0.1"],
                    self._worker_ready, timeout=180)

    def _ensure_demo_kiosk(self) -> str | None:
        """Local mode: one demo kiosk credential, so the API can be tried at once."""
        from frontdoor.credentials import load_file, new_credential, save_file
        token_file = self.s.state_dir / "demo_kiosk_token"
        path = self.s.credentials_path
        creds = load_file(path) if path.exists() else {}
        if DEMO_KIOSK in creds and token_file.exists():
            return token_file.read_text().strip()
        if DEMO_KIOSK in creds:
            return None
        cred, token = new_credential(DEMO_KIOSK, "kiosk", ["*"], "demo kiosk created by make up")
        creds[cred.id] = cred
        save_file(path, creds)
        token_file.write_text(token)
        token_file.chmod(0o600)
        return token

    def _start_api(self) -> None:
        self._ensure_demo_kiosk()
        self._spawn("kiosk-api", [PY, "-m", "frontdoor", "--host", self.s.api_host,
                                  "--port", str(self.s.api_port)],
                    lambda: procs.http_ok(f"http://{self.s.api_host}:{self.s.api_port}/health"), timeout=60)

    def _superset(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        # Superset is chatty (migrations, permission syncs): its output goes to a log, and
        # only its last lines are shown, or the log's tail when a step fails.
        log = self._log("superset-manage")
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write(f"\n$ manage.py {' '.join(args)}\n")
            f.flush()
            r = subprocess.run([SUPERSET_PY, MANAGE_SUPERSET, *args], env=_env(self.s), cwd=REPO_ROOT,
                               stdout=f, stderr=subprocess.STDOUT)
        if check and r.returncode != 0:
            raise RuntimeError(f"superset {' '.join(args)} failed" + procs._tail(log, 40))
        return r

    def _start_superset(self) -> None:
        self._superset("init")
        self._superset("start")
        self._superset("import")
        self._superset("roles")

    def _stop_superset(self) -> None:
        self._superset("stop", check=False)

    def _superset_pid(self) -> int | None:
        pid = procs.read_pid(self.s.state_dir / "superset" / "superset.pid")
        return pid if procs.pid_alive(pid) else None

    def _start_feed(self) -> None:
        # A month of history first (so the boards have trends), then a live trickle.
        self._spawn("demo-feed", [PY, "-m", "deploy.local.demo_feed", "--history-days", "30"],
                    lambda: True, timeout=10)

    # -- commands --------------------------------------------------------------------------
    def up(self) -> int:
        parts = self.parts()
        changed = False
        for part in parts:
            if part.check():
                print(f"  {part.name:<11} already running  {part.url}")
                if part.name == "clickhouse":
                    self._prepare_data_quietly()
                continue
            if part.pid():
                # Running but not answering: restart it rather than start a second copy.
                print(f"  {part.name:<11} not answering; restarting")
                part.stop()
            t = time.monotonic()
            print(f"  {part.name:<11} starting…", flush=True)
            part.start()
            changed = True
            if part.name == "clickhouse":
                self._prepare_data()
            print(f"  {part.name:<11} up in {time.monotonic() - t:.1f} s  {part.url}")
        print()
        print("motcua-pulse is " + ("up" if changed else "already running (nothing changed)") + ".")
        self._print_where_to_look()
        return 0

    def _prepare_data_quietly(self) -> None:
        # Migrations are idempotent; running them keeps a running stack current after a pull.
        try:
            self._prepare_data()
        except subprocess.CalledProcessError as e:
            print(f"  migrations failed: {e}")

    def _print_where_to_look(self) -> None:
        s = self.s
        # Local mode generates the admin password once (no fixed default) and keeps it here.
        stored = self.s.state_dir / "superset" / "admin_password"
        user = s.superset_admin_user
        pw = s.superset_admin_password or (stored.read_text().strip() if stored.exists() else "(not set)")
        print(f"""
  Boards (Superset)   http://127.0.0.1:{s.superset_port}/dashboard/list/   user {user}  password {pw}
  Kiosk API           http://{s.api_host}:{s.api_port}/docs   (OpenAPI: /openapi.json)
                      demo kiosk {DEMO_KIOSK}, token in {s.state_dir / 'demo_kiosk_token'}
  ClickHouse (HTTP)   {s.clickhouse_url}
  Kafka               {s.kafka_bootstrap}   topics {s.topic_prefix}*
  Logs                {self.logs}/
  Health              make status        Stop: make down   (data is kept in {s.state_dir})
""")

    def down(self) -> int:
        for part in reversed(self.parts()):
            if part.pid() or part.check():
                print(f"  {part.name:<11} stopping")
                part.stop()
        print("motcua-pulse is down; data kept in", self.s.state_dir)
        return 0

    def status(self) -> int:
        bad = 0
        for part in self.parts():
            ok = part.check()
            pid = part.pid()
            state = "healthy" if ok else ("NOT ANSWERING" if pid else "DOWN")
            bad += not ok
            print(f"  {part.name:<11} {state:<14} pid {pid or '-':<8} {part.url}")
        if self.broker.healthy():
            try:
                from pulse.admin import consumer_lag
                lag = consumer_lag(self.s, self.s.faust_app_id)
                shown = {t.removeprefix(self.s.topic_prefix): n for t, n in lag.items()
                         if t.startswith(self.s.topic_prefix)}
                print(f"  consumer lag ({self.s.faust_app_id}): " +
                      (", ".join(f"{t}={n}" for t, n in sorted(shown.items())) or "no committed offsets yet"))
            except Exception as e:  # status must still print the rest
                print(f"  consumer lag: unavailable ({e})")
        print("all parts healthy" if not bad else f"{bad} part(s) not healthy: `make up` restarts them")
        return 0 if not bad else 1


def local_settings() -> Settings:
    """The settings of the local stack: the environment's, over the single-broker values."""
    return Settings.from_env({**LOCAL_KAFKA_ENV, **os.environ})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["up", "down", "status"])
    a = p.parse_args(argv)
    stack = Stack(local_settings())
    return getattr(stack, a.command)()


if __name__ == "__main__":
    sys.exit(main())
