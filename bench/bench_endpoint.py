"""Insert throughput and query latency: through the chDB HTTP endpoint vs chDB in-process.

    .venv/bin/python bench/bench_endpoint.py [--rows 1000000] [--repeat 3]

The endpoint runs as a subprocess (as in production-like local use); the direct
figures use chdb.session.Session in this process on another data directory,
inserting the same DataFrame with ``INSERT ... SELECT * FROM Python(df)``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DDL = """CREATE TABLE {name} (
    id UInt64, ts DateTime64(3, 'Asia/Ho_Chi_Minh'), office LowCardinality(String),
    status String, rating Nullable(UInt8), v Float64
) ENGINE = MergeTree ORDER BY (office, ts)"""
AGG = "SELECT office, count(), avg(v), countIf(rating IS NULL) FROM {name} GROUP BY office ORDER BY office"


def make_df(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    ids = np.arange(n, dtype=np.uint64)
    ts = pd.Timestamp("2026-11-01", tz="Asia/Ho_Chi_Minh") + pd.to_timedelta(ids.astype("int64") * 250, unit="ms")
    rating = pd.array(rng.integers(1, 6, n), dtype="UInt8")
    rating[ids % 7 == 0] = pd.NA
    return pd.DataFrame({
        "id": ids,
        "ts": ts,
        "office": np.array([f"office-{i:03d}" for i in range(200)])[ids % 200],
        "status": np.array(["received", "processing", "done", "late"])[ids % 4],
        "rating": rating,
        "v": rng.random(n),
    })


def best(times: list[float]) -> float:
    return min(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--queries", type=int, default=30)
    args = ap.parse_args()

    import clickhouse_connect
    from chdb import session as chs

    from tests.support.endpoint import start_endpoint

    df = make_df(args.rows)
    n = len(df)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        # -- direct, in-process chDB
        sess = chs.Session(str(Path(tmp) / "direct"))
        times = []
        for r in range(args.repeat):
            name = f"direct_{r}"
            sess.query(DDL.format(name=name))
            t = time.perf_counter()
            sess.query(f"INSERT INTO {name} SELECT * FROM Python(df)")
            times.append(time.perf_counter() - t)
            assert int(sess.query(f"SELECT count() FROM {name}", "TSV").bytes()) == n
        results["direct insert rows/s"] = n / best(times)
        lat = []
        for _ in range(args.queries):
            t = time.perf_counter()
            sess.query(AGG.format(name="direct_0"), "Native")
            lat.append(time.perf_counter() - t)
        results["direct aggregate median ms"] = statistics.median(lat) * 1000
        sess.close()

        # -- through the endpoint (subprocess), clickhouse-connect HTTP client
        ep = start_endpoint(Path(tmp) / "endpoint")
        try:
            for compress in ("lz4", "zstd", False):
                client = clickhouse_connect.get_client(host=ep.host, port=ep.port, compress=compress)
                times = []
                for r in range(args.repeat):
                    name = f"ep_{compress or 'none'}_{r}"
                    client.command(DDL.format(name=name))
                    t = time.perf_counter()
                    client.insert_df(name, df)
                    times.append(time.perf_counter() - t)
                    got = client.query(f"SELECT count(), sum(id) FROM {name}").result_rows[0]
                    assert got == (n, n * (n - 1) // 2), got
                results[f"endpoint insert rows/s (compress={compress or 'none'})"] = n / best(times)
            client = clickhouse_connect.get_client(host=ep.host, port=ep.port, compress="lz4")
            lat = []
            for _ in range(args.queries):
                t = time.perf_counter()
                client.query(AGG.format(name="ep_lz4_0"))
                lat.append(time.perf_counter() - t)
            results["endpoint aggregate median ms"] = statistics.median(lat) * 1000
            lat = []
            for _ in range(args.queries):
                t = time.perf_counter()
                client.command("SELECT 1")
                lat.append(time.perf_counter() - t)
            results["endpoint SELECT 1 median ms"] = statistics.median(lat) * 1000
        finally:
            ep.stop()

    print(f"rows per insert: {n:,} (best of {args.repeat}); query latency median of {args.queries}")
    for k, v in results.items():
        print(f"  {k:45s} {v:>14,.1f}")
    direct = results["direct insert rows/s"]
    for k, v in results.items():
        if k.startswith("endpoint insert"):
            print(f"  ratio {k[len('endpoint insert rows/s '):]:>20s} endpoint/direct = {v / direct:.2f}")
    print(f"  aggregate latency endpoint/direct = "
          f"{results['endpoint aggregate median ms'] / results['direct aggregate median ms']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
