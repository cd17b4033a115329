"""Per-dossier state computation (``DossierLogic.state``): this tree vs. a baseline commit, one run.

    .venv/bin/python bench/bench_rules.py [--days 20] [--scale 1.0] [--rounds 5]
                                          [--baseline 28f2631 | --baseline none] [--profile]

The workload is the stream's: simulator events (simulator.model.generate, with duplicates
and out-of-order anomalies) decoded into DossierEvents, compacted (streams.core.compact),
cut into batches of ``--batch`` events and merged per dossier exactly as
streams/dossiers.py does; every merge that applies an event is one ``state(code, merged,
now)`` call over the dossier's WHOLE list. The calls are recorded first, then timed:

* ``memory store``: the merged lists share their compact events with the previous ones
  (Faust's memory:// store, the default, keeps the Python objects);
* ``changelog copies``: every call gets freshly decoded lists (JSON round trip), as read
  back from RocksDB / a changelog.

The baseline is the straightforward path (streams/core.py and rules/ at ``--baseline``,
taken with ``git show`` into a temporary package) on a calendar with the same days off, so
only the code differs. Each round times baseline and current alternately, each on a fresh
``DossierLogic`` and calendar (empty memo); the best round of each is reported, in CPU time
of the process (the bench machine is shared). Before timing, every state of the current
code is checked against the baseline's: ``repr`` of the row, the facts and the judgement,
the version, the overdue bit and the deadline must be identical.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pulse.config import Settings  # noqa: E402
from schemas.reference import load_reference  # noqa: E402

BASELINE_REV = "28f2631"   # the last commit before the rules' fast path (facts cache, one-pass fold, ...)
BASE_PKG = "_bench_baseline"


def load_baseline(rev: str, tmp: Path):
    """streams.core / rules.* at ``rev`` as the package ``_bench_baseline`` (imports rewritten)."""
    files = ["rules/__init__.py", "rules/calendar.py", "rules/calendar_overrides.yaml", "rules/lifecycle.py",
             "rules/timeliness.py", "streams/__init__.py", "streams/core.py"]
    pkg = tmp / BASE_PKG
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for f in files:
        data = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{f}"], check=True,
                              capture_output=True).stdout
        if f.endswith(".py"):
            data = re.sub(rb"\b(from|import) (rules|streams)\b", rb"\1 " + BASE_PKG.encode() + rb".\2", data)
        out = pkg / f
        out.parent.mkdir(exist_ok=True)
        out.write_bytes(data)
    sys.path.insert(0, str(tmp))
    import importlib
    return (importlib.import_module(f"{BASE_PKG}.streams.core"),
            importlib.import_module(f"{BASE_PKG}.rules.calendar"))


def workload(days: int, scale: float, seed: int, batch: int):
    """(now, calls): the stream's state() calls, (dossier_code, merged compact list)."""
    from schemas.codec import decode_dossier
    from simulator import DOSSIER_TOPIC, Anomaly, SimConfig, generate
    from streams.core import compact, merge
    cfg = SimConfig(start=date(2026, 10, 1), days=days, scale=scale, seed=seed,
                    anomalies=(Anomaly("duplicates", share=0.01), Anomaly("out_of_order", share=0.02)))
    comp = [(ev.dossier_code, compact(ev)) for ev in
            (decode_dossier(e.value) for e in generate(cfg)
             if e.topic == DOSSIER_TOPIC and not (e.anomaly or "").startswith("malformed"))]
    table: dict[str, list] = {}
    calls = []
    applied_total = 0
    for i in range(0, len(comp), batch):
        by_code: dict[str, list] = {}
        for code, c in comp[i:i + batch]:
            by_code.setdefault(code, []).append(c)
        for code, cs in by_code.items():
            merged, applied, _ = merge(table.get(code), cs)
            if applied:
                table[code] = merged
                calls.append((code, merged))
                applied_total += applied
    return cfg.end, calls, len(comp), applied_total


def run(logic, calls, now) -> float:
    state = logic.state
    t0 = time.process_time()   # CPU time of this process: the bench machine is shared
    for code, events in calls:
        state(code, events, now, now)
    return time.process_time() - t0


def fingerprint(st) -> tuple:
    return repr(st.row), repr(st.facts), repr(st.judgement), st.version, st.overdue, st.deadline_ms


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=20)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--batch", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--baseline", default=BASELINE_REV, help="git revision, or 'none'")
    p.add_argument("--profile", action="store_true", help="cProfile of the current path")
    args = p.parse_args(argv)

    from streams.core import DossierLogic
    settings, ref = Settings(), load_reference()
    t = time.perf_counter()
    now, calls, n_events, applied = workload(args.days, args.scale, args.seed, args.batch)
    copies = [(code, json.loads(json.dumps(evs))) for code, evs in calls]
    n_list = sum(len(evs) for _, evs in calls)
    print(f"workload: {n_events} events ({applied} applied), {len(calls)} state calls, "
          f"{n_list / len(calls):.2f} events per dossier list, built in {time.perf_counter() - t:.1f} s")

    logic = DossierLogic.from_settings(settings, reference=ref)
    cal = logic.calendar

    def current():   # a fresh calendar too: its memo of instants starts empty every round
        fresh = type(cal)(cal.days_off, set(cal.working_days), sessions=cal.sessions)
        return DossierLogic.from_settings(settings, calendar=fresh, reference=ref)
    variants = {"current": current}
    base = None
    if args.baseline != "none":
        tmp = tempfile.TemporaryDirectory()
        try:
            base = load_baseline(args.baseline, Path(tmp.name))
        except subprocess.CalledProcessError as exc:
            print(f"no baseline: git show {args.baseline} failed ({exc.stderr.decode().strip()}); current only")
    if base is not None:
        base_core, base_cal_mod = base
        base_cal = base_cal_mod.WorkingCalendar(cal.days_off, set(cal.working_days), sessions=cal.sessions)
        variants["baseline"] = lambda: base_core.DossierLogic.from_settings(settings, calendar=base_cal,
                                                                            reference=ref)
        # identical outputs, both layouts
        for label, work in (("memory store", calls), ("changelog copies", copies)):
            cur, old = variants["current"](), variants["baseline"]()
            bad = 0
            for code, evs in work:
                if fingerprint(cur.state(code, evs, now, now)) != fingerprint(old.state(code, evs, now, now)):
                    bad += 1
            print(f"identical outputs ({label}): {len(work) - bad}/{len(work)} states")
            if bad:
                print("MISMATCH: the current code does not reproduce the baseline", file=sys.stderr)
                return 1

    results: dict[tuple[str, str], float] = {}
    for label, work in (("memory store", calls), ("changelog copies", copies)):
        for _ in range(args.rounds):
            for name, make in variants.items():
                dt = run(make(), work, now)
                key = (name, label)
                results[key] = min(results.get(key, dt), dt)
    print(f"\nbest of {args.rounds} rounds (fresh DossierLogic each round):")
    print(f"{'':10} {'layout':18} {'µs/state':>9} {'µs/applied event':>17} {'µs/listed event':>16}")
    for (name, label), dt in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"{name:10} {label:18} {dt / len(calls) * 1e6:9.1f} {dt / applied * 1e6:17.1f} "
              f"{dt / n_list * 1e6:16.1f}")
    if "baseline" in variants:
        for label in ("memory store", "changelog copies"):
            print(f"speed-up ({label}): x{results[('baseline', label)] / results[('current', label)]:.2f}")

    if args.profile:
        prof = cProfile.Profile()
        lg = variants["current"]()
        prof.runcall(run, lg, calls, now)
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(20)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
