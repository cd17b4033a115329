"""``python -m streams worker -l info``: the Faust worker of motcua-pulse.

With PULSE_PROFILE=<file> the worker runs under cProfile and writes the stats to <file>
at a clean shutdown (SIGTERM); for bench/bench_pipeline.py --profile-worker.
"""
import faulthandler
import gc
import os
import signal

from streams.app import app


def main() -> None:
    # `kill -USR1 <pid>` prints every thread's stack to the log (diagnosing a stuck worker)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # The dossier table keeps every dossier's event set in memory: millions of small lists
    # that live for months. With CPython's default thresholds (700, 10, 10) the cyclic GC
    # keeps rescanning them and took about a third of the worker's CPU at a few hundred
    # thousand dossiers (measured). Collect young objects less often; the recovered table
    # is also frozen out of the GC once the worker is ready (streams.agents).
    gc.set_threshold(50_000, 20, 100)
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
