"""Great Expectations micro-batches in a separate process.

GX is heavy (~2 s import, ~200 MiB, tens of ms per validation) and, run in a thread of the
worker, it was seen to stall the Faust consumer mid-stream (tests/integration kill test: the
stream stopped receiving right when GX initialised in a thread; never when GX ran after
the input was drained). So the worker hands micro-batches to ONE spawned child process
(``ProcessPoolExecutor(max_workers=1)``): no GIL contention with the hot path, no shared
interpreter state. Only this module is imported by the child (no Faust).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

_pool: ProcessPoolExecutor | None = None


def pool(nice: int = 0) -> ProcessPoolExecutor:
    """The worker's GX child (started on first use). ``nice``: its CPU priority increment."""
    global _pool
    if _pool is None:
        _pool = ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn"),
                                    initializer=_init_child, initargs=(os.getpid(), int(nice)))
    return _pool


_nice = 0   # in the child: the CPU priority increment it takes once GX is loaded


def _init_child(parent: int, nice: int = 0, poll_s: float = 1.0) -> None:
    """In the child: remember its CPU priority (taken once GX is loaded), and exit when the
    worker is gone.

    Priority: GX's runs (~0.3 s of CPU each) were measured taking 10 of 71 µs of CPU per
    event in a two-worker run on two cores, time the workers then lacked. Niced, the child
    uses what the stream leaves. Its start-up (importing GX, ~2.8 s of CPU, once) runs at
    the worker's own priority, while the worker starts and joins its group: niced from
    the start, a child starved by a busy stream loaded GX seconds into the load instead
    (bench_pipeline: 5-10 µs per event of a 15 s steady window).

    The worker is crash-only (kill -9, os._exit): its pool child, blocked on a call queue
    whose write end it holds itself, never saw the end and stayed behind with GX loaded
    (~240 MiB each; eight were found after one test run)."""
    global _nice
    _nice = max(0, int(nice))

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os._exit(0)
    threading.Thread(target=watch, name="follow-parent", daemon=True).start()


def _lower_priority() -> None:
    global _nice
    if _nice > 0:
        os.nice(_nice)
        _nice = 0


_imported: tuple[int, object] | None = None   # in the child: (catalogue version, its GX runner)


def _runner():
    """In the child: the GX runner with the reference catalogue in force, as the worker's
    checker has it (streams.catalogue): an imported catalogue (ClickHouse ref_catalogue,
    rebuilt when a newer version appears; one small query per micro-batch), else the bundled
    set. ClickHouse unreachable: the runner the child already has."""
    global _imported
    from expectations.gx_batch import GXBatchRunner, get_runner
    try:
        from pulse.config import Settings
        from sinks.client import get_client
        from sinks.reference import catalogue_version, read_catalogue
        settings = Settings.from_env()
        client = get_client(settings)
        try:
            version = catalogue_version(client)
            if version > 0 and (_imported is None or _imported[0] != version):
                found = read_catalogue(client)
                if found is not None:
                    _imported = (found[0], GXBatchRunner(found[1], settings))
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - keep validating with what the child has
        pass
    return _imported[1] if _imported is not None else get_runner()


def warm() -> None:
    """In the child: import GX and build the runner (the first call's cost, ahead of time),
    then lower the child's priority."""
    try:
        _runner()
    finally:
        _lower_priority()


def validate(batches: dict) -> list[dict]:
    """In the child: {suite: (batch_id, rows)} -> dq_results rows."""
    _lower_priority()   # (if warm() was not called first)
    runner = _runner()
    out: list[dict] = []
    for suite, (batch_id, rows) in batches.items():
        out += [r.to_row() for r in runner.validate_batch(rows, suite, batch_id)]
    return out


def shutdown() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
        _pool = None
