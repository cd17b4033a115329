"""The worker's counters: events, stages, GC, consumer lag, freshness.

Read by the status page (streams.web), written to ClickHouse's ``pipeline_metrics`` every
``metrics_interval_s`` (``metric_rows``) and used by the stall watchdog (streams.watchdog).
Consumer lag is computed in one place (``partition_lags``).
"""
from __future__ import annotations

import gc
import logging
import operator
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from pulse.histogram import Histogram

log = logging.getLogger("motcua.streams.metrics")
_TOPIC_PARTITION = operator.attrgetter("topic", "partition")


class GCClock:
    """The cyclic GC's share of the process: time, collections, the longest one (a pause of
    the whole worker; one longer than 0.2 s is logged). The dossier table is millions of
    long-lived containers, so it is worth watching. One per process (``GC_CLOCK``), in
    ``gc.callbacks`` once however many ``Metrics`` are built (tests build many)."""

    def __init__(self):
        self.s = 0.0
        self.max_s = 0.0
        self.collections = 0
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = time.thread_time()
            return
        took = time.thread_time() - self._t0
        self.s += took
        self.collections += 1
        if took > self.max_s:
            self.max_s = took
        if took > 0.2:
            log.warning("pulse: GC of generation %s took %.2f s (%s objects collected, counts now %s)",
                        info.get("generation"), took, info.get("collected"), gc.get_count())

    def install(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)


GC_CLOCK = GCClock()

# CPU-side time per stage of the dossier batches (where a batch's time goes)
STAGES = ("validate", "apply", "write_wait", "kafka_side", "wait_input", "wait_finish", "ack_wait")


class Metrics:
    def __init__(self, sinks=()):
        self.events: dict = defaultdict(int)    # (topic, partition) -> processed messages
        self.freshness_ms: dict = {}            # (topic, partition) -> now - max event_time at write
        self.duplicates = 0
        self.dead_letters = 0
        self.illegal_transitions = 0            # confirmed after the grace period (streams.transitions)
        self.illegal_transitions_healed = 0     # healed within it (a predecessor arrived late)
        self.applied = 0
        self.ratings = 0
        self.rating_duplicates = 0
        self.overdue_marked = 0
        self.due_soon = 0
        self.batches = 0
        self.evicted = 0                        # closed dossiers that left the table (streams.eviction)
        self.restored = 0                       # evicted dossiers read back from ClickHouse for a late event
        self.history_queries = 0                # ClickHouse lookups for dossiers missing from the table
        self.dossiers_held = 0                  # dossiers in the table at the last eviction scan
        self.flow_unstuck = 0
        self.last_batch_s = 0.0
        self.batch_latency = Histogram()        # each dossier batch's time, take to finished (last_batch_s)
        self.dead_letter_rules: dict = defaultdict(int)   # (kind, rule) -> dead letters breaking it
        self.alert_kinds: dict = defaultdict(int)         # alert kind -> alerts raised
        self.stage_s = dict.fromkeys(STAGES, 0.0)
        self._prev = (time.monotonic(), 0)
        self._sinks = list(sinks)
        GC_CLOCK.install()

    def total(self) -> int:
        return sum(self.events.values())

    def count(self, messages) -> None:
        """A batch's messages, per (topic, partition)."""
        events = self.events
        for tp in map(_TOPIC_PARTITION, messages):
            events[tp] += 1

    def batch_done(self, seconds: float) -> None:
        """A dossier batch finished ``seconds`` after it was taken from the inbox."""
        self.last_batch_s = seconds
        self.batch_latency.observe(seconds)

    def dead_lettered(self, dead) -> None:
        """A batch's dead letters (expectations.deadletter.DeadLetter): the total, and per
        (kind, rule) each rule a letter broke (a letter breaking two rules counts under both)."""
        self.dead_letters += len(dead)
        rules = self.dead_letter_rules
        for d in dead:
            for rule in d.rules:
                rules[(d.kind, rule)] += 1

    def alerted(self, alerts) -> None:
        """Alerts raised (rows of streams.core.alert_row), per kind."""
        kinds = self.alert_kinds
        for a in alerts:
            kinds[a["kind"]] += 1

    def rate(self) -> float:
        """Messages per second since the previous call."""
        t, total = time.monotonic(), self.total()
        pt, ptotal = self._prev
        self._prev = (t, total)
        return (total - ptotal) / max(1e-3, t - pt)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items()
                if not k.startswith("_") and not isinstance(v, (dict, Histogram))} | {
            "events": self.total(),
            "dead_letter_rules": {f"{kind}:{rule}": n for (kind, rule), n in sorted(self.dead_letter_rules.items())},
            "alert_kinds": dict(sorted(self.alert_kinds.items())), "gc_s": round(GC_CLOCK.s, 3), "gc_max_s": round(GC_CLOCK.max_s, 3),
            "gc_collections": GC_CLOCK.collections,
            "stage_s": {k: round(v, 3) for k, v in self.stage_s.items()},
            "sinks": {sk.name: {"batches": sk.stats.batches, "insert_s": round(sk.stats.insert_s, 3),
                                "retries": sk.stats.retries} for sk in self._sinks if sk.stats.batches}}


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int      # -1: nothing committed yet
    end: int            # -1: not fetched yet
    lag: int


def partition_lags(view, assignment, inputs: set[str]) -> list[PartitionLag]:
    """Lag of each assigned input partition: end offset - committed offset (the end offset
    when nothing is committed yet; 0 when the end is not known yet)."""
    out = []
    for tp in sorted(assignment):
        if tp.topic not in inputs:
            continue
        end = view.highwater(tp)
        committed = view.committed(tp)
        end = -1 if end is None else int(end)
        committed = -1 if committed is None else committed
        if end >= 0 and committed >= 0:
            lag = max(0, end - committed)
        else:
            lag = max(0, end)
        out.append(PartitionLag(tp.topic, tp.partition, committed, end, lag))
    return out


def metric_rows(lags: list[PartitionLag], metrics: Metrics, *, now: datetime, worker: str, group: str) -> list[dict]:
    """``pipeline_metrics`` rows, one per input partition."""
    rate = metrics.rate()
    return [{"ts": now, "worker": worker, "consumer_group": group, "topic": p.topic, "partition": p.partition,
             "committed_offset": p.committed, "end_offset": p.end, "lag": p.lag,
             "freshness_ms": metrics.freshness_ms.get((p.topic, p.partition), 0), "events_per_s": rate}
            for p in lags]
