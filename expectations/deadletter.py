"""Dead letters: every rejected event, kept with its reasons and its exact bytes.

One record per rejected Kafka message. ``dead_letter_id`` is deterministic
(``<topic>:<partition>:<offset>``), so a worker that re-processes a message after a
restart writes the same record again (ClickHouse ``dead_letters`` is a ReplacingMergeTree
on (topic, partition, offset)). ``received_at`` should be the Kafka record's timestamp
(not the wall clock) for the same reason; ``updated_at`` is the replacing version: the
redrive tool writes a newer copy with ``redriven_at`` set.

The raw bytes are kept exactly as received, invalid UTF-8 included: base64 in the Kafka
value (JSON), a binary-safe ``String`` in ClickHouse.
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Iterable, overload

KINDS = ("unknown", "dossier", "rating")
UNKNOWN_SOURCE = "unknown"
_SOURCE_RE = re.compile(rb'"source_system"\s*:\s*"((?:[^"\\]|\\.){1,64})"')


def dead_letter_id(topic: str, partition: int, offset: int) -> str:
    return f"{topic}:{int(partition)}:{int(offset)}"


def kind_of_topic(topic: str) -> str:
    """'dossier' / 'rating' from a (prefixed) input topic name."""
    t = topic.rsplit(".", 1)[-1] if "." in topic else topic
    if t.endswith("dossier-events"):
        return "dossier"
    if t.endswith("ratings"):
        return "rating"
    return "unknown"


def source_system_of(raw: bytes, kind: str = "unknown") -> str:
    """Best effort: the payload's source_system, also from broken JSON or invalid UTF-8."""
    value: Any = None
    if not raw:
        return "kiosk" if kind == "rating" else UNKNOWN_SOURCE
    try:
        obj = json.loads(raw)
        if isinstance(obj, dict):
            value = obj.get("source_system")
    except (ValueError, UnicodeDecodeError, RecursionError, TypeError):
        m = _SOURCE_RE.search(bytes(raw[:1_000_000]))
        if m:
            try:
                value = json.loads(b'"' + m.group(1) + b'"')
            except (ValueError, UnicodeDecodeError):
                value = m.group(1).decode("utf-8", "replace")
    if isinstance(value, str) and value.strip():
        return value.strip()[:64]
    if kind == "rating" and value is None:
        return "kiosk"  # the contract's default for ratings
    return UNKNOWN_SOURCE


@overload
def _aware(t: datetime) -> datetime: ...
@overload
def _aware(t: None) -> None: ...
def _aware(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def _parse_time(v: Any) -> datetime | None:
    if v is None or v == "":
        return None
    if isinstance(v, datetime):
        return _aware(v)
    return _aware(datetime.fromisoformat(str(v)))


def _parse_required_time(v: Any, name: str) -> datetime:
    t = _parse_time(v)
    if t is None:
        raise ValueError(f"{name} is required")
    return t


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int
    offset: int
    raw: bytes
    rules: tuple[str, ...]
    reasons: tuple[str, ...]
    received_at: datetime
    kind: str = "unknown"
    source_system: str = UNKNOWN_SOURCE
    redriven_at: datetime | None = None
    dead_letter_id: str = ""
    updated_at: datetime | None = None

    def __post_init__(self):
        if not self.dead_letter_id:
            object.__setattr__(self, "dead_letter_id", dead_letter_id(self.topic, self.partition, self.offset))
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        object.__setattr__(self, "raw", bytes(self.raw))
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "reasons", tuple(self.reasons))
        object.__setattr__(self, "received_at", _aware(self.received_at))
        object.__setattr__(self, "redriven_at", _aware(self.redriven_at))
        object.__setattr__(self, "updated_at", _aware(self.updated_at) or self.redriven_at or self.received_at)

    @classmethod
    def from_failures(cls, *, topic: str, partition: int, offset: int, raw: bytes,
                      failures: Iterable[Any], received_at: datetime, kind: str | None = None) -> "DeadLetter":
        """From a checker Verdict's failures (objects with .rule and .message)."""
        failures = list(failures)
        kind = kind or kind_of_topic(topic)
        raw = b"" if raw is None else raw  # a tombstone is kept as empty bytes
        return cls(topic=topic, partition=partition, offset=offset, raw=bytes(raw),
                   rules=tuple(f.rule for f in failures), reasons=tuple(f.message for f in failures),
                   received_at=received_at, kind=kind, source_system=source_system_of(raw, kind))

    # --- Kafka ---
    def to_dict(self) -> dict:
        return {
            "dead_letter_id": self.dead_letter_id,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "kind": self.kind,
            "source_system": self.source_system,
            "rules": list(self.rules),
            "reasons": list(self.reasons),
            "raw_base64": base64.b64encode(self.raw).decode("ascii"),
            "raw_size": len(self.raw),
            "received_at": self.received_at.isoformat(),
            "redriven_at": self.redriven_at.isoformat() if self.redriven_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
        }

    def to_kafka_value(self) -> bytes:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def kafka_key(self) -> bytes:
        return self.dead_letter_id.encode("utf-8")

    @classmethod
    def from_dict(cls, d: dict) -> "DeadLetter":
        return cls(
            topic=d["topic"], partition=int(d["partition"]), offset=int(d["offset"]),
            raw=base64.b64decode(d["raw_base64"], validate=True),
            rules=tuple(d.get("rules") or ()), reasons=tuple(d.get("reasons") or ()),
            received_at=_parse_required_time(d["received_at"], "received_at"), kind=d.get("kind", "unknown"),
            source_system=d.get("source_system") or UNKNOWN_SOURCE,
            redriven_at=_parse_time(d.get("redriven_at")),
            dead_letter_id=d.get("dead_letter_id") or "",
            updated_at=_parse_time(d.get("updated_at")),
        )

    @classmethod
    def from_kafka_value(cls, value: bytes) -> "DeadLetter":
        return cls.from_dict(json.loads(value))

    # --- ClickHouse ---
    ROW_COLUMNS = ("dead_letter_id", "topic", "partition", "offset", "source_system", "kind", "rules",
                   "reasons", "raw", "raw_size", "received_at", "redriven_at", "updated_at")

    def to_row(self) -> dict:
        """A row for ClickHouse ``dead_letters`` (raw as bytes into a String column)."""
        return {
            "dead_letter_id": self.dead_letter_id,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "source_system": self.source_system,
            "kind": self.kind,
            "rules": list(self.rules),
            "reasons": list(self.reasons),
            "raw": self.raw,
            "raw_size": len(self.raw),
            "received_at": self.received_at,
            "redriven_at": self.redriven_at,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_row(cls, row: dict) -> "DeadLetter":
        raw = row["raw"]
        if isinstance(raw, str):  # a client that decoded the String column: not byte-exact
            raw = raw.encode("utf-8", "surrogateescape")
        return cls(
            topic=row["topic"], partition=int(row["partition"]), offset=int(row["offset"]), raw=raw,
            rules=tuple(row.get("rules") or ()), reasons=tuple(row.get("reasons") or ()),
            received_at=_parse_required_time(row["received_at"], "received_at"), kind=row.get("kind") or "unknown",
            source_system=row.get("source_system") or UNKNOWN_SOURCE,
            redriven_at=_parse_time(row.get("redriven_at")), dead_letter_id=row.get("dead_letter_id") or "",
            updated_at=_parse_time(row.get("updated_at")),
        )

    def redriven(self, at: datetime) -> "DeadLetter":
        """The same record marked re-driven (a newer version for the ReplacingMergeTree)."""
        at = _aware(at)
        return replace(self, redriven_at=at, updated_at=at)
