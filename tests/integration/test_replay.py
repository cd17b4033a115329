"""``pulse replay`` on the REAL ClickHouse engine (chDB endpoint), after a REAL worker on the
REAL broker has processed a simulated month with duplicates, out-of-order and malformed
messages, and a kill -9 in the middle (so the live tables hold what a crash leaves: rows
written twice, state rows of a batch replayed).

* the replayed database equals the live one table by table (FINAL, every column but the
  wall-clock ones, pulse.replay.WALL_CLOCK_COLUMNS), and the batch recomputation of the
  exactness test (tests/integration/test_worker_exactness.assert_exact);
* a replay SIGKILLed mid-fold and run again with ``--resume`` gives the same tables;
* board views queried in a loop while a replay swaps never fail and show the old or the
  new numbers, never something else (the live state was damaged first, so they differ);
* bad arguments: a clear error, exit 2.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from pulse.config import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]

UTC = timezone.utc


@pytest.fixture(scope="module")
def live(settings, tmp_path_factory):
    """(settings, events, worker) after a worker consumed a simulated month with one kill -9,
    and the live tables' snapshot then."""
    from tests.integration.test_worker_exactness import kill_during, produce, simulated_month, start_traced, \
        wait_consumed
    tmp = tmp_path_factory.mktemp("replay")
    s, events = simulated_month(settings, tmp, "replay")
    worker = start_traced(s, tmp)
    try:
        half = len(events) // 2
        kill_during(s, worker, events[:half])
        worker.start()
        produce(s, events[half:])
        wait_consumed(s, worker)
    finally:
        worker.stop()
    stopped = datetime.now(UTC)
    yield s, events, worker, snapshot(s), stopped


@pytest.fixture(autouse=True)
def no_replay_left(live):
    """Each test starts with no replay database of the live one: a test that fails midway
    leaves its unfinished replay, and every later test would then meet "an unfinished
    replay exists" instead of what it checks."""
    from pulse.replay import replay_databases
    yield
    c = _client(live[0])
    try:
        for name in replay_databases(c, _db(live[0])):
            c.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")
    finally:
        c.close()


def _client(s, database=""):
    from sinks.client import get_client
    return get_client(s, database=database)


def _db(s) -> str:
    from sinks.client import database_of
    return database_of(s)


def snapshot(s, database: str | None = None) -> dict[str, dict]:
    """{table: {key: row without the wall-clock columns}} of every rebuilt table, FINAL."""
    from pulse.replay import NOT_REBUILT, WALL_CLOCK_COLUMNS, base_tables, columns_of, q
    db = database or _db(s)
    c = _client(s)
    try:
        out = {}
        for t, engine in sorted(base_tables(c, db).items()):
            if t in NOT_REBUILT:
                continue
            cols = [x for x in columns_of(c, db, t) if x not in WALL_CLOCK_COLUMNS.get(t, ())]
            final = " FINAL" if "Replacing" in engine else ""
            rows = c.query(f"SELECT {', '.join(q(x) for x in cols)} FROM {q(db)}.{q(t)}{final}").result_rows
            out[t] = {"columns": cols, "rows": sorted(map(repr, rows))}
        return out
    finally:
        c.close()


def assert_same(got: dict, want: dict, borderline_codes: set) -> None:
    """Table by table; in dossier_state, a dossier whose deadline fell between the live run
    and the replay may differ in overdue and version only (judged at another time)."""
    assert sorted(got) == sorted(want)
    for t in want:
        assert got[t]["columns"] == want[t]["columns"], t
        g, w = got[t]["rows"], want[t]["rows"]
        if t == "dossier_state" and borderline_codes:
            g = [r for r in g if not any(repr(c) in r for c in borderline_codes)]
            w = [r for r in w if not any(repr(c) in r for c in borderline_codes)]
        assert len(g) == len(w), (t, len(g), len(w))
        diff = [(a, b) for a, b in zip(g, w) if a != b]
        assert not diff, (t, diff[:3])


def borderline(s, since: datetime) -> set:
    """Dossiers whose deadline lies between ``since`` (a minute before) and now (a minute after)."""
    c = _client(s, _db(s))
    try:
        return {r[0] for r in c.query(
            "SELECT dossier_code FROM dossier_state FINAL WHERE deadline BETWEEN {a:DateTime64(3)} AND {b:DateTime64(3)}",
            parameters={"a": since - timedelta(minutes=1), "b": datetime.now(UTC) + timedelta(minutes=1)}).result_rows}
    finally:
        c.close()


def _drop(s, database: str) -> None:
    c = _client(s)
    try:
        c.command(f"DROP DATABASE IF EXISTS `{database}` SYNC")
    finally:
        c.close()


def cli(s, *args, timeout=300) -> subprocess.CompletedProcess:
    env = {**os.environ, **s.to_env()}
    return subprocess.run([sys.executable, "-m", "pulse.cli", "replay", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_replay_equals_live_table_by_table(live):
    from pulse.replay import EVENTS_TABLE, _compact, replay, table_uuids
    from streams.eviction import HISTORY_COLUMNS, compact_from_row
    from tests.integration.test_worker_exactness import assert_exact
    s, events, worker, before, stopped = live
    c = _client(s)
    db = _db(s)
    built = None
    try:
        uuids_before = table_uuids(c, db, before)
        # built, not swapped: the replay's events are the stream's compact events, one by one
        built = replay(s, batch=700, swap=False, progress=False)
        assert not built.swapped and built.events > 5000 and built.dossiers > 1000
        got = {r[1]: _compact(r) for r in c.query(f"SELECT * FROM `{built.database}`.{EVENTS_TABLE}").result_rows}
        res = c.query(f"SELECT {', '.join(HISTORY_COLUMNS)} FROM `{db}`.dossier_events FINAL")
        want = {d["event_id"]: compact_from_row(d) for d in (dict(zip(res.column_names, r)) for r in res.result_rows)}
        assert got == want
        assert snapshot(s) == before        # live untouched until the swap
        # then swapped in (a resume of the built replay), the old tables kept to compare
        r = replay(s, resume=True, keep_old=True, progress=False)
        assert r.swapped and r.resumed and r.database == built.database
        uuids_after = table_uuids(c, db, before)
        assert set(uuids_after) == set(uuids_before)
        assert not set(uuids_after.values()) & set(uuids_before.values()), "tables not exchanged"
        edge = borderline(s, stopped)
        assert_same(snapshot(s), before, edge)                # the replayed tables (now live) = the live ones
        assert_same(snapshot(s, r.database), before, set())   # the old ones, kept, untouched
        # the live views read the new tables (by name): the board against the recomputation
        print("\n" + assert_exact(s, events, [worker]))
    finally:
        c.close()
        if built is not None:
            _drop(s, built.database)


def _fold_chunks_done(s, database: str) -> int:
    c = _client(s)
    try:
        return int(c.query(f"SELECT count() FROM `{database}`.replay_progress WHERE step = 'fold'").result_rows[0][0])
    except Exception:  # noqa: BLE001 - not created yet
        return 0
    finally:
        c.close()


def test_sigkill_mid_replay_then_resume_gives_the_same_tables(live):
    from pulse.replay import replay_databases
    s, _events, _worker, before, stopped = live
    db = _db(s)
    c = _client(s)
    try:
        known = set(replay_databases(c, db))
        env = {**os.environ, **s.to_env()}
        proc = subprocess.Popen([sys.executable, "-m", "pulse.cli", "replay", "--batch", "400", "--quiet"],
                                cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            name = None
            while time.monotonic() < deadline and proc.poll() is None:
                new = set(replay_databases(c, db)) - known
                if new:
                    name = new.pop()
                    if _fold_chunks_done(s, name) >= 2:
                        break
                time.sleep(0.05)
            assert proc.poll() is None, f"the replay ended before the kill: {proc.communicate()}"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert name is not None
        at_kill = _fold_chunks_done(s, name)
        total = int(c.query(f"SELECT count() FROM `{name}`.replay_events").result_rows[0][0])
        assert 2 <= at_kill and at_kill * 400 < total, (at_kill, total)
        assert name in replay_databases(c, db)
        # a new replay refuses to start beside the unfinished one; --resume continues it
        again = cli(s, "--quiet")
        assert again.returncode == 2 and "--resume" in again.stderr, again
        done = cli(s, "--resume", "--quiet")
        assert done.returncode == 0, done.stderr
        assert f"replay: {total} events" in done.stdout, done.stdout
        assert name not in replay_databases(c, db)      # swapped, old tables dropped
        assert_same(snapshot(s), before, borderline(s, stopped))
    finally:
        c.close()


BOARD_QUERIES = {
    "v_dossier_daily": "SELECT sum(received), sum(resolved), sum(in_progress), sum(resolved_late) FROM v_dossier_daily",
    "v_overdue_now": "SELECT count() FROM v_overdue_now",
    "v_unit_scoreboard": "SELECT count(), sum(received) FROM v_unit_scoreboard",
    "v_ratings_daily": "SELECT sum(ratings) FROM v_ratings_daily",
    "v_dead_letters_by_reason": "SELECT count() FROM v_dead_letters_by_reason",
}


def _board(c) -> dict:
    return {name: repr(c.query(sql).result_rows) for name, sql in BOARD_QUERIES.items()}


def test_boards_never_error_while_a_replay_swaps(live):
    from pulse.replay import replay
    from sinks.migrate import refresh_board_aggregates
    s, _events, _worker, before, stopped = live
    db = _db(s)
    c = _client(s, db)
    try:
        # damage the live state (a wrong judgement stored for 50 dossiers, as a bug would),
        # so the boards before and after the replay differ
        rows = c.query("SELECT * FROM dossier_state FINAL WHERE NOT is_open AND outcome != 'late' LIMIT 50")
        bad = [list(r) for r in rows.result_rows]
        cols = list(rows.column_names)
        for r in bad:
            r[cols.index("outcome")] = "late"
            r[cols.index("version")] = r[cols.index("version")] + 1000
        undamaged = _board(c)
        c.insert("dossier_state", bad, column_names=cols)
        # (a scheduled refresh already running when the rows went in is what a refresh
        # request waits for: asked again until the damage shows)
        for _ in range(5):
            refresh_board_aggregates(c, db)
            old = _board(c)
            if old["v_dossier_daily"] != undamaged["v_dossier_daily"]:
                break
        assert old["v_dossier_daily"] != undamaged["v_dossier_daily"], "the damage does not show on the board"
        seen: list = []
        errors: list = []
        stop = threading.Event()

        def read_boards():
            rc = _client(s, db)
            try:
                while not stop.is_set():
                    try:
                        seen.append(_board(rc))
                    except Exception as e:  # noqa: BLE001 - what the test looks for
                        errors.append(repr(e))
            finally:
                rc.close()
        t = threading.Thread(target=read_boards, daemon=True)
        t.start()
        try:
            r = replay(s, batch=2000, progress=False)
            time.sleep(0.5)
        finally:
            stop.set()
            t.join(timeout=60)
        new = _board(c)
        assert r.swapped
        assert not errors, errors[:3]
        assert new == undamaged                                      # the damage is gone
        assert len(seen) >= 10, len(seen)
        for board in seen:
            for name, value in board.items():
                assert value in (old[name], new[name]), (name, value, old[name], new[name])
        assert seen[-1] == new
        assert_same(snapshot(s), before, borderline(s, stopped))
    finally:
        c.close()


def test_bad_arguments_give_a_clear_error(live):
    s = live[0]
    r = cli(s, "--tables", "dossier_state,nope")
    assert r.returncode == 2 and "unknown table(s) nope" in r.stderr and "dossier_state" in r.stderr, r
    r = cli(s, "--batch", "0")
    assert r.returncode == 2 and "--batch must be at least 1" in r.stderr, r
    r = cli(s, "--tables", " , ")
    assert r.returncode == 2 and "--tables" in r.stderr, r
    r = cli(s, "--source-db", "no_such_db")
    assert r.returncode == 2 and "source database no_such_db does not exist" in r.stderr, r
    r = cli(s, "--resume")
    assert r.returncode == 2 and "nothing to resume" in r.stderr, r
    r = cli(s, "--batch", "many")
    assert r.returncode == 2 and "invalid int value" in r.stderr, r
