"""Column lists and row builders for the sink tables (what the stream hands to ClickHouseSink).

    sink = ClickHouseSink(lambda: get_client(settings), "dossier_events", DOSSIER_EVENT_COLUMNS,
                          key_columns=SINK_KEYS["dossier_events"])
    await sink.write_async([dossier_event_row(ev, topic, partition, offset) for ...])
"""
from __future__ import annotations

from datetime import datetime, timezone
from operator import attrgetter, itemgetter
from typing import Any

from rules.lifecycle import (FLAG_DIGITISED as _FLAG_DIGITISED, FLAG_ERESULT as _FLAG_ERESULT,
                             FLAG_VNEID as _FLAG_VNEID, ROW_CHANNEL as _ROW_CHANNEL, ROW_FIELD as _ROW_FIELD,
                             ROW_FINISHED as _ROW_FINISHED, ROW_FLAGS as _ROW_FLAGS, ROW_ID as _ROW_ID,
                             ROW_PAID as _ROW_PAID, ROW_PROCEDURE as _ROW_PROCEDURE, ROW_PROMISED as _ROW_PROMISED,
                             ROW_RECEIVED as _ROW_RECEIVED, ROW_REFUSED as _ROW_REFUSED,
                             ROW_RETURNED as _ROW_RETURNED, ROW_STATUS as _ROW_STATUS,
                             ROW_SUBMITTED as _ROW_SUBMITTED, ROW_SUPPLEMENTS as _ROW_SUPPLEMENTS,
                             ROW_TIME as _ROW_TIME, ROW_UNIT as _ROW_UNIT, to_ms)

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
    "resolution_working_days", "is_open", "overdue", "deadline", "deadline_reading", "digitised", "paid_online", "vneid",
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

# The national service index (sinks/migrations/0010_service_index.sql), written by
# streams.service_index; the supplied values, by `pulse index import-supplied`.
SERVICE_INDEX_COLUMNS = [
    "period_kind", "period", "unit_code", "indicator", "period_start", "period_end", "unit_kind",
    "group_code", "group_name", "name_vi", "numerator", "denominator", "ratio", "points", "max_points",
    "measured", "source", "note", "measured_max", "rank", "peers", "previous_points", "change", "counts",
    "config_version", "computed_at",
]

SERVICE_INDEX_SUPPLIED_COLUMNS = [
    "unit_code", "period", "indicator", "numerator", "denominator", "ratio", "source", "note",
    "config_version", "loaded_at",
]

TABLE_COLUMNS = {
    "dossier_events": DOSSIER_EVENT_COLUMNS,
    "ratings": RATING_COLUMNS,
    "dossier_state": DOSSIER_STATE_COLUMNS,
    "dead_letters": DEAD_LETTER_COLUMNS,
    "dq_results": DQ_RESULT_COLUMNS,
    "alerts": ALERT_COLUMNS,
    "pipeline_metrics": PIPELINE_METRIC_COLUMNS,
    "service_index": SERVICE_INDEX_COLUMNS,
    "service_index_supplied": SERVICE_INDEX_SUPPLIED_COLUMNS,
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
    "service_index": ["period_kind", "period", "unit_code", "indicator", "computed_at"],
    "service_index_supplied": ["period", "unit_code", "indicator", "loaded_at"],
}


def _now() -> datetime:
    return datetime.now(timezone.utc)


# The row builders run once per event on the stream's event loop, so they stay flat: the
# fields come in one C call (itemgetter over the model's __dict__; attrgetter for objects
# without one) and only the values that need it are converted.
_EVENT_FIELDS = DOSSIER_EVENT_COLUMNS[:-3]            # the contract fields, in column order
_EV_ITEMS, _EV_ATTRS = itemgetter(*_EVENT_FIELDS), attrgetter(*_EVENT_FIELDS)
_EV_INGEST, _EV_CHANNEL, _EV_STATUS, _EV_SUPPLEMENTS, _EV_PAID = (_EVENT_FIELDS.index(c) for c in (
    "ingest_time", "channel", "status", "supplements", "paid_online"))
_EV_BOOLS = [_EVENT_FIELDS.index(c) for c in (
    "has_digitised_components", "electronic_result", "vneid_authenticated")]

_RATING_FIELDS = RATING_COLUMNS[:-3]
_RT_ITEMS, _RT_ATTRS = itemgetter(*_RATING_FIELDS), attrgetter(*_RATING_FIELDS)
_RT_INGEST, _RT_LEVEL, _RT_SCALE, _RT_CRITERIA = (_RATING_FIELDS.index(c) for c in (
    "ingest_time", "level", "scale", "criteria"))

_MODELS: set[type] = set()     # pydantic model classes seen: their bool/Literal fields are validated


def _validated(cls) -> bool:
    if cls in _MODELS:
        return True
    if getattr(cls, "__pydantic_fields__", None) is not None:
        _MODELS.add(cls)
        return True
    return False


def dossier_event_row(ev, topic: str = "", partition: int = -1, offset: int = -1) -> list[Any]:
    """A ``schemas.contracts.DossierEvent`` as a ``dossier_events`` row."""
    try:
        row = [*_EV_ITEMS(ev.__dict__), topic, partition, offset]
    except (AttributeError, KeyError):
        row = [*_EV_ATTRS(ev), topic, partition, offset]
    if row[_EV_INGEST] is None:
        row[_EV_INGEST] = row[1]                      # ingest_time or event_time
    row[_EV_CHANNEL] = int(row[_EV_CHANNEL])
    row[_EV_STATUS] = int(row[_EV_STATUS])
    supplements = row[_EV_SUPPLEMENTS]
    row[_EV_SUPPLEMENTS] = [(s.requested_at, s.resumed_at, s.old_promised_at, s.new_promised_at)
                            for s in supplements] if supplements else []
    if not _validated(ev.__class__):
        for i in _EV_BOOLS:
            row[i] = bool(row[i])
        row[_EV_PAID] = int(row[_EV_PAID])
    return row


def dossier_event_row_of(c, ev, topic: str = "", partition: int = -1, offset: int = -1) -> list[Any]:
    """``dossier_event_row`` from the stream's compact event ``c`` (``streams.core.compact``:
    rules.lifecycle's event-row layout, times in epoch milliseconds) and its DossierEvent
    ``ev`` (the fields the compact form leaves out). The same row, its times as epoch
    milliseconds: DateTime64(3) ticks, which the sink writes as they are. (With the
    model's datetimes the sink converted eight aware datetimes per row, a call into their
    tzinfo for each; the stream has the milliseconds already.)"""
    d = ev.__dict__
    ingest = d["ingest_time"]
    flags = c[_ROW_FLAGS]
    return [
        c[_ROW_ID], c[_ROW_TIME], c[_ROW_TIME] if ingest is None else to_ms(ingest), d["source_system"],
        d["contract_version"], d["dossier_code"], c[_ROW_PROCEDURE], c[_ROW_FIELD], c[_ROW_UNIT],
        c[_ROW_CHANNEL], c[_ROW_STATUS], d["handler"], d["owner_type"], c[_ROW_SUBMITTED], c[_ROW_RECEIVED],
        c[_ROW_PROMISED], c[_ROW_FINISHED], c[_ROW_RETURNED], c[_ROW_REFUSED], list(c[_ROW_SUPPLEMENTS]),
        bool(flags & _FLAG_DIGITISED), bool(flags & _FLAG_ERESULT), c[_ROW_PAID], bool(flags & _FLAG_VNEID),
        topic, partition, offset,
    ]


def rating_row(r, topic: str = "", partition: int = -1, offset: int = -1) -> list[Any]:
    """A ``schemas.contracts.KioskRating`` as a ``ratings`` row."""
    try:
        row = [*_RT_ITEMS(r.__dict__), topic, partition, offset]
    except (AttributeError, KeyError):
        row = [*_RT_ATTRS(r), topic, partition, offset]
    if row[_RT_INGEST] is None:
        row[_RT_INGEST] = row[1]
    row[_RT_LEVEL] = int(row[_RT_LEVEL])
    row[_RT_SCALE] = int(row[_RT_SCALE])
    criteria = row[_RT_CRITERIA]
    row[_RT_CRITERIA] = {str(k): int(v) for k, v in criteria.items()} if criteria else {}
    return row


def dead_letter_row(*, topic: str, partition: int, offset: int, raw: bytes, rules, reasons,
                    kind: str = "unknown", source_system: str = "", received_at: datetime | None = None,
                    redriven_at: datetime | None = None, dead_letter_id: str | None = None) -> list[Any]:
    received_at = received_at or _now()
    return [
        dead_letter_id or f"{topic}:{partition}:{offset}", topic, partition, offset, source_system,
        kind, list(rules), list(reasons), bytes(raw), len(raw), received_at, redriven_at,
        redriven_at or received_at,
    ]


# Reading rows by column name (tests, tools; not the hot path, which keeps plain lists).
_COLUMN_INDEX = {t: {c: i for i, c in enumerate(cols)} for t, cols in TABLE_COLUMNS.items()}


def column_index(table: str, name: str) -> int:
    """Position of column ``name`` in ``table``'s rows (``TABLE_COLUMNS[table]``)."""
    try:
        return _COLUMN_INDEX[table][name]
    except KeyError:
        if table not in _COLUMN_INDEX:
            raise KeyError(f"no sink table {table!r} (have {sorted(_COLUMN_INDEX)})") from None
        raise KeyError(f"{table} rows have no column {name!r}") from None


def as_dict(table: str, row) -> dict[str, Any]:
    """A ``table`` row (a sequence in column order) as ``{column: value}``."""
    cols = TABLE_COLUMNS[table]
    if len(row) != len(cols):
        raise ValueError(f"a {table} row has {len(cols)} values, got {len(row)}")
    return dict(zip(cols, row))
