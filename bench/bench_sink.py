"""Sink and board-view benchmark, through the local chDB HTTP endpoint.

1. Insert throughput: the same rows through ClickHouseSink (batched, background thread)
   and as one bulk client.insert, in the same run.
2. Board views over >= 10 million simulated dossier events: the events, the dossier states
   they fold into (2.5M dossiers, most with a replaced earlier version still unmerged, so
   FINAL does real work) and 2M ratings are generated directly in ClickHouse with
   numbers(); the refreshable board aggregates are recomputed (timed), then each board
   query as Superset would send it is timed (best of 3). Target: slowest < 300 ms.

    .venv/bin/python bench/bench_sink.py [--events 10000000] [--sink-rows 200000]
Set BENCH_CLICKHOUSE_URL to run against an existing server instead of a fresh endpoint.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulse.config import Settings  # noqa: E402
from sinks.client import get_client  # noqa: E402
from sinks.migrate import BOARD_AGGREGATES, migrate_settings, refresh_board_aggregates  # noqa: E402
from sinks.reference import load_reference_tables  # noqa: E402
from sinks.rows import DOSSIER_EVENT_COLUMNS, SINK_KEYS  # noqa: E402
from sinks.writer import ClickHouseSink  # noqa: E402

VN = ZoneInfo("Asia/Ho_Chi_Minh")
TARGET_MS = 300

BOARD_QUERIES = {
    "v_dossier_daily: 30-day trend": "SELECT day, sum(received), sum(resolved), sum(resolved_early + resolved_on_time) FROM v_dossier_daily WHERE day >= today() - 30 GROUP BY day ORDER BY day",
    "v_dossier_daily: year, per unit": "SELECT unit_name, sum(received), sum(resolved), sum(resolved_early + resolved_on_time) / sum(resolved) FROM v_dossier_daily WHERE day >= today() - 365 GROUP BY unit_name",
    "v_dossier_daily: month, field x channel": "SELECT field_name, channel_name, sum(received), sum(online) FROM v_dossier_daily WHERE day >= toStartOfMonth(today()) GROUP BY field_name, channel_name",
    "v_dossier_daily: month, unit x field table": "SELECT unit_name, field_name, sum(received), sum(resolved), sum(in_progress) FROM v_dossier_daily WHERE day >= toStartOfMonth(today()) GROUP BY unit_name, field_name",
    "v_unit_scoreboard": "SELECT * FROM v_unit_scoreboard ORDER BY rank_on_time",
    "v_province_now": "SELECT * FROM v_province_now",
    "v_overdue_now (top 200)": "SELECT * FROM v_overdue_now ORDER BY overdue_working_days DESC LIMIT 200",
    "v_ratings_daily: 30 days per unit": "SELECT day, unit_name, sum(ratings), sum(satisfied) FROM v_ratings_daily WHERE day >= today() - 30 GROUP BY day, unit_name",
    "v_ratings_daily: month per officer": "SELECT officer_id, sum(ratings), sum(satisfied) / sum(ratings) FROM v_ratings_daily WHERE day >= toStartOfMonth(today()) GROUP BY officer_id",
    "v_rating_criteria: 30 days": "SELECT criterion, level, sum(ratings) FROM v_rating_criteria WHERE day >= today() - 30 GROUP BY criterion, level",
    "v_silent_kiosks": "SELECT * FROM v_silent_kiosks WHERE is_silent ORDER BY silent_minutes DESC",
    "v_dead_letters_by_reason": "SELECT * FROM v_dead_letters_by_reason",
    "v_freshness": "SELECT * FROM v_freshness",
}


def event_rows(n: int, start: int = 0):
    now = datetime.now(VN)
    rows = []
    for i in range(start, start + n):
        t = now - timedelta(seconds=i % 2_000_000)
        rows.append([f"ev-bench-{i:010d}", t, now, "bench", "1.0", f"D{i // 4:09d}", "1.001193", "TP-HT",
                     f"U{i % 110:03d}", 1 + i % 3, 1 + i % 10, None, None, t, t, t + timedelta(days=5), None,
                     None, None, [], bool(i % 2), False, 0, False, "motcua.dossier-status", i % 6, i])
    return rows


def bench_insert(settings, n_rows: int) -> None:
    c = get_client(settings)
    rows = event_rows(n_rows)
    c.command("TRUNCATE TABLE dossier_events")
    sink = ClickHouseSink(lambda: get_client(settings), "dossier_events", DOSSIER_EVENT_COLUMNS,
                          key_columns=SINK_KEYS["dossier_events"], max_rows=5000, max_seconds=0.5,
                          max_buffer_rows=50_000)
    t0 = time.perf_counter()
    for i in range(0, n_rows, 500):  # the stream hands over ~500-row micro-batches
        sink.write(rows[i:i + 500])
    sink.flush()
    t_sink = time.perf_counter() - t0
    sink.close()
    got_sink = c.query("SELECT count() FROM dossier_events").result_rows[0][0]

    c.command("TRUNCATE TABLE dossier_events")
    t0 = time.perf_counter()
    c.insert("dossier_events", rows, column_names=DOSSIER_EVENT_COLUMNS)
    t_bulk = time.perf_counter() - t0
    got_bulk = c.query("SELECT count() FROM dossier_events").result_rows[0][0]
    c.command("TRUNCATE TABLE dossier_events")
    c.close()
    assert got_sink == got_bulk == n_rows, (got_sink, got_bulk, n_rows)
    print(f"insert {n_rows:,} dossier_events rows (HTTP, lz4):")
    print(f"  ClickHouseSink (500-row writes, 5,000-row batches): {n_rows / t_sink:>10,.0f} rows/s  ({t_sink:.2f} s, {sink.stats.batches} batches)")
    print(f"  one bulk client.insert of the same rows:            {n_rows / t_bulk:>10,.0f} rows/s  ({t_bulk:.2f} s)")
    print(f"  sink / bulk: {t_bulk / t_sink:.2f}")


def generate(settings, n_events: int) -> None:
    c = get_client(settings, send_receive_timeout=1800)
    units = [r[0] for r in c.query("SELECT unit_code FROM ref_units FINAL WHERE unit_kind != 'province' ORDER BY unit_code").result_rows]
    procs = c.query("SELECT procedure_code, field_code FROM ref_procedures FINAL ORDER BY procedure_code").result_rows
    n_dossiers = n_events // 4
    arr = lambda xs: "[" + ",".join("'" + x + "'" for x in xs) + "]"  # noqa: E731
    with_ = (f"WITH {arr(units)} AS units, {arr([p[0] for p in procs])} AS procs, {arr([p[1] for p in procs])} AS flds, "
             "now64(3, 'Asia/Ho_Chi_Minh') AS t_now ")
    for t in ("dossier_events", "dossier_state", "ratings", "dead_letters", "pipeline_metrics"):
        c.command(f"TRUNCATE TABLE {t}")
    t0 = time.perf_counter()
    # dossier d: received at a pseudo-random time in the last 365 days; 4 events per dossier.
    recv = "t_now - toIntervalSecond(cityHash64(d) % 31536000)"
    c.command(with_ + f"""
        INSERT INTO dossier_events (event_id, event_time, ingest_time, source_system, contract_version, dossier_code,
            procedure_code, procedure_field, unit_code, channel, status, received_at, promised_at,
            has_digitised_components, electronic_result, paid_online, vneid_authenticated, kafka_topic, kafka_partition, kafka_offset)
        SELECT concat('ev-', toString(number)), {recv} + toIntervalHour(k * 20), t_now, 'bench', '1.0', concat('D', toString(d)),
               procs[1 + d % length(procs)], flds[1 + d % length(procs)], units[1 + cityHash64(d, 1) % length(units)],
               1 + d % 3, [2, 4, 9, 10][k + 1], {recv}, {recv} + toIntervalDay(5), d % 3 = 0, d % 2 = 0, d % 4 = 0, d % 5 = 0,
               'motcua.dossier-status', toInt32(number % 6), toInt64(number)
        FROM (SELECT number, intDiv(number, 4) AS d, number % 4 AS k FROM numbers({n_events}))
        SETTINGS max_insert_threads = 2""")
    t_ev = time.perf_counter() - t0
    # dossier_state: version 1 (open) for every dossier, then version 2 (closed) for ~85%,
    # inserted separately and not merged, so FINAL has to replace rows at query time.
    state_cols = ("dossier_code, unit_code, procedure_code, procedure_field, channel, status, submitted_at, received_at, "
                  "promised_at, finished_at, closed_at, outcome, resolution_working_days, is_open, overdue, digitised, "
                  "paid_online, vneid, electronic_result, first_event_time, last_event_time, version")
    base = (f"concat('D', toString(d)), units[1 + cityHash64(d, 1) % length(units)], procs[1 + d % length(procs)], "
            f"flds[1 + d % length(procs)], 1 + d % 3")
    c.command(with_ + f"""
        INSERT INTO dossier_state ({state_cols})
        SELECT {base}, 4, {recv} - toIntervalMinute(5), {recv}, {recv} + toIntervalDay(5), NULL, NULL, '', NULL, 1,
               {recv} + toIntervalDay(5) < t_now, d % 3 = 0, d % 4 = 0, d % 5 = 0, d % 2 = 0,
               {recv} - toIntervalMinute(5), {recv}, 1
        FROM (SELECT number AS d FROM numbers({n_dossiers}))""")
    c.command(with_ + f"""
        INSERT INTO dossier_state ({state_cols})
        SELECT {base}, 10, {recv} - toIntervalMinute(5), {recv}, {recv} + toIntervalDay(5), fin, fin,
               ['early', 'early', 'early', 'on_time', 'late', 'withdrawn', 'refused', 'stopped'][1 + cityHash64(d, 2) % 8],
               (cityHash64(d, 3) % 800) / 100, 0, 0, d % 3 = 0, d % 4 = 0, d % 5 = 0, d % 2 = 0,
               {recv} - toIntervalMinute(5), fin, 2
        FROM (SELECT number AS d, {recv} + toIntervalHour(1 + cityHash64(d, 4) % 200) AS fin
              FROM numbers({n_dossiers}) WHERE cityHash64(d, 5) % 100 < 85 AND fin < t_now)""")
    n_ratings = max(n_events // 5, 1000)
    c.command(with_ + f"""
        INSERT INTO ratings (rating_id, event_time, ingest_time, source_system, contract_version, kiosk_id, unit_code,
                             officer_id, level, scale, criteria, kafka_topic, kafka_partition, kafka_offset)
        SELECT concat('rt-', toString(number)), t_now - toIntervalSecond(cityHash64(number) % 31536000), t_now, 'kiosk', '1.0',
               concat('K', toString(number % 400)), units[1 + (number % 400) % length(units)],
               concat('cb-', toString(number % 900)), 1 + cityHash64(number, 1) % 5, 5,
               if(number % 3 = 0, map('officer', toUInt8(1 + number % 5), 'time', toUInt8(1 + number % 4)), map()),
               'motcua.kiosk-rating', 0, toInt64(number)
        FROM numbers({n_ratings})""")
    c.command(f"""
        INSERT INTO dead_letters (dead_letter_id, topic, partition, offset, source_system, kind, rules, reasons, raw, raw_size, received_at, updated_at)
        SELECT toString(number), 'motcua.dossier-status', toInt32(number % 6), toInt64(number), 'mc', 'dossier',
               [['contract.required', 'dq.unknown_unit', 'dq.future_time'][1 + number % 3]], ['x'], 'raw', 3,
               now64(3) - toIntervalSecond(number * 7), now64(3) - toIntervalSecond(number * 7)
        FROM numbers(100000)""")
    c.command("""
        INSERT INTO pipeline_metrics (ts, worker, consumer_group, topic, partition, committed_offset, end_offset, lag, freshness_ms, events_per_s)
        SELECT now64(3) - toIntervalSecond(number * 5), 'w1', 'motcua-pulse', 'motcua.dossier-status', toInt32(number % 6),
               toInt64(number), toInt64(number + 10), 10, 800, 500 FROM numbers(100000)""")
    t_all = time.perf_counter() - t0
    counts = {t: c.query(f"SELECT count() FROM {t}").result_rows[0][0] for t in ("dossier_events", "dossier_state", "ratings")}
    parts = c.query("SELECT count() FROM system.parts WHERE database = currentDatabase() AND table = 'dossier_state' AND active").result_rows[0][0]
    c.close()
    print(f"generated in ClickHouse: {counts['dossier_events']:,} dossier events ({t_ev:.1f} s), "
          f"{counts['dossier_state']:,} dossier_state rows for {n_dossiers:,} dossiers ({parts} active parts, unmerged versions), "
          f"{counts['ratings']:,} ratings; total {t_all:.1f} s")


def refresh(settings) -> None:
    c = get_client(settings, send_receive_timeout=1800)
    t0 = time.perf_counter()
    refresh_board_aggregates(c)
    dt = time.perf_counter() - t0
    sizes = {v: c.query(f"SELECT count() FROM {v}").result_rows[0][0] for v in BOARD_AGGREGATES}
    c.close()
    print(f"refresh of the board aggregates (full recompute from FINAL, every board_refresh_seconds): {dt:.1f} s; "
          + ", ".join(f"{k} {n:,} rows" for k, n in sizes.items()))


def bench_views(settings) -> float:
    c = get_client(settings)
    worst = 0.0
    print(f"board queries (best of 3, ms; target slowest < {TARGET_MS} ms):")
    for name, q in BOARD_QUERIES.items():
        times, rows = [], 0
        for _ in range(3):
            t0 = time.perf_counter()
            rows = len(c.query(q).result_rows)
            times.append((time.perf_counter() - t0) * 1000)
        best = min(times)
        worst = max(worst, best)
        print(f"  {name:<48} {best:8.0f} ms   (runs {', '.join(f'{t:.0f}' for t in times)}; {rows:,} rows)")
    c.close()
    print(f"slowest board query: {worst:.0f} ms -> {'OK' if worst < TARGET_MS else 'ABOVE TARGET'} (< {TARGET_MS} ms)")
    return worst


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--sink-rows", type=int, default=200_000)
    args = ap.parse_args()
    ep = None
    url = os.environ.get("BENCH_CLICKHOUSE_URL")
    if not url:
        from tests.support.endpoint import start_endpoint
        ep = start_endpoint(Path(tempfile.mkdtemp(prefix="bench-sink-")) / "chdb")
        url = ep.url + "/motcua_bench"
    settings = Settings().with_(clickhouse_url=url)
    try:
        migrate_settings(settings, log=None)
        c = get_client(settings)
        load_reference_tables(c)
        c.close()
        bench_insert(settings, args.sink_rows)
        generate(settings, args.events)
        refresh(settings)
        bench_views(settings)
    finally:
        if ep is not None:
            ep.stop(timeout=120)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
