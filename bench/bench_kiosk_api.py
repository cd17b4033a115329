"""Kiosk API load test: the API in one process, the load generator in this one, on loopback.

    .venv/bin/python bench/bench_kiosk_api.py [--rate 500] [--seconds 60] [--kiosks 200]
                                              [--concurrency 64] [--no-worker]

Starts (in temporary folders, free ports) the real Kafka broker, the chDB ClickHouse
endpoint and the Faust worker (tests/support), then ``python -m frontdoor`` as its own
process with a credentials file of ``--kiosks`` kiosks on real unit codes
(schemas/reference/units.csv). This process then sends ratings open-loop at ``--rate``
per second for ``--seconds`` (bounded: at most 600 s), over keep-alive connections
(at most ``--concurrency`` in flight), and reports sent, 2xx, other codes, achieved rate
and latency percentiles. Finally it checks that EVERY rating answered 2xx is in
ClickHouse (``motcua.ratings``, via the worker and the sink), or, with ``--no-worker``,
on the Kafka ratings topic. Exit code 1 if any 2xx rating is missing downstream.

The load test (tests/integration/test_kiosk_load.py) reuses ``run_load`` and the
``verify_*`` functions.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

VN = timezone(timedelta(hours=7))
MAX_SECONDS = 600


def reference_units(n: int | None = None) -> list[str]:
    with open(ROOT / "schemas" / "reference" / "units.csv", encoding="utf-8") as f:
        codes = [row["code"] for row in csv.DictReader(f)]
    return codes[:n] if n else codes


@dataclass
class LoadResult:
    rate: float
    seconds: float
    sent: int = 0
    codes: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    accepted_ids: list[str] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)
    elapsed: float = 0.0
    lag_max_s: float = 0.0       # how far the generator fell behind its schedule

    @property
    def ok(self) -> int:
        return sum(v for k, v in self.codes.items() if 200 <= k < 300)

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

    def render(self) -> str:
        return "\n".join([
            f"target        {self.rate:.0f} ratings/s for {self.seconds:.0f} s",
            f"sent          {self.sent}  in {self.elapsed:.1f} s  = {self.sent / max(self.elapsed, 1e-9):.0f}/s"
            f"  (max queued behind schedule {self.lag_max_s:.2f} s)",
            f"2xx           {self.ok}  = {self.ok / max(self.elapsed, 1e-9):.0f}/s",
            f"status codes  {dict(sorted(self.codes.items()))}" + (f"  transport errors {dict(self.errors)}" if self.errors else ""),
            f"latency ms    p50 {self.pct(50):.1f}  p90 {self.pct(90):.1f}  p99 {self.pct(99):.1f}  "
            f"max {max(self.latencies_ms, default=float('nan')):.1f}  mean {statistics.fmean(self.latencies_ms) if self.latencies_ms else float('nan'):.1f}",
        ])


class _Conn:
    """A minimal keep-alive HTTP/1.1 client connection (the generator must stay cheaper than
    the API it loads: httpx's async client cost ~4x the API's CPU per request here)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.r = self.w = None

    async def open(self):
        self.r, self.w = await asyncio.open_connection(self.host, self.port)

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        if self.w is None:
            await self.open()
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
                + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
        try:
            self.w.write(head + body)
            status_line = await self.r.readline()
            if not status_line:
                raise ConnectionError("connection closed")
            status = int(status_line.split(b" ", 2)[1])
            length, close = 0, False
            while True:
                line = await self.r.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                k, _, v = line.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    length = int(v)
                elif k == b"connection" and v.strip().lower() == b"close":
                    close = True
            data = await self.r.readexactly(length) if length else b""
            if close:
                self.close()
            return status, data
        except Exception:
            self.close()
            raise

    def close(self):
        if self.w is not None:
            self.w.close()
        self.r = self.w = None


async def _run_load(url: str, kiosks: list[tuple[str, str, str]], rate: float, seconds: float,
                    concurrency: int, tag: str) -> LoadResult:
    from urllib.parse import urlsplit
    seconds = min(seconds, MAX_SECONDS)
    res = LoadResult(rate, seconds)
    total = int(rate * seconds)
    u = urlsplit(url)
    headers = {k: {"Authorization": f"Bearer {tok}", "Content-Type": "application/json"} for k, _, tok in kiosks}
    queue: asyncio.Queue = asyncio.Queue()

    async def worker():
        conn = _Conn(u.hostname, u.port)
        while True:
            i = await queue.get()
            if i is None:
                conn.close()
                return
            kid, unit, _ = kiosks[i % len(kiosks)]
            rid = f"{tag}-{i:08d}"
            body = json.dumps({"rating_id": rid, "event_time": datetime.now(VN).isoformat(timespec="milliseconds"),
                               "kiosk_id": kid, "unit_code": unit, "level": 1 + (i * 7919) % 5,
                               "counter_id": str(i % 9 + 1), "criteria": {"officer": 1 + i % 5}}).encode()
            t = time.perf_counter()
            try:
                status, _ = await conn.post("/v1/ratings", body, headers[kid])
            except (OSError, ConnectionError, ValueError, asyncio.IncompleteReadError) as e:
                res.errors[type(e).__name__] += 1
                continue
            res.latencies_ms.append((time.perf_counter() - t) * 1000)
            res.codes[status] += 1
            if 200 <= status < 300:
                res.accepted_ids.append(rid)

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for i in range(total):
        due = t0 + i / rate
        now = time.perf_counter()
        if due > now:
            await asyncio.sleep(due - now)
        # open loop: requests are queued on schedule; a backlog shows as latency and lag
        res.lag_max_s = max(res.lag_max_s, queue.qsize() / rate)
        res.sent += 1
        queue.put_nowait(i)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    res.elapsed = time.perf_counter() - t0
    return res


def run_load(url: str, kiosks: list[tuple[str, str, str]], rate: float = 500, seconds: float = 60,
             concurrency: int = 64, tag: str | None = None) -> LoadResult:
    """kiosks: [(kiosk_id, unit_code, token)]. Rating ids are ``<tag>-<n>``."""
    return asyncio.run(_run_load(url, kiosks, rate, seconds, concurrency, tag or f"bench{uuid.uuid4().hex[:8]}"))


def verify_clickhouse(settings, ids: list[str], timeout: float = 180.0) -> tuple[set[str], float]:
    """rating_ids of ``ids`` NOT found in motcua.ratings once the pipeline drained (and the wait)."""
    from sinks.client import get_client
    want = set(ids)
    if not want:
        return set(), 0.0
    tag = next(iter(want)).rsplit("-", 1)[0]
    client = get_client(settings)
    t0 = time.monotonic()
    missing = want
    while True:
        rows = client.query("SELECT DISTINCT rating_id FROM ratings WHERE startsWith(rating_id, {p:String})",
                            parameters={"p": tag + "-"}).result_rows
        missing = want - {r[0] for r in rows}
        if not missing or time.monotonic() - t0 > timeout:
            return missing, time.monotonic() - t0
        time.sleep(1.0)


def verify_topic(settings, ids: list[str], timeout: float = 60.0) -> tuple[set[str], float]:
    from pulse.topics import RATINGS
    from schemas.codec import decode_rating
    from tests.integration.frontdoor_support import read_topic
    t0 = time.monotonic()
    seen = {decode_rating(m.value).rating_id for m in read_topic(settings, RATINGS.name, timeout=timeout)}
    return set(ids) - seen, time.monotonic() - t0


def make_kiosks(cred_path: Path, n: int) -> list[tuple[str, str, str]]:
    from tests.integration.frontdoor_support import write_credentials
    units = reference_units()
    specs = [(f"BENCH-K{i:04d}", "kiosk", [units[i % len(units)]]) for i in range(n)]
    tokens = write_credentials(cred_path, specs)
    return [(kid, u[0], tokens[kid]) for kid, _, u in specs]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=500)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--kiosks", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--no-worker", action="store_true", help="verify on the Kafka topic instead of ClickHouse")
    ap.add_argument("--kafka", help="use this running broker instead of starting one (implies --no-worker)")
    args = ap.parse_args(argv)
    if args.seconds > MAX_SECONDS:
        print(f"--seconds capped at {MAX_SECONDS}")
        args.seconds = MAX_SECONDS

    from pulse.admin import create_topics
    from pulse.config import Settings
    from tests.integration.frontdoor_support import ProcessServer

    home = Path(tempfile.mkdtemp(prefix="bench-kiosk-"))
    stack = []
    try:
        worker = None
        if args.kafka:
            args.no_worker = True
            bootstrap = args.kafka
        else:
            from tests.support.kafka import start_broker
            broker = start_broker(home / "kafka")
            stack.append(broker.stop)
            bootstrap = broker.bootstrap
        ch_url = Settings().clickhouse_url
        if not args.no_worker:
            from tests.support.endpoint import start_endpoint
            ep = start_endpoint(home / "chdb")
            stack.append(ep.stop)
            ch_url = f"{ep.url.rstrip('/')}/motcua"
        tag = uuid.uuid4().hex[:8]
        settings = Settings.from_env().with_(
            state_dir=home / "state", kafka_bootstrap=bootstrap, clickhouse_url=ch_url,
            topic_prefix=f"bench{tag}.", faust_app_id=f"motcua-bench-{tag}")
        (home / "state").mkdir(parents=True, exist_ok=True)
        create_topics(settings)
        if not args.no_worker:
            from tests.support.worker import start_worker
            worker = start_worker(settings, log_path=home / "worker.log")
            stack.append(lambda: worker.stop(timeout=30))
        kiosks = make_kiosks(home / "credentials.yaml", args.kiosks)
        per_kiosk_min = args.rate / len(kiosks) * 60
        if per_kiosk_min > settings.kiosk_rate_limit_per_minute:
            print(f"warning: {per_kiosk_min:.0f}/min per kiosk exceeds the rate limit "
                  f"{settings.kiosk_rate_limit_per_minute}; use more --kiosks")
        with ProcessServer(settings, home / "credentials.yaml", home / "api.log") as api:
            print(f"API pid {api.proc.pid} at {api.url}; load generator pid {__import__('os').getpid()}; "
                  f"{len(kiosks)} kiosks; verifying in {'Kafka topic' if args.no_worker else 'ClickHouse'}")
            res = run_load(api.url, kiosks, args.rate, args.seconds, args.concurrency, tag=f"bench{tag}")
        print(res.render())
        if args.no_worker:
            missing, waited = verify_topic(settings, res.accepted_ids)
            where = "Kafka topic " + settings.topic("ratings")
        else:
            missing, waited = verify_clickhouse(settings, res.accepted_ids)
            where = "ClickHouse motcua.ratings"
        print(f"downstream    {len(res.accepted_ids) - len(missing)}/{len(res.accepted_ids)} 2xx ratings found in "
              f"{where} (waited {waited:.1f} s after the load); missing {len(missing)}")
        if missing:
            print("  e.g.", sorted(missing)[:10])
        return 1 if missing else 0
    finally:
        for stop in reversed(stack):
            try:
                stop()
            except Exception as e:  # noqa: BLE001
                print(f"cleanup: {e}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
