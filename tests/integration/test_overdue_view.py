"""Overdue on the boards is the stream's judgement, stored with the state (one definition).

The rows are the stream's own (``DossierLogic.state`` over real events), so the board view
is checked against the rule, not against a hand-written flag:

* a dossier not yet received has no promised date: not overdue (regression: the overdue
  aggregate once turned its NULL into 1970-01-01 and counted it overdue);
* a re-promised dossier (a later NgayHenTra, no supplement round: the apology letter) is
  judged against its first promise: overdue although its latest promised date is ahead;
* a dossier waiting for the citizen's documents: its clock is stopped, not overdue
  although its promised date has passed.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pulse.config import Settings
from schemas.contracts import DossierEvent, SupplementRound
from schemas.reference import load_reference
from sinks.client import get_client
from sinks.migrate import migrate_settings, refresh_board_aggregates
from sinks.rows import DOSSIER_STATE_COLUMNS, as_dict
from streams.core import DossierLogic, compact, merge

pytestmark = pytest.mark.integration
VN = ZoneInfo("Asia/Ho_Chi_Minh")
REF = load_reference()
UNIT = next(u for u in REF.units.values() if u.kind == "commune")
PROC = REF.procedures_at("commune")[0]


def _events(code: str, now: datetime, *steps) -> list[DossierEvent]:
    common = dict(source_system="test", dossier_code=code, procedure_code=PROC.code,
                  procedure_field=PROC.field_code, unit_code=UNIT.code)
    return [DossierEvent(event_id=f"{code}-{i}", event_time=t, status=status, **common, **extra)
            for i, (status, t, extra) in enumerate(steps, 1)]


def test_the_board_lists_exactly_the_dossiers_the_stream_judged_overdue(clickhouse_endpoint):
    s = Settings().with_(clickhouse_url=f"{clickhouse_endpoint.url.rstrip('/')}/motcua_overdue_{uuid.uuid4().hex[:8]}")
    migrate_settings(s, log=None)
    client = get_client(s)
    now = datetime.now(VN).replace(microsecond=0)
    ago = now - timedelta(days=8)
    dossiers = {
        "D-NOT-YET-RECEIVED": _events("D-NOT-YET-RECEIVED", now, (1, now - timedelta(days=1), {})),
        "D-PAST-DUE": _events("D-PAST-DUE", now, (2, ago, dict(received_at=ago, promised_at=now - timedelta(days=1))),
                              (4, ago + timedelta(hours=1), {})),
        "D-NOT-YET-DUE": _events("D-NOT-YET-DUE", now, (2, ago, dict(received_at=ago, promised_at=now + timedelta(days=2))),
                                 (4, ago + timedelta(hours=1), {})),
        "D-CLOSED-LATE": _events("D-CLOSED-LATE", now, (2, ago, dict(received_at=ago, promised_at=ago + timedelta(days=2))),
                                 (9, now - timedelta(hours=2), dict(finished_at=now - timedelta(hours=2)))),
        # the apology letter: a new NgayHenTra in a later event, no supplement round
        "D-REPROMISED": _events("D-REPROMISED", now, (2, ago, dict(received_at=ago, promised_at=now - timedelta(days=1))),
                                (4, now - timedelta(hours=3), dict(promised_at=now + timedelta(days=5)))),
        # waiting for the citizen since before the promised date: the clock is stopped
        "D-WAITING": _events("D-WAITING", now, (2, ago, dict(received_at=ago, promised_at=now - timedelta(days=1))),
                             (5, now - timedelta(days=4), dict(supplements=[SupplementRound(
                                 requested_at=now - timedelta(days=4), old_promised_at=now - timedelta(days=1))]))),
    }
    logic = DossierLogic.from_settings(s, reference=REF)
    states = {code: logic.state(code, merge(None, [compact(e) for e in evs])[0], now) for code, evs in dossiers.items()}
    assert {c for c, st in states.items() if st.overdue} == {"D-PAST-DUE", "D-REPROMISED"}   # the rule itself
    client.insert("dossier_state", [st.row for st in states.values()], column_names=DOSSIER_STATE_COLUMNS)
    refresh_board_aggregates(client)
    board = client.query("SELECT dossier_code, deadline, promised_at, deadline_reading FROM v_overdue_now "
                         "ORDER BY dossier_code").result_rows
    assert [r[0] for r in board] == ["D-PAST-DUE", "D-REPROMISED"]
    for code, deadline, _promised_at, reading in board:
        st = as_dict("dossier_state", states[code].row)
        assert deadline == st["deadline"] and reading == st["deadline_reading"] == "shift_by_wait"
    # the re-promised dossier shows the date it carries, and is judged on the first one
    repromised = dict((r[0], r) for r in board)["D-REPROMISED"]
    assert repromised[2] > now > repromised[1]
    assert client.query("SELECT overdue_now FROM v_province_now").result_rows[0][0] == 2
    # the board says which reading these judgements used
    (rule,) = client.query("SELECT reading, reading_name, judgements FROM v_rules_in_force").result_rows
    assert rule[0] == "shift_by_wait" and rule[1].startswith("Hạn ban đầu") and rule[2] == len(states)
    client.close()
