"""Start the local chDB ClickHouse HTTP endpoint as a subprocess, for tests.

    from tests.support.endpoint import start_endpoint
    ep = start_endpoint(tmp_path / "chdb")          # free port, waits for /ping
    client = clickhouse_connect.get_client(host=ep.host, port=ep.port)
    ...
    ep.stop()      # SIGTERM: clean shutdown, data flushed
    ep.kill()      # SIGKILL: crash simulation

Self-contained (standard library only); the repository root is found from this
file so it works from any working directory.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class EndpointHandle:
    path: str
    host: str
    port: int
    proc: subprocess.Popen
    log_path: str
    password: str = ""
    _closed: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def dsn(self) -> str:
        return f"clickhousedb://default:{self.password}@{self.host}:{self.port}/default"

    def log(self) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 30) -> int:
        """Graceful stop (SIGTERM); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired as e:
                self.proc.kill()
                self.proc.wait(10)
                raise RuntimeError(f"endpoint did not stop on SIGTERM within {timeout}s\n{self.log()}") from e
        return self.proc.returncode

    def kill(self) -> int:
        """Hard kill (SIGKILL), like a crash."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        return self.proc.returncode

    def __enter__(self) -> "EndpointHandle":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _ping(url: str, timeout: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(url + "/ping", timeout=timeout) as r:
            return r.status == 200 and r.read() == b"Ok.\n"
    except OSError:
        return False


def start_endpoint(path, port: int | None = None, host: str = "127.0.0.1", password: str = "",
                   timeout: float = 60, python: str | None = None, log_level: str = "INFO") -> EndpointHandle:
    """Start ``python -m deploy.local.chdb_endpoint`` on ``path``; wait until /ping answers."""
    path = str(path)
    os.makedirs(path, exist_ok=True)
    port = port or free_port(host)
    log_path = os.path.join(os.path.dirname(os.path.abspath(path)) or ".",
                            f"chdb_endpoint-{os.path.basename(os.path.abspath(path))}-{port}.log")
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if password:
        env["CHDB_ENDPOINT_PASSWORD"] = password  # kept off the command line
    cmd = [python or sys.executable, "-m", "deploy.local.chdb_endpoint", "--path", path, "--host", host,
           "--port", str(port), "--log-level", log_level]
    logf = open(log_path, "ab")
    try:
        proc = subprocess.Popen(cmd, cwd=str(REPO_ROOT), env=env, stdout=logf, stderr=subprocess.STDOUT)
    finally:
        logf.close()
    handle = EndpointHandle(path=path, host=host, port=port, proc=proc, log_path=log_path, password=password)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chdb endpoint exited with {proc.returncode}\n{handle.log()}")
        if _ping(handle.url):
            return handle
        time.sleep(0.1)
    handle.kill()
    raise RuntimeError(f"chdb endpoint did not answer /ping within {timeout}s\n{handle.log()}")
