"""``python -m streams worker -l info``: the Faust worker of motcua-pulse.

With PULSE_PROFILE=<file> the worker runs under cProfile and writes the stats to <file>
at a clean shutdown (SIGTERM); for bench/bench_pipeline.py --profile-worker.
"""
import faulthandler
import os
import signal

from streams.app import app


def main() -> None:
    # `kill -USR1 <pid>` prints every thread's stack to the log (diagnosing a stuck worker)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    path = os.environ.get("PULSE_PROFILE")
    if not path:
        app.main()
        return
    import cProfile
    prof = cProfile.Profile()
    prof.enable()
    try:
        app.main()
    finally:
        prof.disable()
        prof.dump_stats(path)


if __name__ == "__main__":
    main()
