"""Generation in a child process, events handed over in batches (for the Kafka path).

Two hand-over shapes, both a pickled list per message (never one message per event):
* generic (any output): lists of (logical topic, key, value, timestamp_ms) in generation order;
* Kafka (``partitions`` given: partition count per logical topic): the child also does the
  partitioning (murmur2 of the key, as kafka-python's default partitioner) and hands over
  ``(logical topic, partition, [(key, value, timestamp_ms), ...])`` chunks, so the producing
  process does no per-event Python work at all; a partition's events keep their order.
"""
from __future__ import annotations

import multiprocessing as mp
import queue as queue_mod

from simulator.model import SimConfig, Summary, generate

BATCH = 2000      # events per hand-over
SWEEP = 20_000    # Kafka shape: every this many events, hand over every partition's part-chunk


def _child(config: SimConfig, queue, partitions: dict[str, int] | None) -> None:
    summary = Summary()
    if partitions is None:
        batch = []
        for ev in generate(config, summary):
            batch.append((ev.topic, ev.key, ev.value, int(ev.event_time.timestamp() * 1000)))
            if len(batch) >= BATCH:
                queue.put(batch)
                batch = []
        if batch:
            queue.put(batch)
    else:
        from aiokafka.partitioner import murmur2   # the same hash as kafka-python's default partitioner
        cache: dict[tuple[str, bytes], tuple[str, int]] = {}   # (topic, key) -> (topic, partition)
        buffers: dict[tuple[str, int], list] = {}
        n = 0
        for ev in generate(config, summary):
            n += 1
            if n % SWEEP == 0:   # a sparse partition's events do not wait for a full chunk
                for (topic, p), b in buffers.items():
                    if b:
                        queue.put((topic, p, b))
                        buffers[(topic, p)] = []
            tk = (ev.topic, ev.key)
            tp = cache.get(tk)
            if tp is None:
                if len(cache) > 200_000:
                    cache.clear()
                tp = cache[tk] = (ev.topic, (murmur2(ev.key) & 0x7FFFFFFF) % partitions[ev.topic])
            buf = buffers.get(tp)
            if buf is None:
                buf = buffers[tp] = []
            buf.append((ev.key, ev.value, int(ev.event_time.timestamp() * 1000)))
            if len(buf) >= BATCH:
                queue.put((tp[0], tp[1], buf))
                buffers[tp] = []
        for (topic, p), b in buffers.items():
            if b:
                queue.put((topic, p, b))
    queue.put(summary)


def generate_batches(config: SimConfig, summary: Summary, partitions: dict[str, int] | None = None):
    """Yield what the child hands over (see the module docstring) in order; at the end, copy
    the child's summary into ``summary``. Raises if the child dies."""
    ctx = mp.get_context("spawn")   # no fork: the parent may already run producer threads
    queue = ctx.Queue(maxsize=16)    # bounded: the child waits when the producer lags
    proc = ctx.Process(target=_child, args=(config, queue, partitions), daemon=True,
                       name="simulator-generate")
    proc.start()
    try:
        while True:
            try:
                item = queue.get(timeout=1.0)
            except queue_mod.Empty:
                if not proc.is_alive():
                    raise RuntimeError(f"generator process died (exit code {proc.exitcode})") from None
                continue
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
