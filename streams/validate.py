"""Per-event checks of a batch: accepted events, and dead letters with their reasons.

Every contract-valid event, accepted or not, also joins the GX micro-batch (streams.quality):
the data-quality board then shows the data rules failing (unknown unit, dates out of
order), not only a suite that passes on events already filtered. (Its verdict joins: the
row is flattened only if the micro-batch takes it.)
"""
from __future__ import annotations

from datetime import datetime, timezone

from expectations.deadletter import DeadLetter

UTC = timezone.utc


def received_at(message) -> datetime:
    """The broker's timestamp of a message (now if it has none)."""
    ts = message.timestamp
    return datetime.fromtimestamp(ts, UTC) if ts else datetime.now(UTC)


def validate(messages, now: datetime, check, kind: str, gx_waiting: list) -> tuple[list, list]:
    """(accepted [(message, verdict)], dead letters) of ``check(raw, now)`` over the messages."""
    accepted, dead = [], []
    for m in messages:
        v = check(m.value, now)
        if v.event is not None:
            gx_waiting.append(v)
        if v.ok:
            accepted.append((m, v))
        else:
            dead.append(DeadLetter.from_failures(topic=m.topic, partition=m.partition, offset=m.offset, raw=m.value,
                                                 failures=v.failures, received_at=received_at(m), kind=kind))
    return accepted, dead


async def send_dead_letters(topic, dead) -> list:
    """Hand the dead letters to the producer; returns the sends' futures."""
    return [await topic.send(key=d.kafka_key(), value=d.to_kafka_value()) for d in dead]
