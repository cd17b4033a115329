"""Safety nets for a stalled consumer: resume partitions left suspended, else exit.

A Faust/mode flow-control stall was seen under kill -9 tests: a partition taken out of the
fetch set when its stream buffer was under pressure (``Consumer.on_buffer_full``) is
sometimes never put back (the pressure-drop callback does not fire), and the worker idles
with lag. When nothing was received for two ticks while partitions sit in the "buffered"
set, they are put back and the log says so. When partitions are NOT in that set (seen with
a small stream buffer), the crash-only net: input lag, no message for ``stall_exit_s`` and
no row waiting in any sink (so not ClickHouse backpressure) -> log the evidence and exit;
the supervisor restarts the worker and, the pipeline being exact under kill -9, nothing is
lost or doubled.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time

from streams.metrics import partition_lags

log = logging.getLogger("motcua.streams.watchdog")


def await_chain(obj, depth: int = 0) -> list[str]:
    """Where a coroutine / async generator chain is suspended (innermost last)."""
    out = []
    while obj is not None and depth < 60:
        frame = getattr(obj, "cr_frame", None) or getattr(obj, "ag_frame", None) or getattr(obj, "gi_frame", None)
        if frame is not None:
            where = "/".join(frame.f_code.co_filename.rsplit("/", 2)[-2:])     # package/module.py
            out.append(f"{where}:{frame.f_lineno} {frame.f_code.co_name}")
        nxt = getattr(obj, "cr_await", None) or getattr(obj, "ag_await", None) or getattr(obj, "gi_yieldfrom", None)
        if nxt is None and hasattr(obj, "_coro"):
            nxt = obj._coro
        obj = nxt
        depth += 1
    return out


def flow_state(view) -> dict:
    return {"buffered": sorted(f"{tp.topic}:{tp.partition}" for tp in view.buffered()),
            "paused": sorted(f"{tp.topic}:{tp.partition}" for tp in view.paused()),
            "flow_active": view.flow_active(), "in_recovery": view.in_recovery()}


class Watchdog:
    STALLED_TICKS = 2

    def __init__(self, rt, view, assignment, inputs: set[str]):
        self.rt, self.view, self.assignment, self.inputs = rt, view, assignment, inputs
        self.events = -1
        self.stalled_ticks = 0
        self.since = time.monotonic()

    def tick(self) -> None:
        rt, view = self.rt, self.view
        total = rt.metrics.total()
        if total != self.events:
            self.events = total
            self.stalled_ticks = 0
            self.since = time.monotonic()
            return
        self._maybe_exit()
        buffered = view.buffered()
        if not buffered:
            self.stalled_ticks = 0
            return
        self.stalled_ticks += 1
        if self.stalled_ticks >= self.STALLED_TICKS:
            log.warning("pulse: no input for %d ticks with fetching suspended on %s; resuming them (%s)",
                        self.stalled_ticks, sorted(map(str, buffered)), flow_state(view))
            view.resume_buffered(buffered)
            rt.metrics.flow_unstuck += 1
            self.stalled_ticks = 0

    def _maybe_exit(self) -> None:
        limit = self.rt.tunables.stall_exit_s
        if limit <= 0 or time.monotonic() - self.since < limit:
            return
        if any(sk.pending for sk in self.rt.sinks.all()):
            return
        lag = sum(p.lag for p in partition_lags(self.view, self.assignment(), self.inputs) if p.committed >= 0)
        if lag <= 0:
            return
        chains = {t.get_name(): await_chain(t.get_coro()) for t in asyncio.all_tasks()}
        log.error("pulse: stream stalled for %.0f s with input lag %d and idle sinks; exiting for a restart. "
                  "flow=%s tasks=%s", time.monotonic() - self.since, lag, flow_state(self.view), chains)
        logging.shutdown()
        os._exit(70)
