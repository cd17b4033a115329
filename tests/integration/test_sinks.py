"""ClickHouse schema and sink, through the local chDB HTTP endpoint (no mocks).

1. migrations: re-running changes nothing; a modified applied migration is an error;
   the cluster rendering uses ReplicatedMergeTree + Distributed.
2. outage (slow): the endpoint is killed for 60 s under a continuous load; after it comes
   back on the same port and data directory nothing is lost and nothing duplicated.
3. board views: every view equals the same numbers computed in Python from the raw rows.
4. writer: async API and backpressure; the sink's own encoding stores exactly what
   clickhouse-connect's insert() stores.
"""
from __future__ import annotations

import random
import threading
from functools import partial
import time
import uuid
from collections import Counter, defaultdict
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from pulse.config import Settings
from sinks.client import get_client
from sinks.migrate import (BOARD_AGGREGATES, MIGRATIONS_TABLE, Migration, MigrationError, Target, load_migrations,
                           migrate, migrate_settings, refresh_board_aggregates, render_all)
from sinks.reference import _default_calendar, calendar_rows, load_reference_tables
from sinks.rows import (DEAD_LETTER_COLUMNS, DOSSIER_EVENT_COLUMNS, DOSSIER_STATE_COLUMNS,
                        PIPELINE_METRIC_COLUMNS, RATING_COLUMNS, SINK_KEYS, as_dict, column_index, dead_letter_row)
from sinks.writer import ClickHouseSink, SinkError, arrival_rate, insert_interval

pytestmark = pytest.mark.integration

VN = ZoneInfo("Asia/Ho_Chi_Minh")


def _ev(name: str) -> int:
    """Position of a dossier_events column in a row (rows are lists in column order)."""
    return column_index("dossier_events", name)


def _settings_for(url: str, database: str) -> Settings:
    return Settings().with_(clickhouse_url=f"{url.rstrip('/')}/{database}")


@pytest.fixture(scope="module")
def ch_settings(clickhouse_endpoint):
    s = _settings_for(clickhouse_endpoint.url, f"motcua_sinks_{uuid.uuid4().hex[:8]}")
    migrate_settings(s, log=None)
    return s


@pytest.fixture(scope="module")
def client(ch_settings):
    c = get_client(ch_settings)
    yield c
    c.close()


# --------------------------------------------------------------------------- 1. migrations

def _schema_snapshot(client, db):
    # Refreshable views swap their inner table at each refresh: compare their definitions only.
    tables = client.query(
        "SELECT name, engine, create_table_query, "
        "       if(engine = 'MaterializedView', toDateTime(0), metadata_modification_time) "
        "FROM system.tables WHERE database = {db:String} AND NOT startsWith(name, '.inner') "
        # a refreshable view's refresh builds its result in a transient '.tmp.inner_id...' table
        "AND NOT startsWith(name, '.tmp.') ORDER BY name",
        parameters={"db": db}).result_rows
    migrations = client.query(f"SELECT version, checksum, applied_at FROM {db}.{MIGRATIONS_TABLE} ORDER BY version").result_rows
    return tables, migrations


def test_migrations_rerun_changes_nothing(ch_settings, client):
    db = client.database
    before = _schema_snapshot(client, db)
    names = {r[0] for r in before[0]}
    for t in ("dossier_events", "ratings", "dossier_state", "dead_letters", "dq_results", "alerts",
              "pipeline_metrics", "ref_units", "ref_procedures", "ref_fields", "ref_calendar",
              "v_dossier_daily", "v_unit_scoreboard", "v_province_now", "v_overdue_now", "v_ratings_daily",
              "v_rating_criteria", "v_silent_kiosks", "v_dead_letters_by_reason", "v_freshness", "v_board_as_of", "v_rules_in_force",
              *BOARD_AGGREGATES):
        assert t in names, t
    assert [v for v, *_ in before[1]] == [m.version for m in load_migrations()]

    assert migrate_settings(ch_settings, log=None) == []
    time.sleep(1.1)  # a re-created table would show a later metadata_modification_time
    assert migrate_settings(ch_settings, log=None) == []
    assert _schema_snapshot(client, db) == before


def test_workers_starting_together_migrate_a_fresh_database(clickhouse_endpoint, client):
    """Several workers starting at once run the migrations concurrently on a fresh
    database: every one of them starts and each migration is applied once. (The race a
    retry in migrate_settings covers, a statement failing on what another migrator is
    replacing, needs a narrower timing than this reproduces; it was seen in the
    two-worker exactness test.)"""
    s = _settings_for(clickhouse_endpoint.url, f"motcua_together_{uuid.uuid4().hex[:8]}")
    errors: list = []

    def start():
        try:
            migrate_settings(s, log=None)
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)
    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    db = s.clickhouse_url.rsplit("/", 1)[1]
    versions = {r[0] for r in client.query(f"SELECT version FROM {db}.{MIGRATIONS_TABLE} FINAL").result_rows}
    assert versions == {m.version for m in load_migrations()}


def test_modified_applied_migration_is_an_error(ch_settings, client):
    ms = load_migrations()
    tampered = [Migration(m.version, m.name, m.source + ("\n-- edited\n" if m.version == 1 else "")) for m in ms]
    with pytest.raises(MigrationError, match="modified"):
        migrate(client, Target(client.database), migrations=tampered, log=None)


def test_cluster_variant_renders_replicated_and_distributed():
    sql = render_all(Target("motcua", cluster="pulse"))
    assert "{{" not in sql and "}}" not in sql
    for t in ("dossier_events", "ratings", "dossier_state", "dead_letters", "dq_results", "alerts", "pipeline_metrics"):
        assert f"CREATE TABLE IF NOT EXISTS motcua.{t}_local ON CLUSTER 'pulse'" in sql
        assert f"ENGINE = Distributed('pulse', 'motcua', '{t}_local'," in sql
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)" in sql
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/{table}', '{replica}', version, is_deleted)" in sql
    # views (sinks/views/) after the tables, replaced on a change: plain views in place,
    # refreshable aggregates created (after a drop) if missing
    assert sql.index("CREATE OR REPLACE VIEW motcua.v_unit_scoreboard ON CLUSTER 'pulse'") > sql.index("motcua.dq_results")
    assert "CREATE MATERIALIZED VIEW IF NOT EXISTS motcua.agg_overdue ON CLUSTER 'pulse'" in sql
    single = render_all(Target("motcua"))
    assert "Replicated" not in single and "Distributed" not in single and "ON CLUSTER" not in single
    assert "ENGINE = ReplacingMergeTree(version)" in single


# ------------------------------------------------------------------------------ 2. outage

def _event_row(i: int, now: datetime) -> list:
    t = now - timedelta(seconds=i % 86400)
    return [f"ev-outage-{i:010d}", t, now, "test", "1.0", f"D{i // 3:09d}", "1.001193", "TP-HT",
            f"U{i % 37:03d}", 1 + i % 3, 1 + i % 10, None, None, None, None, None, None, None, None,
            [], bool(i % 2), False, 0, False, "motcua.dossier-status", i % 6, i]


@pytest.mark.slow
def test_outage_60s_loses_nothing_duplicates_nothing(tmp_path):
    from tests.support.endpoint import start_endpoint

    path = tmp_path / "chdb"
    ep = start_endpoint(path)
    port = ep.port
    s = _settings_for(ep.url, "motcua")
    try:
        migrate_settings(s, log=None)
        sink = ClickHouseSink(lambda: get_client(s), "dossier_events", DOSSIER_EVENT_COLUMNS,
                              key_columns=SINK_KEYS["dossier_events"], max_rows=2000, max_seconds=0.3,
                              max_buffer_rows=20_000, retry_initial_s=0.1, retry_max_s=2.0)
        sent = 0
        stop = threading.Event()
        now = datetime.now(VN)
        max_pending = 0

        def producer():
            nonlocal sent, max_pending
            i = 0
            while not stop.is_set():
                batch = [_event_row(j, now) for j in range(i, i + 250)]
                sink.write(batch)
                i += 250
                sent = i
                max_pending = max(max_pending, sink.pending)
                time.sleep(0.05)  # ~5,000 rows/s offered

        th = threading.Thread(target=producer, daemon=True)
        th.start()
        time.sleep(5)
        ep.kill()
        outage_start = time.monotonic()
        time.sleep(60)
        sent_during_outage = sent
        ep = start_endpoint(path, port=port)
        time.sleep(5)
        stop.set()
        th.join(60)
        assert not th.is_alive()
        sink.flush(timeout=120)
        outage = time.monotonic() - outage_start
        sink.close()

        assert max_pending <= 20_000, "the buffer must stay bounded"
        assert sink.stats.blocked_s > 30, "the producer must have been held back during the outage"
        assert sink.stats.retries > 0
        assert sent > sent_during_outage > 0
        c = get_client(s)
        try:
            n_distinct = c.query("SELECT uniqExact(event_id) FROM dossier_events").result_rows[0][0]
            n_final = c.query("SELECT count() FROM dossier_events FINAL").result_rows[0][0]
            lo, hi = c.query("SELECT min(kafka_offset), max(kafka_offset) FROM dossier_events").result_rows[0]
        finally:
            c.close()
        assert n_distinct == sent, (n_distinct, sent)
        assert n_final == sent, (n_final, sent)
        assert (lo, hi) == (0, sent - 1)
        print(f"outage {outage:.0f}s: sent {sent} rows, stats {sink.stats}")
    finally:
        ep.stop()


# -------------------------------------------------------------------------- 3. board views

RESOLVED = ("early", "on_time", "late")


def _vn(dt: datetime) -> date:
    return dt.astimezone(VN).date()


def _build_dataset(units, fields, procedures, now: datetime, rng: random.Random):
    """Dossier state versions (several per dossier, shuffled), ratings (with duplicates),
    dead letters (with redrives), pipeline metrics."""
    state_rows, final = [], {}
    for n in range(700):
        code = f"DS-{n:06d}"
        unit = rng.choice(units)
        proc = rng.choice(procedures)
        field = proc[2]
        channel = rng.choice([1, 1, 2, 2, 3])
        received = now - timedelta(days=rng.uniform(0, 55), minutes=rng.randint(0, 600))
        if n % 25 == 0:
            received = now - timedelta(minutes=rng.randint(10, 300))  # today
        promised = received + timedelta(days=rng.choice([1, 3, 5, 10, 20]), hours=rng.randint(0, 8))
        digit, paid, vneid, eres = (rng.random() < 0.6, rng.random() < 0.3, rng.random() < 0.4, rng.random() < 0.5)
        n_versions = rng.randint(1, 3)
        closed = rng.random() < 0.7 and received < now - timedelta(hours=3)
        if n % 3 == 0:
            # keep some promised dates safely away from "now"
            if abs((promised - now).total_seconds()) < 3 * 3600:
                promised += timedelta(hours=6)
        versions = []
        for v in range(1, n_versions + 1):
            last = v == n_versions
            is_open = not (closed and last)
            outcome, closed_at, rwd, status = "", None, None, 4
            if not is_open:
                outcome = rng.choice(["early", "early", "on_time", "late", "withdrawn", "refused", "stopped"])
                closed_at = received + (now - received) * rng.uniform(0.1, 0.95)
                rwd = round(rng.uniform(0.2, 12.0), 2)
                status = 10 if outcome in RESOLVED else {"withdrawn": 7, "refused": 3, "stopped": 8}[outcome]
            last_ev = closed_at or (received + (now - received) * (v / (n_versions + 1)))
            # the stream's judgement, stored with the state: the effective deadline differs from
            # the promised date it carries for some (a supplement wait moved it 3 days on), and
            # the boards must read it, not re-derive it from promised_at
            deadline = promised + timedelta(days=3) if n % 5 == 0 else promised
            row = {
                "dossier_code": code, "unit_code": unit, "procedure_code": proc[0], "procedure_field": field,
                "channel": channel, "status": status, "submitted_at": received - timedelta(minutes=5),
                "received_at": received, "promised_at": promised,
                "finished_at": closed_at if outcome in RESOLVED else None, "returned_at": None,
                "refused_at": closed_at if outcome == "refused" else None, "closed_at": closed_at,
                "supplement_rounds": 0, "supplement_wait_working_days": 0.0, "outcome": outcome,
                "resolution_working_days": rwd, "is_open": is_open, "overdue": is_open and deadline < now,
                "deadline": deadline, "deadline_reading": "shift_by_wait",
                "digitised": digit, "paid_online": paid, "vneid": vneid, "electronic_result": eres,
                "first_event_time": received - timedelta(minutes=5), "last_event_time": last_ev,
                "version": v, "updated_at": now,
            }
            versions.append(row)
        final[code] = versions[-1]
        state_rows.extend(versions)
        if rng.random() < 0.2:
            state_rows.append(dict(versions[-1]))  # an exact replay of the last version
    rng.shuffle(state_rows)

    ratings, rating_final = [], {}
    kiosks = [(f"KIOSK-{k:03d}", rng.choice(units)) for k in range(25)]
    for n in range(1500):
        kiosk, unit = rng.choice(kiosks)
        t = now - timedelta(days=rng.uniform(0, 40), minutes=rng.randint(1, 60))
        level = rng.choice([1, 2, 3, 4, 4, 5, 5, 5])
        crit = {c: rng.randint(1, 5) for c in rng.sample(["officer", "time", "procedure", "overall"], rng.randint(0, 3))}
        row = {"rating_id": f"RT-{n:07d}", "event_time": t, "ingest_time": now, "source_system": "kiosk",
               "contract_version": "1.0", "kiosk_id": kiosk, "unit_code": unit, "counter_id": None,
               "officer_id": rng.choice([None, "can-bo-1", "can-bo-2"]), "dossier_code": None,
               "procedure_code": None, "level": level, "scale": 5, "criteria": crit, "comment": None,
               "kafka_topic": "motcua.kiosk-rating", "kafka_partition": 0, "kafka_offset": n}
        ratings.append(row)
        rating_final[row["rating_id"]] = row
        if rng.random() < 0.1:
            ratings.append(dict(row))
    rng.shuffle(ratings)

    dead, dead_final = [], {}
    for n in range(200):
        raw = bytes([0xff, 0xfe]) + f'{{"n": {n}}}'.encode() if n % 7 == 0 else f'{{"n": {n}}}'.encode()
        rules = rng.sample(["contract.required", "contract.pattern", "dq.unknown_unit", "dq.future_time"], rng.randint(0, 2))
        received_at = now - timedelta(days=rng.uniform(0, 10))
        row = dead_letter_row(topic="motcua.dossier-status", partition=n % 3, offset=n, raw=raw, rules=rules,
                              reasons=[f"reason {r}" for r in rules], kind=rng.choice(["dossier", "rating", "unknown"]),
                              source_system=rng.choice(["mc-a", "mc-b"]), received_at=received_at)
        dead.append(row)
        rd = as_dict("dead_letters", row)
        key = (rd["topic"], rd["partition"], rd["offset"])
        dead_final[key] = row
        if n % 5 == 0:
            redriven = dead_letter_row(topic="motcua.dossier-status", partition=n % 3, offset=n, raw=raw, rules=rules,
                                       reasons=[f"reason {r}" for r in rules], kind=rd["kind"], source_system=rd["source_system"],
                                       received_at=received_at, redriven_at=now - timedelta(minutes=5))
            dead.append(redriven)
            dead_final[key] = redriven
        if n % 9 == 0:
            dead.append(list(row))  # replay of the original (older updated_at loses if redriven)
    metrics = []
    for p in range(3):
        for k in range(5):
            ts = now - timedelta(minutes=10 - k)
            metrics.append([ts, f"w{k}", "motcua-pulse", "motcua.dossier-status", p, 100 * k, 100 * k + p,
                            p * 10 + k, 1000 * k + p, 50.0 + k])
    return state_rows, final, ratings, rating_final, dead, dead_final, metrics


def _insert_in_chunks(client, table, columns, rows, rng, chunks=5):
    data = [[r[c] for c in columns] if isinstance(r, dict) else r for r in rows]
    step = max(1, len(data) // chunks + 1)
    for i in range(0, len(data), step):
        client.insert(table, data[i:i + step], column_names=columns)


def _approx(a, b):
    if a is None or b is None:
        return a is None and b is None
    return abs(float(a) - float(b)) < 1e-6


def _rank(values: dict) -> dict:
    """SQL rank() with NULLs last, descending."""
    order = sorted(values, key=lambda k: (values[k] is None, -(values[k] or 0)))
    ranks, prev, r = {}, object(), 0
    for i, k in enumerate(order):
        key = (values[k] is None, values[k])
        if key != prev:
            r, prev = i + 1, key
        ranks[k] = r
    return ranks


def test_board_views_equal_plain_computation(client):
    from schemas.reference import load_reference

    ref = load_reference()
    assert sum(load_reference_tables(client, ref).values()) > 0
    assert load_reference_tables(client, ref) == {"ref_units": 0, "ref_procedures": 0, "ref_fields": 0, "ref_calendar": 0}

    rng = random.Random(766)
    now = client.query("SELECT now64(3, 'Asia/Ho_Chi_Minh')").result_rows[0][0]
    now = now if now.tzinfo else now.replace(tzinfo=timezone.utc)
    units = sorted(u.code for u in ref.units.values())[:12]
    procedures = [(p.code, p.name, p.field_code) for p in list(ref.procedures.values())[:15]]
    state_rows, final, ratings, rating_final, dead, dead_final, metrics = _build_dataset(
        units, ref.fields, procedures, now, rng)
    _insert_in_chunks(client, "dossier_state", DOSSIER_STATE_COLUMNS, state_rows, rng)
    _insert_in_chunks(client, "ratings", RATING_COLUMNS, ratings, rng)
    _insert_in_chunks(client, "dead_letters", DEAD_LETTER_COLUMNS, dead, rng)
    client.insert("pipeline_metrics", metrics, column_names=PIPELINE_METRIC_COLUMNS)
    refresh_board_aggregates(client)  # boards are exact as of their refresh (every board_refresh_seconds)
    as_of = client.query("SELECT view, status, exception FROM v_board_as_of ORDER BY view").result_rows
    assert sorted(v for v, _, _ in as_of) == sorted(BOARD_AGGREGATES) and all(e == "" for *_, e in as_of)

    today, month, now_srv = client.query(
        "SELECT toDate(now(), 'Asia/Ho_Chi_Minh'), toStartOfMonth(toDate(now(), 'Asia/Ho_Chi_Minh')), now()").result_rows[0]
    now_srv = now_srv if now_srv.tzinfo else now_srv.replace(tzinfo=timezone.utc)
    unit_name = {u.code: u.name for u in ref.units.values()}
    unit_kind = {u.code: u.kind for u in ref.units.values()}
    field_name = {f.code: f.name for f in ref.fields.values()}
    proc_name = {p.code: p.name for p in ref.procedures.values()}

    def recv_day(r):
        return _vn(r["received_at"])

    def close_day(r):
        return _vn(r["closed_at"])

    # ---- v_dossier_daily
    exp = defaultdict(Counter)
    for r in final.values():
        k = (recv_day(r), r["unit_code"], r["procedure_field"], r["channel"])
        c = exp[k]
        c["received"] += 1
        c["in_progress"] += r["is_open"]
        c["online"] += r["channel"] == 2
        c["digitised"] += r["digitised"]
        c["paid_online"] += r["paid_online"]
        c["vneid"] += r["vneid"]
        if not r["is_open"]:
            k2 = (close_day(r), r["unit_code"], r["procedure_field"], r["channel"])
            c2 = exp[k2]
            o = r["outcome"]
            c2["resolved"] += o in RESOLVED
            c2["resolved_" + o] += o in RESOLVED
            c2[o] += o in ("withdrawn", "refused", "stopped")
            c2["electronic_result"] += r["electronic_result"]
            c2["sum_rwd"] += r["resolution_working_days"] if o in RESOLVED else 0
            c2["_touch"] += 0
    cols = ["received", "resolved", "resolved_early", "resolved_on_time", "resolved_late", "withdrawn", "refused",
            "stopped", "in_progress", "online", "digitised", "paid_online", "vneid", "electronic_result"]
    got = client.query(f"SELECT day, unit_code, unit_name, unit_kind, procedure_field, field_name, channel, "
                       f"{', '.join(cols)}, sum_resolution_working_days FROM v_dossier_daily").result_rows
    assert len(got) == len(exp)
    for row in got:
        day, unit, uname, ukind, field, fname, channel = row[:7]
        e = exp[(day, unit, field, channel)]
        assert uname == unit_name[unit] and ukind == unit_kind[unit] and fname == field_name[field]
        assert list(row[7:7 + len(cols)]) == [e[c] for c in cols], (day, unit, field, channel)
        assert abs(row[-1] - e["sum_rwd"]) < 1e-3
    assert sum(r[7] for r in got) == len(final)  # every dossier received exactly once

    # ---- scoreboard / province
    per_unit = defaultdict(Counter)
    for r in final.values():
        u = per_unit[r["unit_code"]]
        in_month = recv_day(r) >= month
        u["received"] += in_month
        u["online"] += in_month and r["channel"] == 2
        u["digitised"] += in_month and r["digitised"]
        u["in_progress"] += r["is_open"]
        u["overdue_now"] += r["is_open"] and r["overdue"]
        if not r["is_open"] and close_day(r) >= month and r["outcome"] in RESOLVED:
            u["resolved"] += 1
            u["in_time"] += r["outcome"] in ("early", "on_time")
    for r in rating_final.values():
        if _vn(r["event_time"]) >= month:
            per_unit[r["unit_code"]]["ratings"] += 1
            per_unit[r["unit_code"]]["satisfied"] += r["level"] >= 4
    share = lambda a, b: a / b if b else None  # noqa: E731
    on_time = {k: share(v["in_time"], v["resolved"]) for k, v in per_unit.items()}
    sat = {k: share(v["satisfied"], v["ratings"]) for k, v in per_unit.items()}
    # ranked among peers: departments with departments, communes with communes
    r_on, r_sat = {}, {}
    for kind in set(unit_kind.values()):
        peers = [k for k in per_unit if unit_kind.get(k) == kind]
        r_on.update(_rank({k: on_time[k] for k in peers}))
        r_sat.update(_rank({k: sat[k] for k in peers}))
    got = client.query("SELECT unit_code, unit_name, received, resolved, on_time_share, satisfaction_share, overdue_now, "
                       "in_progress, online_share, digitised_share, rank_on_time, rank_satisfaction FROM v_unit_scoreboard").result_rows
    assert {g[0] for g in got} == set(per_unit)
    for g in got:
        u = per_unit[g[0]]
        assert g[1] == unit_name[g[0]]
        assert (g[2], g[3], g[6], g[7]) == (u["received"], u["resolved"], u["overdue_now"], u["in_progress"]), g
        assert _approx(g[4], on_time[g[0]]) and _approx(g[5], sat[g[0]])
        assert _approx(g[8], share(u["online"], u["received"])) and _approx(g[9], share(u["digitised"], u["received"]))
        assert (g[10], g[11]) == (r_on[g[0]], r_sat[g[0]]), g

    tot = sum(per_unit.values(), Counter())
    got = client.query("SELECT received_today, received_month, resolved_month, on_time_share, overdue_now, in_progress, "
                       "online_share, digitised_share, satisfaction_share FROM v_province_now").result_rows
    assert len(got) == 1
    g = got[0]
    # (equal, and not vacuous: right after midnight in Vietnam "today" is empty on both sides,
    # which failed this test at 00:05 Vietnam time; the month then still holds data)
    assert g[0] == sum(recv_day(r) == today for r in final.values())
    assert g[0] > 0 or g[1] > 0
    assert (g[1], g[2], g[4], g[5]) == (tot["received"], tot["resolved"], tot["overdue_now"], tot["in_progress"])
    assert _approx(g[3], share(tot["in_time"], tot["resolved"]))
    assert _approx(g[6], share(tot["online"], tot["received"])) and _approx(g[7], share(tot["digitised"], tot["received"]))
    assert _approx(g[8], share(tot["satisfied"], tot["ratings"]))

    # ---- v_overdue_now
    cal = {d: idx for d, _, idx in calendar_rows(_default_calendar())}
    exp_over = {}
    for r in final.values():
        if r["is_open"] and r["overdue"]:
            exp_over[r["dossier_code"]] = max(cal[today] - cal[_vn(r["deadline"])], 0)
    got = client.query("SELECT dossier_code, unit_name, procedure_name, overdue_working_days FROM v_overdue_now").result_rows
    assert {g[0]: g[3] for g in got} == exp_over and exp_over
    for g in got:
        assert g[1] == unit_name[final[g[0]]["unit_code"]] and g[2] == proc_name[final[g[0]]["procedure_code"]]

    # ---- ratings views
    exp_rd = Counter()
    exp_crit = Counter()
    last_by_kiosk = {}
    for r in rating_final.values():
        exp_rd[(_vn(r["event_time"]), r["unit_code"], r["kiosk_id"], r["officer_id"] or "", r["level"])] += 1
        crit = {"overall": r["level"], **r["criteria"]}
        for c, lv in crit.items():
            exp_crit[(_vn(r["event_time"]), r["unit_code"], c, lv)] += 1
        k = r["kiosk_id"]
        if k not in last_by_kiosk or r["event_time"] > last_by_kiosk[k][0]:
            last_by_kiosk[k] = (r["event_time"], r["unit_code"])
    got = client.query("SELECT day, unit_code, kiosk_id, officer_id, level, level_code, ratings, satisfied, unit_name "
                       "FROM v_ratings_daily").result_rows
    assert {g[:5]: g[6] for g in got} == dict(exp_rd)
    for g in got:
        assert g[5] == {1: "RKHL", 2: "KHL", 3: "BT", 4: "HL", 5: "RHL"}[g[4]]
        assert g[7] == (g[6] if g[4] >= 4 else 0) and g[8] == unit_name[g[1]]
    got = client.query("SELECT day, unit_code, criterion, level, ratings FROM v_rating_criteria").result_rows
    assert {g[:4]: g[4] for g in got} == dict(exp_crit)
    got = client.query("SELECT kiosk_id, unit_code, last_rating_at, silent_minutes FROM v_silent_kiosks").result_rows
    assert {g[0] for g in got} == set(last_by_kiosk)
    for g in got:
        t, unit = last_by_kiosk[g[0]]
        assert g[1] == unit and abs((g[2] - t).total_seconds()) < 0.002
        assert abs(g[3] - (now_srv - t).total_seconds() / 60) <= 2

    # ---- dead letters (bytes kept exactly, redrive replaces, replay does not duplicate)
    exp_dl = Counter()
    for row in dead_final.values():
        rd = dict(zip(DEAD_LETTER_COLUMNS, row))
        for rule in rd["rules"] or ["(none)"]:
            exp_dl[(_vn(rd["received_at"]), rule, rd["source_system"], rd["kind"])] += 1
    got = client.query("SELECT day, rule, source_system, kind, n, redriven FROM v_dead_letters_by_reason").result_rows
    assert {g[:4]: g[4] for g in got} == dict(exp_dl)
    assert sum(g[5] for g in got) == sum(1 for r in map(partial(as_dict, "dead_letters"), dead_final.values())
                                         for _ in (r["rules"] or ["x"]) if r["redriven_at"] is not None)
    raws = client.query("SELECT offset, raw FROM dead_letters FINAL WHERE offset % 7 = 0 ORDER BY offset",
                        column_formats={"raw": "bytes"}).result_rows
    for off, raw in raws:
        assert raw == bytes([0xff, 0xfe]) + f'{{"n": {off}}}'.encode()

    # ---- v_freshness: latest snapshot per partition
    got = client.query("SELECT partition, worker, lag, freshness_ms FROM v_freshness ORDER BY partition").result_rows
    assert got == [(p, "w4", p * 10 + 4, 4000 + p) for p in range(3)]


# ------------------------------------------------------------------ writer API details

def test_sink_async_api_backpressure_and_rejected_batch(ch_settings, client):
    import asyncio

    now = datetime.now(VN)
    rows = [_event_row(i, now) for i in range(30_000)]
    for r in rows:
        r[_ev("event_id")] = r[_ev("event_id")].replace("outage", "async")
    sink = ClickHouseSink(lambda: get_client(ch_settings), "dossier_events", DOSSIER_EVENT_COLUMNS,
                          key_columns=SINK_KEYS["dossier_events"], max_rows=1000, max_seconds=5.0,
                          max_buffer_rows=2000)

    async def run():
        tickets = []
        for i in range(0, len(rows), 700):
            tickets.append(await sink.write_async(rows[i:i + 700]))
            assert sink.pending <= 2000  # bounded: the coroutine waited for room
        await sink.wait_async(tickets[-1])
        # a replay of the same rows (a restart re-reading uncommitted offsets) changes nothing
        await sink.write_async(rows[:5000], wait=True)

    asyncio.run(run())
    sink.close()
    n, n_final = client.query("SELECT uniqExact(event_id), (SELECT count() FROM dossier_events FINAL WHERE event_id LIKE 'ev-async-%') "
                              "FROM dossier_events WHERE event_id LIKE 'ev-async-%'").result_rows[0]
    assert n == n_final == len(rows)
    assert sink.stats.rows_written == len(rows) + 5000 and sink.stats.retries == 0
    # the server's own count agrees with the sink's (a silently dropped block would not)
    assert sink.stats.rows_reported_unwritten == 0

    # A batch the server rejects for good (not an outage) is not dropped: the sink keeps the
    # rows and raises to the caller, who must not commit offsets.
    bad = ClickHouseSink(lambda: get_client(ch_settings), "dossier_events", DOSSIER_EVENT_COLUMNS,
                         max_rows=10, max_seconds=0.1, retry_initial_s=0.01, max_permanent_retries=1)
    row = _event_row(1, now)
    row[_ev("channel")] = 300  # channel is UInt8: out of range
    with pytest.raises(SinkError):
        bad.write([row], wait=True, timeout=30)
    assert bad.pending == 1


def test_sink_min_interval_coalesces_flush_requests_into_fewer_inserts(ch_settings, client):
    """Under load every finished stream batch asks its rows to be written at once; with
    ``min_interval_s`` the sink starts at most one insert per interval (each chDB insert
    costs ~25 ms of CPU whatever its size), and a write waits at most about the interval
    (plus its insert). Here one writer waits for each write: one insert per write without
    the interval, one per interval with it."""
    now = datetime.now(VN)
    rows = [_event_row(i, now) for i in range(400)]
    for r in rows:
        r[_ev("event_id")] = r[_ev("event_id")].replace("outage", "interval")

    def run(min_interval: float) -> tuple[int, float]:
        sink = ClickHouseSink(lambda: get_client(ch_settings), "dossier_events", DOSSIER_EVENT_COLUMNS,
                              key_columns=SINK_KEYS["dossier_events"], max_rows=10_000, max_seconds=5.0,
                              min_interval_s=min_interval)
        worst = 0.0
        t_end = time.monotonic() + 1.2
        i = 0
        while time.monotonic() < t_end:                # a batch every 50 ms, each waited for
            t0 = time.monotonic()
            chunk = rows[i % 400:i % 400 + 10]
            sink.write(chunk, wait=True, timeout=30)
            written.update(r[_ev("event_id")] for r in chunk)
            worst = max(worst, time.monotonic() - t0)
            i += 10
            time.sleep(0.05)
        sink.close()
        return sink.stats.batches, worst

    written: set = set()
    eager, _ = run(0.0)
    paced, worst = run(0.5)
    assert paced <= 4 < eager        # ~1.2 s at most one insert per 0.5 s vs one per write
    assert worst < 0.5 + 2.0         # the interval (+ an insert) bounds each write's wait
    assert client.query("SELECT uniqExact(event_id) FROM dossier_events WHERE event_id LIKE 'ev-interval-%'"
                        ).result_rows[0][0] == len(written)


def test_insert_interval_grows_with_the_rows_arriving():
    assert insert_interval(0, 0.3, 0.8, 10_000) == 0.3                 # idle: the short interval
    assert insert_interval(1_000, 0.3, 0.8, 10_000) == pytest.approx(0.35)
    assert insert_interval(5_000, 0.3, 0.8, 10_000) == pytest.approx(0.55)
    assert insert_interval(10_000, 0.3, 0.8, 10_000) == pytest.approx(0.8)
    assert insert_interval(1e9, 0.3, 0.8, 10_000) == pytest.approx(0.8)   # capped
    assert insert_interval(1e9, 0.3, 0.2, 10_000) == 0.3                # busy below min: min
    assert insert_interval(1e9, 0.3, 0.8, 0) == 0.3


def test_arrival_rate_is_measured_over_at_least_the_least_interval():
    assert arrival_rate(3_000, 1.0, 0.3) == 3_000
    assert arrival_rate(600, 0.6, 0.3) == 1_000
    # a clump of 600 rows 20 ms after an insert: 2,000 rows/s over 0.3 s, not 30,000
    assert arrival_rate(600, 0.02, 0.3) == 2_000
    assert arrival_rate(0, 0.0, 0.0) == 0


def test_a_busy_sink_inserts_less_often_than_a_light_one(ch_settings, client):
    """Rows arriving fast (here ~20,000 per second, in writes waited for) are inserted at
    about the busy interval; with no busy interval, at the short one. Each insert costs
    the server the same whatever its size, so a busy stream pays it fewer times."""
    now = datetime.now(VN)
    chunk = 1000

    def run(busy_interval) -> int:
        tag = uuid.uuid4().hex[:6]
        sink = ClickHouseSink(lambda: get_client(ch_settings), "dossier_events", DOSSIER_EVENT_COLUMNS,
                              key_columns=SINK_KEYS["dossier_events"], max_rows=100_000, max_seconds=0.05,
                              max_buffer_rows=400_000, min_interval_s=0.1, busy_interval_s=busy_interval,
                              busy_rows_per_s=10_000)
        t_end = time.monotonic() + 2.0
        i = 0
        while time.monotonic() < t_end:                # 1,000 rows every 50 ms
            rows = [_event_row(i + k, now) for k in range(chunk)]
            for r in rows:
                r[_ev("event_id")] = r[_ev("event_id")].replace("outage", f"busy{tag}")
            sink.write(rows, wait=False)
            i += chunk
            time.sleep(0.05)
        sink.close()
        got = client.query(f"SELECT uniqExact(event_id) FROM dossier_events WHERE event_id LIKE 'ev-busy{tag}-%'"
                           ).result_rows[0][0]
        assert got == i                                 # every row written either way
        return sink.stats.batches

    light, busy = run(None), run(1.0)
    # busy: about one insert per second (the rows arrive at ~20,000/s, over the busy rate);
    # light: one per 0.1 s while the server keeps up (~15; fewer on a loaded machine, where
    # inserts themselves take longer: 3 against 2 was seen in a full suite)
    assert busy <= 4 and light > busy, (light, busy)


def _contract_events(n: int, now: datetime) -> list:
    """DossierEvents decoded from contract JSON, as the stream gets them (pydantic's own tzinfo)."""
    import json

    from schemas.codec import decode_dossier
    out = []
    for i in range(n):
        t = now - timedelta(hours=i % 500, microseconds=i * 7919)
        ev = {"contract_version": "1.0", "event_id": f"ev-exact-{i:06d}", "event_time": t.isoformat(),
              "ingest_time": (now + timedelta(microseconds=i)).astimezone(timezone.utc).isoformat(),
              "source_system": "exact", "dossier_code": f"D-{i // 3:05d}", "procedure_code": "1.001193",
              "procedure_field": "TP-HT", "unit_code": f"U{i % 7:03d}", "channel": 1 + i % 3, "status": 1 + i % 10,
              "submitted_at": (t - timedelta(days=2)).isoformat(), "supplements": []}
        if i % 2:
            ev["handler"] = f"Nguyễn Văn {i}"
            ev["owner_type"] = 1 + i % 9
            ev["received_at"] = (t - timedelta(days=1)).isoformat()
            ev["promised_at"] = (t + timedelta(days=5)).isoformat()
        if i % 5 == 0:
            ev["finished_at"] = t.astimezone(timezone(timedelta(hours=-3, minutes=-30))).isoformat()
        if i % 9 == 0:
            ev["supplements"] = [{"requested_at": (t - timedelta(hours=k + 1)).isoformat(),
                                  "resumed_at": None if k else t.isoformat()} for k in range(1 + i % 2)]
        out.append(decode_dossier(json.dumps(ev).encode()))
    return out


def test_sink_stores_exactly_what_a_plain_insert_stores(ch_settings, client):
    """The sink encodes batches itself (datetimes in bulk, LowCardinality sent as String,
    one Native block per batch): every table gets the very values clickhouse-connect's own
    insert of the same rows gives, for every kind of value the stream hands over."""
    import json

    from schemas.codec import decode_rating
    from sinks.rows import (ALERT_COLUMNS, DQ_RESULT_COLUMNS, TABLE_COLUMNS, dossier_event_row,
                            dossier_event_row_of, rating_row)
    from streams.core import compact

    now = datetime.now(VN).replace(microsecond=123456)
    utc7, utc_minus = timezone(timedelta(hours=7)), timezone(timedelta(hours=-9, minutes=-30))
    events = _contract_events(240, now)
    ev_rows = [dossier_event_row(ev, "motcua.dossier-status", i % 3, i) for i, ev in enumerate(events)]
    for i, r in enumerate(ev_rows[:40]):   # other tzinfo kinds, before 1970, microseconds to floor
        r[_ev("submitted_at")] = datetime(1969, 12, 31, 23, 59, 59, 999_999 - i, tzinfo=[VN, utc7, utc_minus, timezone.utc][i % 4])
        r[_ev("received_at")] = (now - timedelta(days=400 + i)).astimezone([VN, utc7, utc_minus, timezone.utc][(i + 1) % 4])
    tick_rows = [list(r) for r in ev_rows[200:]]   # DateTime64 given as ticks (ms) in a batch of their own
    for r in tick_rows:
        r[_ev("event_id")] += "-ticks"
        for c in ("event_time", "ingest_time"):
            r[_ev(c)] = int(r[_ev(c)].timestamp() * 1000)
    # the stream's rows: every time as epoch ms (DateTime64(3) ticks), supplements too
    of_rows = [dossier_event_row_of(compact(ev), ev, "motcua.dossier-status", i % 3, 1000 + i)
               for i, ev in enumerate(events[100:200])]
    for r in of_rows:
        r[_ev("event_id")] += "-of"
    assert any(r[_ev("supplements")] for r in of_rows) and any(r[_ev("refused_at")] is None for r in of_rows)
    state_rows = []
    for i in range(300):
        t = (now - timedelta(minutes=37 * i, microseconds=i)).astimezone(utc7)
        closed = t if i % 3 == 0 else None
        updated = [now, now + timedelta(seconds=1)][i // 150]   # one object per stream batch
        state_rows.append([f"D-{i:05d}", f"U{i % 7:03d}", "1.001193", "TP-HT", 1 + i % 3, [4, 10][i % 2],
                           t - timedelta(days=1), t, t + timedelta(days=3), closed, None, None, closed, i % 3,
                           0.25 * (i % 4), ["", "early", "on_time", "late", "withdrawn", "refused", "stopped"][i % 7],
                           None if i % 2 else 1.5, i % 2 == 1, i % 5 == 0,
                           t + timedelta(days=2) if i % 2 else None, "shift_by_wait" if i % 2 else "",   # deadline, reading
                           i % 3 == 0, i % 4 == 0, i % 6 == 0, i % 7 == 0,
                           t - timedelta(days=1), t, 2 * i + 1, updated])
    ratings = []
    for i in range(120):
        r = {"contract_version": "1.0", "rating_id": f"rt-exact-{i:05d}", "event_time": (now - timedelta(minutes=i)).isoformat(),
             "kiosk_id": f"K{i % 4}", "unit_code": f"U{i % 7:03d}", "level": 1 + i % 5, "scale": 5,
             "criteria": {} if i % 3 else {"officer": 1 + i % 5, "time": 1 + i % 4}}
        if i % 2 == 0:
            r.update(comment="tốt", officer_id="cb-1")
        ratings.append(rating_row(decode_rating(json.dumps(r).encode()), "motcua.kiosk-rating", i % 2, i))
    dead = [dead_letter_row(topic="motcua.dossier-status", partition=i % 3, offset=i, raw=b"\xff{bad" + bytes([i]),
                            rules=["contract.required", "dq.unknown_unit"][: 1 + i % 2], reasons=[f"reason {i}"],
                            kind=["unknown", "dossier", "rating"][i % 3], received_at=now - timedelta(seconds=i),
                            redriven_at=now if i % 4 == 0 else None) for i in range(60)]
    naive = datetime(2026, 1, 2, 3, 4, 5, 678_901)   # naive: clickhouse-connect reads it as local time
    dq = [[f"b{i // 5}", "dossier_events", f"e{i % 5}", "rule", "col", i % 2 == 0, i / 60, i, 60, naive + timedelta(minutes=i)]
          for i in range(60)]
    alerts = [{"raised_at": now - timedelta(hours=i), "alert_id": f"a{i}", "kind": "overdue", "unit_code": f"U{i % 7:03d}",
               "kiosk_id": "", "dossier_code": f"D-{i:05d}", "value": i / 3, "threshold": 1.0, "window": "",
               "message": f"hồ sơ {i}"} for i in range(40)]   # mappings (as streams.core.alert_row), keys in another order
    metrics = [[now - timedelta(seconds=5 * i), "w1", "motcua-pulse", "motcua.dossier-status", i % 3, i, i + 10, 10,
                800 + i, 500.5] for i in range(50)]
    start = datetime(2026, 11, 1, tzinfo=VN)
    index = [["month", "2026-11", f"U{i % 7:03d}", ["ontime", "online", "_total"][i % 3], start, start + timedelta(days=30),
              ["department", "commune"][i % 2], "progress", "Tiến độ giải quyết", "Tỷ lệ đúng hạn",
              None if i % 4 == 0 else float(i), None if i % 4 == 0 else 40.0, None if i % 4 == 0 else i / 40,
              None if i % 4 == 0 else i / 2, 20.0, i % 4 != 0, ["live", "supplied", ""][i % 3], "", 56.0,
              i % 5 or None, 12 if i % 3 == 2 else None, None, None, {"received": float(i)} if i % 3 == 2 else {},
              "v2025", now - timedelta(seconds=i)] for i in range(30)]
    supplied = [[f"U{i % 7:03d}", "2026-11", "openness.published", float(i), 10.0, None, "so-tu-phap",
                 None if i % 2 else "ghi chú", "v2025", now - timedelta(seconds=i)] for i in range(10)]
    cases = [("dossier_events", [ev_rows, tick_rows, of_rows]), ("dossier_state", [state_rows]), ("ratings", [ratings]),
             ("dead_letters", [dead]), ("dq_results", [dq]), ("alerts", [alerts]), ("pipeline_metrics", [metrics]),
             ("service_index", [index]), ("service_index_supplied", [supplied])]
    assert {t for t, _ in cases} == set(TABLE_COLUMNS)
    assert len(DQ_RESULT_COLUMNS) == len(dq[0]) and set(alerts[0]) == set(ALERT_COLUMNS)

    for table, batches in cases:
        cols = TABLE_COLUMNS[table]
        for copy in ("sink", "sink_plain_http", "plain"):
            client.command(f"DROP TABLE IF EXISTS {table}__{copy}")
            client.command(f"CREATE TABLE {table}__{copy} AS {table} ENGINE = MergeTree PARTITION BY tuple() ORDER BY tuple()")
        for copy, compression in (("sink", None), ("sink_plain_http", False)):
            sink = ClickHouseSink(lambda: get_client(ch_settings), f"{table}__{copy}", cols, key_columns=SINK_KEYS[table],
                                  max_rows=50, max_seconds=0.05, compression=compression)
            for rows in batches:
                sink.write(rows, wait=True, timeout=60)
            sink.close()
            assert sink.stats.retries == 0, sink.stats
        for rows in batches:
            client.insert(f"{table}__plain", [[r.get(c) for c in cols] if isinstance(r, dict) else r for r in rows],
                          column_names=cols)
        got = {copy: sorted(client.query(f"SELECT {', '.join(cols)} FROM {table}__{copy}").result_rows, key=repr)
               for copy in ("sink", "sink_plain_http", "plain")}
        assert len(got["plain"]) == sum(map(len, batches)), table
        assert got["sink"] == got["plain"], table
        assert got["sink_plain_http"] == got["plain"], table
        for copy in ("sink", "sink_plain_http", "plain"):
            client.command(f"DROP TABLE {table}__{copy}")

    # other column types and precisions the sink may meet
    types = {"dt": "DateTime('UTC')", "dtn": "Nullable(DateTime)", "d1": "DateTime64(1)", "d6": "DateTime64(6, 'UTC')",
             "d9": "Nullable(DateTime64(9, 'Asia/Ho_Chi_Minh'))", "arr": "Array(Nullable(DateTime64(3)))",
             "names": "Array(LowCardinality(String))", "lcn": "LowCardinality(Nullable(String))", "e": "Enum8('a' = 1, 'b' = 2)"}
    cols = list(types)
    rows = []
    for i in range(200):
        t = now.astimezone([VN, utc7, utc_minus, timezone.utc][i % 4]) - timedelta(days=i, microseconds=i * 333)
        rows.append([t, None if i % 3 else t, t - timedelta(days=20000), t, None if i % 2 else t,
                     [t, None][: i % 3], [f"n{j}" for j in range(i % 4)], None if i % 5 == 0 else f"s{i % 3}", "ab"[i % 2]])
    for copy in ("sink", "plain"):
        client.command(f"DROP TABLE IF EXISTS sink_types__{copy}")
        client.command(f"CREATE TABLE sink_types__{copy} ({', '.join(f'{c} {t}' for c, t in types.items())}) "
                       "ENGINE = MergeTree ORDER BY tuple()")
    sink = ClickHouseSink(lambda: get_client(ch_settings), "sink_types__sink", cols, max_rows=64, max_seconds=0.05)
    sink.write(rows, wait=True, timeout=60)
    sink.close()
    client.insert("sink_types__plain", rows, column_names=cols)
    got = [sorted(client.query(f"SELECT * FROM sink_types__{copy}").result_rows, key=repr) for copy in ("sink", "plain")]
    assert len(got[1]) == len(rows) and got[0] == got[1]
    for copy in ("sink", "plain"):
        client.command(f"DROP TABLE sink_types__{copy}")

    # rows of the wrong length are refused at write(), as before
    sink = ClickHouseSink(lambda: get_client(ch_settings), "alerts", ALERT_COLUMNS)
    with pytest.raises(ValueError):
        sink.write([["a1", "overdue"]])
    sink.close()


def test_sink_datetime_encoding_matches_clickhouse_connect():
    """The sink's bulk datetime conversion writes the very bytes clickhouse-connect's own
    column writer does (floor of the timestamp at the column's scale, NULL slots 0), for
    every tzinfo kind, before 1970, runs of one object, and falls back when it cannot."""
    from clickhouse_connect.datatypes.registry import get_from_name
    from clickhouse_connect.driver.insert import InsertContext
    from pydantic_core._pydantic_core import TzInfo

    from sinks.writer import _ticks_converter

    rng = random.Random(7)
    utc7, odd = timezone(timedelta(hours=7)), timezone(timedelta(hours=-3, minutes=-30))
    tz_kinds = {"fixed": lambda i: utc7, "odd": lambda i: odd, "utc": lambda i: timezone.utc, "zoneinfo": lambda i: VN,
                "pydantic": lambda i: TzInfo(25200), "mixed": lambda i: [utc7, odd, timezone.utc, TzInfo(3600), VN][i % 5]}
    converted = 0
    for type_name in ("DateTime64(3, 'Asia/Ho_Chi_Minh')", "Nullable(DateTime64(3, 'Asia/Ho_Chi_Minh'))", "DateTime64(1)",
                      "DateTime64(6, 'UTC')", "Nullable(DateTime64(9))", "DateTime64(7)", "DateTime('UTC')", "Nullable(DateTime)"):
        ch_type = get_from_name(type_name)
        for kind, tz in tz_kinds.items():
            for runs in (False, True):
                col = [datetime(1971 + rng.randrange(60), 1 + rng.randrange(12), 1 + rng.randrange(28), rng.randrange(24),
                                rng.randrange(60), rng.randrange(60), rng.randrange(10 ** 6), tzinfo=tz(i)) for i in range(200)]
                if ch_type.base_type == "DateTime64":
                    col += [datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=tz(1)), datetime(1900, 1, 1, tzinfo=tz(2))]
                if runs:
                    col = [col[i // 40] for i in range(len(col))]
                if ch_type.nullable:
                    col = [None if i % 3 == 0 else x for i, x in enumerate(col)]
                ctx = InsertContext("t", ["c"], [ch_type])
                ctx.start_column("c")
                expected = bytearray()
                ch_type.write_column(col, expected, ctx)
                got = _ticks_converter(ch_type)(tuple(col))
                assert got == bytes(expected), (type_name, kind, runs)
                converted += 1
    assert converted == 8 * len(tz_kinds) * 2
    convert = _ticks_converter(get_from_name("Nullable(DateTime64(3))"))
    aware = datetime(2026, 1, 1, tzinfo=utc7)
    assert convert((1767200400000, None)) is None                  # ticks already: clickhouse-connect's
    assert convert((aware, "2026-01-01 00:00:00")) is None          # mixed: clickhouse-connect's (and its error)
    assert convert((None, None)) is None
    assert _ticks_converter(get_from_name("DateTime"))((datetime(1960, 1, 1, tzinfo=utc7),)) is None  # out of range
