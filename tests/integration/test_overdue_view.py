"""Overdue on the boards: only open dossiers whose promised date has passed.

Regression: a dossier not yet received (status 1) has no promised date; the overdue
aggregate once turned its NULL into 1970-01-01 and counted it overdue.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pulse.config import Settings
from sinks.client import get_client
from sinks.migrate import migrate_settings, refresh_board_aggregates
from sinks.rows import DOSSIER_STATE_COLUMNS

pytestmark = pytest.mark.integration
VN = ZoneInfo("Asia/Ho_Chi_Minh")


def _state(code: str, status: int, promised_at, is_open: bool, now: datetime) -> dict:
    return {
        "dossier_code": code, "unit_code": "000.00.01.H24", "procedure_code": "1.000001",
        "procedure_field": "F", "channel": 1, "status": status,
        "submitted_at": now - timedelta(days=3), "received_at": None if status == 1 else now - timedelta(days=3),
        "promised_at": promised_at, "finished_at": None, "returned_at": None, "refused_at": None,
        "closed_at": None, "supplement_rounds": 0, "supplement_wait_working_days": 0.0, "outcome": "",
        "resolution_working_days": None, "is_open": is_open, "overdue": False, "digitised": False,
        "paid_online": 0, "vneid": False, "electronic_result": False,
        "first_event_time": now - timedelta(days=3), "last_event_time": now - timedelta(days=3),
        "version": 2, "updated_at": now,
    }


def test_only_open_dossiers_past_their_promised_date_are_overdue(clickhouse_endpoint):
    s = Settings().with_(clickhouse_url=f"{clickhouse_endpoint.url.rstrip('/')}/motcua_overdue_{uuid.uuid4().hex[:8]}")
    migrate_settings(s, log=None)
    client = get_client(s)
    now = datetime.now(VN)
    rows = [
        _state("D-NOT-YET-RECEIVED", 1, None, True, now),            # no promise: not overdue
        _state("D-PAST-DUE", 4, now - timedelta(days=1), True, now),  # overdue
        _state("D-NOT-YET-DUE", 4, now + timedelta(days=2), True, now),
        _state("D-CLOSED-LATE", 10, now - timedelta(days=1), False, now),
    ]
    client.insert("dossier_state", [[r[c] for c in DOSSIER_STATE_COLUMNS] for r in rows],
                  column_names=DOSSIER_STATE_COLUMNS)
    refresh_board_aggregates(client)
    overdue = [r[0] for r in client.query("SELECT dossier_code FROM v_overdue_now ORDER BY dossier_code").result_rows]
    assert overdue == ["D-PAST-DUE"]
    assert client.query("SELECT overdue_now FROM v_province_now").result_rows[0][0] == 1
    client.close()
