"""Keep one local process running: restart it when it exits on its own.

    python -m deploy.local.supervise -- python -m streams worker -l info

Why: the Faust worker exits on purpose when its flow-control watchdog sees a stall (exit
code 70), and a crash must not leave a leader's board frozen until someone runs
`make up`. The supervisor restarts the child with a growing pause (1 s up to 30 s, reset
after a minute of healthy running). SIGTERM/SIGINT stop the child cleanly and then the
supervisor; it never restarts a child that was asked to stop.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

_stopping = False
_child: subprocess.Popen | None = None


def _on_signal(signum, _frame):
    global _stopping
    _stopping = True
    if _child is not None and _child.poll() is None:
        _child.send_signal(signum)


def run(cmd: list[str]) -> int:
    global _child
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    pause = 1.0
    while True:
        started = time.monotonic()
        _child = subprocess.Popen(cmd)
        code = _child.wait()
        if _stopping:
            return code
        ran = time.monotonic() - started
        pause = 1.0 if ran > 60 else min(pause * 2, 30.0)
        print(f"supervise: {' '.join(cmd[:4])}… exited with {code} after {ran:.0f} s; "
              f"restarting in {pause:.0f} s", file=sys.stderr, flush=True)
        deadline = time.monotonic() + pause
        while time.monotonic() < deadline and not _stopping:
            time.sleep(0.2)
        if _stopping:
            return code


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
