"""The local supervisor restarts a child that exits on its own and stops with SIGTERM."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

from pulse.config import REPO_ROOT

CHILD = """
import pathlib, sys, time
runs = pathlib.Path(sys.argv[1])
n = int(runs.read_text()) if runs.exists() else 0
runs.write_text(str(n + 1))
if n == 0:
    sys.exit(70)          # first run: exits like the worker's watchdog
time.sleep(60)            # second run: stays up until told to stop
"""


def test_supervisor_restarts_a_dead_child_and_stops_on_sigterm(tmp_path):
    runs = tmp_path / "runs"
    sup = subprocess.Popen([sys.executable, "-m", "deploy.local.supervise", "--",
                            sys.executable, "-c", CHILD, str(runs)], cwd=REPO_ROOT,
                           stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (runs.exists() and runs.read_text() == "2"):
        time.sleep(0.1)
    assert runs.read_text() == "2", "child was not restarted after exiting with 70"
    sup.send_signal(signal.SIGTERM)
    assert sup.wait(timeout=10) is not None
    time.sleep(1.5)
    assert runs.read_text() == "2", "a child asked to stop must not be restarted"
    assert "exited with 70" in sup.stderr.read()
