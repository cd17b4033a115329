"""Generation in a child process, events handed over in batches (for the Kafka path)."""
from __future__ import annotations

import multiprocessing as mp

from simulator.model import SimConfig, Summary, generate

BATCH = 2000


def _child(config: SimConfig, queue) -> None:
    summary = Summary()
    batch = []
    for ev in generate(config, summary):
        batch.append((ev.topic, ev.key, ev.value, int(ev.event_time.timestamp() * 1000)))
        if len(batch) >= BATCH:
            queue.put(batch)
            batch = []
    if batch:
        queue.put(batch)
    queue.put(summary)


def generate_batches(config: SimConfig, summary: Summary):
    """Yield lists of (logical topic, key, value, timestamp_ms) in generation order; at the
    end, copy the child's summary into ``summary``."""
    ctx = mp.get_context("spawn")   # no fork: the parent may already run producer threads
    queue = ctx.Queue(maxsize=16)    # bounded: the child waits when the producer lags
    proc = ctx.Process(target=_child, args=(config, queue), daemon=True, name="simulator-generate")
    proc.start()
    try:
        while True:
            item = queue.get(timeout=600)
            if isinstance(item, Summary):
                summary.__dict__.update(item.__dict__)
                break
            yield item
        proc.join(30)
        if proc.exitcode not in (0, None):
            raise RuntimeError(f"generator process failed (exit code {proc.exitcode})")
    finally:
        if proc.is_alive():
            proc.terminate()
            proc.join(5)
