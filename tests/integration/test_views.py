"""The views step of sinks.migrate and the row-layout check, on the real ClickHouse engine
(the chDB endpoint; no mocks).

1. a fresh database gets every view of sinks/views/ once, recorded with its checksum;
2. a database migrated the old way (migrations 0005/0006/0008, copies kept in
   tests/fixtures/legacy_migrations/) and then the new way ends with the very view
   definitions and query results of a fresh one, and keeps its retired versions;
3. re-running changes nothing; a changed view file replaces just that view;
4. dependency order is checked; --status and --print list the views;
5. sinks.layout.check_layouts passes on the real schema and names what is wrong otherwise.
"""
from __future__ import annotations

import math
import random
import re
import shutil
import threading
import time
import uuid
from datetime import timezone
from pathlib import Path

import pytest

from pulse.config import Settings
from sinks.client import get_client
from sinks.layout import LayoutError, check_layouts
from sinks.migrate import (
    BOARD_AGGREGATES,
    MIGRATIONS_TABLE,
    RETIRED_MIGRATIONS,
    VIEWS_TABLE,
    Migration,
    MigrationError,
    Target,
    load_migrations,
    load_views,
    main,
    migrate,
    migrate_settings,
    migrate_views,
    order_views,
    parse_view,
    refresh_board_aggregates,
    render_all,
    render_view,
    view_checksum,
    view_states,
)
from sinks.rows import (
    DOSSIER_STATE_COLUMNS,
    TABLE_COLUMNS,
    as_dict,
    column_index,
    dead_letter_row,
)

pytestmark = pytest.mark.integration

LEGACY_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_migrations"
VIEWS_DIR = Path(__file__).resolve().parents[2] / "sinks" / "views"


def _settings(endpoint, prefix: str) -> Settings:
    return Settings().with_(clickhouse_url=f"{endpoint.url.rstrip('/')}/{prefix}_{uuid.uuid4().hex[:8]}")


def _db(s: Settings) -> str:
    return s.clickhouse_url.rsplit("/", 1)[1]


# The first migration written after the views step: what came before is the old history.
FIRST_AFTER_VIEWS_STEP = 9
# Views whose definition changed after the retirement (their files are their current
# definitions; the legacy copies keep the old ones). Why each changed:
CHANGED_SINCE_RETIREMENT = {
    "agg_overdue": "overdue is the stream's stored judgement, not promised_at < now() (issue 18)",
    "v_overdue_now": "shows the effective deadline and reading; days overdue counted from the deadline (issue 18)",
    "v_unit_scoreboard": "units ranked among peers of the same unit_kind (issue 18)",
}


def _legacy_migrations() -> list[Migration]:
    """The migration set as it was before the views step: the table migrations of that time
    plus the three retired view migrations, in version order."""
    legacy = []
    for p in sorted(LEGACY_DIR.glob("*.sql")):
        version, name = p.stem.split("_", 1)
        legacy.append(Migration(int(version), name, p.read_text(encoding="utf-8")))
    assert {m.version for m in legacy} == set(RETIRED_MIGRATIONS)
    return sorted([m for m in load_migrations() if m.version < FIRST_AFTER_VIEWS_STEP] + legacy,
                  key=lambda m: m.version)


def _objects(client, db: str) -> dict[str, tuple]:
    """name -> (engine, uuid, metadata_modification_time, create_table_query) of every view
    and aggregate: a recreated object gets a new uuid (a refresh keeps it)."""
    rows = client.query(
        "SELECT name, engine, uuid, metadata_modification_time, create_table_query FROM system.tables "
        "WHERE database = {db:String} AND engine IN ('View', 'MaterializedView')", parameters={"db": db}).result_rows
    return {r[0]: tuple(r[1:]) for r in rows}


def _normalised(create_query: str, db: str) -> str:
    # the database name and the inner tables' UUIDs are all that may differ between two
    # databases holding the same definition
    q = create_query.replace(f"{db}.", "DB.").replace(f"'{db}'", "'DB'")
    return re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID", q)


def _definitions(client, db: str) -> dict[str, str]:
    return {n: _normalised(o[3], db) for n, o in _objects(client, db).items()}


def _bookkeeping(client, db: str) -> list[tuple]:
    return client.query(f"SELECT name, checksum, replaced_at FROM {db}.{VIEWS_TABLE} ORDER BY name, replaced_at"
                        ).result_rows


# Columns that depend on the moment they are read (now(), the refresh): left out when two
# databases' results are compared a few milliseconds apart.
_MOMENT_COLUMNS = {"as_of", "age_s", "snapshot_age_s", "silent_minutes", "is_silent", "overdue_hours",
                   "last_success_time", "last_refresh_time", "next_refresh_time", "status"}


def _results(client, db: str) -> dict[str, list]:
    out = {}
    for name in sorted(_objects(client, db)):
        cols = [r[0] for r in client.query(f"DESCRIBE TABLE {db}.{name}").result_rows if r[0] not in _MOMENT_COLUMNS]
        rows = client.query(f"SELECT {', '.join(f'`{c}`' for c in cols)} FROM {db}.{name}").result_rows
        # float sums may add in another order: compare them to 9 significant digits
        norm = [tuple(float(f"{v:.9g}") if isinstance(v, float) and math.isfinite(v) else v for v in r) for r in rows]
        out[name] = sorted(norm, key=repr)
    return out


def _load_dataset(clients) -> None:
    """The board-view test's dataset (tests/integration/test_sinks.py), with reference data,
    built once (its times are relative to now) and inserted alike into each client's database."""
    from schemas.reference import load_reference
    from sinks.reference import load_reference_tables
    from sinks.rows import DEAD_LETTER_COLUMNS, PIPELINE_METRIC_COLUMNS, RATING_COLUMNS
    from tests.integration.test_sinks import _build_dataset, _insert_in_chunks

    ref = load_reference()
    now = clients[0].query("SELECT now64(3, 'Asia/Ho_Chi_Minh')").result_rows[0][0]
    now = now if now.tzinfo else now.replace(tzinfo=timezone.utc)
    units = sorted(u.code for u in ref.units.values())[:12]
    procedures = [(p.code, p.name, p.field_code) for p in list(ref.procedures.values())[:15]]
    state_rows, _, ratings, _, dead, _, metrics = _build_dataset(units, ref.fields, procedures, now, random.Random(1717))
    for client in clients:
        load_reference_tables(client, ref)
        _insert_in_chunks(client, "dossier_state", DOSSIER_STATE_COLUMNS, state_rows, None)
        _insert_in_chunks(client, "ratings", RATING_COLUMNS, ratings, None)
        _insert_in_chunks(client, "dead_letters", DEAD_LETTER_COLUMNS, dead, None)
        client.insert("pipeline_metrics", metrics, column_names=PIPELINE_METRIC_COLUMNS)
        refresh_board_aggregates(client)


# ------------------------------------------------------------------------ 1. fresh database

def test_fresh_database_gets_every_view_once_with_its_recorded_definition(clickhouse_endpoint):
    s = _settings(clickhouse_endpoint, "motcua_vfresh")
    db = _db(s)
    logged: list[str] = []
    assert migrate_settings(s, log=logged.append) == [m.version for m in load_migrations()]
    views = load_views()
    client = get_client(s)
    try:
        objects = _objects(client, db)
        assert set(objects) == {v.name for v in views} == {p.stem for p in VIEWS_DIR.glob("*.sql")}
        assert {n for n, o in objects.items() if o[0] == "MaterializedView"} == set(BOARD_AGGREGATES)
        # each created once (no history replayed: no view dropped and re-created on the way)
        assert [line for line in logged if "view" in line] == [f"created view {v.name}" for v in views]
        records = _bookkeeping(client, db)
        assert [r[0] for r in records] == sorted(v.name for v in views)
        target = Target(db)
        assert {r[0]: r[1] for r in records} == {v.name: view_checksum(render_view(v, target)) for v in views}
        assert all(state == "current" for _, state in view_states(client, target, views=views))
        # the table migrations only: a fresh install records no retired version
        versions = {r[0] for r in client.query(f"SELECT version FROM {db}.{MIGRATIONS_TABLE}").result_rows}
        assert versions == {m.version for m in load_migrations()} and not versions & set(RETIRED_MIGRATIONS)
        assert check_layouts(client, db) == TABLE_COLUMNS
    finally:
        client.close()


# ---------------------------------------------------------------------- 2. legacy database

def test_database_migrated_the_old_way_ends_like_a_fresh_one(clickhouse_endpoint):
    old_s, new_s = _settings(clickhouse_endpoint, "motcua_vlegacy"), _settings(clickhouse_endpoint, "motcua_vnew")
    old_db, new_db = _db(old_s), _db(new_s)
    client = get_client(old_s, database="")
    try:
        # the old way: 0001..0008 as they were, views and all, no views step
        applied = migrate(client, Target(old_db), migrations=_legacy_migrations(), log=None, views=[])
        assert applied == [1, 2, 3, 4, 5, 6, 7, 8]
        assert VIEWS_TABLE not in {r[0] for r in client.query(
            "SELECT name FROM system.tables WHERE database = {db:String}", parameters={"db": old_db}).result_rows}
        old_objects = _objects(client, old_db)
        legacy_names = set(old_objects)
        assert legacy_names <= {v.name for v in load_views()}      # every old view still has its file

        # the new way, by two workers starting at once: no error, retired versions kept,
        # nothing of them applied again, every view brought under bookkeeping
        errors: list = []
        applied_now: list = []

        def start():
            try:
                applied_now.extend(migrate_settings(old_s, log=None))   # only the table migrations written since
            except Exception as e:  # noqa: BLE001 - collected for the assertion
                errors.append(e)
        threads = [threading.Thread(target=start) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        assert not errors, errors
        versions = sorted(r[0] for r in client.query(f"SELECT version FROM {old_db}.{MIGRATIONS_TABLE} FINAL").result_rows)
        later = [m.version for m in load_migrations() if m.version >= FIRST_AFTER_VIEWS_STEP]
        assert versions == [1, 2, 3, 4, 5, 6, 7, 8, *later] and set(applied_now) == set(later)
        target = Target(old_db)
        assert all(state == "current" for _, state in view_states(client, target))
        # the views were replaced once by the views step (no checksum was recorded yet)
        assert all(o[1] != old_objects[n][1] for n, o in _objects(client, old_db).items() if n in legacy_names)

        migrate_settings(new_s, log=None)
        assert _definitions(client, old_db) == _definitions(client, new_db)

        # the same rows in both: the same answers from every view and aggregate
        clients = [get_client(old_s), get_client(new_s)]
        try:
            _load_dataset(clients)
        finally:
            for c in clients:
                c.close()
        old_results, new_results = _results(client, old_db), _results(client, new_db)
        assert set(old_results) == {v.name for v in load_views()}
        assert all(old_results[n] for n in ("v_dossier_daily", "v_overdue_now", "v_rating_criteria", "agg_overdue"))
        for name in old_results:
            assert old_results[name] == new_results[name], name
    finally:
        client.close()


def test_legacy_fixtures_are_the_retired_migrations():
    # The copies must be what old databases ran: the views they made are what the views
    # step has to converge from. Their current definitions equal the last statement of the
    # old history for each view (0008 for agg_overdue, 0006 for the re-pointed views, 0005
    # for the live ones).
    from sinks.migrate import split_statements
    last: dict[str, str] = {}
    for m in _legacy_migrations():
        if m.version not in RETIRED_MIGRATIONS:
            continue
        for stmt in split_statements(m.source):
            body = "\n".join(line for line in stmt.splitlines() if not line.strip().startswith("--")).strip()
            name = re.search(r"\{\{view (\w+)\}\}", body).group(1)
            if not body.startswith("DROP"):
                last[name] = re.sub(r"^CREATE VIEW IF NOT EXISTS", "CREATE OR REPLACE VIEW", body)
    current = {v.name: v.source for v in load_views() if v.name in last}
    assert set(current) == set(last)
    for name, source in current.items():
        if name in CHANGED_SINCE_RETIREMENT:
            assert source != last[name], f"{name} is listed as changed but is not"
        else:
            assert source == last[name], name


# ------------------------------------------------------------- 3. re-run, changed view file

def test_rerun_recreates_nothing(clickhouse_endpoint):
    s = _settings(clickhouse_endpoint, "motcua_vrerun")
    db = _db(s)
    migrate_settings(s, log=None)
    client = get_client(s)
    try:
        refresh_board_aggregates(client)     # a refresh swaps the aggregate's data, not the view
        before, records = _objects(client, db), _bookkeeping(client, db)
        time.sleep(1.1)                      # a re-created view would show a later modification time
        logged: list[str] = []
        assert migrate_settings(s, log=logged.append) == [] and logged == []
        assert migrate_views(client, Target(db), log=None) == []
        assert _objects(client, db) == before and _bookkeeping(client, db) == records
    finally:
        client.close()


def test_a_changed_view_file_replaces_just_that_view(clickhouse_endpoint, tmp_path):
    s = _settings(clickhouse_endpoint, "motcua_vchange")
    db = _db(s)
    target = Target(db)
    migrate_settings(s, log=None)
    client = get_client(s)
    try:
        now = client.query("SELECT now64(3, 'Asia/Ho_Chi_Minh')").result_rows[0][0]
        rows = [dead_letter_row(topic="t", partition=0, offset=i, raw=b"x", rules=["r"], reasons=["why"],
                                received_at=now) for i in range(3)]
        client.insert("dead_letters", rows, column_names=TABLE_COLUMNS["dead_letters"])
        refresh_board_aggregates(client)
        before = _objects(client, db)
        views_dir = tmp_path / "views"
        shutil.copytree(VIEWS_DIR, views_dir)
        # a comment only: the definition run is the same, nothing is replaced
        p = views_dir / "v_dossier_daily.sql"
        p.write_text("-- a new why-comment\n" + p.read_text())
        assert migrate_views(client, target, views=load_views(views_dir), log=None) == []
        # a plain view and an aggregate changed: just those two, the aggregate first
        p = views_dir / "v_freshness.sql"
        p.write_text(p.read_text().replace("AS snapshot_age_s", "AS snapshot_age_s, 1 AS probe"))
        p = views_dir / "agg_rating_criteria.sql"
        p.write_text(p.read_text().replace("GROUP BY day, unit_code, criterion, level",
                                           "GROUP BY day, unit_code, criterion, level\nHAVING ratings > 0"))
        changed = load_views(views_dir)
        states = {v.name: st for v, st in view_states(client, target, views=changed)}
        assert {n for n, st in states.items() if st != "current"} == {"v_freshness", "agg_rating_criteria"}
        assert states["v_freshness"] == "changed"
        assert migrate_views(client, target, views=changed, log=None) == ["agg_rating_criteria", "v_freshness"]
        after = _objects(client, db)
        assert set(after) == set(before)
        for name in before:
            assert (after[name] == before[name]) == (name not in ("v_freshness", "agg_rating_criteria")), name
        assert "probe" in after["v_freshness"][3] and "HAVING" in after["agg_rating_criteria"][3]
        # the re-created aggregate computed itself; the view over it reads it as before
        client.command(f"SYSTEM WAIT VIEW {db}.agg_rating_criteria")
        assert client.query("SELECT count() FROM v_rating_criteria").result_rows[0][0] == 0   # no ratings yet
        assert client.query("SELECT probe FROM v_freshness").result_rows == []
        # a dropped view is missing, and comes back
        client.command(f"DROP VIEW {db}.v_silent_kiosks")
        assert {v.name: st for v, st in view_states(client, target, views=changed)}["v_silent_kiosks"] == "missing"
        assert migrate_views(client, target, views=changed, log=None) == ["v_silent_kiosks"]
        # back to the repository's files: the two changed ones are replaced again
        assert migrate_views(client, target, log=None) == ["agg_rating_criteria", "v_freshness"]
        assert all(st == "current" for _, st in view_states(client, target))
        assert client.query("SELECT sum(n) FROM v_dead_letters_by_reason").result_rows[0][0] == 3
    finally:
        client.close()


# ------------------------------------------------------------ 4. order, retired, CLI

def test_views_come_after_the_views_they_read_and_the_order_is_checked():
    views = load_views()
    pos = {v.name: i for i, v in enumerate(views)}
    assert all(pos[d] < pos[v.name] for v in views for d in v.depends)
    assert {v.name for v in views if v.kind == "refreshable"} == set(BOARD_AGGREGATES)
    assert set(parse_view("v_province_now", (VIEWS_DIR / "v_province_now.sql").read_text()).depends) == {
        "agg_dossier_daily", "agg_overdue", "agg_ratings_daily"}

    a = parse_view("agg_a", "CREATE MATERIALIZED VIEW IF NOT EXISTS {{view agg_a}}\nREFRESH EVERY 1 SECOND\n"
                            "ENGINE = MergeTree ORDER BY x AS SELECT 1 AS x;\n")
    b = parse_view("v_b", "-- depends: agg_a\nCREATE OR REPLACE VIEW {{view v_b}} AS SELECT x FROM {{db}}.agg_a;\n")
    assert [v.name for v in order_views([b, a])] == ["agg_a", "v_b"]
    with pytest.raises(MigrationError, match="unknown view"):
        order_views([b])
    undeclared = parse_view("v_c", "CREATE OR REPLACE VIEW {{view v_c}} AS SELECT x FROM {{db}}.agg_a;\n")
    with pytest.raises(MigrationError, match="without declaring"):
        order_views([a, undeclared])
    c1 = parse_view("v_c1", "-- depends: v_c2\nCREATE OR REPLACE VIEW {{view v_c1}} AS SELECT 1;\n")
    c2 = parse_view("v_c2", "-- depends: v_c1\nCREATE OR REPLACE VIEW {{view v_c2}} AS SELECT 1;\n")
    with pytest.raises(MigrationError, match="cycle"):
        order_views([c1, c2])
    with pytest.raises(MigrationError, match="defines v_x"):
        parse_view("v_y", "CREATE OR REPLACE VIEW {{view v_x}} AS SELECT 1;\n")
    with pytest.raises(MigrationError, match="refreshable"):
        parse_view("agg_z", "CREATE MATERIALIZED VIEW IF NOT EXISTS {{view agg_z}} TO {{db}}.t AS SELECT 1;\n")
    with pytest.raises(MigrationError, match="migrations"):
        parse_view("v_t", "CREATE OR REPLACE VIEW {{view v_t}} AS SELECT * FROM {{table t | x}};\n")


def test_a_migration_file_may_not_take_a_retired_number(tmp_path):
    shutil.copy(LEGACY_DIR / "0006_board_aggregates.sql", tmp_path / "0006_board_aggregates.sql")
    with pytest.raises(MigrationError, match="retired"):
        load_migrations(tmp_path)


def test_status_and_print_list_the_views(clickhouse_endpoint, monkeypatch, capsys):
    s = _settings(clickhouse_endpoint, "motcua_vstatus")
    db = _db(s)
    client = get_client(s, database="")
    try:
        migrate(client, Target(db), migrations=_legacy_migrations(), log=None, views=[])
        monkeypatch.setenv("CLICKHOUSE_URL", s.clickhouse_url)
        assert main(["--status"]) == 0
        out = capsys.readouterr().out
        assert "0005_views: retired" in out and "0008_overdue_needs_a_promise: retired" in out
        assert "0007_dq_rule: applied" in out
        assert "view v_freshness: changed" in out          # present, no definition recorded yet
        assert main([]) == 0
        capsys.readouterr()
        client.command(f"DROP VIEW {db}.v_freshness")
        client.insert(f"{db}.{VIEWS_TABLE}", [["v_overdue_now", "view", "0" * 64, "", "single",
                                               client.query("SELECT now64(3)").result_rows[0][0]]],
                      column_names=["name", "kind", "checksum", "definition", "target", "replaced_at"])
        assert main(["--status"]) == 0
        out = capsys.readouterr().out
        assert "view v_freshness: missing" in out and "view v_overdue_now: changed" in out
        assert "view agg_overdue: current" in out
        assert main([]) == 0 and "schema up to date" not in capsys.readouterr().out
        assert main([]) == 0 and "schema up to date" in capsys.readouterr().out
    finally:
        client.close()
    sql = render_all(Target("motcua"))
    assert sql.index("CREATE TABLE IF NOT EXISTS motcua.dossier_state") < sql.index("-- views") \
        < sql.index("CREATE MATERIALIZED VIEW IF NOT EXISTS motcua.agg_overdue") \
        < sql.index("CREATE OR REPLACE VIEW motcua.v_overdue_now")
    assert "{{" not in sql and "0005" not in sql


# ----------------------------------------------------------------------- 5. row layouts

def test_row_layouts_match_the_tables_and_a_mismatch_is_named(clickhouse_endpoint):
    s = _settings(clickhouse_endpoint, "motcua_vlayout")
    db = _db(s)
    migrate_settings(s, log=None)
    client = get_client(s)
    try:
        assert check_layouts(client, db) == TABLE_COLUMNS      # inserted_at DEFAULT: not written, fine
        client.command(f"ALTER TABLE {db}.dossier_state DROP COLUMN overdue")
        client.command(f"ALTER TABLE {db}.alerts MODIFY COLUMN kind String AFTER unit_code")
        client.command(f"ALTER TABLE {db}.ratings ADD COLUMN station String")
        client.command(f"ALTER TABLE {db}.dead_letters ADD COLUMN note String DEFAULT ''")   # has a default: fine
        with pytest.raises(LayoutError) as e:
            check_layouts(client, db)
        msg = str(e.value)
        assert f"{db}.dossier_state: written by the code but not in the table: ['overdue']" in msg
        assert f"{db}.alerts: columns in another order" in msg and "'kind'" in msg
        assert f"{db}.ratings: in the table without a DEFAULT but not written by the code: ['station']" in msg
        assert "dead_letters" not in msg and "dossier_events" not in msg
        client.command(f"DROP TABLE {db}.pipeline_metrics")
        with pytest.raises(LayoutError, match=f"{db}.pipeline_metrics: no such table"):
            check_layouts(client, db)
    finally:
        client.close()


def test_rows_by_column_name():
    row = dead_letter_row(topic="t", partition=2, offset=7, raw=b"ab", rules=["r"], reasons=["why"])
    d = as_dict("dead_letters", row)
    assert list(d) == TABLE_COLUMNS["dead_letters"] and (d["partition"], d["offset"], d["raw_size"]) == (2, 7, 2)
    assert row[column_index("dead_letters", "raw")] == b"ab"
    assert column_index("dossier_state", "version") == DOSSIER_STATE_COLUMNS.index("version")
    with pytest.raises(KeyError, match="no column"):
        column_index("dead_letters", "nope")
    with pytest.raises(KeyError, match="no sink table"):
        column_index("nope", "raw")
    with pytest.raises(ValueError, match="13 values"):
        as_dict("dead_letters", row[:-1])
