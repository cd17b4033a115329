"""python -m simulator: simulate a province's one-stop feed into Kafka or JSON-lines files."""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from simulator import Anomaly, SimConfig, run

if TYPE_CHECKING:
    from simulator.output import Output


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Simulate a Vietnamese province's one-stop shops: dossier status events (DVCQG "
                    "vocabulary) and kiosk ratings, deterministic by seed.")
    p.add_argument("--start", type=date.fromisoformat, default=date(2026, 11, 1), help="first day (YYYY-MM-DD)")
    p.add_argument("--days", type=int, default=1, help="number of days to simulate")
    p.add_argument("--scale", type=float, default=0.1, help="share of a real province's volume (1.0 = ~240k dossiers/year)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--anomaly", action="append", default=[], metavar="KIND:ARG",
                   help="unit_falling_behind:UNIT, kiosk_silent:KIOSK, malformed:P, duplicates:P, out_of_order:P (repeatable)")
    p.add_argument("--late-share", type=float, help="province-wide late share (default 0.02)")
    p.add_argument("--online-share", type=float, help="online channel share (default 0.35)")
    p.add_argument("--to", choices=("kafka", "files", "null"), default="kafka")
    p.add_argument("--out", type=Path, help="directory for --to files")
    p.add_argument("--rate", type=float, help="events per second (default: flat out)")
    p.add_argument("--parallel", action="store_true",
                   help="generate in a child process while this one produces (pays off only with a spare core)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: Settings / KAFKA_BOOTSTRAP)")
    p.add_argument("--topic-prefix", help="topic prefix (default: Settings / PULSE_TOPIC_PREFIX)")
    p.add_argument("--summary-json", type=Path, help="also write the summary as JSON here")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.to == "files" and not args.out:
        p.error("--to files needs --out DIR")
    try:
        args.anomalies = tuple(Anomaly.parse(a) for a in args.anomaly)
    except ValueError as exc:
        p.error(str(exc))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    extra = {k: v for k, v in (("late_share", args.late_share), ("online_share", args.online_share)) if v is not None}
    config = SimConfig(start=args.start, days=args.days, scale=args.scale, seed=args.seed,
                       anomalies=args.anomalies, **extra)
    output: Output
    if args.to == "kafka":
        from pulse.config import Settings
        from simulator.output import KafkaOutput
        settings = Settings.from_env()
        if args.bootstrap:
            settings = settings.with_(kafka_bootstrap=args.bootstrap)
        if args.topic_prefix is not None:
            settings = settings.with_(topic_prefix=args.topic_prefix)
        output = KafkaOutput(settings)
    elif args.to == "files":
        from simulator.output import FilesOutput
        output = FilesOutput(args.out)
    else:
        from simulator.output import NullOutput
        output = NullOutput()
    t0 = time.perf_counter()
    summary = run(config, output, rate=args.rate, progress=not args.no_progress, parallel=args.parallel)
    elapsed = time.perf_counter() - t0
    total = sum(summary.events.values())
    print(summary.text())
    print(f"sent {total} events in {elapsed:.1f} s ({total / max(elapsed, 1e-9):,.0f} events/s) to {args.to}")
    if args.summary_json:
        args.summary_json.write_text(json.dumps(summary.as_dict(), ensure_ascii=False, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
