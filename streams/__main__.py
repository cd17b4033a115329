"""``python -m streams worker -l info``: the Faust worker of motcua-pulse.

Settings.gc_threshold (PULSE_GC_THRESHOLD=gen0,gen1,gen2) sets the cyclic GC's thresholds
(``gc_thresholds``). With Settings.profile_path (PULSE_PROFILE=<file>) the worker runs under
cProfile and writes the stats to <file> at a clean shutdown (SIGTERM); for
bench/bench_pipeline.py --profile-worker.
"""
import faulthandler
import gc
import signal

from pulse.config import Settings


GC_THRESHOLDS = (500_000, 10, 100)


def gc_thresholds(spec: str) -> tuple[int, int, int]:
    """The cyclic GC's thresholds: ``PULSE_GC_THRESHOLD`` ("gen0,gen1,gen2"), else GC_THRESHOLDS.

    Why so high: a worker's young objects are mostly its batches in flight (messages,
    decoded events, rows waiting for ClickHouse, futures waiting for the broker), about
    200,000 live containers that CPython's collector walks at every young collection. At
    CPython's default (700, 10, 10) that was a third of the worker's CPU; at (50,000, 20,
    100) it was still 1.8 s of GC per 130,000 events (15 µs per event, 34 collections,
    bench_pipeline's simulated feed); at (500,000, 10, 100) 0.23 s in 2 collections, the
    longest 0.15 s. Reference cycles are rare here (the table holds tuples of plain
    values, untracked after one look), so collecting seldom costs little memory."""
    if not spec.strip():
        return GC_THRESHOLDS
    try:
        values = tuple(int(x) for x in spec.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise SystemExit(f"PULSE_GC_THRESHOLD={spec!r}: expected three positive integers, e.g. 500000,10,100")
    return (values[0], values[1], values[2])


def main() -> None:
    from streams.app import build
    settings = Settings.from_env()
    # `kill -USR1 <pid>` prints every thread's stack to the log (diagnosing a stuck worker)
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    gc.set_threshold(*gc_thresholds(settings.gc_threshold))
    app = build(settings).app
    path = settings.profile_path
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
