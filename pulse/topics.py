"""Every Kafka topic of the pipeline, declared once.

The admin tool (``pulse topics``, pulse.admin) creates them with kafka-python's admin client,
and the Faust app binds to them by the same logical names, so partitions, retention and
compaction live only here. Partition counts of the keyed topics, the replication factor and
``min.insync.replicas`` are settings (pulse.config: sized for a large province; docs/KAFKA.md):
``spec.partition_count(settings)`` and ``spec.config(settings)`` give the values in force.

A keyed topic never gets more partitions in place: a key's messages would then go to another
partition than its earlier ones (order lost, the dossier table split between workers). To grow
it, write a new topic (a new ``PULSE_TOPIC_PREFIX``) and replay into it (``pulse replay``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pulse.config import Settings

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str                 # logical name; the full name is Settings.topic(name)
    # a fixed count, or the name of the Settings field that holds it (read partition_count())
    partitions: int | str
    retention_ms: int         # -1: keep forever
    compacted: bool = False
    description: str = ""
    # the pipeline relies on a key staying on its partition: never repartitioned in place
    keyed: bool = False

    def partition_count(self, settings: "Settings") -> int:
        if isinstance(self.partitions, str):
            return int(getattr(settings, self.partitions))
        return self.partitions

    def config(self, settings: "Settings | None" = None) -> dict[str, str]:
        cfg = {"retention.ms": str(self.retention_ms)}
        if self.compacted:
            cfg["cleanup.policy"] = "compact"
        if settings is not None:
            cfg["min.insync.replicas"] = str(settings.kafka_min_insync_replicas)
        return cfg


# Inputs keep 30 days: long enough to replay a month into a rebuilt ClickHouse.
DOSSIER_EVENTS = TopicSpec("dossier-events", "kafka_partitions_dossier_events", 30 * DAY_MS, keyed=True,
                           description="Dossier status events (contract dossier-status), keyed by dossier code")
RATINGS = TopicSpec("ratings", "kafka_partitions_ratings", 30 * DAY_MS, keyed=True,
                    description="Kiosk satisfaction ratings (contract kiosk-rating), keyed by kiosk id")
DEAD_LETTERS = TopicSpec("dead-letters", 1, 90 * DAY_MS,
                         description="Rejected events with their raw bytes and the rules they failed")
ALERTS = TopicSpec("alerts", 1, 90 * DAY_MS,
                   description="Threshold, silence and deadline alerts")
# co-partitioned with dossier-events (same key, same count: one setting for both)
DOSSIER_STATE = TopicSpec("dossier-state", "kafka_partitions_dossier_events", -1, compacted=True, keyed=True,
                          description="Current state per dossier (compacted), for downstream consumers")
AGGREGATES = TopicSpec("aggregates", 1, 7 * DAY_MS,
                       description="Aggregate deltas emitted by the stream")
DATA_QUALITY = TopicSpec("data-quality", 1, 30 * DAY_MS,
                         description="Great Expectations micro-batch validation results")
# one record per code (unit/..., procedure/..., field/...) + a "catalogue" record with the
# version, last (pulse.reference_import.publish): compacted, it is the catalogue in force
REFERENCE_CATALOGUE = TopicSpec("reference-catalogue", 1, -1, compacted=True,
                                description="The reference catalogue in force (units, procedures, fields), compacted")

ALL_TOPICS: tuple[TopicSpec, ...] = (
    DOSSIER_EVENTS, RATINGS, DEAD_LETTERS, ALERTS, DOSSIER_STATE, AGGREGATES, DATA_QUALITY,
    REFERENCE_CATALOGUE,
)
