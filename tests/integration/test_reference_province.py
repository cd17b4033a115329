"""A province other than Bắc Ninh end to end, on the real broker, worker and ClickHouse endpoint.

Hà Tĩnh's events are dead-lettered as unknown codes while the worker has the bundled Bắc Ninh
set; a bad file makes ``pulse reference import`` (the real CLI) exit 1 writing nothing; the
fixture files import; the running worker (same process, no restart) picks the new catalogue
up and accepts new Hà Tĩnh events; ``python -m expectations.redrive --unknown-codes`` brings
back exactly the dead letters that failed only for unknown codes, once; the board view shows
the Vietnamese names of Hà Tĩnh's units; a restarted worker keeps the imported catalogue (and
``make up``'s bundled load leaves it alone); the compacted topic holds the catalogue.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from pulse.config import REPO_ROOT
from tests.support.isolation import isolated

pytestmark = [pytest.mark.integration]

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "reference" / "ha-tinh"
PULSE = Path(sys.executable).with_name("pulse")
# (unit, procedure, field) of Hà Tĩnh's files: a department, a commune the units file names,
# two communes from vietnam-provinces (codes by the default template)
HA_TINH = [("000.00.01.H42", "2.000815", "G09-TP03"), ("000.01.60.H42", "1.001193", "G09-TP01"),
           ("000.01.50.H42", "1.000894", "G09-TP01"), ("000.02.50.H42", "1.009994", "G15-XD01")]
NAMES = {"000.00.01.H42": "Sở Tư pháp", "000.01.60.H42": "Ủy ban nhân dân phường Sông Trí",
         "000.01.50.H42": "Phường Thành Sen", "000.02.50.H42": "Phường Trần Phú"}


def _event(i: int, unit: str, proc: str, field: str, now: datetime, **extra) -> dict:
    return {"event_id": f"evt-hatinh-{i:06d}", "event_time": (now - timedelta(minutes=30)).isoformat(),
            "source_system": "motcua-hatinh", "dossier_code": f"H42-{i:05d}", "procedure_code": proc,
            "procedure_field": field, "unit_code": unit, "status": 1} | extra


def _produce(s, events: list[dict]) -> None:
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all")
    try:
        for e in events:
            p.send(s.topic("dossier-events"), key=e["dossier_code"].encode(),
                   value=json.dumps(e, ensure_ascii=False).encode())
        p.flush()
    finally:
        p.close()


def _wait(what: str, probe, worker, timeout_s: float = 180.0):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        assert worker.alive(), f"worker died\n{worker.tail()}"
        try:
            last = probe()
        except Exception as e:  # noqa: BLE001 - a table the worker has not created yet
            last = e
        if last is True:
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what} (last: {last})\n{worker.tail()}")


def _cli(s, *args: str, module: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, CLICKHOUSE_URL=s.clickhouse_url, KAFKA_BOOTSTRAP=s.kafka_bootstrap,
               PULSE_TOPIC_PREFIX=s.topic_prefix, PULSE_STATE_DIR=str(s.state_dir))
    cmd = [sys.executable, "-m", module, *args] if module else [str(PULSE), *args]
    return subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_a_new_province_is_imported_accepted_redriven_and_shown(settings, tmp_path):
    from kafka import KafkaConsumer

    from sinks.client import get_client
    from sinks.migrate import refresh_board_aggregates
    from sinks.reference import load_reference_tables
    from tests.support.worker import start_worker

    s = isolated(settings, tmp_path, "refprov")
    now = datetime.now(timezone.utc)
    # GX micro-batches every second, so the data-quality results before and after the import are apart
    tunables = {"reference_poll_interval_s": 1.0, "gx_batch_seconds": 1.0, "gx_min_interval_s": 1.0}
    worker = start_worker(s, {"PULSE_TUNABLES": json.dumps(tunables)}, log_path=tmp_path / "worker.log")
    client = get_client(s)
    try:
        # 1. before the import: Hà Tĩnh's codes are unknown to the bundled Bắc Ninh set
        before = [_event(i, *HA_TINH[i % 4], now) for i in range(6)]
        still_bad = [_event(90, *HA_TINH[0], now, status=11),                        # unknown code AND a bad status
                     _event(91, "000.99.99.H42", "1.001193", "G09-TP01", now)]       # a unit no file has
        _produce(s, before + still_bad)
        _wait("8 dead letters", lambda: client.command("SELECT count() FROM dead_letters FINAL") == 8, worker)
        rules = client.query("SELECT raw, rules FROM dead_letters FINAL", column_formats={"raw": "bytes"}).result_rows
        by_id = {json.loads(raw)["event_id"]: set(r) for raw, r in rules}
        for e in before:
            assert "dossier.unit_known" in by_id[e["event_id"]], by_id[e["event_id"]]
        assert client.command("SELECT count() FROM dossier_events") == 0
        unit_known = ("SELECT max(toUnixTimestamp64Milli(batch_time)), max(unexpected_count) FROM dq_results FINAL "
                      "WHERE rule = 'dossier.unit_known'")
        _wait("the data-quality batch of those events",
              lambda: (client.query(unit_known).result_rows[0][1] or 0) >= 7, worker)
        gx_before = client.query(unit_known).result_rows[0][0]

        # 2. a file with an error: exit 1, the row named, nothing written
        bad = tmp_path / "thu-tuc-loi.csv"
        bad.write_text("Mã thủ tục,Tên thủ tục,Mã lĩnh vực,Lĩnh vực,Cấp thực hiện,Thời hạn giải quyết,Mức độ DVC\n"
                       "1.001193,Đăng ký khai sinh,G09-TP01,Hộ tịch,Cấp Xã,theo quy định,4\n", encoding="utf-8")
        out = _cli(s, "reference", "import", str(FIXTURE / "don-vi.csv"), str(bad), "--communes-of", "42")
        assert out.returncode == 1, out.stdout + out.stderr
        assert f"{bad}:2: procedure 1.001193: unreadable resolution time" in out.stdout
        assert client.command("SELECT count() FROM ref_catalogue") == 0

        # 3. the import (dry run first: the report, nothing written)
        files = [str(FIXTURE / "don-vi.csv"), str(FIXTURE / "thu-tuc.xlsx"), "--communes-of", "42", "--province", "42"]
        out = _cli(s, "reference", "import", *files, "--dry-run")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "units       +75 added" in out.stdout and "dry run: nothing written" in out.stdout
        assert client.command("SELECT count() FROM ref_catalogue") == 0
        out = _cli(s, "reference", "import", *files)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "wrote catalogue version 1 to ClickHouse" in out.stdout, out.stdout
        # the unit no file has fails only for an unknown code too, and still fails: 7 wait, 6 pass
        assert "7 dead letters failed only for unknown unit/procedure codes; 6 pass" in out.stdout, out.stdout
        assert client.command("SELECT count() FROM ref_units FINAL") == 75
        assert client.command("SELECT unit_name FROM ref_units FINAL WHERE unit_code = '000.00.00.H42'") == \
            "Ủy ban nhân dân tỉnh Hà Tĩnh"
        # `make up` loads the bundled set only while nothing was imported: the import stays
        written = load_reference_tables(client)
        assert (written["ref_units"], written["ref_procedures"], written["ref_fields"]) == (0, 0, 0)
        assert client.command("SELECT count() FROM ref_units FINAL WHERE unit_code LIKE '%.H24'") == 0

        # 4. the running worker picks it up (the same process) and accepts new Hà Tĩnh events
        pid = worker.proc.pid
        _wait("the worker to load version 1",
              lambda: "reference catalogue version 1 in force" in worker.logs[-1].read_text(errors="replace"), worker)
        after = [_event(10 + i, *HA_TINH[i % 4], now) for i in range(4)]
        _produce(s, after)
        _wait("4 new events accepted", lambda: client.command("SELECT uniqExact(event_id) FROM dossier_events") == 4,
              worker)
        assert worker.proc.pid == pid
        # ... and the GX child of the worker judges them with the same catalogue (data-quality board)
        newer = (f"FROM dq_results FINAL WHERE rule = 'dossier.unit_known' "
                 f"AND toUnixTimestamp64Milli(batch_time) > {gx_before}")
        _wait("a data-quality batch after the import", lambda: client.command(f"SELECT count() {newer}") > 0, worker)
        assert client.command(f"SELECT max(unexpected_count) {newer}") == 0

        # 5. redrive: the 6 that failed only for unknown codes, once; the 2 others stay
        out = _cli(s, "--unknown-codes", module="expectations.redrive")
        assert out.returncode == 0, out.stdout + out.stderr
        assert "reference catalogue version 1" in out.stdout and "re-published 6" in out.stdout, out.stdout
        again = _cli(s, "--unknown-codes", module="expectations.redrive")
        assert "re-published 0" in again.stdout, again.stdout
        _wait("the 6 re-driven events accepted",
              lambda: client.command("SELECT uniqExact(event_id) FROM dossier_events") == 10, worker)
        left = client.query("SELECT raw FROM dead_letters FINAL WHERE redriven_at IS NULL",
                            column_formats={"raw": "bytes"}).result_rows
        assert sorted(json.loads(r)["event_id"] for (r,) in left) == ["evt-hatinh-000090", "evt-hatinh-000091"]
        assert client.command("SELECT count() FROM dead_letters FINAL WHERE redriven_at IS NOT NULL") == 6
        assert client.command("SELECT count() FROM dead_letters FINAL") == 8     # none dead-lettered again
        got = client.query("SELECT event_id, count() FROM dossier_events FINAL GROUP BY event_id").result_rows
        assert sorted(e for e, _ in got) == sorted(e["event_id"] for e in before + after)
        assert all(n == 1 for _, n in got)

        # 6. the board shows Hà Tĩnh's units by their Vietnamese names
        refresh_board_aggregates(client)
        board = dict(client.query("SELECT unit_code, unit_name FROM v_unit_scoreboard").result_rows)
        assert {c: board.get(c) for c in NAMES} == NAMES
        received = dict(client.query("SELECT unit_code, received FROM v_unit_scoreboard").result_rows)
        assert sum(received[c] for c in NAMES) == 10

        # 7. a restarted worker starts with the imported catalogue, not the bundled one
        worker.restart()
        _produce(s, [_event(20, *HA_TINH[1], now)])
        _wait("an event after the restart accepted",
              lambda: client.command("SELECT uniqExact(event_id) FROM dossier_events") == 11, worker)
        assert client.command("SELECT count() FROM dead_letters FINAL") == 8

        # 8. the compacted topic holds the catalogue, its version record last
        c = KafkaConsumer(s.topic("reference-catalogue"), bootstrap_servers=s.kafka_bootstrap, group_id=None,
                          auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=5000)
        try:
            records = [(m.key.decode(), m.value) for m in c]
        finally:
            c.close()
        assert records[-1][0] == "catalogue" and json.loads(records[-1][1])["version"] == 1
        keys = {k: v for k, v in records}
        assert json.loads(keys["unit/000.00.00.H42"])["name"] == "Ủy ban nhân dân tỉnh Hà Tĩnh"
        assert keys["unit/000.00.01.H24"] is None       # Bắc Ninh's units: tombstones
        assert len([k for k in keys if k.startswith("procedure/")]) >= 7
    finally:
        client.close()
        worker.stop(timeout=30)
