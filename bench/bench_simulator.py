"""Simulator throughput: generation only vs. generation + produce into the broker, one run.

    .venv/bin/python bench/bench_simulator.py [--bootstrap HOST:PORT] [--days 20] [--scale 1.0]

Without --bootstrap a throw-away broker is started with the tests' helper
(tests/support/kafka.py: start_broker) and stopped at the end. Target (issue 3): >= 20,000
events/s into the broker flat out, acks=all (zstd), generation and producing together, in
the mode the CLI uses by default (one process). All figures are measured on the same events
in the same run, so their ratios are meaningful on this machine. Four figures: generation
only; producing only (events generated ahead, in memory); generation and producing in one
process (the CLI default); generation in a child process (``--parallel``). The window ends
in the past: the broker (Kafka 4) refuses record timestamps more than an hour ahead.
"""
from __future__ import annotations

import argparse
import sys
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulse.config import Settings  # noqa: E402
from rules.calendar import default_calendar  # noqa: E402
from schemas.reference import load_reference  # noqa: E402
from simulator import SimConfig, run  # noqa: E402
from simulator.output import KafkaOutput, NullOutput, best_compression  # noqa: E402

TARGET = 20_000


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap")
    p.add_argument("--days", type=int, default=20)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)

    broker = None
    if args.bootstrap:
        bootstrap = args.bootstrap
    else:
        from tests.support.kafka import start_broker
        print("starting a throw-away Kafka broker ...", flush=True)
        broker = start_broker()
        bootstrap = broker.bootstrap
    try:
        from pulse.admin import create_topics
        settings = Settings.from_env().with_(kafka_bootstrap=bootstrap, topic_prefix=f"bench{uuid.uuid4().hex[:6]}.")
        create_topics(settings)
        load_reference(), default_calendar()   # one-off costs outside the timings
        start = min(date(2026, 11, 2), date.today() - timedelta(days=args.days + 1))
        cfg = SimConfig(start=start, days=args.days, scale=args.scale, seed=args.seed)

        t0 = time.perf_counter()
        s_gen = run(cfg, NullOutput())
        gen_s = time.perf_counter() - t0
        n = sum(s_gen.events.values())

        # producer only: the same events generated ahead, in memory
        from simulator import _batches
        from simulator.model import Summary
        pre = [b for b in _batches(cfg, Summary())]
        settings_pre = settings.with_(topic_prefix=f"{settings.topic_prefix}pre.")
        create_topics(settings_pre)
        out = KafkaOutput(settings_pre)
        t0 = time.perf_counter()
        for batch in pre:
            for topic, key, value, ts in batch:
                out.send_raw(topic, key, value, ts)
        out.close()
        producer_rate = n / (time.perf_counter() - t0)

        results = {}
        for parallel in (False, True):
            settings_p = settings.with_(topic_prefix=f"{settings.topic_prefix}{'p' if parallel else 's'}.")
            create_topics(settings_p)
            out = KafkaOutput(settings_p)
            t0 = time.perf_counter()
            s_kafka = run(cfg, out, parallel=parallel)   # includes flush: every event acked (acks=all)
            results[parallel] = n / (time.perf_counter() - t0)
            assert sum(s_kafka.events.values()) == n, "summary disagrees with the generation-only run"

        gen_rate, default_rate = n / gen_s, results[False]
        met = lambda rate: f"(target {TARGET:,}: {'met' if rate >= TARGET else 'NOT met'})"  # noqa: E731
        print(f"events: {n:,} ({args.days} days from {cfg.start} at scale {args.scale}), "
              f"compression {best_compression()}, acks=all, aiokafka batch producer")
        print(f"generation only:                       {gen_rate:>10,.0f} events/s")
        print(f"produce only (events generated ahead): {producer_rate:>10,.0f} events/s")
        print(f"generate + produce, one process:       {results[False]:>10,.0f} events/s")
        print(f"generate (child) + produce, --parallel:{results[True]:>10,.0f} events/s")
        print(f"default mode (one process, as the CLI): {default_rate:>9,.0f} events/s  {met(default_rate)}")
        print(f"default mode / generation only: {default_rate / gen_rate:.2f}")
        return 0
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    raise SystemExit(main())
