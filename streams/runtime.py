"""The worker's resources and state, one per process: what every stage of the pipeline reads.

``Runtime.build(settings, outputs)`` does the start-up I/O once (ClickHouse migrations and
the row-layout check, reference data, the per-event checker, the sinks); tests build a
``Runtime`` directly with their own outputs and sinks, no broker and no ClickHouse.
"""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any

from pulse.config import Settings
from streams.deadlines import DeadlineIndex
from streams.dossiers import Overlay
from streams.metrics import Metrics
from streams.quality import GxScheduler
from streams.ratings import RatingIds
from streams.transitions import TransitionWatch

log = logging.getLogger("motcua.streams.runtime")


@dataclass
class Outputs:
    """Where a batch's Kafka side goes: the dossier table (its changelog) and the topics.
    Each topic has ``send(key=, value=) -> awaitable future``; the table has ``reader()``
    and ``put_many(items) -> futures`` (streams.faust_adapter.DurableTable)."""
    table: Any
    dead_letters: Any
    alerts: Any
    dossier_state: Any


@dataclass
class Sinks:
    """One batched ClickHouse writer per table (sinks.writer.ClickHouseSink)."""
    dossier_events: Any
    dossier_state: Any
    ratings: Any
    dead_letters: Any
    alerts: Any
    dq_results: Any
    pipeline_metrics: Any

    def all(self) -> list:
        return [getattr(self, f.name) for f in fields(self)]

    @classmethod
    def for_clickhouse(cls, settings: Settings) -> "Sinks":
        from sinks.client import get_client
        from sinks.rows import SINK_KEYS, TABLE_COLUMNS
        from sinks.writer import ClickHouseSink
        t = settings.tunables

        def sink(table: str, max_rows: int = 20_000, on_refused=None):
            return ClickHouseSink(lambda: get_client(settings), table, TABLE_COLUMNS[table],
                                  key_columns=SINK_KEYS[table], max_rows=max_rows, max_seconds=0.2,
                                  max_buffer_rows=max(100_000, 4 * max_rows),
                                  min_interval_s=t.sink_min_interval_s, busy_interval_s=t.sink_busy_interval_s,
                                  busy_rows_per_s=t.sink_busy_rows_per_s, name=table, on_refused=on_refused)
        # The dead-letter table's own refusals are not dead-lettered (that would loop): its
        # sink blocks and retries as before, and says so in the log.
        dead = sink("dead_letters", 5000)

        def refused(table: str):
            return lambda rows, message: dead.write(refused_dead_letters(table, rows, message), wait=True)
        return cls(dossier_events=sink("dossier_events", on_refused=refused("dossier_events")),
                   dossier_state=sink("dossier_state", on_refused=refused("dossier_state")),
                   ratings=sink("ratings", on_refused=refused("ratings")), dead_letters=dead,
                   alerts=sink("alerts", 5000, on_refused=refused("alerts")),
                   dq_results=sink("dq_results", 5000, on_refused=refused("dq_results")),
                   pipeline_metrics=sink("pipeline_metrics", 5000, on_refused=refused("pipeline_metrics")))


class Runtime:
    """Settings, outputs, sinks, the checker and the dossier logic, and the state the
    stages share (deadline index, GX scheduling, rating ids, batches in flight)."""

    def __init__(self, settings: Settings, outputs: Outputs, sinks: Sinks, *, checker, logic, reference=None,
                 worker_name: str | None = None, history=None):
        self.settings = settings
        self.tunables = settings.tunables
        self.outputs = outputs
        self.sinks = sinks
        self.checker = checker
        self.logic = logic
        self.reference = reference
        self.catalogue_version = 0               # of the reference in force (streams.catalogue; 0 = bundled)
        self.metrics = Metrics(sinks.all())
        self.worker_name = worker_name or f"{socket.gethostname()}:{os.getpid()}"
        self.started_at = datetime.now(timezone.utc)
        self.deadlines = DeadlineIndex(settings.overdue_warning_hours)
        self.transitions = TransitionWatch(settings.tunables.illegal_transition_grace_s)
        self.quality = GxScheduler(settings.tunables)
        self.ratings = RatingIds(settings.tunables.rating_recent_ids)
        self.overlay = Overlay()
        self.history = history                   # earlier events of evicted dossiers (streams.eviction.History)
        # the stream's clock per input partition: the newest event time applied there (ms). Per
        # partition: partitions drain a backlog at different speeds, and a single clock ran
        # days of event time ahead of the lagging ones (bench_pipeline: history looked up for
        # most batches of a province month replayed as a backlog)
        self.clocks: dict = {}
        self.ready = False

    @classmethod
    def build(cls, settings: Settings, outputs: Outputs) -> "Runtime":
        from expectations.checks import Checker
        from sinks.migrate import migrate_settings
        from streams import catalogue
        from streams.core import DossierLogic
        from streams.eviction import History

        migrate_settings(settings, log=log.info)
        check_row_layouts(settings)
        # the imported catalogue in ClickHouse, else the bundled set (streams.catalogue)
        version, reference = catalogue.initial(settings)
        rt = cls(settings, outputs, Sinks.for_clickhouse(settings),
                 checker=Checker.from_suites(reference, settings),
                 logic=DossierLogic.from_settings(settings, reference=reference), reference=reference,
                 history=History(settings))
        rt.catalogue_version = version
        return rt

    def alert_fresh(self, deadline: datetime, now: datetime) -> bool:
        """Overdue alerts are for deadlines passing now, not for a month of history replayed."""
        from datetime import timedelta
        return deadline >= now - timedelta(minutes=self.settings.alert_window_minutes)


REFUSED_RULE = "sink.refused"


def refused_dead_letters(table: str, rows, message: str) -> list:
    """Dead-letter rows for rows ClickHouse refused (sinks.writer's ``on_refused``): rule
    ``sink.refused``, the server's message as the reason, the row as JSON as the raw bytes.
    Keyed by the row's own key (sinks.rows.SINK_KEYS) in a pseudo-topic ``clickhouse.TABLE``
    (dead_letters is ordered by topic, partition, offset): a replay after a crash writes the
    same dead letter again, and ReplacingMergeTree keeps one."""
    import hashlib

    import orjson

    from sinks.rows import SINK_KEYS, TABLE_COLUMNS, dead_letter_row
    columns = TABLE_COLUMNS[table]
    key_at = [columns.index(c) for c in SINK_KEYS[table]]
    out = []
    for row in rows:
        values = list(row.values()) if isinstance(row, dict) else list(row)
        key = "|".join(str(values[i]) for i in key_at)
        offset = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=7).digest(), "big")
        raw = orjson.dumps(dict(zip(columns, values)), default=str)
        out.append(dead_letter_row(topic=f"clickhouse.{table}", partition=0, offset=offset, raw=raw,
                                   rules=[REFUSED_RULE], reasons=[message], kind=table,
                                   dead_letter_id=f"{REFUSED_RULE}:{table}:{key}"))
    return out


def check_row_layouts(settings: Settings) -> None:
    """The rows the sinks write match the tables ClickHouse has (DESCRIBE), or start fails
    naming the table and the columns (sinks.rows)."""
    from sinks.client import database_of, get_client
    from sinks.layout import check_layouts
    client = get_client(settings)
    try:
        check_layouts(client, database_of(settings))
    finally:
        client.close()
