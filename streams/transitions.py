"""Illegal status transitions, alerted only once they outlast a grace period.

A unit system that syncs late (common) sends a dossier's later event before its
predecessor: folded over the incomplete set, the dossier shows a move between two statuses
that is not allowed (e.g. 2 -> 9 with the 4 still on its way). When the predecessor
arrives the fold heals. Alerting at once flooded the alert list with such transient
gaps, and the alerts stayed after the state healed. So a dossier with an illegal
transition is watched for ``illegal_transition_grace_s`` (a tunable); the alert is raised
only if the transition is still there then. Counts stay exact: ``illegal_transitions`` in
the worker's metrics counts the transitions confirmed, ``illegal_transitions_healed`` those
that healed within the grace period.

After a rebalance the watch is rebuilt from the table for dossiers whose newest event is
within two grace periods (older ones were confirmed before; their alert ids are
deterministic, so a repeat is one row in ClickHouse).
"""
from __future__ import annotations

import heapq
from datetime import datetime

from streams.core import illegal_transition_alert


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


class TransitionWatch:
    def __init__(self, grace_s: float):
        self.grace_ms = int(grace_s * 1000)
        self.heap: list = []            # (due_ms, dossier_code, illegal event ids)

    def watch(self, st, now: datetime) -> None:
        heapq.heappush(self.heap, (_ms(now) + self.grace_ms, st.code, tuple(st.facts.illegal_event_ids)))

    def rebuild(self, states, now: datetime) -> None:
        self.heap = []
        for st in states:
            self.consider(st, now)

    def consider(self, st, now: datetime) -> None:
        """Watch a dossier held after a rebalance if its newest event is recent enough."""
        if st.facts.illegal_transitions and _ms(st.facts.last_event_time) >= _ms(now) - 2 * self.grace_ms:
            self.watch(st, now)

    def due(self, now: datetime):
        now_ms = _ms(now)
        while self.heap and self.heap[0][0] <= now_ms:
            _, code, ids = heapq.heappop(self.heap)
            yield code, ids


def confirm(rt, get_events, now: datetime) -> list[dict]:
    """Alerts for the watched dossiers whose grace period is over and whose transition is
    still illegal (one of the event ids flagged then is still flagged)."""
    alerts = []
    for code, ids in rt.transitions.due(now):
        events = get_events(code)
        st = rt.logic.state(code, events, now) if events else None
        if st is not None and set(ids).intersection(st.facts.illegal_event_ids):
            rt.metrics.illegal_transitions += 1
            alerts.append(illegal_transition_alert(st, now))
        else:
            rt.metrics.illegal_transitions_healed += 1
    return alerts
