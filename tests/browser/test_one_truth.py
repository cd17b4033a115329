"""One truth for overdue: for every dossier, the alert list, the overdue list on the board
(read through Superset's own chart-data API) and ``dossier_state`` agree.

Dossiers go through the real broker and worker into ClickHouse: re-promised (the apology
letter: judged on the first promise), waiting for the citizen (the clock stopped), a
supplement wait across the 2/9/2026 holidays, a promise on a holiday, one whose deadline
passes while the test watches (the worker's deadline timer), closed and future ones.
"""
from __future__ import annotations

import os
import subprocess
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from schemas.codec import encode
from schemas.contracts import DossierEvent, SupplementRound
from schemas.reference import load_reference
from tests.browser.test_boards import MANAGE, REPO, SUPERSET_PY, Stack, _chart_rows, _dataset_id

pytestmark = pytest.mark.browser
VN = timezone(timedelta(hours=7))
REF = load_reference()
UNIT = next(u for u in REF.units.values() if u.kind == "commune")
PROC = REF.procedures_at("commune")[0]


def _d(*a) -> datetime:
    return datetime(*a, tzinfo=VN)


def _events(code: str, *steps) -> list[DossierEvent]:
    common = dict(source_system="test", dossier_code=code, procedure_code=PROC.code,
                  procedure_field=PROC.field_code, unit_code=UNIT.code)
    return [DossierEvent(event_id=f"{code}-{i}", event_time=t, status=status, **common, **extra)
            for i, (status, t, extra) in enumerate(steps, 1)]


def _feed(now: datetime) -> tuple[list[DossierEvent], set[str]]:
    ago = now - timedelta(days=9)
    dossiers = {
        "T-PAST-DUE": [(2, ago, dict(received_at=ago, promised_at=now - timedelta(days=2))), (4, ago + timedelta(hours=1), {})],
        "T-FUTURE": [(2, ago, dict(received_at=ago, promised_at=now + timedelta(days=3))), (4, ago + timedelta(hours=1), {})],
        # the apology letter: a later NgayHenTra without a supplement round; judged on the first promise
        "T-REPROMISED": [(2, ago, dict(received_at=ago, promised_at=now - timedelta(days=2))),
                         (4, now - timedelta(hours=5), dict(promised_at=now + timedelta(days=6)))],
        # waiting for the citizen since before the promised date: the clock is stopped
        "T-WAITING": [(2, ago, dict(received_at=ago, promised_at=now - timedelta(days=1))),
                      (5, now - timedelta(days=4), dict(supplements=[SupplementRound(
                          requested_at=now - timedelta(days=4), old_promised_at=now - timedelta(days=1))]))],
        # promised on a holiday (2/9/2026), still open
        "T-HOLIDAY-OPEN": [(2, _d(2026, 8, 25, 9), dict(received_at=_d(2026, 8, 25, 9), promised_at=_d(2026, 9, 2, 10))),
                           (4, _d(2026, 8, 25, 10), {})],
        # a supplement wait across 31/8-2/9 (a bridge day and the holidays), resumed, still open
        "T-HOLIDAY-WAIT": [(2, _d(2026, 8, 20, 9), dict(received_at=_d(2026, 8, 20, 9), promised_at=_d(2026, 8, 28, 16))),
                           (5, _d(2026, 8, 27, 9), dict(supplements=[SupplementRound(
                               requested_at=_d(2026, 8, 27, 9), old_promised_at=_d(2026, 8, 28, 16))])),
                           (4, _d(2026, 9, 3, 9), dict(supplements=[SupplementRound(
                               requested_at=_d(2026, 8, 27, 9), resumed_at=_d(2026, 9, 3, 9),
                               old_promised_at=_d(2026, 8, 28, 16), new_promised_at=_d(2026, 9, 8, 16))]))],
        # finished the morning after a holiday promise: late, closed, not overdue
        "T-HOLIDAY-CLOSED": [(2, _d(2026, 8, 25, 9), dict(received_at=_d(2026, 8, 25, 9), promised_at=_d(2026, 9, 2, 10))),
                             (9, _d(2026, 9, 3, 8, 30), dict(finished_at=_d(2026, 9, 3, 8, 30)))],
        # the deadline passes while the test watches: the worker's deadline timer marks it
        "T-SOON": [(2, now - timedelta(days=1), dict(received_at=now - timedelta(days=1),
                                                    promised_at=now + timedelta(seconds=40))),
                   (4, now - timedelta(hours=20), {})],
    }
    expected = {"T-PAST-DUE", "T-REPROMISED", "T-HOLIDAY-OPEN", "T-HOLIDAY-WAIT", "T-SOON"}
    return [e for code, steps in dossiers.items() for e in _events(code, *steps)], expected


@pytest.fixture(scope="module")
def truth(settings, tmp_path_factory):
    from kafka import KafkaProducer

    from pulse.admin import create_topics
    from pulse.procs import free_port
    from sinks.client import get_client
    from sinks.migrate import migrate_settings
    from sinks.reference import load_reference_tables
    from tests.support.endpoint import start_endpoint
    from tests.support.worker import start_worker

    tag = uuid.uuid4().hex[:8]
    state = tmp_path_factory.mktemp("truth-state")
    # its own ClickHouse: the board's datasets are in the database `motcua`, as in production
    ep = start_endpoint(tmp_path_factory.mktemp("truth-chdb") / "data")
    s = settings.with_(clickhouse_url=f"{ep.url}/motcua",
                       topic_prefix=f"truth{tag}.", faust_app_id=f"motcua-truth-{tag}", state_dir=state,
                       superset_port=free_port(), superset_admin_password="",
                       # every overdue dossier of the feed gets its alert, however long ago its deadline passed
                       alert_window_minutes=400 * 24 * 60)
    create_topics(s)
    migrate_settings(s, log=None)
    client = get_client(s)
    load_reference_tables(client, REF)
    now = datetime.now(VN).replace(microsecond=0)
    events, expected = _feed(now)
    worker = start_worker(s, log_path=state / "worker.log")
    producer = KafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all")
    for ev in events:
        producer.send(s.topic("dossier-events"), key=ev.dossier_code.encode(), value=encode(ev))
    producer.flush()
    producer.close()
    # every event applied, and T-SOON's deadline (now + 40 s) passed and marked by the timer
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        n = client.command("SELECT count() FROM dossier_events FINAL")
        soon = client.command("SELECT countIf(overdue) FROM dossier_state FINAL WHERE dossier_code = 'T-SOON'")
        if n == len(events) and soon:
            break
        time.sleep(1)
    env = {k: v for k, v in os.environ.items() if k not in ("SUPERSET_ADMIN_PASSWORD", "SUPERSET_SECRET_KEY")}
    env.update(PULSE_STATE_DIR=str(state), SUPERSET_PORT=str(s.superset_port), CLICKHOUSE_URL=s.clickhouse_url,
               SUPERSET_ADMIN_USER="admin")
    stack = Stack(s, env)
    try:
        from sinks.migrate import refresh_board_aggregates
        refresh_board_aggregates(client)
        stack.manage("init")
        stack.manage("start")
        stack.manage("import")
        yield stack, client, expected, len(events)
    finally:
        subprocess.run([str(SUPERSET_PY), str(MANAGE), "stop"], env=env, cwd=REPO, timeout=60)
        worker.stop()
        client.close()
        ep.stop()


def test_alerts_board_and_state_agree_on_every_overdue_dossier(truth):
    stack, client, expected, n_events = truth
    assert client.command("SELECT count() FROM dossier_events FINAL") == n_events
    state = {code for (code,) in client.query(
        "SELECT dossier_code FROM dossier_state FINAL WHERE is_open AND overdue").result_rows}
    alerts = {code for (code,) in client.query(
        "SELECT dossier_code FROM alerts FINAL WHERE kind = 'overdue'").result_rows}
    api = stack.api("admin", stack.password())
    r = _chart_rows(api, _dataset_id(api, "v_overdue_now"), ["dossier_code", "deadline_reading"], [])
    assert r.status_code == 200, r.text
    board_rows = r.json()["result"][0]["data"]
    board = {row["dossier_code"] for row in board_rows}
    assert state == expected, state ^ expected
    assert alerts == expected, alerts ^ expected
    assert board == expected, board ^ expected
    assert {row["deadline_reading"] for row in board_rows} == {"shift_by_wait"}
    # the board's overdue count is the same judgement
    r = _chart_rows(api, _dataset_id(api, "v_unit_scoreboard"), ["unit_code"], ["sb_overdue_now"])
    assert r.status_code == 200, r.text
    counts = {row["unit_code"]: row["sb_overdue_now"] for row in r.json()["result"][0]["data"]}
    assert counts.get(UNIT.code) == len(expected)


def test_the_stored_judgement_is_the_rule(truth):
    """The two holiday cases, by hand: the promise on 2/9 (a holiday) finished at 08:30 on 3/9
    is late (the instant is after the deadline); the supplement wait across 31/8-2/9 moved
    the first promise (28/8 16:00) by the working time waited, past 3/9."""
    _, client, _, _ = truth
    rows = dict(client.query("SELECT dossier_code, outcome FROM dossier_state FINAL "
                             "WHERE dossier_code IN ('T-HOLIDAY-CLOSED')").result_rows)
    assert rows == {"T-HOLIDAY-CLOSED": "late"}
    (deadline,) = client.query("SELECT deadline FROM dossier_state FINAL WHERE dossier_code = 'T-HOLIDAY-WAIT'"
                               ).result_rows[0]
    assert deadline > _d(2026, 9, 3, 9)     # moved on past the day processing resumed
    (deadline,) = client.query("SELECT deadline FROM dossier_state FINAL WHERE dossier_code = 'T-REPROMISED'"
                               ).result_rows[0]
    assert deadline < datetime.now(VN)      # the first promise, not the apology's new date
