"""A large province's year through the two workers: throughput, memory, restart, replay.

    .venv/bin/python bench/bench_year.py [--months 12] [--scale 15] [--workers 2] [--step 1000000]
                                         [--probe 2000] [--batch 2000] [--keep]

Starts (temporary folder, free ports) the real Kafka broker, the chDB endpoint and the
workers (``python -m streams worker``, tests/support/worker.py), then in ONE run:

1. **Produce** the simulator's province feed for ``--months`` months ending yesterday, its
   dossier events in event-time order (event times span the simulated year, so eviction,
   which goes by the stream's clock, runs as it would live), generated on the fly (the
   simulator holds only the dossiers still in flight: bounded memory) into
   ``dossier-events``. At ``--scale 15`` a year is ~16 M events (~1.1 M per unit of scale).
2. **The year**: the workers drain that backlog. Per ``--step`` events (a million; a tenth
   of the year when it is shorter than two steps) it prints the throughput of that step,
   each worker's RSS (now / peak) and what its dossier table holds (dossiers held, open)
   and its bytes of RSS per dossier held above the RSS it had ready and empty, and the CPU
   per event of that step: the workers, the broker, the ClickHouse endpoint and the rest of
   the machine (a slower step is then either the workers' own cost growing or CPU taken
   by another process). The clock
   starts when every worker is ready with the partitions split; the year ends when
   ClickHouse has every event.
3. **Kill and resume**: one worker gets SIGKILL and is started again at once (as the
   supervisor does); ``--probe`` new dossiers' first events are produced right after the
   kill, on every partition. Resume = seconds from the kill until every probe event is
   queryable in ClickHouse and the restarted worker has processed input again; its
   status page's recovery progress is printed on the way.
4. **Replay** the year into a fresh database with ``pulse replay`` (pulse.replay) and
   print its rate ("replay n/a" when pulse.replay is not there: Z = 0).

Its last line is exactly:
``year: N events, throughput first/last million X/Y ev/s (ratio R), peak worker RSS M MiB, resume after kill S s, replay Z ev/s``
Targets (2 cores): R >= 0.9, M <= 1,536, S <= 60, Z >= 20,000; stretch 30,000 events/s over the year.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore", category=DeprecationWarning)

from bench.harness import EventFactory, cpu_seconds, descendants  # noqa: E402
from pulse.config import Settings  # noqa: E402

VN = timezone(timedelta(hours=7))
MIB = 1024 * 1024
TOPIC_ENV = ("KAFKA_REPLICATION_FACTOR", "KAFKA_MIN_INSYNC_REPLICAS", "PULSE_PARTITIONS_DOSSIER_EVENTS",
             "PULSE_PARTITIONS_RATINGS")


def year_settings(home: Path, broker, endpoint, args) -> Settings:
    tag = uuid.uuid4().hex[:6]
    s = Settings.from_env().with_(
        state_dir=home / "state0", kafka_bootstrap=broker.bootstrap,
        clickhouse_url=f"{endpoint.url.rstrip('/')}/year_{tag}", topic_prefix=f"y{tag}.",
        faust_app_id=f"pulse-year-{tag}", stream_batch_size=args.batch, stream_batch_window_s=args.window)
    # one local broker: topics with one replica (the fields exist once scale-out settings are in)
    single = {k: 1 for k in ("kafka_replication_factor", "kafka_min_insync_replicas") if hasattr(s, k)}
    return s.with_(**single) if single else s


def year_config(months: float, scale: float, seed: int):
    from simulator import SimConfig
    days = max(1, round(months * 365 / 12))
    start = (datetime.now(VN) - timedelta(days=days + 1)).date()
    return SimConfig(start=start, days=days, scale=scale, seed=seed)


def rss_mib(pid: int | None) -> tuple[float, float]:
    """(RSS now, peak RSS) of a process in MiB (VmRSS, VmHWM of /proc/<pid>/status)."""
    now = peak = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except (OSError, TypeError):
        pass
    return now, peak


def produce_year(s: Settings, cfg) -> int:
    """The simulated year's dossier events into the input topic. Generated in a child process
    (simulator.parallel: ~25 µs of Python per event, the other core is free while no worker
    runs) as they are sent, so memory stays bounded (the dossiers still in flight). Kafka
    timestamps are the send time: the broker's retention goes by them, and a year-old
    timestamp would be deleted at once; event times are the simulator's."""
    import resource

    from simulator import DOSSIER_TOPIC, Summary
    from simulator.output import KafkaOutput
    from simulator.parallel import generate_batches
    out = KafkaOutput(s)
    n, t0, mark = 0, time.perf_counter(), 1_000_000
    try:
        for topic, partition, records in generate_batches(cfg, Summary(), out.partition_counts()):
            if topic != DOSSIER_TOPIC:
                continue
            now_ms = int(time.time() * 1000)
            out.send_chunk(DOSSIER_TOPIC, partition, [(k, v, now_ms) for k, v, _t in records])
            n += len(records)
            if n >= mark:
                mark += 1_000_000
                dt = time.perf_counter() - t0
                up_to = datetime.fromtimestamp(records[-1][2] / 1000, VN)
                print(f"produced {n:,} events in {dt:.0f} s ({n / dt:,.0f} ev/s, event time up to {up_to:%Y-%m-%d})")
    finally:
        out.close()
    dt = time.perf_counter() - t0
    print(f"produced the year: {n:,} dossier events ({cfg.start} .. {cfg.end:%Y-%m-%d}, scale {cfg.scale}) in "
          f"{dt:.0f} s = {n / max(dt, 1e-9):,.0f} ev/s (generated in a child process, produced in this one; "
          f"this one's peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB)")
    return n


def input_partitions(s: Settings) -> int:
    from kafka import KafkaConsumer
    c = KafkaConsumer(bootstrap_servers=s.kafka_bootstrap)
    try:
        return len(c.partitions_for_topic(s.topic("dossier-events")) or ())
    finally:
        c.close()


def get_json(url: str, timeout: float = 10) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return json.loads(r.read())
    except Exception:  # noqa: BLE001 - a worker restarting or busy
        return None


def state_of(w) -> dict:
    """The worker's /pulse/state/ page: dossiers held and open, its memory."""
    return get_json(f"http://127.0.0.1:{w.web_port}/pulse/state/", timeout=30) or {}


def processed(workers) -> int:
    return sum(int(((w.status() or {}).get("metrics") or {}).get("events", 0)) for w in workers)


def keep_alive(workers) -> None:
    """A worker that exited on its stall watchdog (exit 70, streams/watchdog.py) is started
    again, as the supervisor would: crash-only recovery is exact."""
    for i, w in enumerate(workers):
        if not w.alive():
            if w.proc.returncode != 70:
                raise RuntimeError(f"worker {i} exited with {w.proc.returncode}\n{w.tail()}")
            print(f"          worker {i} exited on its stall watchdog; started again")
            w.start(wait=False)


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy so far, all cores (/proc/stat: all but idle
    and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def cpu_meters(workers, others: dict[str, int | None]) -> dict[str, float]:
    """Cumulative CPU seconds: the workers (with their GX children), the broker, the
    ClickHouse endpoint, and the whole machine. A step's share per event tells whether a
    slower step is the workers' own work growing, or CPU taken by another process: the
    cores are shared, so throughput alone cannot tell (the first full year's last million
    ran 23% slower with every stage of the worker slower alike, pure validation included)."""
    out = {"workers": sum(cpu_seconds(w.proc.pid) + sum(map(cpu_seconds, descendants(w.proc.pid)))
                          for w in workers)}
    out.update({name: cpu_seconds(pid) for name, pid in others.items()})
    out["machine"] = machine_busy_s()
    return out


def cpu_per_event(before: dict[str, float], after: dict[str, float], events: int) -> str:
    """'workers 180, broker 20, ... other 5 µs/event' between two meter readings."""
    d = {k: after[k] - before.get(k, 0.0) for k in after}
    other = d.pop("machine") - sum(d.values())
    d["other"] = max(other, 0.0)
    return "CPU " + ", ".join(f"{k} {v * 1e6 / max(events, 1):,.0f}" for k, v in d.items()) + " µs/event"


def year_phase(s: Settings, args, workers, client, n: int, partitions: int,
               others: dict[str, int | None]) -> dict:
    """Drain the year; print a line per step; return the figures."""
    from bench.harness import stable_split
    for w in workers:
        w.wait_ready(timeout=300)
    t0, _wall, _ = stable_split(workers, None, s.topic("dossier-events") + ":", timeout=300, partitions=partitions)
    if t0 is None:
        t0 = time.monotonic()
    n0 = processed(workers)
    base = [rss_mib(w.proc.pid)[0] for w in workers]
    print(f"year      {len(workers)} workers ready, partitions split; {n0:,} events processed before; RSS ready "
          + ", ".join(f"w{i} {b:,.0f} MiB" for i, b in enumerate(base)))
    step = args.step if n - n0 >= 2 * args.step else max(1000, (n - n0) // 10)
    if step != args.step:
        print(f"          (a short year: a line per {step:,} events instead of per {args.step:,})")
    rates: list[float] = []
    peak = 0.0
    mark, t_prev = n0 + step, t0
    cpu_prev = cpu_meters(workers, others)
    while True:
        keep_alive(workers)
        got = processed(workers)
        if got >= mark or got >= n:
            t = time.monotonic()
            k = len(rates) + 1
            done = min(got, mark) - (mark - step)
            rate = done / max(t - t_prev, 1e-9)
            rates.append(rate)
            parts = []
            for i, w in enumerate(workers):
                st = state_of(w)
                evicted = int(((w.status() or {}).get("metrics") or {}).get("evicted", 0))
                now, hwm = rss_mib(w.proc.pid)
                peak = max(peak, hwm)
                held = st.get("dossiers_held", 0)
                per = f", {(now - base[i]) * MIB / held:,.0f} B/dossier held" if held else ""
                parts.append(f"w{i} RSS {now:,.0f} MiB (peak {hwm:,.0f}), held {held:,}, open "
                             f"{st.get('dossiers_open', 0):,}, evicted {evicted:,}{per}")
            cpu_now = cpu_meters(workers, others)
            print(f"step {k:>3}  {mark - step - n0 + done:>11,} events: {rate:,.0f} ev/s;  " + ";  ".join(parts)
                  + f";  {cpu_per_event(cpu_prev, cpu_now, done)}")
            cpu_prev = cpu_now
            t_prev, mark = t, mark + step
            if got >= n:
                break
            continue
        time.sleep(0.5)
    # the end of the year: every event queryable in ClickHouse
    from bench.harness import wait_rows
    t_end = wait_rows(client, "SELECT count() FROM dossier_events", n, 1800, poll=1.0)
    for w in workers:
        peak = max(peak, rss_mib(w.proc.pid)[1])
    overall = (n - n0) / max(t_end - t0, 1e-9)
    m = [((w.status() or {}).get("metrics") or {}) for w in workers]
    print(f"year      {n - n0:,} events in {t_end - t0:.0f} s = {overall:,.0f} ev/s sustained (every event queryable); "
          f"evicted {sum(x.get('evicted', 0) for x in m):,}, read back {sum(x.get('restored', 0) for x in m):,} "
          f"in {sum(x.get('history_queries', 0) for x in m):,} queries; GC {max(x.get('gc_s', 0) for x in m):.1f} s")
    full = [r for r in rates[:-1]] or rates     # the last step may be a partial one
    return {"first": rates[0] if rates else 0.0, "last": full[-1] if full else 0.0, "peak": peak,
            "overall": overall}


def kill_phase(s: Settings, args, workers, client, n: int) -> tuple[float, float]:
    """SIGKILL a worker, start it again at once, probe every partition; returns (seconds until
    it processes again, its peak RSS)."""
    from simulator.output import KafkaOutput
    victim = workers[0]
    factory = EventFactory(seed=7)
    t_year_end = datetime.now(VN).replace(microsecond=0) - timedelta(days=1)
    probe = [factory.lifecycle(10_000_000 + i, t_year_end, timedelta(hours=1))[0] for i in range(args.probe)]
    t_kill, wall_kill = time.monotonic(), time.time()
    victim.kill()
    victim.start(wait=False)
    out = KafkaOutput(s)
    now_ms = int(time.time() * 1000)
    for key, value in probe:
        out.send_raw("dossier-events", key, value, now_ms)
    out.close()
    print(f"kill      SIGKILL worker 0 (pid gone), started again; {len(probe):,} probe events produced "
          f"{time.monotonic() - t_kill:.1f} s after the kill")
    t_ready = t_processing = t_rows = None
    last_print = 0.0
    deadline = t_kill + 600
    while time.monotonic() < deadline:
        keep_alive(workers[1:])
        st = victim.status() or {}
        now = time.monotonic()
        rec = st.get("recovery") or {}
        if now - last_print >= 2 and st:
            last_print = now
            print(f"          +{now - t_kill:5.1f} s  ready {st.get('ready')}, recovery "
                  f"{'active' if rec.get('active') else 'idle'}: {rec.get('offsets_done', 0):,}/"
                  f"{rec.get('offsets_total', 0):,} changelog offsets of {rec.get('partitions', 0)} partitions "
                  f"({rec.get('percent', 0)}%, eta {rec.get('eta_s')} s, last took {rec.get('last_s')} s)")
        if t_ready is None and st.get("ready"):
            t_ready = now
        if t_processing is None and int((st.get("metrics") or {}).get("events", 0)) > 0:
            t_processing = now
        if t_rows is None and client.query("SELECT count() FROM dossier_events").result_rows[0][0] >= n + len(probe):
            t_rows = now
        if t_rows is not None and t_processing is not None:
            break
        time.sleep(0.25)
    if t_rows is None or t_processing is None:
        raise TimeoutError(f"the restarted worker did not process again within 600 s\n{victim.tail()}")
    resume = max(t_rows, t_processing) - t_kill
    st = victim.status() or {}
    rec = st.get("recovery") or {}
    cpu = cpu_seconds(victim.proc.pid)
    if rec.get("offsets_total"):
        print(f"          the restarted worker's CPU until it processed: {cpu:.1f} s "
              f"({1e6 * cpu / rec['offsets_total']:.0f} µs per changelog offset recovered, "
              f"{rec['offsets_total']:,} offsets)")
    print("          its log: " + "; ".join(milestones(victim.logs[-1], wall_kill)))
    print(f"resume    ready {t_ready - t_kill if t_ready else float('nan'):.1f} s after the kill, processing "
          f"{t_processing - t_kill:.1f} s, every probe event queryable {t_rows - t_kill:.1f} s; last recovery "
          f"{(st.get('recovery') or {}).get('last_s')} s")
    return resume, rss_mib(victim.proc.pid)[1]


MILESTONES = ("Joined group", "Restoring state from changelog topics", "Done reading from changelog topics",
              "pulse: worker ready")


def milestones(log: Path, since: float) -> list[str]:
    """When the worker's log reached each step of a restart, in seconds after ``since``."""
    out = []
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        for m in MILESTONES:
            if m in line and line.startswith("["):
                try:
                    t = datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f").timestamp()
                except ValueError:
                    continue
                out.append(f"+{t - since:.1f} s {m}")
    return out


def replay_phase(s: Settings) -> float:
    """``pulse replay`` (pulse.replay.replay) of the year: ClickHouse rebuilt from its own
    history into a fresh database, every dossier's state re-derived with the worker's
    functions, then swapped in; its events/s (0, after a line "replay n/a", when
    pulse.replay is not there)."""
    try:
        from pulse.replay import replay
    except ImportError:
        print("replay n/a")
        return 0.0
    res = replay(s, progress=False, log=lambda text: print(f"          replay: {text}"))
    print(f"replay    {res.events:,} events of {res.dossiers:,} dossiers into a fresh database ({res.database}) in "
          f"{res.seconds:.0f} s (fold {res.fold_seconds:.0f} s) = {res.rate:,.0f} ev/s; swapped {res.swapped}")
    return res.rate


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--months", type=float, default=12, help="months of the simulated year (shorten: 1)")
    ap.add_argument("--scale", type=float, default=15.0,
                    help="province size (simulator scale): 15 gives ~16 M events a year (~1.1 M per unit)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="worker processes in one consumer group")
    ap.add_argument("--step", type=int, default=1_000_000, help="a progress line per this many events")
    ap.add_argument("--probe", type=int, default=2000, help="events produced after the kill")
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--window", type=float, default=0.05)
    ap.add_argument("--keep", action="store_true", help="keep the run's folder (data, worker logs)")
    args = ap.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)

    from pulse.admin import create_topics
    from sinks.client import get_client
    from tests.support.endpoint import start_endpoint
    from tests.support.kafka import start_broker
    from tests.support.worker import start_worker

    home = Path(tempfile.mkdtemp(prefix="pulse-year-"))
    broker = start_broker(home / "kafka")
    endpoint = start_endpoint(home / "chdb")
    workers, client = [], None
    try:
        s = year_settings(home, broker, endpoint, args)
        create_topics(s)
        partitions = input_partitions(s)
        cfg = year_config(args.months, args.scale, args.seed)
        n = produce_year(s, cfg)
        # the topic layout settings the worker must share with the bench (one broker: one replica)
        env = {k: v for k, v in s.to_env().items() if k in TOPIC_ENV}
        for i in range(args.workers):
            workers.append(start_worker(s.with_(state_dir=home / f"state{i}"), env=env,
                                        log_path=home / f"worker{i}.log", wait=False, ready_timeout=300))
        while client is None:       # the first worker creates the database at its start
            try:
                client = get_client(s)
                client.query("SELECT count() FROM dossier_events")
            except Exception:  # noqa: BLE001 - not migrated yet
                client = None
                keep_alive(workers)
                time.sleep(1)
        year = year_phase(s, args, workers, client, n, partitions,
                          {"broker": broker.pid(), "clickhouse": endpoint.proc.pid})
        resume, victim_peak = kill_phase(s, args, workers, client, n)
        peak = max(year["peak"], victim_peak)
        for w in workers:
            w.stop(timeout=60)
        replay = replay_phase(s)
        ratio = year["last"] / year["first"] if year["first"] else 0.0
        print(f"year: {n} events, throughput first/last million {year['first']:.0f}/{year['last']:.0f} ev/s "
              f"(ratio {ratio:.2f}), peak worker RSS {peak:.0f} MiB, resume after kill {resume:.1f} s, "
              f"replay {replay:.0f} ev/s")
    finally:
        for w in workers:
            w.stop(timeout=30)
        if client is not None:
            client.close()
        endpoint.stop()
        broker.stop()
        if args.keep:
            print(f"kept: {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
