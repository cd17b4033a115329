"""What the pipeline benchmarks share (bench_pipeline.py, bench_year.py): a valid-lifecycle
event factory, a poll until ClickHouse has enough rows, the CPU of a process and its
children, and the wait until every worker is ready with the input partitions split; and
for the ClickHouse-only benchmarks (bench_sink.py, bench_replay.py) a migrated database."""
from __future__ import annotations

import os
import random
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path


class EventFactory:
    """Valid dossier lifecycles (2 received -> 4 in progress -> 9 finished -> 10 returned) on real
    reference codes, encoded as the contract's JSON."""

    def __init__(self, seed: int = 1):
        from schemas.reference import load_reference
        ref = load_reference()
        self.rng = random.Random(seed)
        self.pairs = []
        for p in ref.procedures.values():
            units = [u for u in ref.units.values() if u.kind == ("commune" if p.level == "commune" else "department")]
            for u in units[:20]:
                self.pairs.append((u.code, p.code, p.field_code))
        self.run = uuid.uuid4().hex[:6]

    def lifecycle(self, i: int, t0: datetime, step: timedelta) -> list[tuple[bytes, bytes]]:
        from schemas.codec import encode
        from schemas.contracts import DossierEvent
        unit, proc, field = self.pairs[i % len(self.pairs)]
        code = f"B{self.run}-{i:08d}"
        common = dict(source_system="bench", dossier_code=code, procedure_code=proc, procedure_field=field,
                      unit_code=unit, channel=1 + (i % 3 == 0))
        out = []
        for k, status in enumerate((2, 4, 9, 10)):
            t = t0 + step * k
            extra = {}
            if status == 2:
                extra = dict(received_at=t, promised_at=t + timedelta(days=5))
            elif status == 9:
                extra = dict(finished_at=t)
            elif status == 10:
                extra = dict(returned_at=t)
            ev = DossierEvent(event_id=f"{code}-s{status:02d}", event_time=t, status=status, **common, **extra)
            out.append((code.encode(), encode(ev)))
        return out


def wait_rows(client, sql: str, expected: int, timeout: float, poll: float = 0.2) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.query(sql).result_rows[0][0] >= expected:
            return time.monotonic()
        time.sleep(poll)
    raise TimeoutError(f"{sql}: fewer than {expected} rows after {timeout} s "
                       f"({client.query(sql).result_rows[0][0]})")


def cpu_seconds(pid: int | None) -> float:
    """user + system CPU of a process and its threads so far (Linux /proc)."""
    if not pid:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks   # utime, stime (fields 14, 15 of stat)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (a worker's spawned GX child)."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], list(kids.get(pid, []))
    while todo:
        c = todo.pop()
        out.append(c)
        todo += kids.get(c, [])
    return out


def stable_split(workers, client, topic_prefix: str, timeout: float = 300, partitions: int = 4):
    """Wait until every worker is ready under one consumer generation with the ``partitions``
    input partitions split between them; returns (monotonic, wall clock, rows queryable then),
    or (None, None, 0) if that did not happen in ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sts = [w.status() or {} for w in workers]
        parts = [a for st in sts for a in st.get("assigned", []) if a.startswith(topic_prefix)]
        if all(st.get("ready") for st in sts) and len({st.get("generation") for st in sts}) == 1 \
                and len(parts) == len(set(parts)) == partitions:
            n0 = client.query("SELECT count() FROM dossier_events").result_rows[0][0] if client else 0
            return time.monotonic(), time.time(), n0
        time.sleep(0.2)
    return None, None, 0


@contextmanager
def bench_clickhouse(prefix: str):
    """(settings, endpoint pid) for a migrated database with the reference tables loaded:
    the server at BENCH_CLICKHOUSE_URL when set (pid None), else a chDB endpoint of its own
    in a temporary folder, stopped on the way out."""
    from pulse.config import Settings
    from sinks.client import get_client
    from sinks.migrate import migrate_settings
    from sinks.reference import load_reference_tables

    ep = None
    url = os.environ.get("BENCH_CLICKHOUSE_URL")
    if not url:
        from tests.support.endpoint import start_endpoint
        ep = start_endpoint(Path(tempfile.mkdtemp(prefix=prefix)) / "chdb")
        url = ep.url + "/motcua_bench"
    settings = Settings().with_(clickhouse_url=url)
    try:
        migrate_settings(settings, log=None)
        c = get_client(settings)
        load_reference_tables(c)
        c.close()
        yield settings, (ep.proc.pid if ep is not None else None)
    finally:
        if ep is not None:
            ep.stop(timeout=120)
