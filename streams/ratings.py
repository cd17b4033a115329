"""Kiosk ratings, a batch at a time: validate -> de-duplicate by rating id -> ClickHouse.

A rating changes nothing but its own row (``ratings``, ReplacingMergeTree on rating_id),
so there is no table: the rating ids of recent batches are remembered (bounded) to count
duplicates, and a rating written twice after a crash is one row in ClickHouse anyway.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import datetime, timezone

from sinks.rows import rating_row
from streams.checkpoint import Rebalanced, start_writes, wait_writes
from streams.inbox import ranges
from streams.validate import send_dead_letters, validate

log = logging.getLogger("motcua.streams.ratings")
UTC = timezone.utc


class RatingIds:
    """Rating ids finished (the newest ``cap``), and those of prepared, unfinished batches
    of the current consumer generation."""

    def __init__(self, cap: int):
        self.cap = cap
        self.recent: OrderedDict = OrderedDict()
        self.in_flight: dict = {}
        self.generation = None

    def enter(self, generation) -> None:
        if generation is not None and generation != self.generation:
            self.in_flight.clear()      # batches of an earlier assignment are not finished
            self.generation = generation

    def seen(self, rating_id: str) -> bool:
        return rating_id in self.recent or rating_id in self.in_flight

    def done(self, ids) -> None:
        recent = self.recent
        for rid in ids:
            self.in_flight.pop(rid, None)
            recent[rid] = None
        while len(recent) > self.cap:
            recent.popitem(last=False)

    def dropped(self, ids) -> None:
        for rid in ids:
            self.in_flight.pop(rid, None)


class PreparedRatingBatch:
    def __init__(self, rt, messages, accepted, dead, rows, ids, tickets):
        self.rt, self.messages, self.accepted, self.dead, self.rows, self.tickets = \
            rt, messages, accepted, dead, rows, tickets
        self.ids = ids       # rating ids this batch writes (not yet "seen" until it is finished)

    async def finish(self, owned=lambda: True) -> list:
        rt = self.rt
        await wait_writes(self.tickets)
        if not owned():
            rt.ratings.dropped(self.ids)
            raise Rebalanced()
        sent = await send_dead_letters(rt.outputs.dead_letters, self.dead)
        # only now are these ratings done: a batch dropped before this point must not make
        # its re-delivered messages look like duplicates
        rt.ratings.done(self.ids)
        m = rt.metrics
        m.ratings += len(self.rows)
        m.dead_lettered(self.dead)
        done = datetime.now(UTC)
        for msg, v in self.accepted:
            m.freshness_ms[(msg.topic, msg.partition)] = int((done - v.event.event_time).total_seconds() * 1000)
        m.count(self.messages)
        rt.quality.maybe_run(rt.sinks.dq_results)
        return sent


async def prepare_rating_batch(rt, messages, generation=None) -> PreparedRatingBatch:
    ids_state = rt.ratings
    ids_state.enter(generation)
    now = datetime.now(UTC)
    accepted, dead = validate(messages, now, rt.checker.check_rating, "rating", rt.quality.waiting["ratings"])
    rows, ids = [], []
    for m, v in accepted:
        r = v.event
        if ids_state.seen(r.rating_id):
            rt.metrics.rating_duplicates += 1
            continue
        ids_state.in_flight[r.rating_id] = None
        ids.append(r.rating_id)
        # written even if a previous run wrote it (ReplacingMergeTree on rating_id)
        rows.append(rating_row(r, m.topic, m.partition, m.offset))
    tickets = await start_writes([(rt.sinks.ratings, rows), (rt.sinks.dead_letters, [d.to_row() for d in dead])])
    if rt.settings.trace_offsets:
        log.info("trace ratings prepared gen %s %s: %d rows, %d dead, %d already seen", generation,
                 ranges(messages), len(rows), len(dead), len(accepted) - len(rows))
    return PreparedRatingBatch(rt, messages, accepted, dead, rows, ids, tickets)
