"""Bounded state: closed dossiers leave the table, and come back if an event arrives late.

The dossier table held every event of every dossier for ever (~0.5 KiB per event: a
large province's year is ~5 GiB per worker). It needs to hold only what can still change:

* **Eviction** (``evictable``, run by a timer every ``eviction_interval_s``): a dossier
  whose newest event closed it (rules.lifecycle.CLOSED) more than ``closed_retention_s``
  ago, by the stream's own clock (the newest event time applied: a replayed history evicts
  as its time advances, as the live stream does), leaves the table with a tombstone on its
  changelog, so a restarted worker does not recover it either. Only keys of partitions
  this worker holds now are evicted: the table's memory store also keeps keys of
  partitions moved to another worker, and a tombstone for one of those would delete a
  dossier its new owner holds.
* **Restore** (``needs_history``, ``History``): an event for a dossier not in the table is
  either a new dossier or a late one for an evicted dossier. Its earlier events are read
  back from ClickHouse's ``dossier_events`` (every applied event is there: a batch's rows
  land before the table changes, streams.checkpoint) when the dossier's events in the
  batch cannot be a new dossier's start: a first status past "received" (3+), or an event
  older than the retention by the stream's clock. Then the set is folded and judged as if
  it had stayed, and its ``dossier_state`` row gets the right version (2 × distinct events
  + overdue). A new dossier's first events (status 1 or 2, recent) cost no query.
  Known gap, by this rule: an evicted dossier that receives a recent status-1/2 event (a
  dossier re-opened from its start) is not restored; its new row then has a lower version
  than the one stored, and ClickHouse keeps the stored one.

Default retention: 7 days. Late syncs seen from unit systems come within hours to a
couple of days (nightly re-syncs), and the month-end report reads ClickHouse, not the
table, so a week keeps nearly every late event off the restore path while bounding the
table to about a week of closed dossiers plus the open ones.
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any, Iterable

from rules.lifecycle import CLOSED, ROW_STATUS, ROW_TIME, to_ms

NEW_DOSSIER_STATUSES = frozenset({1, 2})


def evictable(items: Iterable[tuple[Any, Any]], clock_ms: int, retention_ms: int, skip) -> list:
    """Keys of the dossiers whose newest event closed them before ``clock_ms - retention_ms``
    (``skip``: keys not to touch, e.g. of batches still in flight)."""
    cutoff = clock_ms - retention_ms
    out = []
    for key, events in items:
        if not events or key in skip:
            continue
        last = events[-1]
        if last[ROW_STATUS] in CLOSED and last[ROW_TIME] < cutoff:
            out.append(key)
    return out


def partition_of(key: bytes, partitions: int) -> int:
    """The partition a producer's default partitioner gives ``key`` (murmur2, as kafka-python
    and aiokafka do, and the front doors and simulator produce with): the table's changelog
    is co-partitioned with dossier-events, so this is the key's changelog partition."""
    from aiokafka.partitioner import murmur2
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def needs_history(compacts: list, clock_ms: int, retention_ms: int) -> bool:
    """Whether a dossier missing from the table may have earlier events in ClickHouse."""
    first = min(compacts, key=lambda c: (c[ROW_TIME], c[0]))
    if first[ROW_STATUS] not in NEW_DOSSIER_STATUSES:
        return True
    return min(c[ROW_TIME] for c in compacts) < clock_ms - retention_ms


HISTORY_COLUMNS = ("event_id", "event_time", "status", "unit_code", "procedure_code", "procedure_field", "channel",
                   "submitted_at", "received_at", "promised_at", "finished_at", "returned_at", "refused_at",
                   "supplements", "has_digitised_components", "electronic_result", "vneid_authenticated",
                   "paid_online")


_ROUND_FIELDS = ("requested_at", "resumed_at", "old_promised_at", "new_promised_at")


def _round_ms(s) -> tuple:
    """A supplement round of the ``supplements`` column: clickhouse-connect returns a named
    Tuple as a dict, a plain one (and the sink's rows) as a tuple."""
    if isinstance(s, dict):
        s = tuple(s[k] for k in _ROUND_FIELDS)
    return tuple(to_ms(x) for x in s)


def compact_from_row(r: dict) -> tuple:
    """A ``dossier_events`` row as the stream's compact event (streams.core.compact)."""
    from rules.lifecycle import FLAG_DIGITISED, FLAG_ERESULT, FLAG_VNEID
    return (
        r["event_id"], to_ms(r["event_time"]), int(r["status"]), r["unit_code"], r["procedure_code"],
        r["procedure_field"], int(r["channel"]), to_ms(r["submitted_at"]), to_ms(r["received_at"]),
        to_ms(r["promised_at"]), to_ms(r["finished_at"]), to_ms(r["returned_at"]), to_ms(r["refused_at"]),
        tuple(_round_ms(s) for s in r["supplements"]) if r["supplements"] else (),
        (FLAG_DIGITISED if r["has_digitised_components"] else 0) | (FLAG_ERESULT if r["electronic_result"] else 0)
        | (FLAG_VNEID if r["vneid_authenticated"] else 0),
        int(r["paid_online"]),
    )


class History:
    """Earlier events of dossiers, from ClickHouse's ``dossier_events`` (FINAL: one row per
    event id). One query per batch for all the dossiers it needs."""

    def __init__(self, settings):
        self.settings = settings

    def events_of(self, codes: list[str]) -> dict[str, list[tuple]]:
        from sinks.client import get_client
        client = get_client(self.settings)
        try:
            # First which of them ClickHouse knows at all, on dossier_state's primary key
            # (ordered by dossier_code: the lookup reads only the granules of those codes).
            # Most lookups find nothing (a feed that starts in the middle of dossiers' lives,
            # an event ahead of its predecessor), and scanning dossier_events for them cost
            # the endpoint ~10 µs per event in bench_pipeline. Exact: every event of an acked
            # batch has its dossier's state row (the batch's rows land before it is acked);
            # an unacked batch is replayed with its own events.
            known = [r[0] for r in client.query(
                "SELECT DISTINCT dossier_code FROM dossier_state WHERE dossier_code IN {codes:Array(String)}",
                parameters={"codes": codes}).result_rows]
            if not known:
                return {}
            codes = known
            # No FINAL: it merges every part of the table for each query (in bench_pipeline the
            # endpoint's CPU went from 11 to 41-46 µs per event with it); a replayed copy of
            # an event is dropped by id in merge_fresh anyway. (A bloom-filter skip index on
            # dossier_code was tried: it cost the endpoint ~5 µs per event at every insert,
            # for lookups that are rare in a live stream; left out.)
            q = (f"SELECT dossier_code, {', '.join(HISTORY_COLUMNS)} FROM dossier_events "
                 "WHERE dossier_code IN {codes:Array(String)}")
            out: dict[str, list[tuple]] = {}
            result = client.query(q, parameters={"codes": codes})
            names = result.column_names
            for row in result.result_rows:
                d = dict(zip(names, row))
                out.setdefault(d["dossier_code"], []).append(compact_from_row(d))
            return out
        finally:
            client.close()


async def evict(rt, table, assignment, input_topic: str, chunk: int = 50_000) -> int:
    """One eviction scan of the table; returns how many dossiers left it."""
    from pulse import topics
    from streams.checkpoint import confirmed
    held = table.snapshot()
    rt.metrics.dossiers_held = len(held)
    mine = {tp.partition for tp in assignment if tp.topic == input_topic}
    partitions = topics.DOSSIER_EVENTS.partition_count(rt.settings)
    retention_ms = int(rt.tunables.closed_retention_s * 1000)
    now = datetime.now(timezone.utc)
    read = table.reader()
    out: list = []
    # the slowest of this worker's partitions sets the clock: never evict by a clock another
    # partition's backlog has not reached (a dossier's events are all in one partition)
    # (partitions with no event yet since the start are left out: eviction's timing is only
    # a matter of memory, the read-back keeps it exact whenever it happens)
    clocks = [c for c in (rt.clocks.get((input_topic, p)) for p in mine) if c is not None]
    if not clocks:
        return 0
    clock_ms = min(clocks)
    for i in range(0, len(held), chunk):
        for key in evictable(held[i:i + chunk], clock_ms, retention_ms, rt.overlay.sets):
            p = partition_of(key, partitions)
            if p not in mine:
                continue
            events = read(key)
            code = key.decode() if isinstance(key, bytes) else key
            if events and not rt.logic.state(code, events, now).facts.is_open:   # the fold agrees: closed
                out.append((key, p))
        await asyncio.sleep(0)
    del held
    # the batches prepared or in flight since the scan: leave their dossiers alone (checked
    # right before the deletions, which evict_many makes before its first await). Found by
    # the exactness test: a dossier evicted while a batch awaited its ClickHouse read-back
    # lost its set, and the late event was folded alone.
    out = [(k, p) for k, p in out if k not in rt.overlay.sets and k not in rt.overlay.preparing]
    if out:
        await confirmed(await table.evict_many(out))
        rt.metrics.evicted += len(out)
        rt.metrics.dossiers_held -= len(out)
    return len(out)
