"""Validation cost per event: the per-event checker vs GX micro-batches, measured in one run.

    .venv/bin/python bench/bench_validation.py [--events 20000] [--repeat 3] [--no-gx]

Events come from the simulator (realistic dossier events and ratings, all valid) plus a
share with broken data rules (unknown unit, dates out of order). Figures:
- codec only (schemas.codec decode, pydantic strict JSON) µs/event, for reference;
- the checker (codec + flatten + every suite rule) µs/event, over the whole corpus;
- per kind, on the events that pass (the common case): the checker's fast path against the
  generic interpretation of the same suites (codec ``decode_*``, ``flatten_*`` field by
  field on the event's fields, one closure per rule, a plain ``Verdict``), measured
  interleaved in the same run, as µs/event and their ratio; and how many passing events
  the generated suite function declined (they then went through the closures: slower,
  same verdict). The generic path is a reference, not the checker before the fast path
  (that one already had a model fast path for dossier events' flatten);
- GX ``validate_batch`` on flattened rows at batch sizes 100 / 1,000 / 10,000,
  best of --repeat, as µs/event, and its ratio to the checker.
Per-event loops are timed in process CPU time (the machine may be shared), best of
--repeat rounds. The GX runner (import + ephemeral context + suites) is built once,
outside the timings; its build time is printed separately.
"""
from __future__ import annotations

import argparse
import functools
import gc
import json
import sys
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulse.config import Settings  # noqa: E402
from schemas.codec import decode_dossier, decode_rating  # noqa: E402
from schemas.reference import load_reference  # noqa: E402
from simulator.model import SimConfig, generate  # noqa: E402

from expectations.checks import Checker, Verdict  # noqa: E402
from expectations.flatten import flatten_dossier, flatten_rating  # noqa: E402


def corpus(n: int, broken_share: float = 0.05):
    cfg = SimConfig(start=date(2026, 11, 2), days=7, scale=1.0)
    now = cfg.end + timedelta(days=1)
    out = []
    for i, ev in enumerate(generate(cfg)):
        raw = ev.value
        if i % int(1 / broken_share) == 0 and ev.topic == "dossier-events":
            d = json.loads(raw)
            d["unit_code"] = "000.00.99.UNKNOWN"
            raw = json.dumps(d, ensure_ascii=False).encode()
        out.append(("dossier" if ev.topic == "dossier-events" else "rating", raw))
        if len(out) >= n:
            break
    return out, now


def best(fn, repeat, clock=time.perf_counter):
    times = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return min(times)


def generic_check(checker: Checker, kind: str, raw: bytes, now) -> Verdict:
    """The suites interpreted the generic way, for a contract-valid event: what the checker
    computes without its fast path (same verdict)."""
    decode, flatten, suite = ((decode_dossier, flatten_dossier, checker.dossier) if kind == "dossier"
                              else (decode_rating, flatten_rating, checker.rating))
    event = decode(raw)
    row = flatten(dict(event), now)  # a Mapping: the field-by-field path
    failures = suite.interpret(row)
    return Verdict(not failures, event, failures, row)


def fast_vs_generic(checker: Checker, kind: str, raws: list[bytes], now, repeat: int) -> tuple[float, float]:
    """µs/event of check_<kind> and of generic_check on the same events, rounds interleaved."""
    check = checker.check_dossier if kind == "dossier" else checker.check_rating

    def run_fast():
        for raw in raws:
            check(raw, now)

    def run_generic():
        for raw in raws:
            generic_check(checker, kind, raw, now)

    fast, generic = [], []
    for _ in range(max(repeat, 3)):
        fast.append(best(run_fast, 1, time.process_time))
        generic.append(best(run_generic, 1, time.process_time))
    return min(fast) / len(raws) * 1e6, min(generic) / len(raws) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-gx", action="store_true", help="skip the GX micro-batch figures")
    args = ap.parse_args()

    settings, ref = Settings(), load_reference()
    events, now = corpus(args.events)
    n_d = sum(1 for k, _ in events if k == "dossier")
    print(f"corpus: {len(events)} events ({n_d} dossier events, {len(events) - n_d} ratings), "
          f"{sum(len(r) for _, r in events) / len(events):.0f} bytes/event on average")

    checker = Checker.from_suites(ref, settings)
    print(f"rules: dossier_events {len(checker.dossier.rules)}, ratings {len(checker.rating.rules)}")

    def codec_only():
        for k, raw in events:
            (decode_dossier if k == "dossier" else decode_rating)(raw)

    def check_all():
        for k, raw in events:
            (checker.check_dossier if k == "dossier" else checker.check_rating)(raw, now)

    t_codec = best(codec_only, args.repeat, time.process_time) / len(events) * 1e6
    t_check = best(check_all, args.repeat, time.process_time) / len(events) * 1e6
    verdicts = [(k, (checker.check_dossier if k == "dossier" else checker.check_rating)(raw, now)) for k, raw in events]
    rejected = sum(1 for _, v in verdicts if not v.ok)
    passing = {kind: [raw for (k, raw), (_, v) in zip(events, verdicts) if k == kind and v.ok]
               for kind in ("dossier", "rating")}
    declined = {kind: sum(1 for k, v in verdicts if k == kind and v.ok and not suite.passes(v.row))
                for kind, suite in (("dossier", checker.dossier), ("rating", checker.rating))}
    del verdicts  # timings below with few live objects (as in the worker), not 20k verdicts for the GC to walk
    gc.collect()
    print(f"codec only (decode):            {t_codec:8.1f} µs/event")
    print(f"per-event checker (all rules):  {t_check:8.1f} µs/event  ({1e6 / t_check:,.0f} events/s on one core; "
          f"{rejected} rejected)")

    print("passing events, fast path vs generic interpretation (same verdicts):")
    for kind, ok in passing.items():
        if not ok:
            continue
        t_fast, t_generic = fast_vs_generic(checker, kind, ok, now, args.repeat)
        print(f"  {kind:7s} ({len(ok):>6,} events): check_{kind} {t_fast:6.1f} µs/event, generic {t_generic:6.1f} "
              f"µs/event: {t_generic / t_fast:4.1f}x faster ({1e6 / t_fast:,.0f} events/s on one core); "
              f"{declined[kind]} declined by the generated function")
    if args.no_gx:
        return 0

    t0 = time.perf_counter()
    from expectations.gx_batch import GXBatchRunner
    runner = GXBatchRunner(ref, settings)
    print(f"GX runner build (import + context + suites, once per process): {time.perf_counter() - t0:.2f} s")

    verdicts = [(k, (checker.check_dossier if k == "dossier" else checker.check_rating)(raw, now)) for k, raw in events]
    rows = [v.row for k, v in verdicts if k == "dossier" and v.row is not None]
    rrows = [v.row for k, v in verdicts if k == "rating" and v.row is not None]
    print("GX micro-batch (validate_batch, best of %d):" % args.repeat)
    for size in (100, 1_000, 10_000):
        for suite, src in (("dossier_events", rows), ("ratings", rrows)):
            if not src:
                continue
            batch = (src * (size // len(src) + 1))[:size]
            runner.validate_batch(batch, suite)  # warm
            t = best(functools.partial(runner.validate_batch, batch, suite), args.repeat)
            per = t / size * 1e6
            print(f"  {suite:15s} batch {size:>6,}: {t * 1000:8.1f} ms/batch = {per:8.1f} µs/event "
                  f"({per / t_check:5.1f}x the checker)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
