"""Open dossiers' deadlines: ``due_soon`` and ``overdue`` the moment they pass, without
waiting for another event of the dossier.

``DeadlineIndex`` holds two heaps of ``(when_ms, dossier_code, event_count)``: the
deadline itself, and the deadline less ``overdue_warning_hours``. An entry whose dossier
has changed since (another event count) is stale and skipped: the change indexed it anew.
After a rebalance the index is rebuilt from the table of the partitions now assigned.
"""
from __future__ import annotations

import heapq
from datetime import datetime

from rules.lifecycle import to_ms
from streams.core import deadline_alert


class DeadlineIndex:
    def __init__(self, warning_hours: float):
        self.warning_ms = int(warning_hours * 3600 * 1000)
        self.overdue: list = []
        self.warn: list = []
        self.generation = None      # consumer generation the index was built for

    def track(self, st) -> None:
        """Index an open dossier that has a deadline and is not overdue yet."""
        if not st.facts.is_open or st.judgement.deadline is None or st.overdue:
            return
        dl, n = st.deadline_ms, st.facts.event_count
        heapq.heappush(self.overdue, (dl, st.code, n))
        heapq.heappush(self.warn, (dl - self.warning_ms, st.code, n))

    def rebuild(self, states, now: datetime) -> int:
        """The index of the dossiers now held (``states``: their current DossierState).
        Already-overdue dossiers are indexed too: their overdue row may not be written yet.
        Returns how many open dossiers with a deadline were indexed."""
        now_ms = to_ms(now)
        self.overdue, self.warn = [], []
        n = 0
        for st in states:      # an iterable: the caller may compute each state as it goes
            if not st.facts.is_open or st.judgement.deadline is None:
                continue
            self.overdue.append((st.deadline_ms, st.code, st.facts.event_count))
            warn_ms = st.deadline_ms - self.warning_ms
            if warn_ms > now_ms:
                self.warn.append((warn_ms, st.code, st.facts.event_count))
            n += 1
        heapq.heapify(self.overdue)
        heapq.heapify(self.warn)
        return n

    def pop_due(self, heap: list, now_ms: int, inclusive: bool):
        """(dossier_code, event_count) of the entries of ``heap`` whose time has come."""
        while heap and (heap[0][0] <= now_ms if inclusive else heap[0][0] < now_ms):
            _, code, n = heapq.heappop(heap)
            yield code, n


def scan(rt, get_events, now: datetime) -> tuple[list, list, list]:
    """The deadlines passed by ``now``: (state rows with overdue=1, alerts for the topic
    and ClickHouse, alerts for ClickHouse only). ``get_events(code)`` reads the table."""
    index, logic, metrics = rt.deadlines, rt.logic, rt.metrics
    now_ms = to_ms(now)
    rows: list = []
    alerts: list[dict] = []
    ch_only: list[dict] = []
    for code, n in index.pop_due(index.warn, now_ms, inclusive=True):
        events = get_events(code)
        if not events or len(events) != n:
            continue  # changed since: re-indexed by the change
        st = logic.state(code, events, now)
        if st.facts.is_open and not st.overdue and st.judgement.deadline is not None:
            alerts.append(deadline_alert("due_soon", st, now))
            metrics.due_soon += 1
    for code, n in index.pop_due(index.overdue, now_ms, inclusive=False):
        events = get_events(code)
        if not events or len(events) != n:
            continue
        st = logic.state(code, events, now)
        if not st.overdue:
            continue
        rows.append(st.row)
        metrics.overdue_marked += 1
        if rt.alert_fresh(st.judgement.deadline, now):
            a = deadline_alert("overdue", st, now)
            # a deadline that passed before this process started may have been announced
            # already on the topic: ClickHouse only (same alert_id, deduplicated there)
            (alerts if st.judgement.deadline >= rt.started_at else ch_only).append(a)
    return rows, alerts, ch_only
