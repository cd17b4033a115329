"""`make up` / `make status` / `make down` on real parts, in a private state folder and on
free ports so a developer's running stack is untouched.

Covers issue 2's "done when": demo events reach ClickHouse within 2 minutes, a second `up`
changes nothing, a killed part is reported and recovered without losing data, and
`down` + `up` keeps the data.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import clickhouse_connect
import pytest

from pulse.config import REPO_ROOT
from pulse.procs import free_port, read_pid

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def stack_env(tmp_path_factory):
    state = tmp_path_factory.mktemp("stack-state")
    ch_port = free_port()
    env = dict(os.environ)
    env.update({
        "PULSE_STATE_DIR": str(state),
        "KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}",
        "KAFKA_CONTROLLER_PORT": str(free_port()),
        "CLICKHOUSE_URL": f"http://default:@127.0.0.1:{ch_port}/motcua",
        "FAUST_WEB_PORT": str(free_port()),
        "API_PORT": str(free_port()),
        "SUPERSET_PORT": str(free_port()),
        "PULSE_TOPIC_PREFIX": "stacktest.",
        "FAUST_APP_ID": "motcua-pulse-stacktest",
    })
    yield env, state, ch_port
    subprocess.run([sys.executable, "-m", "deploy.local.stack", "down"], env=env, cwd=REPO_ROOT,
                   capture_output=True, timeout=300)


def _stack(env, command: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deploy.local.stack", command], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _count_events(ch_port: int) -> int:
    client = clickhouse_connect.get_client(host="127.0.0.1", port=ch_port, database="motcua")
    try:
        return int(client.query("SELECT count() FROM dossier_events").result_rows[0][0])
    finally:
        client.close()


def _wait_for_events(ch_port: int, at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        try:
            n = _count_events(ch_port)
        except Exception:
            n = 0
        if n >= at_least:
            return n
        time.sleep(2)
    return n


def test_up_status_recover_down_up(stack_env):
    env, state, ch_port = stack_env

    up = _stack(env, "up")
    assert up.returncode == 0, up.stdout + up.stderr
    assert "motcua-pulse is up" in up.stdout
    started = time.monotonic()
    n1 = _wait_for_events(ch_port, 1, timeout=120)
    assert n1 > 0, f"no demo events in ClickHouse {time.monotonic() - started:.0f} s after up"

    status = _stack(env, "status")
    assert status.returncode == 0, status.stdout
    assert "all parts healthy" in status.stdout
    assert "consumer lag" in status.stdout

    again = _stack(env, "up")
    assert again.returncode == 0
    assert "nothing changed" in again.stdout
    assert "starting" not in again.stdout

    # The worker is supervised: killed outright, it comes back without `make up`.
    sup = read_pid(state / "run" / "worker.pid")
    child = int(subprocess.check_output(["pgrep", "-P", str(sup)], text=True).split()[0])
    os.kill(child, signal.SIGKILL)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        time.sleep(3)
        if "worker      healthy" in _stack(env, "status").stdout:
            break
    assert "worker      healthy" in _stack(env, "status").stdout, "killed worker was not restarted"

    # Kill the ClickHouse endpoint and the broker outright: status must report them.
    for name, pid_file in (("clickhouse", state / "run" / "clickhouse.pid"),
                           ("kafka", state / "kafka" / "broker.pid")):
        pid = read_pid(pid_file)
        assert pid, f"no pid file for {name}"
        os.killpg(pid, signal.SIGKILL)
    time.sleep(1)
    status = _stack(env, "status")
    assert status.returncode != 0
    assert "clickhouse  DOWN" in status.stdout and "kafka       DOWN" in status.stdout

    recovered = _stack(env, "up")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    n2 = _wait_for_events(ch_port, n1, timeout=120)
    assert n2 >= n1, "rows lost after the endpoint was killed"

    down = _stack(env, "down")
    assert down.returncode == 0
    assert "down" in down.stdout
    up3 = _stack(env, "up")
    assert up3.returncode == 0, up3.stdout + up3.stderr
    assert _wait_for_events(ch_port, n2, timeout=60) >= n2, "data lost across down/up"
    status = _stack(env, "status")
    assert "all parts healthy" in status.stdout, status.stdout
