"""A latency histogram with fixed buckets, kept by the process that times something.

The worker times its batches (streams.dossiers) and its ClickHouse inserts (sinks.writer)
into these; the Prometheus exposition (streams.prometheus) reads them as they are, so
there is one figure, not one here and another there. Plain Python, no Prometheus types:
the sinks and the stream know nothing of how they are exposed. Updated from the event
loop or a sink's thread, read from the event loop: each observation is a few integer and
float additions under the GIL, and a reader may see one observation in the count and not
yet in the sum, which a scrape tolerates.
"""
from __future__ import annotations

from bisect import bisect_left

# Seconds. A dossier batch takes ~0.1 s of CPU and waits for its insert (0.3-1.2 s sink
# interval, streams' tunables); an insert is ~25 ms of CPU in chDB, seconds when ClickHouse
# is loaded; the top buckets catch outages (retries until it lands).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Histogram:
    """Counts of observations per bucket (``le`` upper bounds, +Inf implied) and their sum."""

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS):
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)   # the last one: above every bound
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (le = "less or equal")
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """[(upper bound, observations <= it), ..., (inf, all)], as Prometheus exposes them."""
        out, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts):
            total += n
            out.append((bound, total))
        return out
