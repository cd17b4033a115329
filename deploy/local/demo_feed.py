"""The demo feed of `make up`: a simulated province, a month of history, then live.

The simulator yields events in event-time order. The feed sends the past flat out (so the
boards open with a month of trends) and then paces itself on the wall clock: an event is
sent when its event time arrives, so the boards move the way a real province's would
(busy counters in office hours, online filings at night, quiet Sundays).

Its start date and seed are kept in ``<state>/demo_feed.json`` with a checkpoint (how
many events of the deterministic sequence the broker has acknowledged: a count, not a
time, because the feed's out-of-order anomaly makes event times non-monotonic), so `make down` / `make up` resumes where it stopped instead of
re-sending the month (re-sent events would be recognised as duplicates downstream, but
there is no reason to pay for that).

    python -m deploy.local.demo_feed [--history-days 30] [--scale 1.0] [--seed 7]
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from pulse.config import Settings
from simulator import SimConfig, generate
from simulator.model import Anomaly
from simulator.output import KafkaOutput

CHECKPOINT_EVERY_S = 5.0
# A realistic feed carries a little dirt: malformed, duplicated and out-of-order events,
# so the dead-letter and data-quality boards have something true to show.
DEMO_ANOMALIES = (Anomaly("malformed", share=0.002), Anomaly("duplicates", share=0.005),
                  Anomaly("out_of_order", share=0.005))

_stop = False


def _on_term(*_):
    global _stop
    _stop = True


def load_state(path: Path, history_days: int, scale: float, seed: int, tz) -> dict:
    if path.exists():
        return json.loads(path.read_text())
    start = datetime.now(tz).date() - timedelta(days=history_days)
    return {"start": start.isoformat(), "scale": scale, "seed": seed, "sent": 0}


def save_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    tmp.replace(path)


def run(settings: Settings, history_days: int, scale: float, seed: int, days: int) -> int:
    from zoneinfo import ZoneInfo
    tz = ZoneInfo(settings.timezone)
    path = settings.state_dir / "demo_feed.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    state = load_state(path, history_days, scale, seed, tz)
    already = int(state.get("sent", 0))
    config = SimConfig(start=date.fromisoformat(state["start"]), days=days, scale=state["scale"],
                       seed=state["seed"], anomalies=DEMO_ANOMALIES)
    out = KafkaOutput(settings)
    sent = 0
    last_checkpoint = time.monotonic()
    live = False
    print(f"demo feed: province from {config.start}, scale {config.scale}, seed {config.seed}"
          + (f", resuming after {already} events" if already else ""), flush=True)

    def checkpoint() -> None:
        out.producer.flush()  # count only what the broker acknowledged
        state["sent"] = already + sent
        save_state(path, state)

    try:
        for i, ev in enumerate(generate(config)):
            if _stop:
                break
            if i < already:
                continue
            wait = (ev.event_time - datetime.now(tz)).total_seconds()
            if wait > 0:
                if not live:
                    live = True
                    print(f"demo feed: history sent ({already + sent} events); now live", flush=True)
                checkpoint()
                while wait > 0 and not _stop:
                    time.sleep(min(wait, 1.0))
                    wait = (ev.event_time - datetime.now(tz)).total_seconds()
                if _stop:
                    break
            out.send(ev)
            sent += 1
            if time.monotonic() - last_checkpoint > CHECKPOINT_EVERY_S:
                checkpoint()
                last_checkpoint = time.monotonic()
    finally:
        checkpoint()
        out.close()
    print(f"demo feed: stopped after {sent} events ({already} sent by earlier runs)", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--history-days", type=int, default=30)
    p.add_argument("--scale", type=float, default=1.0, help="share of a real province's volume")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--days", type=int, default=400, help="how far the simulated calendar runs")
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGINT, _on_term)
    return run(Settings.from_env(), a.history_days, a.scale, a.seed, a.days)


if __name__ == "__main__":
    sys.exit(main())
