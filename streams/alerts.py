"""Alerts to the alerts topic, and the threshold and silence alerts computed over ClickHouse.

Per-dossier alerts (illegal transition, due soon, overdue) are raised where the dossier is
judged (streams.dossiers, streams.deadlines); their rows are built by streams.core. The
shares (on time, satisfied) below their thresholds over the alert window, and kiosks and
units gone silent, need every worker's data, so the leader worker asks ClickHouse (FINAL:
exact) every ``alert_eval_interval_s``.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from streams.core import share_alert, silence_alert

UTC = timezone.utc


async def send_alerts(topic, alerts: list[dict]) -> list:
    """Hand the alerts to the producer; returns the sends' futures (resolved on the broker's ack)."""
    sent = []
    for a in alerts:
        v = dict(a, raised_at=a["raised_at"].isoformat())
        sent.append(await topic.send(key=a["alert_id"].encode(), value=json.dumps(v, ensure_ascii=False).encode()))
    return sent


def threshold_queries(settings, min_count: int) -> dict[str, str]:
    """The four alert queries. Windows are aligned on the alert window, ending at the
    newest time seen, so a replayed history raises the alerts of its own time, once
    (deterministic alert ids)."""
    w = int(settings.alert_window_minutes)
    return {
        "ontime_low": f"""
            SELECT unit_code, toStartOfInterval(closed_at, INTERVAL {w} MINUTE) AS ws,
                   countIf(outcome IN ('early','on_time')) AS good, count() AS n
            FROM dossier_state FINAL
            WHERE outcome IN ('early','on_time','late') AND closed_at >= now64(3) - INTERVAL {2 * w} MINUTE
            GROUP BY unit_code, ws HAVING n >= {min_count} AND good / n < {float(settings.ontime_alert_threshold)}""",
        "satisfaction_low": f"""
            SELECT unit_code, toStartOfInterval(event_time, INTERVAL {w} MINUTE) AS ws,
                   countIf(level >= 4) AS good, count() AS n
            FROM ratings FINAL
            WHERE event_time >= now64(3) - INTERVAL {2 * w} MINUTE
            GROUP BY unit_code, ws HAVING n >= {min_count} AND good / n < {float(settings.satisfaction_alert_threshold)}""",
        # silent: seen within the last day, not within the configured minutes
        "kiosk_silent": f"""
            SELECT unit_code, kiosk_id, max(event_time) AS last FROM ratings
            WHERE event_time >= now64(3) - INTERVAL 1 DAY GROUP BY unit_code, kiosk_id
            HAVING last < now64(3) - INTERVAL {int(settings.silent_kiosk_minutes)} MINUTE""",
        "unit_silent": f"""
            SELECT unit_code, max(event_time) AS last FROM dossier_events
            WHERE event_time >= now64(3) - INTERVAL 1 DAY GROUP BY unit_code
            HAVING last < now64(3) - INTERVAL {int(settings.silent_unit_minutes)} MINUTE""",
    }


class ThresholdAlerts:
    """Evaluates the threshold and silence alerts; each alert id is raised once.

    The ids already raised are kept for as long as the queries can return them again
    (three alert windows for the shares, a day and a half for the silences), then dropped,
    so the set stays bounded however long the worker runs."""

    def __init__(self, settings, min_count: int):
        self.settings = settings
        self.queries = threshold_queries(settings, min_count)
        self.raised: dict[str, datetime] = {}     # alert_id -> when it may be forgotten

    def evaluate(self, client, now: datetime | None = None) -> list[dict]:
        s, q = self.settings, self.queries
        now = now or datetime.now(UTC)
        w = timedelta(minutes=int(s.alert_window_minutes))
        found: list[tuple[dict, datetime]] = []
        for unit, ws, good, n in client.query(q["ontime_low"]).result_rows:
            found.append((share_alert("ontime_low", unit, good / n, s.ontime_alert_threshold, n, ws, ws + w, now),
                          now + 3 * w))
        for unit, ws, good, n in client.query(q["satisfaction_low"]).result_rows:
            found.append((share_alert("satisfaction_low", unit, good / n, s.satisfaction_alert_threshold, n,
                                      ws, ws + w, now), now + 3 * w))
        for unit, kiosk, last in client.query(q["kiosk_silent"]).result_rows:
            found.append((silence_alert(unit, kiosk, last, s.silent_kiosk_minutes, now), now + timedelta(hours=36)))
        for unit, last in client.query(q["unit_silent"]).result_rows:
            found.append((silence_alert(unit, "", last, s.silent_unit_minutes, now), now + timedelta(hours=36)))
        self.raised = {aid: until for aid, until in self.raised.items() if until > now}
        fresh = []
        for alert, until in found:
            if alert["alert_id"] not in self.raised:
                self.raised[alert["alert_id"]] = until
                fresh.append(alert)
        return fresh
