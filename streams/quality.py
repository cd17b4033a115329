"""Great Expectations micro-batches: when to run one, on what, and its results to ClickHouse.

The per-event Checker applies the suites to every event (dead letters are never sampled);
GX runs the same suites on micro-batches in a child process (streams.dq), off the hot
path, for the data-quality board. Under load GX sees a SAMPLE: at most ``gx_batch_rows``
rows per suite (the newest), one run per ``gx_min_interval_s``. A GX run costs ~0.3 s of
CPU plus ~10 µs per row, so validating every row in runs as often as batches come would
take much of one of the machine's two cores at 20,000 events/s. The board reads rates
(share of rows failing each rule), which a sample of the newest rows estimates; each
dq_results row carries the batch size it was run on.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import time

log = logging.getLogger("motcua.streams.quality")

SUITES = ("dossier_events", "ratings")


def gx_due(waiting: list[int], cap: int, since_s: float, every_s: float, loaded_every_s: float,
           force: bool = False) -> bool:
    """Whether a GX run is due, given the rows waiting per suite (each at most ``cap``) and
    the seconds since the last run. A light stream: every ``every_s``, on every row. Once a
    suite has more rows than a run takes (the cap: under load), one run per
    ``loaded_every_s`` on the newest rows: a run's cost is nearly fixed, so its cadence is
    what costs. ``force``: now, if anything waits."""
    if not any(waiting):
        return False
    if force:
        return True
    loaded = any(n >= cap for n in waiting)
    return since_s >= (loaded_every_s if loaded else every_s)


class GxScheduler:
    """The verdicts waiting for the next micro-batch, per suite, and the child's runs."""

    def __init__(self, tunables):
        self.tunables = tunables
        self.waiting: dict[str, list] = {s: [] for s in SUITES}
        self.last = time.monotonic()
        self.task: asyncio.Task | None = None
        self.warm = None      # the child's start-up (a concurrent Future): done once GX is loaded

    def start_child(self) -> None:
        """Start the GX child and load GX in it while the worker joins its group. Done at
        the first micro-batch instead, that took ~2.8 s of CPU in the middle of the load on
        a machine with two cores (bench_pipeline). Niced, it uses what is idle."""
        if not self.tunables.gx_enabled:
            return
        from streams import dq
        self.warm = dq.pool(nice=self.tunables.gx_nice).submit(dq.warm)

    def state(self) -> str:
        """'off', 'starting' or 'ready' (GX loaded in the child; 'failed' if that raised)."""
        if not self.tunables.gx_enabled:
            return "off"
        if self.warm is None or not self.warm.done():
            return "starting"
        return "failed" if self.warm.exception() is not None else "ready"

    def maybe_run(self, dq_sink, force: bool = False) -> None:
        """Start a micro-batch in the child if one is due (``gx_due``)."""
        t = self.tunables
        if not t.gx_enabled:
            for k in self.waiting:
                self.waiting[k] = []
            return
        cap = t.gx_batch_rows
        for waiting in self.waiting.values():
            if len(waiting) > cap:
                del waiting[: len(waiting) - cap]
        if self.task is not None and not self.task.done():
            return
        if not gx_due([len(r) for r in self.waiting.values()], cap, time.monotonic() - self.last,
                      t.gx_batch_seconds, t.gx_min_interval_s, force):
            return
        # the verdicts' rows (a passing event's row is built here, when a micro-batch takes it)
        batches = {k: [verdict.row for verdict in v] for k, v in self.waiting.items() if v}
        self.waiting = {s: [] for s in SUITES}
        self.last = time.monotonic()
        self.task = asyncio.ensure_future(self._run(dq_sink, batches))

    async def _run(self, dq_sink, batches: dict) -> None:
        from streams import dq
        try:
            payload = {}
            for suite, batch in batches.items():
                ids = "|".join(str(r.get("event_id") or r.get("rating_id")) for r in batch)
                payload[suite] = (f"{suite}:{hashlib.blake2b(ids.encode(), digest_size=12).hexdigest()}", batch)
            child = dq.pool(nice=self.tunables.gx_nice)
            rows = await asyncio.get_running_loop().run_in_executor(child, dq.validate, payload)
            if rows:
                await dq_sink.write_async(rows)
        except Exception:  # noqa: BLE001 - data-quality reporting must not stop the pipeline
            log.exception("GX micro-batch failed")
