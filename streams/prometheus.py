"""The worker's figures in the Prometheus text format (``GET /metrics`` on its web port).

Nothing here counts or times anything: at each scrape ``WorkerCollector`` reads what the
worker already keeps (streams.metrics.Metrics, each sink's sinks.writer.SinkStats, the
consumer lag from streams.metrics.partition_lags, the one definition of lag) and writes
it out. So the status page, ``pipeline_metrics`` in ClickHouse and Prometheus show the
same numbers. One ``CollectorRegistry`` per worker (``registry(pulse)``), not
prometheus_client's global one: tests build several workers' apps in one process.

Names are ``motcua_pulse_*`` with the unit in the name; labels are few and bounded:
topic and partition of the input topics, the ClickHouse table of a sink, a dead letter's
kind and rule (rules are the suites' and the contract's names), an alert's kind.
"""
from __future__ import annotations

from typing import Any, Iterable

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from pulse.histogram import Histogram
from streams.metrics import GC_CLOCK, partition_lags

# the ``Metrics`` counters exposed as they are: attribute -> (metric name, help)
COUNTERS = {
    "batches": ("motcua_pulse_batches", "Dossier batches finished (in ClickHouse, Kafka side sent)."),
    "applied": ("motcua_pulse_dossier_events_applied", "Dossier events applied to their dossier's state."),
    "duplicates": ("motcua_pulse_dossier_event_duplicates", "Dossier events already applied (by event id)."),
    "ratings": ("motcua_pulse_ratings_written", "Kiosk ratings written."),
    "rating_duplicates": ("motcua_pulse_rating_duplicates", "Kiosk ratings already seen (by rating id)."),
    "evicted": ("motcua_pulse_dossiers_evicted", "Closed dossiers that left the worker's table."),
    "restored": ("motcua_pulse_dossiers_restored", "Evicted dossiers read back from ClickHouse for a late event."),
    "illegal_transitions": ("motcua_pulse_illegal_transitions", "Illegal status transitions confirmed."),
    "flow_unstuck": ("motcua_pulse_flow_unstuck", "Times the watchdog resumed partitions left suspended."),
}


def _histogram(name: str, doc: str, labels: list[str], series: Iterable[tuple[list[str], Histogram]]) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=labels)
    for values, h in series:
        # HistogramMetricFamily wants the bounds as text, +Inf last
        family.add_metric(values, [(("+Inf" if b == float("inf") else repr(b)), n) for b, n in h.cumulative()],
                          sum_value=h.sum)
    return family


class WorkerCollector(Collector):
    """The figures of one worker (``pulse``: its streams.app.Pulse), read at each scrape."""

    def __init__(self, pulse: Any):
        self.pulse = pulse

    def collect(self) -> Iterable[Metric]:
        pulse = self.pulse
        rt = pulse.runtime
        ready = GaugeMetricFamily("motcua_pulse_worker_ready",
                                  "1 once partitions are assigned, tables recovered and the deadline index rebuilt.")
        ready.add_metric([], 1.0 if pulse.ready() else 0.0)
        yield ready
        if rt is None:       # starting: ClickHouse migrations, sinks not built yet
            return
        m = rt.metrics
        yield from self._lag(pulse)
        fresh = GaugeMetricFamily(
            "motcua_pulse_freshness_seconds",
            "Per input partition, at its last finished batch: the time landed (ClickHouse has the rows) minus "
            "the newest event time of the batch.", labels=["topic", "partition"])
        for (topic, partition), ms in sorted(m.freshness_ms.items()):
            fresh.add_metric([topic, str(partition)], ms / 1000.0)
        yield fresh
        messages = CounterMetricFamily("motcua_pulse_messages", "Input messages processed (batches acked).",
                                       labels=["topic", "partition"])
        for (topic, partition), n in sorted(m.events.items()):
            messages.add_metric([topic, str(partition)], n)
        yield messages
        for attr, (name, doc) in COUNTERS.items():
            yield CounterMetricFamily(name, doc, value=getattr(m, attr))
        alerts = CounterMetricFamily("motcua_pulse_alerts", "Alerts raised, by kind.", labels=["kind"])
        for kind, n in sorted(m.alert_kinds.items()):
            alerts.add_metric([kind], n)
        yield alerts
        yield from self._dead_letters(rt)
        yield _histogram("motcua_pulse_batch_duration_seconds",
                         "Each dossier batch's time from its take from the inbox to finished (rows in ClickHouse, "
                         "Kafka side sent).", [], [([], m.batch_latency)])
        stages = CounterMetricFamily("motcua_pulse_stage_seconds",
                                     "Time the batch loops spent per stage (where a batch's time goes).",
                                     labels=["stage"])
        for stage, s in m.stage_s.items():
            stages.add_metric([stage], s)
        yield stages
        gc_s = CounterMetricFamily("motcua_pulse_gc_seconds", "Time in the cyclic garbage collector.",
                                   value=GC_CLOCK.s)
        yield gc_s
        gc_max = GaugeMetricFamily("motcua_pulse_gc_pause_max_seconds", "The longest GC pause of the process.",
                                   value=GC_CLOCK.max_s)
        yield gc_max
        yield from self._sinks(rt.sinks.all())

    def _lag(self, pulse) -> Iterable[Metric]:
        lags = partition_lags(pulse.view, pulse.app.consumer.assignment(), pulse.inputs)
        lag = GaugeMetricFamily("motcua_pulse_consumer_lag_messages",
                                "Per assigned input partition: end offset minus committed offset.",
                                labels=["topic", "partition"])
        committed = GaugeMetricFamily("motcua_pulse_committed_offset",
                                      "Committed offset per assigned input partition (-1: none yet).",
                                      labels=["topic", "partition"])
        end = GaugeMetricFamily("motcua_pulse_end_offset",
                                "End offset (high watermark) per assigned input partition (-1: not fetched yet).",
                                labels=["topic", "partition"])
        for p in lags:
            labels = [p.topic, str(p.partition)]
            lag.add_metric(labels, p.lag)
            committed.add_metric(labels, p.committed)
            end.add_metric(labels, p.end)
        yield from (lag, committed, end)

    def _dead_letters(self, rt) -> Iterable[Metric]:
        dead = CounterMetricFamily(
            "motcua_pulse_dead_letters",
            "Dead letters by kind and by the rule they broke (one letter breaking two rules counts under both). "
            "Rule sink.refused: rows ClickHouse refused, kind = the table.", labels=["kind", "rule"])
        for (kind, rule), n in sorted(rt.metrics.dead_letter_rules.items()):
            dead.add_metric([kind, rule], n)
        from streams.runtime import REFUSED_RULE
        for sink in rt.sinks.all():
            if sink.stats.rows_refused:
                dead.add_metric([sink.name, REFUSED_RULE], sink.stats.rows_refused)
        yield dead

    def _sinks(self, sinks: list) -> Iterable[Metric]:
        def family(kind, name, doc):
            return kind(name, doc, labels=["table"])
        retries = family(CounterMetricFamily, "motcua_pulse_sink_retries",
                         "Failed ClickHouse inserts retried (outages and refusals).")
        outages = family(CounterMetricFamily, "motcua_pulse_sink_outages",
                         "Insert failures begun: a batch's first failed insert (retried until it lands).")
        outage_s = family(CounterMetricFamily, "motcua_pulse_sink_outage_seconds",
                          "Time from a batch's first failed insert to the one that landed (counted when it lands).")
        written = family(CounterMetricFamily, "motcua_pulse_sink_rows_written", "Rows ClickHouse has.")
        pending = family(GaugeMetricFamily, "motcua_pulse_sink_pending_rows",
                         "Rows buffered or being inserted, not yet in ClickHouse.")
        blocked = family(CounterMetricFamily, "motcua_pulse_sink_blocked_seconds",
                         "Time writers waited for room in a full sink buffer (ClickHouse backpressure).")
        for sk in sinks:
            st, labels = sk.stats, [sk.name]
            retries.add_metric(labels, st.retries)
            outages.add_metric(labels, st.outages)
            outage_s.add_metric(labels, st.outage_s)
            written.add_metric(labels, st.rows_written)
            pending.add_metric(labels, sk.pending)
            blocked.add_metric(labels, st.blocked_s)
        yield from (retries, outages, outage_s, written, pending, blocked)
        yield _histogram("motcua_pulse_clickhouse_insert_duration_seconds",
                         "Each successful ClickHouse insert's time, per table.", ["table"],
                         [([sk.name], sk.stats.insert_latency) for sk in sinks])


def registry(pulse: Any) -> CollectorRegistry:
    """A registry of this worker's figures and its process's (CPU, memory, open files)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(WorkerCollector(pulse))
    ProcessCollector(registry=reg)
    return reg
