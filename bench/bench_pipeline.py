"""End-to-end pipeline benchmark: Kafka -> Faust worker -> ClickHouse, beside raw consumption.

    .venv/bin/python bench/bench_pipeline.py [--workers 2] [--rounds 3] [--events 400000]
                                             [--live-rounds 3] [--live-events 300000]
                                             [--rate 1000] [--seconds 20] [--batch 2000] [--profile]

Starts (temporary folders, free ports) the real Kafka broker, the chDB endpoint and the
workers (``python -m streams worker`` via tests/support/worker.py; two by default, one per
core, as the local stack runs them), then measures in ONE run:

1. Throughput, in rounds, each on fresh topics and a fresh database:
   a. baseline: raw consumption of the pre-filled ``dossier-events`` topic with aiokafka
      (AIOKafkaConsumer, getmany, no processing): events/s;
   b. the workers drain the same backlog; events/s from the moment the first is ready
      until every accepted event is queryable in ClickHouse (``dossier_events``, and each
      dossier's ``dossier_state`` row with all its events applied), and in the steady state
      (every worker ready, the partitions split between them), with the CPU each process
      used per event and how busy the cores were.
   Two feeds: ``--rounds`` of the *lifecycles* feed (each dossier's four events together,
   as a re-sync of closed dossiers sends them: one state change per four events) and
   ``--live-rounds`` of the *simulated* feed (the simulator's province month in event-time
   order, as a live stream or a backlog of one: a state change, a state row and a
   changelog record per event). The rounds of the two feeds alternate, and the median per
   feed is the figure: the machine is shared, and one round can be 20% off the next.
2. Freshness under load: the workers idle, then events produced at ``--rate``/s with
   event_time = now for ``--seconds``; freshness = ClickHouse ``inserted_at`` (server time
   the row became queryable) - event_time, p50/p99/max; plus a polling cross-check.
3. ``--profile``: cProfile of the batch path in-process (real checker and rules, no-op
   sinks) to show where the CPU goes.

Figures are printed; exit code 0. Targets (2 cores): >= 20,000 events/s sustained,
p99 freshness <= 2 s at 1,000 events/s.
"""
from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings
from datetime import datetime, timedelta, timezone
from itertools import zip_longest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore", category=DeprecationWarning)

from pulse.config import Settings  # noqa: E402
from bench.harness import EventFactory, cpu_seconds, descendants, stable_split, wait_rows  # noqa: E402

VN = timezone(timedelta(hours=7))


def lifecycles_feed(n_events: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of ``n_events`` events: each dossier's four together, a second apart
    between dossiers (a re-sync of closed dossiers: one state change per four events)."""
    factory = EventFactory()
    base = datetime.now(VN).replace(microsecond=0) - timedelta(days=20)
    out: list[tuple[bytes, bytes]] = []
    i = 0
    while len(out) < n_events:
        out += factory.lifecycle(i, base + timedelta(seconds=i), timedelta(hours=3))
        i += 1
    return out


def simulated_feed(n_events: int, seed: int = 1) -> list[tuple[bytes, bytes]]:
    """(key, value) of the simulator's province feed in event-time order, its dossier events
    only, cut at ``n_events``: each dossier's events are hours or days apart, so they fall
    in different batches and each one changes the dossier's state (a state row and a
    changelog record per event), as in a live stream or a backlog of one."""
    from simulator import DOSSIER_TOPIC, SimConfig, generate
    # a simulated month ending yesterday; a unit of scale gave ~83,000 dossier events, so
    # n_events / 75,000 gives a few more than asked for, and the feed is cut at n_events
    days = 30
    start = (datetime.now(VN) - timedelta(days=days + 1)).date()
    cfg = SimConfig(start=start, days=days, scale=max(0.1, n_events / 75_000), seed=seed)
    out: list[tuple[bytes, bytes]] = []
    for ev in generate(cfg):
        if ev.topic == DOSSIER_TOPIC:
            out.append((ev.key, ev.value))
            if len(out) >= n_events:
                break
    return out


_FEEDS: dict[tuple[str, int], list] = {}


def produce_backlog(s: Settings, feed: str, n_events: int) -> int:
    """Fill the round's input topic with the feed (built once per run, sent once per round)."""
    from simulator.output import KafkaOutput   # aiokafka's batch builder: ~10x kafka-python's producer
    if (feed, n_events) not in _FEEDS:
        _FEEDS[(feed, n_events)] = (lifecycles_feed if feed == "lifecycles" else simulated_feed)(n_events)
    out = KafkaOutput(s, compression=None)
    now_ms = int(time.time() * 1000)
    for key, value in _FEEDS[(feed, n_events)]:
        out.send_raw("dossier-events", key, value, now_ms)
    out.close()
    return len(_FEEDS[(feed, n_events)])


async def raw_consume(s: Settings, expected: int) -> tuple[float, int]:
    from aiokafka import AIOKafkaConsumer
    c = AIOKafkaConsumer(s.topic("dossier-events"), bootstrap_servers=s.kafka_bootstrap,
                         auto_offset_reset="earliest", enable_auto_commit=False, group_id=None,
                         max_partition_fetch_bytes=8 * 1024 * 1024)
    await c.start()
    n = 0
    t0 = None
    try:
        while n < expected:
            batch = await c.getmany(timeout_ms=1000, max_records=10_000)
            for msgs in batch.values():
                if msgs and t0 is None:
                    t0 = time.perf_counter()
                n += len(msgs)
    finally:
        await c.stop()
    return time.perf_counter() - (t0 or time.perf_counter()), n


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def freshness_run(s: Settings, client, factory: EventFactory, rate: int, seconds: float):
    """Open-loop producer at ``rate`` events/s with event_time = now."""
    from kafka import KafkaProducer
    from schemas.codec import encode
    from schemas.contracts import DossierEvent
    p = KafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks=1, linger_ms=2)
    topic = s.topic("dossier-events")
    run = uuid.uuid4().hex[:6]
    ids = []
    sample_seen = {}
    sample = set()
    stop = threading.Event()

    def poller():
        while not stop.is_set() or len(sample_seen) < len(sample):
            pending = [i for i in list(sample) if i not in sample_seen]
            if pending:
                q = "SELECT event_id FROM dossier_events WHERE event_id IN (%s)" % ",".join(f"'{x}'" for x in pending)
                for (eid,) in client.query(q).result_rows:
                    sample_seen.setdefault(eid, time.time())
            time.sleep(0.05)
            if stop.is_set() and time.time() > stop_time[0] + 30:
                break
    stop_time = [0.0]
    th = threading.Thread(target=poller, daemon=True)
    th.start()
    sent_at = {}
    t_start = time.perf_counter()
    n = int(rate * seconds)
    pairs = factory.pairs
    for i in range(n):
        due = t_start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        unit, proc, field = pairs[i % len(pairs)]
        code = f"F{run}-{i:07d}"
        now = datetime.now(VN)
        ev = DossierEvent(event_id=f"{code}-s02", event_time=now, status=2, source_system="bench",
                          dossier_code=code, procedure_code=proc, procedure_field=field, unit_code=unit,
                          received_at=now, promised_at=now + timedelta(days=5))
        p.send(topic, key=code.encode(), value=encode(ev))
        ids.append(ev.event_id)
        if i % 50 == 0:
            sample.add(ev.event_id)
            sent_at[ev.event_id] = now.timestamp()
    p.flush()
    achieved = n / (time.perf_counter() - t_start)
    stop_time[0] = time.time()
    wait_rows(client, f"SELECT count() FROM dossier_events WHERE event_id LIKE 'F{run}-%'", n, 120)
    stop.set()
    th.join(timeout=40)
    rows = client.query(
        "SELECT toUnixTimestamp64Milli(inserted_at) - toUnixTimestamp64Milli(event_time), "
        "toUnixTimestamp(event_time) "
        f"FROM dossier_events WHERE event_id LIKE 'F{run}-%'").result_rows
    fresh = [r[0] / 1000 for r in rows]
    # where the tail comes from: the worst freshness of each second of the run
    t0 = min((r[1] for r in rows), default=0)
    worst: dict = {}
    for ms, sec in rows:
        worst[sec - t0] = max(worst.get(sec - t0, 0.0), ms / 1000)
    print("          worst freshness per second of the run: " +
          " ".join(f"{worst[k]:.2f}" for k in sorted(worst)))
    polled = [sample_seen[e] - sent_at[e] for e in sample_seen]
    return achieved, fresh, polled


def profile_batch_path(n_events: int = 20_000) -> str:
    from streams.checkpoint import process_batch
    from streams.dossiers import prepare_dossier_batch
    from tests.support.inmemory import Msg, make_runtime
    factory = EventFactory(seed=2)
    msgs = []
    base = datetime.now(VN) - timedelta(days=3)
    i = 0
    while len(msgs) < n_events:
        for _key, value in factory.lifecycle(i, base + timedelta(seconds=i), timedelta(hours=3)):
            msgs.append(Msg("p.dossier-events", i % 4, len(msgs), value, time.time()))
        i += 1
    random.Random(1).shuffle(msgs)

    rt = make_runtime()
    rt.quality.maybe_run = lambda dq_sink, force=False: None     # no GX child: the batch path only

    async def go():
        for k in range(0, len(msgs), 2000):
            await process_batch(rt, prepare_dossier_batch, msgs[k:k + 2000])
    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    asyncio.run(go())
    prof.disable()
    dt = time.perf_counter() - t0
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(25)
    return f"in-process batch path: {len(msgs)} events in {dt:.2f} s = {len(msgs) / dt:,.0f} events/s " \
           f"(one core, under cProfile)\n" + out.getvalue()


def round_settings(home: Path, broker, endpoint, args, r: int) -> Settings:
    """Each round has its own topics, consumer group and database: nothing carries over."""
    tag = uuid.uuid4().hex[:6]
    return Settings.from_env().with_(
        state_dir=home / f"r{r}" / "state", kafka_bootstrap=broker.bootstrap,
        clickhouse_url=f"{endpoint.url.rstrip('/')}/bench_{tag}", topic_prefix=f"b{tag}.",
        faust_app_id=f"pulse-bench-{tag}", stream_batch_size=args.batch, stream_batch_window_s=args.window)


def throughput_round(s: Settings, args, home: Path, first: bool, feed: str, events: int) -> dict:
    """Fill the input topic, time raw aiokafka consumption of it, then time the workers
    draining it into ClickHouse. Prints the round's figures; returns them."""
    from pulse.admin import create_topics
    from sinks.client import get_client
    from tests.support.worker import start_worker

    create_topics(s)
    t = time.perf_counter()
    n = produce_backlog(s, feed, events)
    print(f"produced backlog ({feed} feed): {n:,} events in {time.perf_counter() - t:.1f} s")

    dt, got = asyncio.run(raw_consume(s, n))
    base_rate = got / dt
    print(f"baseline  aiokafka raw consumption: {got:,} events in {dt:.2f} s = {base_rate:,.0f} events/s")

    prof_path = home / "worker.prof"
    profile_worker = args.profile_worker and first
    # Extra workers share the consumer group (the partitions are split between them),
    # each with its own state folder. The overall clock starts when the FIRST worker is
    # ready, since it consumes at once; the steady-state figure below starts once all are.
    # Rows already queryable when the clock starts are not counted: a worker starts
    # consuming before the bench's poll of its status page sees it ready.
    extra_workers, t_ready, n_ready, client = [], None, 0, None
    busy = None
    worker = None

    def clock_starts():   # (the worker has created the database by now)
        nonlocal client
        t = time.monotonic()
        client = get_client(s)
        return t, client.query("SELECT count() FROM dossier_events").result_rows[0][0]
    try:
        for i in range(1, args.workers):
            extra_workers.append(start_worker(s.with_(state_dir=home / f"state{i}"), log_path=home / f"worker{i}.log"))
            if t_ready is None:
                t_ready, n_ready = clock_starts()
        worker = start_worker(s, env={"PULSE_PROFILE": str(prof_path)} if profile_worker else None,
                              log_path=home / "worker.log")
        if t_ready is None:
            t_ready, n_ready = clock_starts()
        procs = {"worker": worker.proc.pid, "broker": args.broker_pid, "clickhouse endpoint": args.endpoint_pid}
        procs.update({f"worker {i}": w.proc.pid for i, w in enumerate(extra_workers, 1)})
        # a worker's GX child (spawned at its start) counts too: it runs on the same 2 cores
        meters = {k: (lambda p=p: cpu_seconds(p)) for k, p in procs.items()}
        meters.update({f"{k}'s GX child": (lambda p=p: sum(map(cpu_seconds, descendants(p))))
                       for k, p in procs.items() if k.startswith("worker")})
        spy = None
        if args.py_spy and first:
            import shutil
            import subprocess
            exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            spy = subprocess.Popen([exe, "record", "-p", str(worker.proc.pid), "--threads", "--gil", "-f", "raw",
                                    "-r", "200", "-o", args.py_spy], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Steady state: from the moment every worker is ready under one consumer generation
        # with the input partitions split between them (a worker joining later makes the
        # group rebalance, a pause that is start-up, not sustained throughput).
        everyone = [worker, *extra_workers]
        t_stable, wall_stable, n0 = stable_split(everyone, client, s.topic("dossier-events") + ":")
        cpu_stable = {k: f() for k, f in meters.items()}
        t_events = wait_rows(client, "SELECT count() FROM dossier_events", n, 900)
        # every dossier's newest state row: its version is 2 x the events applied (+1 if overdue)
        t_state = wait_rows(client, "SELECT sum(v) FROM (SELECT max(intDiv(version, 2)) AS v FROM dossier_state "
                                    "GROUP BY dossier_code)", n, 900, poll=0.5)
        dossiers = client.query("SELECT uniqExact(dossier_code) FROM dossier_state").result_rows[0][0]
        t_done = max(t_events, t_state)
        rate = (n - n_ready) / (t_done - t_ready)
        cpu_steady = {k: f() for k, f in meters.items()}
        if spy is not None:
            import signal
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
            print(f"          py-spy samples (GIL holders, per thread): {args.py_spy}")
        print(f"pipeline  Kafka -> Faust -> ClickHouse, {args.workers} worker(s):  {n - n_ready:,} of {n:,} events ({dossiers:,} dossiers) in "
              f"{t_done - t_ready:.2f} s = {rate:,.0f} events/s  ({rate / base_rate:.1%} of raw consumption)")
        steady = None
        if t_stable is not None and n - n0 > 0 and t_done > t_stable:
            steady = (n - n0) / (t_done - t_stable)
            print(f"          steady state (every worker ready, partitions split): {n - n0:,} events in "
                  f"{t_done - t_stable:.2f} s = {steady:,.0f} events/s  ({steady / base_rate:.1%} of raw consumption)")
            # what limits it: CPU per event and how busy the cores were (100% = CPU-bound)
            used = {k: cpu_steady[k] - cpu_stable[k] for k in meters}
            print(f"          steady-state CPU ({t_done - t_stable:.1f} s wall, {os.cpu_count()} cores): " + ", ".join(
                f"{k} {1e6 * v / (n - n0):.0f}" for k, v in used.items()) +
                f" µs/event; total {1e6 * sum(used.values()) / (n - n0):.0f} µs/event, "
                f"{sum(used.values()) / (t_done - t_stable) / os.cpu_count():.0%} of the cores busy "
                f"(at 100%: {(n - n0) * os.cpu_count() / max(1e-9, sum(used.values())):,.0f} events/s)")
        if wall_stable is not None:
            # a partition done early leaves its worker idle while the others finish theirs
            ends = client.query("SELECT kafka_partition, toUnixTimestamp64Milli(max(inserted_at)) FROM dossier_events "
                                "GROUP BY kafka_partition ORDER BY kafka_partition").result_rows
            print("          each partition's last row, seconds after the steady state began: " +
                  ", ".join(f"p{p} {ms / 1000 - wall_stable:.1f}" for p, ms in ends))
            # The steady state above ends when the LAST partition is drained, so its tail has a
            # worker idle (its partitions done): a finite backlog's drain, not sustained load.
            # Also measured: from the same start until the FIRST partition is drained, while
            # every worker still had backlog (rows counted by the time ClickHouse made them
            # queryable, as at the start; each end is one insert interval, ~1 s, coarse).
            first_end_ms = min(ms for _, ms in ends) if ends else None
            if first_end_ms is not None and first_end_ms / 1000 - wall_stable > 2:
                n_end = client.query("SELECT count() FROM dossier_events WHERE inserted_at <= "
                                     f"fromUnixTimestamp64Milli({int(first_end_ms)})").result_rows[0][0]
                busy = (n_end - n0) / (first_end_ms / 1000 - wall_stable)
                print(f"          while every partition had backlog (until the first was drained): {n_end - n0:,} "
                      f"events in {first_end_ms / 1000 - wall_stable:.2f} s = {busy:,.0f} events/s")
        st = worker.status() or {}
        print(f"          worker metrics: {st.get('metrics')}")
        if profile_worker:
            worker.stop(timeout=60)
            worker = None
            out = io.StringIO()
            stats = pstats.Stats(str(prof_path), stream=out)
            stats.sort_stats("tottime").print_stats(30)
            print("worker profile (throughput phase, by own time):\n" + out.getvalue())
        return {"rate": rate, "steady": steady, "baseline": base_rate, "busy": busy}
    finally:
        for w in [*extra_workers, worker]:
            if w is not None:
                w.stop(timeout=30)
        if client is not None:
            client.close()
        if not args.keep:
            drop_round(s)


def drop_round(s: Settings) -> None:
    """Drop a finished round's database and topics. Left in place, every earlier round's
    refreshable board views kept recomputing from their 300-400k rows every minute, and its
    parts kept merging, in the ClickHouse endpoint the next rounds were measured on: six
    rounds ran slower one after the other (lifecycles 35,279 -> 33,407 -> 28,202 events/s,
    endpoint 7 -> 9 -> 11 µs of CPU per event, 2 December)."""
    from kafka.admin import KafkaAdminClient
    from sinks.client import database_of, get_client
    client = get_client(s, database="")
    try:
        client.command(f"DROP DATABASE IF EXISTS `{database_of(s)}` SYNC")
    finally:
        client.close()
    admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
    try:
        mine = [t for t in admin.list_topics() if t.startswith(s.topic_prefix) or t.startswith(s.faust_app_id)]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


def freshness_phase(s: Settings, args, home: Path) -> None:
    """The same number of workers, idle and split over the partitions, then an open-loop
    feed at ``--rate`` events/s stamped with the current time."""
    from pulse.admin import create_topics
    from sinks.client import get_client
    from tests.support.worker import start_worker
    create_topics(s)
    workers = []
    try:
        for i in range(args.workers):
            workers.append(start_worker(s.with_(state_dir=home / f"state{i}"), log_path=home / f"worker{i}.log"))
        stable_split(workers, None, s.topic("dossier-events") + ":", timeout=120)
        client = get_client(s)
        achieved, fresh, polled = freshness_run(s, client, EventFactory(), args.rate, args.seconds)
        print(f"freshness at {achieved:,.0f} events/s for {args.seconds:.0f} s ({len(fresh):,} events, "
              f"{args.workers} worker(s)), event time -> queryable (ClickHouse inserted_at): "
              f"p50 {pct(fresh, 50):.3f} s, p99 {pct(fresh, 99):.3f} s, max {max(fresh):.3f} s")
        if polled:
            print(f"          cross-check by polling {len(polled)} sampled ids: p50 {statistics.median(polled):.3f} s, "
                  f"p99 {pct(polled, 99):.3f} s (includes the 50 ms poll interval)")
        client.close()
    finally:
        for w in workers:
            w.stop(timeout=30)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=400_000, help="events per round of the lifecycles feed")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of the lifecycles feed (each dossier's four events together, a re-sync of "
                         "closed dossiers), each on fresh topics and a fresh database; the median is the figure")
    ap.add_argument("--live-events", type=int, default=300_000, help="events per round of the simulated feed")
    ap.add_argument("--live-rounds", type=int, default=3,
                    help="rounds of the simulated feed (a province month in event-time order: every event "
                         "changes its dossier's state)")
    ap.add_argument("--rate", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--window", type=float, default=0.05)
    ap.add_argument("--profile", action="store_true", help="cProfile the batch path in-process")
    ap.add_argument("--profile-worker", action="store_true",
                    help="cProfile the worker during the first round's throughput phase")
    ap.add_argument("--py-spy", metavar="FILE",
                    help="sample the worker with py-spy (if installed) during the first round's throughput phase: "
                         "collapsed stacks per thread to FILE")
    ap.add_argument("--workers", type=int, default=2,
                    help="worker processes in one consumer group (2: one per core, the local deployment)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the run's folder (broker and ClickHouse data, worker logs) instead of removing it")
    args = ap.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    args.seconds = min(args.seconds, 300)

    from tests.support.endpoint import start_endpoint
    from tests.support.kafka import start_broker

    if args.profile:
        print(profile_batch_path())

    home = Path(tempfile.mkdtemp(prefix="pulse-bench-"))
    broker = start_broker(home / "kafka")
    endpoint = start_endpoint(home / "chdb")
    args.broker_pid, args.endpoint_pid = broker.pid(), endpoint.proc.pid
    try:
        # the feeds' rounds alternate (L S L S ...): a noisy spell on the shared machine then
        # weighs on both feeds, not on one
        lifecycles = [("lifecycles", args.events)] * args.rounds
        simulated = [("simulated", args.live_events)] * args.live_rounds
        plan = [r for pair in zip_longest(lifecycles, simulated) for r in pair if r is not None]
        results: dict[str, list[dict]] = {}
        for r, (feed, events) in enumerate(plan, 1):
            print(f"--- throughput round {r} of {len(plan)}: {feed} feed")
            s = round_settings(home, broker, endpoint, args, r)
            results.setdefault(feed, []).append(throughput_round(s, args, home / f"r{r}", r == 1, feed, events))
        for feed, res in results.items():
            med = {k: statistics.median(x[k] for x in res if x[k] is not None)
                   for k in ("rate", "steady", "baseline", "busy") if any(x[k] is not None for x in res)}
            steadies = ", ".join(f"{x['steady']:,.0f}" for x in res if x["steady"])
            busies = ", ".join(f"{x['busy']:,.0f}" for x in res if x["busy"])
            overall = ", ".join(f"{x['rate']:,.0f}" for x in res)
            print(f"throughput, {feed} feed, median of {len(res)} round(s) ({args.workers} worker(s)): "
                  f"steady state {med.get('steady', 0):,.0f} events/s [{steadies}], "
                  f"while every partition had backlog {med.get('busy', 0):,.0f} events/s [{busies}], "
                  f"from the first worker ready {med['rate']:,.0f} events/s [{overall}]; "
                  f"raw aiokafka consumption {med['baseline']:,.0f} events/s "
                  f"(steady state = {med.get('steady', 0) / med['baseline']:.1%} of it)")
        freshness_phase(round_settings(home, broker, endpoint, args, 0), args, home / "fresh")
    finally:
        endpoint.stop()
        broker.stop()
        if args.keep:
            print(f"kept: {home} (broker, ClickHouse data and worker logs of every round)")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
