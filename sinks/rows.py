"""Column lists and row builders for the sink tables (what the stream hands to ClickHouseSink).

    sink = ClickHouseSink(lambda: get_client(settings), "dossier_events", DOSSIER_EVENT_COLUMNS,
                          key_columns=SINK_KEYS["dossier_events"])
    await sink.write_async([dossier_event_row(ev, topic, partition, offset) for ...])
"""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

DOSSIER_EVENT_COLUMNS = [
    "event_id", "event_time", "ingest_time", "source_system", "contract_version",
    "dossier_code", "procedure_code", "procedure_field", "unit_code", "channel", "status",
    "handler", "owner_type", "submitted_at", "received_at", "promised_at", "finished_at",
    "returned_at", "refused_at", "supplements", "has_digitised_components",
    "electronic_result", "paid_online", "vneid_authenticated",
    "kafka_topic", "kafka_partition", "kafka_offset",
]

RATING_COLUMNS = [
    "rating_id", "event_time", "ingest_time", "source_system", "contract_version",
    "kiosk_id", "unit_code", "counter_id", "officer_id", "dossier_code", "procedure_code",
    "level", "scale", "criteria", "comment", "kafka_topic", "kafka_partition", "kafka_offset",
]

DOSSIER_STATE_COLUMNS = [
    "dossier_code", "unit_code", "procedure_code", "procedure_field", "channel", "status",
    "submitted_at", "received_at", "promised_at", "finished_at", "returned_at", "refused_at",
    "closed_at", "supplement_rounds", "supplement_wait_working_days", "outcome",
    "resolution_working_days", "is_open", "overdue", "digitised", "paid_online", "vneid",
    "electronic_result", "first_event_time", "last_event_time", "version", "updated_at",
]

DEAD_LETTER_COLUMNS = [
    "dead_letter_id", "topic", "partition", "offset", "source_system", "kind", "rules",
    "reasons", "raw", "raw_size", "received_at", "redriven_at", "updated_at",
]

DQ_RESULT_COLUMNS = [
    "batch_id", "suite", "expectation", "rule", "column", "success", "success_share",
    "unexpected_count", "element_count", "batch_time",
]

ALERT_COLUMNS = [
    "alert_id", "kind", "unit_code", "kiosk_id", "dossier_code", "value", "threshold",
    "window", "message", "raised_at",
]

PIPELINE_METRIC_COLUMNS = [
    "ts", "worker", "consumer_group", "topic", "partition", "committed_offset",
    "end_offset", "lag", "freshness_ms", "events_per_s",
]

TABLE_COLUMNS = {
    "dossier_events": DOSSIER_EVENT_COLUMNS,
    "ratings": RATING_COLUMNS,
    "dossier_state": DOSSIER_STATE_COLUMNS,
    "dead_letters": DEAD_LETTER_COLUMNS,
    "dq_results": DQ_RESULT_COLUMNS,
    "alerts": ALERT_COLUMNS,
    "pipeline_metrics": PIPELINE_METRIC_COLUMNS,
}

# Columns identifying a row (ReplacingMergeTree key): the sink's dedup-token source.
SINK_KEYS = {
    "dossier_events": ["event_id"],
    "ratings": ["rating_id"],
    "dossier_state": ["dossier_code", "version"],
    "dead_letters": ["topic", "partition", "offset", "updated_at"],
    "dq_results": ["batch_id", "suite", "expectation", "column"],
    "alerts": ["alert_id"],
    "pipeline_metrics": ["consumer_group", "topic", "partition", "ts"],
}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def dossier_event_row(ev, topic: str = "", partition: int = -1, offset: int = -1) -> list[Any]:
    """A ``schemas.contracts.DossierEvent`` as a ``dossier_events`` row."""
    return [
        ev.event_id, ev.event_time, ev.ingest_time or ev.event_time, ev.source_system, ev.contract_version,
        ev.dossier_code, ev.procedure_code, ev.procedure_field, ev.unit_code, int(ev.channel), int(ev.status),
        ev.handler, ev.owner_type, ev.submitted_at, ev.received_at, ev.promised_at, ev.finished_at,
        ev.returned_at, ev.refused_at,
        [(s.requested_at, s.resumed_at, s.old_promised_at, s.new_promised_at) for s in ev.supplements],
        bool(ev.has_digitised_components), bool(ev.electronic_result), int(ev.paid_online),
        bool(ev.vneid_authenticated), topic, partition, offset,
    ]


def rating_row(r, topic: str = "", partition: int = -1, offset: int = -1) -> list[Any]:
    """A ``schemas.contracts.KioskRating`` as a ``ratings`` row."""
    return [
        r.rating_id, r.event_time, r.ingest_time or r.event_time, r.source_system, r.contract_version,
        r.kiosk_id, r.unit_code, r.counter_id, r.officer_id, r.dossier_code, r.procedure_code,
        int(r.level), int(r.scale), {str(k): int(v) for k, v in r.criteria.items()}, r.comment,
        topic, partition, offset,
    ]


def dead_letter_row(*, topic: str, partition: int, offset: int, raw: bytes, rules, reasons,
                    kind: str = "unknown", source_system: str = "", received_at: datetime | None = None,
                    redriven_at: datetime | None = None, dead_letter_id: str | None = None) -> list[Any]:
    received_at = received_at or _now()
    return [
        dead_letter_id or f"{topic}:{partition}:{offset}", topic, partition, offset, source_system,
        kind, list(rules), list(reasons), bytes(raw), len(raw), received_at, redriven_at,
        redriven_at or received_at,
    ]
