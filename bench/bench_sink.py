"""Sink and board-view benchmark, through the local chDB HTTP endpoint.

1. Insert throughput and CPU (``--mode``):
   rows:   the original figure -- the same prebuilt synthetic dossier_events rows through
           a ClickHouseSink (500-row writes) and as one bulk client.insert; rows/s and CPU
           per row of this process and of the endpoint.
   stream: the worker's way -- per batch of dossier events (decoded from contract JSON) it
           builds one dossier_events row (sinks.rows.dossier_event_row) and one
           dossier_state row (streams.core), hands them to two ClickHouseSinks and waits for
           the previous batch's rows to be in ClickHouse. CPU per row of the worker (row
           building and write() on the main thread, the sinks' threads: per-thread CPU from
           /proc) and of the endpoint; and one bulk client.insert per table of the same rows.
2. Board views over >= 10 million simulated dossier events: the events, the dossier states
   they fold into (2.5M dossiers, most with a replaced earlier version still unmerged, so
   FINAL does real work) and 2M ratings are generated directly in ClickHouse with
   numbers(); the refreshable board aggregates are recomputed (timed), then each board
   query as Superset would send it is timed (best of 3). Target: slowest < 300 ms.

    .venv/bin/python bench/bench_sink.py [--events 10000000] [--sink-rows 200000]
    .venv/bin/python bench/bench_sink.py --insert-only [--mode stream] [--sink-rows 200000] [--no-gc] [--compression none]
Set BENCH_CLICKHOUSE_URL to run against an existing server instead of a fresh endpoint
(the endpoint's CPU is then not reported).
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import bench_clickhouse  # noqa: E402
from pulse.config import Settings  # noqa: E402
from sinks.client import get_client  # noqa: E402
from sinks.migrate import BOARD_AGGREGATES, refresh_board_aggregates  # noqa: E402
from sinks.rows import DOSSIER_EVENT_COLUMNS, SINK_KEYS, TABLE_COLUMNS, dossier_event_row  # noqa: E402
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
    """Synthetic dossier_events rows (the original figure of this benchmark)."""
    now = datetime.now(VN)
    rows = []
    for i in range(start, start + n):
        t = now - timedelta(seconds=i % 2_000_000)
        rows.append([f"ev-bench-{i:010d}", t, now, "bench", "1.0", f"D{i // 4:09d}", "1.001193", "TP-HT",
                     f"U{i % 110:03d}", 1 + i % 3, 1 + i % 10, None, None, t, t, t + timedelta(days=5), None,
                     None, None, [], bool(i % 2), False, 0, False, "motcua.dossier-status", i % 6, i])
    return rows


def bench_insert_rows(settings, n_rows: int, endpoint_pid: int | None = None, compression: str | None = None) -> None:
    """The same prebuilt rows through a ClickHouseSink (500-row writes) and as one bulk
    client.insert; CPU of this process and of the endpoint over each."""
    c = get_client(settings)
    rows = event_rows(n_rows)
    c.command("TRUNCATE TABLE dossier_events")
    kw = {} if compression is None else {"compression": False if compression == "none" else compression}
    sink = ClickHouseSink(lambda: get_client(settings), "dossier_events", DOSSIER_EVENT_COLUMNS,
                          key_columns=SINK_KEYS["dossier_events"], max_rows=5000, max_seconds=0.5,
                          max_buffer_rows=50_000, **kw)
    sink.write(rows[:500], wait=True)   # warm-up, not measured: connection, insert context, lazy imports
    gc.collect()
    t0, c0, e0 = time.perf_counter(), time.process_time(), _proc_cpu(endpoint_pid)
    for i in range(500, n_rows, 500):  # the stream hands over ~500-row micro-batches
        sink.write(rows[i:i + 500])
    sink.flush()
    t_sink, cpu_sink, ep_sink = time.perf_counter() - t0, time.process_time() - c0, _proc_cpu(endpoint_pid) - e0
    sink.close()
    got_sink = c.query("SELECT count() FROM dossier_events").result_rows[0][0]

    c.command("TRUNCATE TABLE dossier_events")
    gc.collect()
    t0, c0, e0 = time.perf_counter(), time.process_time(), _proc_cpu(endpoint_pid)
    c.insert("dossier_events", rows, column_names=DOSSIER_EVENT_COLUMNS)
    t_bulk, cpu_bulk, ep_bulk = time.perf_counter() - t0, time.process_time() - c0, _proc_cpu(endpoint_pid) - e0
    got_bulk = c.query("SELECT count() FROM dossier_events").result_rows[0][0]
    c.command("TRUNCATE TABLE dossier_events")
    c.close()
    assert got_sink == got_bulk == n_rows, (got_sink, got_bulk, n_rows)
    n = n_rows - 500
    print(f"insert {n_rows:,} synthetic dossier_events rows (HTTP; sink compression: {compression or 'default'}):")
    print(f"  ClickHouseSink (500-row writes, 5,000-row batches): {n / t_sink:>10,.0f} rows/s  ({t_sink:.2f} s, "
          f"{sink.stats.batches} batches); CPU per row: worker {cpu_sink / n * 1e6:5.2f} us, endpoint {ep_sink / n * 1e6:5.2f} us")
    print(f"  one bulk client.insert of the same rows:            {n_rows / t_bulk:>10,.0f} rows/s  ({t_bulk:.2f} s); "
          f"CPU per row: worker {cpu_bulk / n_rows * 1e6:5.2f} us, endpoint {ep_bulk / n_rows * 1e6:5.2f} us")
    print(f"  sink / bulk: {t_bulk / n_rows / (t_sink / n):.2f} (rows/s), {cpu_bulk / n_rows / (cpu_sink / n):.2f} (worker CPU)")


def contract_json(n: int) -> list[bytes]:
    """``n`` dossier events as contract JSON, stamped by the front door: a simulated
    province's feed, repeated with renamed event ids and dossier codes (all unique)."""
    from simulator.model import SimConfig, generate as simulate
    pool = [e.value for e in simulate(SimConfig(start=date(2026, 3, 2), days=3, scale=1.0))
            if e.topic == "dossier-events" and not e.anomaly]
    ingest = datetime.now(timezone.utc).isoformat().encode()
    out = []
    for i in range(n):
        raw, r = pool[i % len(pool)], i // len(pool)
        out.append(raw.replace(b'"event_id":"', b'"event_id":"b%d-' % r, 1)
                      .replace(b'"dossier_code":"', b'"dossier_code":"b%d-' % r, 1)
                      .replace(b'"source_system"', b'"ingest_time":"' + ingest + b'","source_system"', 1))
    return out


class _StreamLike:
    """What the worker does per batch, minus Kafka: decode, then the rows it writes."""

    def __init__(self):
        from schemas.codec import decode_dossier
        from streams.core import DossierLogic, compact
        self.decode, self.compact = decode_dossier, compact
        self.logic = DossierLogic.from_settings(Settings())
        self.n = self.states = 0

    def events(self, raws) -> list:
        return [self.decode(r) for r in raws]

    def event_rows(self, events, topic="motcua.dossier-status") -> list:
        rows = []
        for ev in events:
            rows.append(dossier_event_row(ev, topic, self.n % 6, self.n))
            self.n += 1
        return rows

    def state_rows(self, events) -> list:
        """A dossier_state row per event, as streams.core builds it (datetimes, Python values)."""
        now = datetime.now(timezone.utc)
        rows = [self.logic.state(ev.dossier_code, [self.compact(ev)], now).row for ev in events]
        for r in rows:  # one row per dossier here, or background merges would fold them
            r[0] = f"{r[0]}#{self.states}"
            self.states += 1
        return rows


def _proc_cpu(pid: int | None, tid: int | None = None) -> float:
    """CPU seconds (user + system) used so far by process ``pid`` (its thread ``tid``); nan if unknown."""
    if pid is None:
        return float("nan")
    path = f"/proc/{pid}/stat" if tid is None else f"/proc/{pid}/task/{tid}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_insert(settings, n_events: int, endpoint_pid: int | None = None, compression: str | None = None,
                 batch: int = 2000, no_gc: bool = False) -> None:
    """The worker's pattern: per batch of ``batch`` events build the rows, hand them to the
    two sinks, and wait for the previous batch's rows to be in ClickHouse (one batch in
    flight, as streams.dossiers does). CPU is measured per thread: the rows built and handed
    over on the main thread, and the sinks' own threads. ``no_gc``: the cyclic garbage
    collector off while measuring -- collections are triggered by whatever allocates (here
    mostly decoding and the state logic) and land in whichever code runs at that moment,
    which makes the per-part figures noisy."""
    c = get_client(settings)
    t0 = time.perf_counter()
    raws = contract_json(n_events)
    print(f"prepared {n_events:,} contract events in {time.perf_counter() - t0:.1f} s")
    stream = _StreamLike()
    names = ("dossier_events", "dossier_state")
    for t in names:
        c.command(f"TRUNCATE TABLE {t}")
    kw = {} if compression is None else {"compression": False if compression == "none" else compression}
    sinks = [ClickHouseSink(lambda: get_client(settings), t, TABLE_COLUMNS[t], key_columns=SINK_KEYS[t],
                            max_rows=20_000, max_seconds=0.2, max_buffer_rows=100_000, **kw) for t in names]
    me = os.getpid()
    tids = [sk._thread.native_id for sk in sinks]
    # warm-up, not measured: connections, insert contexts, lazy imports (a worker pays them once)
    events = stream.events(raws[:batch])
    for sk, r in zip(sinks, (stream.event_rows(events), stream.state_rows(events))):
        sk.write(r, wait=True)
    build = hand = 0.0
    gc.collect()
    if no_gc:
        gc.disable()
    w0, e0 = time.perf_counter(), _proc_cpu(endpoint_pid)
    s0 = sum(_proc_cpu(me, t) for t in tids)
    previous = []
    for i in range(batch, n_events, batch):
        events = stream.events(raws[i:i + batch])                 # not counted: decoding
        states = stream.state_rows(events)                         # not counted: the stream's logic
        t = time.thread_time()
        rows = stream.event_rows(events)
        build += time.thread_time() - t
        t = time.thread_time()
        tickets = [sk.write(r) for sk, r in zip(sinks, (rows, states))]
        hand += time.thread_time() - t
        for sk, tk in previous:
            sk.wait(tk)
        previous = list(zip(sinks, tickets))
    for sk in sinks:
        sk.flush()
    wall = time.perf_counter() - w0
    gc.enable()
    sink_cpu = sum(_proc_cpu(me, t) for t in tids) - s0
    ep_sink = _proc_cpu(endpoint_pid) - e0
    batches = sum(sk.stats.batches for sk in sinks)
    for sk in sinks:
        sk.close()
    got_sink = [c.query(f"SELECT count() FROM {t}").result_rows[0][0] for t in names]

    for t in names:
        c.command(f"TRUNCATE TABLE {t}")
    events = stream.events(raws)
    all_rows = (stream.event_rows(events), stream.state_rows(events))
    del events
    gc.collect()
    if no_gc:
        gc.disable()
    w0, c0, e0 = time.perf_counter(), time.process_time(), _proc_cpu(endpoint_pid)
    for t, data in zip(names, all_rows):
        c.insert(t, data, column_names=TABLE_COLUMNS[t])
    bulk_wall, bulk_cpu, ep_bulk = time.perf_counter() - w0, time.process_time() - c0, _proc_cpu(endpoint_pid) - e0
    gc.enable()
    got_bulk = [c.query(f"SELECT count() FROM {t}").result_rows[0][0] for t in names]
    for t in names:
        c.command(f"TRUNCATE TABLE {t}")
    c.close()
    assert got_sink == got_bulk == [n_events, n_events], (got_sink, got_bulk, n_events)

    n_measured = n_events - batch
    n = 2 * n_measured
    us = lambda sec, k=n: sec / k * 1e6  # noqa: E731
    print(f"insert {n_events:,} dossier events = {n_events:,} dossier_events + {n_events:,} dossier_state rows "
          f"(HTTP; {batch:,}-event batches, one in flight; sink compression: {compression or 'default'}"
          f"{'; gc off while measuring' if no_gc else ''}):")
    print(f"  ClickHouseSink (after a first batch): {n / wall:>10,.0f} rows/s ({wall:.2f} s incl. decoding and state logic, "
          f"{batches} inserts); CPU per row: sink threads {us(sink_cpu):5.2f} us, write() {us(hand):5.2f} us, "
          f"endpoint {us(ep_sink):5.2f} us")
    print(f"  one bulk client.insert per table of all the rows: {2 * n_events / bulk_wall:>10,.0f} rows/s ({bulk_wall:.2f} s); "
          f"CPU per row: worker {us(bulk_cpu, 2 * n_events):5.2f} us, endpoint {us(ep_bulk, 2 * n_events):5.2f} us")
    print(f"  dossier_event_row: {us(build, n_measured):5.2f} us CPU per dossier_events row")
    per_event = (build + hand + sink_cpu) / n_measured * 1e6
    print(f"  worker CPU per dossier event for its two rows (build the events row, write(), sink threads): "
          f"{per_event:.2f} us")


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
    base = ("concat('D', toString(d)), units[1 + cityHash64(d, 1) % length(units)], procs[1 + d % length(procs)], "
            "flds[1 + d % length(procs)], 1 + d % 3")
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
    c.command("""
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
    ap.add_argument("--sink-rows", type=int, default=200_000, help="rows (--mode rows); dossier events, one row in each of two tables (--mode stream)")
    ap.add_argument("--batch", type=int, default=2000, help="events per stream batch (settings.stream_batch_size)")
    ap.add_argument("--no-gc", action="store_true", help="cyclic GC off while measuring (steadier per-part figures)")
    ap.add_argument("--insert-only", action="store_true", help="only the insert part (no board views)")
    ap.add_argument("--mode", choices=("stream", "rows", "both"), default="both",
                    help="insert part: the worker's pattern (stream), prebuilt synthetic rows (rows), or both")
    ap.add_argument("--compression", choices=("lz4", "zstd", "none"), default=None,
                    help="ClickHouseSink(compression=...); default: the sink's own default")
    args = ap.parse_args()
    with bench_clickhouse("bench-sink-") as (settings, pid):
        if args.mode in ("rows", "both"):
            bench_insert_rows(settings, args.sink_rows, endpoint_pid=pid, compression=args.compression)
        if args.mode in ("stream", "both"):
            bench_insert(settings, args.sink_rows, endpoint_pid=pid, compression=args.compression, batch=args.batch,
                         no_gc=args.no_gc)
        if args.insert_only:
            return 0
        generate(settings, args.events)
        refresh(settings)
        bench_views(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
