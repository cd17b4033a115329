"""Replay benchmark: ``pulse replay`` over a generated history of at least 1 M events.

    .venv/bin/python bench/bench_replay.py [--events 1000000] [--batch 50000] [--profile out.html]

The history is the simulator's feed (simulator.model.generate: a province's dossiers with
duplicates and out-of-order events, and its kiosk ratings), decoded by the worker's checker
and written straight into ``dossier_events`` / ``ratings`` as the sinks' rows
(sinks.rows), no broker and no worker: only the replay is measured. Then
``pulse.replay.replay`` rebuilds every table into a fresh database and swaps it in; the
figure is events folded per second of the whole replay (copies, sort, fold, swap,
aggregates' refresh), and of the fold alone. CPU of this process and of the endpoint is
printed beside it (the machine is shared: wall time is what the other engineers left).

Set BENCH_CLICKHOUSE_URL (http://user:pass@host:port/db) to run against an existing server
instead of a fresh local endpoint (the endpoint's CPU is then not reported).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import bench_clickhouse  # noqa: E402
from pulse.config import Settings  # noqa: E402


def _proc_cpu(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def generate_history(settings: Settings, events: int, seed: int = 20261202, chunk: int = 200_000) -> tuple[int, int]:
    """At least ``events`` accepted dossier events (and the ratings of the same days) of a
    simulated province, inserted into ``dossier_events`` / ``ratings``. Returns (events, ratings)."""
    from expectations.checks import Checker
    from schemas.reference import load_reference
    from simulator.model import Anomaly, SimConfig, generate
    from sinks.client import get_client
    from sinks.rows import DOSSIER_EVENT_COLUMNS, RATING_COLUMNS, dossier_event_row, rating_row

    ref = load_reference()
    checker = Checker.from_suites(ref, settings)
    # ~4.4 events per dossier, ~240k dossiers a year at scale 1 (simulator.model)
    days = 120
    scale = max(0.1, events / (days * 240_000 / 365 * 4.0))
    cfg = SimConfig(start=date.today() - timedelta(days=days + 10), days=days, scale=scale, seed=seed,
                    anomalies=(Anomaly("duplicates", share=0.02), Anomaly("out_of_order", share=0.03)))
    client = get_client(settings)
    ev_rows: list = []
    rt_rows: list = []
    n_ev = n_rt = 0
    seen: set = set()
    try:
        for i, e in enumerate(generate(cfg)):
            if e.topic == "dossier-events":
                v = checker.check_dossier(e.value)
                ev = v.event
                if not v.ok or ev is None or ev.event_id in seen:      # the worker writes a duplicate once
                    continue
                seen.add(ev.event_id)
                ev_rows.append(dossier_event_row(ev, "dossier-events", 0, i))
            else:
                v = checker.check_rating(e.value)
                if not v.ok:
                    continue
                rt_rows.append(rating_row(v.event, "ratings", 0, i))
            if len(ev_rows) >= chunk:
                client.insert("dossier_events", ev_rows, column_names=DOSSIER_EVENT_COLUMNS)
                n_ev += len(ev_rows)
                ev_rows = []
            if len(rt_rows) >= chunk:
                client.insert("ratings", rt_rows, column_names=RATING_COLUMNS)
                n_rt += len(rt_rows)
                rt_rows = []
        if ev_rows:
            client.insert("dossier_events", ev_rows, column_names=DOSSIER_EVENT_COLUMNS)
            n_ev += len(ev_rows)
        if rt_rows:
            client.insert("ratings", rt_rows, column_names=RATING_COLUMNS)
            n_rt += len(rt_rows)
    finally:
        client.close()
    return n_ev, n_rt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000, help="at least this many dossier events of history")
    ap.add_argument("--batch", type=int, default=None, help="events per replay chunk (default: pulse.replay's)")
    ap.add_argument("--profile", help="write a pyinstrument HTML profile of the replay here")
    args = ap.parse_args()

    from pulse.replay import DEFAULT_BATCH, replay

    with bench_clickhouse("bench-replay-") as (settings, pid):
        t0 = time.perf_counter()
        n_ev, n_rt = generate_history(settings, args.events)
        print(f"history: {n_ev:,} dossier events, {n_rt:,} ratings generated and inserted in "
              f"{time.perf_counter() - t0:.0f} s")
        profiler = None
        if args.profile:
            from pyinstrument import Profiler  # type: ignore[import-not-found]  # optional: pip install pyinstrument
            profiler = Profiler()
            profiler.start()
        c0, e0 = time.process_time(), _proc_cpu(pid)
        r = replay(settings, batch=args.batch or DEFAULT_BATCH, progress=True)
        cpu, ep_cpu = time.process_time() - c0, _proc_cpu(pid) - e0
        if profiler is not None:
            profiler.stop()
            Path(args.profile).write_text(profiler.output_html())
        fold_rate = r.events / r.fold_seconds if r.fold_seconds else 0.0
        print(f"replay: {r.events} events in {r.seconds:.1f} s, {r.rate:,.0f} ev/s")
        print(f"  of which the fold (read, fold, insert dossier_state): {r.fold_seconds:.1f} s, {fold_rate:,.0f} ev/s; "
              f"{r.dossiers:,} dossiers; history copied: "
              f"{', '.join(f'{t} {n:,}' for t, n in r.copied.items() if n)}")
        ep_text = "n/a" if math.isnan(ep_cpu) else f"{ep_cpu:.1f} s ({ep_cpu / r.events * 1e6:.1f} us/event)"
        print(f"  CPU: replay process {cpu:.1f} s ({cpu / r.events * 1e6:.1f} us/event), endpoint {ep_text}; "
              f"target 20,000 ev/s: {'reached' if r.rate >= 20_000 else 'NOT reached'}")
        assert r.events >= n_ev, (r.events, n_ev)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
