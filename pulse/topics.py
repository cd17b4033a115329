"""Every Kafka topic of the pipeline, declared once.

The admin tool (``pulse topics create``) creates them with kafka-python's admin client,
and the Faust app binds to them by the same logical names, so partitions, retention and
compaction live only here.
"""
from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str                 # logical name; the full name is Settings.topic(name)
    partitions: int
    retention_ms: int         # -1: keep forever
    compacted: bool = False
    description: str = ""

    def config(self) -> dict[str, str]:
        cfg = {"retention.ms": str(self.retention_ms)}
        if self.compacted:
            cfg["cleanup.policy"] = "compact"
        return cfg


# Inputs keep 30 days: long enough to replay a month into a rebuilt ClickHouse.
DOSSIER_EVENTS = TopicSpec("dossier-events", 4, 30 * DAY_MS,
                           description="Dossier status events (contract dossier-status), keyed by dossier code")
RATINGS = TopicSpec("ratings", 2, 30 * DAY_MS,
                    description="Kiosk satisfaction ratings (contract kiosk-rating), keyed by kiosk id")
DEAD_LETTERS = TopicSpec("dead-letters", 1, 90 * DAY_MS,
                         description="Rejected events with their raw bytes and the rules they failed")
ALERTS = TopicSpec("alerts", 1, 90 * DAY_MS,
                   description="Threshold, silence and deadline alerts")
DOSSIER_STATE = TopicSpec("dossier-state", 4, -1, compacted=True,
                          description="Current state per dossier (compacted), for downstream consumers")
AGGREGATES = TopicSpec("aggregates", 1, 7 * DAY_MS,
                       description="Aggregate deltas emitted by the stream")
DATA_QUALITY = TopicSpec("data-quality", 1, 30 * DAY_MS,
                         description="Great Expectations micro-batch validation results")

ALL_TOPICS: tuple[TopicSpec, ...] = (
    DOSSIER_EVENTS, RATINGS, DEAD_LETTERS, ALERTS, DOSSIER_STATE, AGGREGATES, DATA_QUALITY,
)
