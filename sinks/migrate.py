"""Versioned ClickHouse migrations, rendered for a single node or a cluster.

Migration files live in ``sinks/migrations/NNNN_name.sql``. Each is one table-definition
source with ``{{...}}`` template tokens (double braces, so ClickHouse's own ``{shard}``
macros and ``{x:String}`` query parameters pass through untouched):

``{{db}}``
    the database (``motcua``).
``{{table NAME | SHARD_KEY}}``
    a *sharded* table. Single node: ``db.NAME``. Cluster: ``db.NAME_local ON CLUSTER 'c'``
    and, after the statement, a ``Distributed`` table ``db.NAME`` over it sharded by
    ``SHARD_KEY`` (which must be a function of the dedup key, so FINAL stays exact).
``{{global_table NAME}}``
    a small table copied to every node (reference data, bookkeeping). Cluster: replicated
    across all shards, no Distributed table.
``{{engine FAMILY(args)}}``
    the table engine. Single node: as written (``ReplacingMergeTree(version)``). Cluster:
    ``ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', version)``
    (global tables use a path without ``{shard}``).
``{{view NAME}}``
    ``db.NAME`` (+ ``ON CLUSTER 'c'``). Views read the logical (Distributed) names.
``{{param NAME}}``
    a migration parameter (retention days, thresholds) from ``DEFAULT_PARAMS`` / settings.

Statements are separated by ``;`` at the end of a line. Applied versions are recorded with
the SHA-256 of the *source* file in ``schema_migrations``; re-running applies nothing,
and an applied migration whose source changed is an error (write a new migration).
Parameters are rendered when a migration is first applied; changing one later needs a new
migration (e.g. ``ALTER TABLE ... MODIFY TTL``).

CLI::

    python -m sinks.migrate                 # apply pending migrations to CLICKHOUSE_URL
    python -m sinks.migrate --print         # print the single-node rendering
    python -m sinks.migrate --cluster prod --print   # print the cluster rendering
    python -m sinks.migrate --status
"""
from __future__ import annotations

import argparse
import hashlib
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MIGRATIONS_TABLE = "schema_migrations"

DEFAULT_PARAMS: dict[str, int | str] = {
    "raw_retention_days": 1095,      # dossier_events, ratings: 3 years
    "state_retention_days": 3650,    # dossier_state rows of dossiers closed this long ago
    "ops_retention_days": 365,       # dead_letters, dq_results, alerts
    "metrics_retention_days": 30,    # pipeline_metrics
    "silent_kiosk_minutes": 120,     # v_silent_kiosks.is_silent
    "board_refresh_seconds": 60,     # refreshable board aggregates (0006)
}

_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_TOKEN_RE = re.compile(r"\{\{\s*(\w+)(?:\s+([^}]*?))?\s*\}\}")


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    source: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Target:
    database: str = "motcua"
    cluster: str | None = None

    @property
    def on_cluster(self) -> str:
        return f" ON CLUSTER '{self.cluster}'" if self.cluster else ""


def load_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    out = []
    for p in sorted(directory.glob("*.sql")):
        m = _FILE_RE.match(p.name)
        if not m:
            raise MigrationError(f"bad migration file name {p.name} (want NNNN_name.sql)")
        out.append(Migration(int(m.group(1)), m.group(2), p.read_text(encoding="utf-8")))
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return out


def split_statements(sql: str) -> list[str]:
    """Split on ';' at end of line; drop comment-only chunks."""
    parts = re.split(r";[ \t]*(?:\n|$)", sql)
    out = []
    for part in parts:
        body = "\n".join(l for l in part.splitlines() if not l.strip().startswith("--")).strip()
        if body:
            out.append(part.strip())
    return out


def _replicated(engine: str, path: str) -> str:
    m = re.fullmatch(r"\s*(\w+)\s*(?:\((.*)\))?\s*", engine, re.S)
    if not m:
        raise MigrationError(f"cannot parse engine {engine!r}")
    family, args = m.group(1), (m.group(2) or "").strip()
    if not family.endswith("MergeTree"):
        raise MigrationError(f"only MergeTree-family engines can be replicated, got {family}")
    rargs = f"'{path}', '{{replica}}'" + (f", {args}" if args else "")
    return f"Replicated{family}({rargs})"


def render_statement(stmt: str, target: Target, params: dict) -> list[str]:
    """Render one templated statement into one or more SQL statements."""
    db = target.database
    kind = None        # "sharded" | "global"
    name = None
    shard_key = None
    extra: list[str] = []

    # First pass: find the table declaration (engine rendering depends on it).
    for tok, arg in _TOKEN_RE.findall(stmt):
        if tok in ("table", "global_table"):
            if name is not None:
                raise MigrationError("one table declaration per statement")
            kind = "sharded" if tok == "table" else "global"
            if tok == "table":
                nm, _, sk = (arg or "").partition("|")
                name, shard_key = nm.strip(), sk.strip() or "rand()"
            else:
                name = (arg or "").strip()

    def sub(m: re.Match) -> str:
        tok, arg = m.group(1), (m.group(2) or "").strip()
        if tok == "db":
            return db
        if tok == "on_cluster":
            return target.on_cluster
        if tok == "param":
            if arg not in params:
                raise MigrationError(f"unknown migration parameter {arg!r}")
            return str(params[arg])
        if tok == "view":
            return f"{db}.{arg}{target.on_cluster}"
        if tok == "table":
            if target.cluster:
                return f"{db}.{name}_local{target.on_cluster}"
            return f"{db}.{name}"
        if tok == "global_table":
            return f"{db}.{name}{target.on_cluster}"
        if tok == "engine":
            if not target.cluster:
                return arg
            if kind == "sharded":
                return _replicated(arg, "/clickhouse/tables/{shard}/{database}/{table}")
            if kind == "global":
                return _replicated(arg, "/clickhouse/tables/all/{database}/{table}")
            raise MigrationError("{{engine}} outside a table declaration")
        raise MigrationError(f"unknown template token {tok!r}")

    out = _TOKEN_RE.sub(sub, stmt)
    if target.cluster and kind == "sharded":
        extra.append(
            f"CREATE TABLE IF NOT EXISTS {db}.{name}{target.on_cluster} AS {db}.{name}_local\n"
            f"ENGINE = Distributed('{target.cluster}', '{db}', '{name}_local', {shard_key})"
        )
    return [out] + extra


def render(migration: Migration, target: Target, params: dict | None = None) -> list[str]:
    p = {**DEFAULT_PARAMS, **(params or {})}
    out: list[str] = []
    for stmt in split_statements(migration.source):
        out.extend(render_statement(stmt, target, p))
    return out


def _bookkeeping_sql(target: Target) -> str:
    src = (
        f"CREATE TABLE IF NOT EXISTS {{{{global_table {MIGRATIONS_TABLE}}}}} (\n"
        "    version UInt32,\n    name String,\n    checksum String,\n"
        "    target String,\n    params String,\n"
        "    applied_at DateTime64(3, 'Asia/Ho_Chi_Minh')\n"
        ") ENGINE = {{engine ReplacingMergeTree(applied_at)}} ORDER BY version"
    )
    return render_statement(src, target, {})[0]


def params_from_settings(settings) -> dict:
    p = dict(DEFAULT_PARAMS)
    if hasattr(settings, "silent_kiosk_minutes"):
        p["silent_kiosk_minutes"] = int(settings.silent_kiosk_minutes)
    for k in DEFAULT_PARAMS:
        v = (getattr(settings, "extra", None) or {}).get(f"clickhouse_{k}")
        if v is not None:
            p[k] = v
    return p


def applied(client, target: Target) -> dict[int, tuple[str, str]]:
    rows = client.query(
        f"SELECT version, name, checksum FROM {target.database}.{MIGRATIONS_TABLE} FINAL ORDER BY version"
    ).result_rows
    return {int(v): (n, c) for v, n, c in rows}


def migrate(client, target: Target | None = None, params: dict | None = None,
            migrations: list[Migration] | None = None, log=print) -> list[int]:
    """Apply pending migrations; return the versions applied (empty when up to date)."""
    target = target or Target()
    p = {**DEFAULT_PARAMS, **(params or {})}
    migrations = load_migrations() if migrations is None else migrations
    client.command(f"CREATE DATABASE IF NOT EXISTS {target.database}{target.on_cluster}")
    client.command(_bookkeeping_sql(target))
    done = applied(client, target)
    for m in migrations:
        if m.version in done and done[m.version][1] != m.checksum:
            raise MigrationError(
                f"migration {m.version:04d}_{m.name} was modified after it was applied "
                f"(recorded {done[m.version][1][:12]}, file {m.checksum[:12]}); write a new migration instead")
    newly = []
    for m in migrations:
        if m.version in done:
            continue
        for stmt in render(m, target, p):
            client.command(stmt)
        client.insert(
            f"{target.database}.{MIGRATIONS_TABLE}",
            [[m.version, m.name, m.checksum, target.cluster or "single",
              repr(sorted(p.items())), datetime.now(timezone.utc)]],
            column_names=["version", "name", "checksum", "target", "params", "applied_at"],
        )
        newly.append(m.version)
        if log:
            log(f"applied migration {m.version:04d}_{m.name}")
    return newly


def migrate_settings(settings, cluster: str | None = None, log=print, attempts: int = 5) -> list[int]:
    """Apply pending migrations to the database in ``settings.clickhouse_url`` (used at start).

    Several workers starting together on a fresh database migrate it concurrently, and a
    statement of one can fail on what the other is replacing at that moment (seen: "Unknown
    table expression identifier ...agg_overdue" when two workers started at once). A failed
    run is retried after a pause: it then skips what the other one has applied. A modified
    migration (MigrationError) is not retried."""
    import random
    import time

    from clickhouse_connect.driver.exceptions import DatabaseError

    from sinks.client import database_of, get_client

    for attempt in range(1, attempts + 1):
        client = get_client(settings, database="")
        try:
            return migrate(client, Target(database_of(settings), cluster), params_from_settings(settings), log=log)
        except DatabaseError as e:
            if attempt == attempts:
                raise
            if log:
                log(f"migration attempt {attempt} failed ({str(e)[:200]}); retrying: another migrator may be running")
            time.sleep(random.uniform(1.0, 2.0) * attempt)
        finally:
            client.close()
    raise AssertionError("unreachable")


BOARD_AGGREGATES = ("agg_dossier_daily", "agg_overdue", "agg_ratings_daily", "agg_rating_criteria")


def refresh_board_aggregates(client, database: str | None = None) -> None:
    """Recompute the refreshable board aggregates now and wait for them (tests, after bulk loads)."""
    db = database or client.database
    for v in BOARD_AGGREGATES:
        client.command(f"SYSTEM REFRESH VIEW {db}.{v}")
    for v in BOARD_AGGREGATES:
        client.command(f"SYSTEM WAIT VIEW {db}.{v}")


def render_all(target: Target, params: dict | None = None) -> str:
    chunks = [f"-- motcua-pulse schema, target: {target.cluster or 'single node'}",
              f"CREATE DATABASE IF NOT EXISTS {target.database}{target.on_cluster};",
              _bookkeeping_sql(target) + ";"]
    for m in load_migrations():
        chunks.append(f"\n-- {m.version:04d}_{m.name}  sha256:{m.checksum[:12]}")
        chunks.extend(s + ";" for s in render(m, target, params))
    return "\n".join(chunks) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sinks.migrate", description=__doc__.split("\n")[0])
    ap.add_argument("--cluster", help="render/apply the cluster variant on this cluster name")
    ap.add_argument("--print", action="store_true", dest="print_only", help="print rendered SQL, touch nothing")
    ap.add_argument("--status", action="store_true", help="list applied and pending migrations")
    ap.add_argument("--database", help="database name (default: from CLICKHOUSE_URL)")
    args = ap.parse_args(argv)

    from pulse.config import Settings
    from sinks.client import database_of, get_client

    settings = Settings.from_env()
    target = Target(args.database or database_of(settings), args.cluster)
    params = params_from_settings(settings)
    if args.print_only:
        sys.stdout.write(render_all(target, params))
        return 0
    client = get_client(settings, database="")
    try:
        if args.status:
            client.command(f"CREATE DATABASE IF NOT EXISTS {target.database}{target.on_cluster}")
            client.command(_bookkeeping_sql(target))
            done = applied(client, target)
            for m in load_migrations():
                state = "applied" if m.version in done else "pending"
                if m.version in done and done[m.version][1] != m.checksum:
                    state = "MODIFIED"
                print(f"{m.version:04d}_{m.name}: {state}")
            return 0
        newly = migrate(client, target, params)
        if not newly:
            print("schema up to date")
        return 0
    finally:
        client.close()


if __name__ == "__main__":
    raise SystemExit(main())
