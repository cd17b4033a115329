"""Versioned ClickHouse migrations for the tables, and the board views' current definitions.

Two steps, in this order, wherever the schema is applied (``migrate()``, ``migrate_settings()``
at a worker's start, ``python -m sinks.migrate``):

1. **Migrations** (``sinks/migrations/NNNN_name.sql``): the tables, as a history. Applied
   versions are recorded with the SHA-256 of the *source* file in ``schema_migrations``;
   re-running applies nothing, and an applied migration whose source changed is an error
   (write a new migration). Parameters are rendered when a migration is first applied;
   changing one later needs a new migration (e.g. ``ALTER TABLE ... MODIFY TTL``).
2. **Views** (``sinks/views/NAME.sql``): one file per board view or refreshable aggregate
   holding its *current* definition (no history: a fresh install creates each view once).
   The SHA-256 of each view's rendered definition is recorded in ``schema_views``; a view
   whose definition changed, or that is missing, is replaced (a plain view with ``CREATE OR
   REPLACE VIEW``; a refreshable materialized view is dropped and created again, and
   computes itself at once and then on its schedule); an unchanged view is left alone, so
   a worker's start rebuilds no aggregate. A view reading another view says so in a
   ``-- depends: a, b`` line; views are applied in that dependency order, and a dependency
   on an unknown view, a cycle, or a read of another view without the line is an error.

Migrations 0005, 0006 and 0008 defined the views before step 2 existed
(``RETIRED_MIGRATIONS``): a database that applied them keeps their rows in
``schema_migrations`` and nothing of them is applied again; the views step brings their
views to the current definitions (once, as no checksum of them is recorded yet).

Both kinds of file are table-definition sources with ``{{...}}`` template tokens (double
braces, so ClickHouse's own ``{shard}`` macros and ``{x:String}`` query parameters pass
through untouched):

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
    a parameter (retention days, thresholds) from ``DEFAULT_PARAMS`` / settings.

Statements are separated by ``;`` at the end of a line (a view file holds exactly one).

CLI::

    python -m sinks.migrate                 # apply pending migrations, then the views, to CLICKHOUSE_URL
    python -m sinks.migrate --print         # print the single-node rendering (tables, then views)
    python -m sinks.migrate --cluster prod --print   # print the cluster rendering
    python -m sinks.migrate --status        # migrations applied / pending, views current / changed / missing
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
VIEWS_DIR = Path(__file__).resolve().parent / "views"
VIEWS_TABLE = "schema_views"

# Migrations that created and re-created the board views, before the views step held their
# current definitions (sinks/views/). Their files are gone; a database that applied them has
# their rows in schema_migrations, which is fine, and no file may take their numbers again
# (a database that applied the old one would skip the new one).
RETIRED_MIGRATIONS: dict[int, str] = {
    5: "views",
    6: "board_aggregates",
    8: "overdue_needs_a_promise",
}

DEFAULT_PARAMS: dict[str, int | str] = {
    "raw_retention_days": 1095,      # dossier_events, ratings: 3 years
    "state_retention_days": 3650,    # dossier_state rows of dossiers closed this long ago
    "ops_retention_days": 365,       # dead_letters, dq_results, alerts
    "metrics_retention_days": 30,    # pipeline_metrics
    "silent_kiosk_minutes": 120,     # v_silent_kiosks.is_silent
    "board_refresh_seconds": 60,     # refreshable board aggregates (sinks/views/agg_*.sql)
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
        version = int(m.group(1))
        if version in RETIRED_MIGRATIONS:
            raise MigrationError(
                f"{p.name}: version {version:04d} is retired ({RETIRED_MIGRATIONS[version]}: the views it held are in "
                f"sinks/views/); a database that applied it would skip this file. Use a new number")
        out.append(Migration(version, m.group(2), p.read_text(encoding="utf-8")))
    versions = [m.version for m in out]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {directory}")
    return out


def split_statements(sql: str) -> list[str]:
    """Split on ';' at end of line; drop comment-only chunks."""
    parts = re.split(r";[ \t]*(?:\n|$)", sql)
    out = []
    for part in parts:
        body = "\n".join(line for line in part.splitlines() if not line.strip().startswith("--")).strip()
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


# ------------------------------------------------------------------------------- views

@dataclass(frozen=True)
class View:
    """One board view or refreshable aggregate: ``sinks/views/NAME.sql``."""
    name: str
    kind: str                       # "view" (CREATE OR REPLACE VIEW) | "refreshable" (materialized, REFRESH)
    source: str                     # the templated statement, comment lines removed
    depends: tuple[str, ...] = ()   # views it reads (``-- depends:``), created before it


_VIEW_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_VIEW_HEAD_RE = re.compile(
    r"^CREATE\s+(OR\s+REPLACE\s+VIEW|MATERIALIZED\s+VIEW\s+IF\s+NOT\s+EXISTS)\s+\{\{\s*view\s+(\w+)\s*\}\}\s",
    re.I)
_DEPENDS_RE = re.compile(r"^--\s*depends:(.*)$", re.M)
_DB_REF_RE = re.compile(r"\{\{\s*db\s*\}\}\.(\w+)")
_VIEW_TOKENS = {"db", "view", "param", "on_cluster"}


def parse_view(name: str, text: str) -> View:
    """A view file's text as a View (dependencies not yet checked against the others)."""
    where = f"view file {name}.sql"
    if not _VIEW_NAME_RE.match(name):
        raise MigrationError(f"bad {where} name (want lower-case name.sql)")
    stmts = split_statements(text)
    if len(stmts) != 1:
        raise MigrationError(f"{where} must hold exactly one statement, has {len(stmts)}")
    # Full-line comments are dropped from what is run and checksummed: editing a why-comment
    # must not rebuild an aggregate.
    body = "\n".join(line for line in stmts[0].splitlines() if not line.strip().startswith("--")).strip()
    head = _VIEW_HEAD_RE.match(body)
    if not head:
        raise MigrationError(
            f"{where} must start with CREATE OR REPLACE VIEW {{{{view {name}}}}} or "
            f"CREATE MATERIALIZED VIEW IF NOT EXISTS {{{{view {name}}}}}")
    if head.group(2) != name:
        raise MigrationError(f"{where} defines {head.group(2)}, not {name}")
    kind = "refreshable" if head.group(1).upper().startswith("MATERIALIZED") else "view"
    if kind == "refreshable" and not re.search(r"\bREFRESH\s+(EVERY|AFTER)\b", body, re.I):
        # Replacing means drop and create: fine for a view that recomputes itself in full,
        # not for one fed by inserts (it would lose what it holds).
        raise MigrationError(f"{where}: only refreshable materialized views (REFRESH EVERY/AFTER) can be views")
    bad = {tok for tok, _ in _TOKEN_RE.findall(body)} - _VIEW_TOKENS
    if bad:
        raise MigrationError(f"{where}: template token(s) {sorted(bad)} belong in migrations (tables)")
    depends: list[str] = []
    for line in _DEPENDS_RE.findall(text):
        depends.extend(d.strip() for d in line.split(",") if d.strip())
    return View(name, kind, body, tuple(dict.fromkeys(depends)))


def order_views(views: list[View]) -> list[View]:
    """The views in dependency order (a view after every view it depends on; otherwise by
    name). Checked: a dependency on an unknown view, a cycle, and a view reading another
    view (``{{db}}.NAME``) without declaring it are errors."""
    by_name = {v.name: v for v in views}
    if len(by_name) != len(views):
        raise MigrationError("duplicate view names")
    for v in views:
        unknown = [d for d in v.depends if d not in by_name or d == v.name]
        if unknown:
            raise MigrationError(f"view {v.name} depends on unknown view(s) {unknown}")
        undeclared = sorted({r for r in _DB_REF_RE.findall(v.source) if r in by_name and r != v.name} - set(v.depends))
        if undeclared:
            raise MigrationError(f"view {v.name} reads {undeclared} without declaring it: add `-- depends: "
                                 f"{', '.join(undeclared)}` to sinks/views/{v.name}.sql")
    out: list[View] = []
    done: set[str] = set()
    pending = sorted(by_name)
    while pending:
        ready = [n for n in pending if all(d in done for d in by_name[n].depends)]
        if not ready:
            raise MigrationError(f"views depend on each other in a cycle: {pending}")
        for n in ready:
            out.append(by_name[n])
            done.add(n)
        pending = [n for n in pending if n not in done]
    return out


def load_views(directory: Path = VIEWS_DIR) -> list[View]:
    """Every ``NAME.sql`` in ``directory`` as a View, in dependency order."""
    return order_views([parse_view(p.stem, p.read_text(encoding="utf-8")) for p in sorted(directory.glob("*.sql"))])


def render_view(view: View, target: Target, params: dict | None = None) -> str:
    return render_statement(view.source, target, {**DEFAULT_PARAMS, **(params or {})})[0]


def view_checksum(sql: str) -> str:
    return hashlib.sha256(sql.encode("utf-8")).hexdigest()


def _views_bookkeeping_sql(target: Target) -> str:
    src = (
        f"CREATE TABLE IF NOT EXISTS {{{{global_table {VIEWS_TABLE}}}}} (\n"
        "    name String,\n    kind String,\n    checksum String,\n    definition String,\n"
        "    target String,\n    replaced_at DateTime64(3, 'Asia/Ho_Chi_Minh')\n"
        ") ENGINE = {{engine ReplacingMergeTree(replaced_at)}} ORDER BY name"
    )
    return render_statement(src, target, {})[0]


def recorded_views(client, target: Target, name: str | None = None) -> dict[str, str]:
    """name -> checksum of the definition last applied (all views, or just ``name``)."""
    where, params = ("WHERE name = {n:String}", {"n": name}) if name else ("", {})
    rows = client.query(f"SELECT name, checksum FROM {target.database}.{VIEWS_TABLE} FINAL {where}",
                        parameters=params).result_rows
    return {n: c for n, c in rows}


def _present(client, target: Target) -> set[str]:
    return {r[0] for r in client.query("SELECT name FROM system.tables WHERE database = {db:String}",
                                       parameters={"db": target.database}).result_rows}


def view_states(client, target: Target, params: dict | None = None,
                views: list[View] | None = None) -> list[tuple[View, str]]:
    """Each view with its state: ``current`` (recorded definition = file's, and present),
    ``changed`` (present, definition differs or none recorded), ``missing``."""
    views = load_views() if views is None else views
    recorded, present = recorded_views(client, target), _present(client, target)
    out = []
    for v in views:
        if v.name not in present:
            out.append((v, "missing"))
        elif recorded.get(v.name) == view_checksum(render_view(v, target, params)):
            out.append((v, "current"))
        else:
            out.append((v, "changed"))
    return out


def migrate_views(client, target: Target | None = None, params: dict | None = None,
                  views: list[View] | None = None, log=print) -> list[str]:
    """Bring every view to its file's definition; return the names replaced (in the order
    replaced: dependency order). Run after the migrations (the views read their tables).

    Two migrators at once (workers starting together): each re-reads a view's record just
    before replacing it and skips it if the other has just done so; if one still replaces
    what the other is creating, or creates a view over an aggregate the other has just
    dropped, its statement fails and ``migrate_settings`` retries the whole run, which then
    finds the views current. Replacing twice is harmless: same definition."""
    target = target or Target()
    views = load_views() if views is None else views
    if not views:
        return []
    client.command(_views_bookkeeping_sql(target))
    replaced = []
    for v, state in view_states(client, target, params, views):
        if state == "current":
            continue
        sql = render_view(v, target, params)
        checksum = view_checksum(sql)
        if (recorded_views(client, target, v.name).get(v.name) == checksum
                and v.name in _present(client, target)):
            continue                                   # another migrator was quicker
        if v.kind == "refreshable":
            # No CREATE OR REPLACE for materialized views: drop, then create (IF NOT EXISTS,
            # so a concurrent migrator's create in between is kept: same definition).
            client.command(f"DROP VIEW IF EXISTS {target.database}.{v.name}{target.on_cluster}")
        client.command(sql)
        client.insert(
            f"{target.database}.{VIEWS_TABLE}",
            [[v.name, v.kind, checksum, sql, target.cluster or "single", datetime.now(timezone.utc)]],
            column_names=["name", "kind", "checksum", "definition", "target", "replaced_at"],
        )
        replaced.append(v.name)
        if log:
            log(f"{'created' if state == 'missing' else 'replaced'} view {v.name}")
    return replaced


def migrate(client, target: Target | None = None, params: dict | None = None,
            migrations: list[Migration] | None = None, log=print,
            views: list[View] | None = None) -> list[int]:
    """Apply pending migrations, then bring the views to their definitions
    (``migrate_views``; ``views=[]`` skips that step); return the migration versions
    applied (empty when up to date)."""
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
    migrate_views(client, target, p, views, log=log)
    return newly


def migrate_settings(settings, cluster: str | None = None, log=print, attempts: int = 5) -> list[int]:
    """Apply pending migrations and the views to the database in ``settings.clickhouse_url``
    (used at start).

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
    chunks.append(f"\n-- views (sinks/views/, in dependency order); bookkeeping in {VIEWS_TABLE}")
    chunks.append(_views_bookkeeping_sql(target) + ";")
    for v in load_views():
        sql = render_view(v, target, params)
        chunks.append(f"\n-- view {v.name} ({v.kind})  sha256:{view_checksum(sql)[:12]}")
        chunks.append(sql + ";")
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
            migrations = load_migrations()
            files = {m.version for m in migrations}
            for version in sorted(files | set(done)):
                if version not in files:
                    name = done[version][0]
                    state = ("retired (its views are in sinks/views/)" if version in RETIRED_MIGRATIONS
                             else "applied, no file (from a newer release?)")
                    print(f"{version:04d}_{name}: {state}")
                    continue
                m = next(m for m in migrations if m.version == version)
                state = "applied" if m.version in done else "pending"
                if m.version in done and done[m.version][1] != m.checksum:
                    state = "MODIFIED"
                print(f"{m.version:04d}_{m.name}: {state}")
            client.command(_views_bookkeeping_sql(target))
            views = load_views()
            for v, state in view_states(client, target, params, views):
                print(f"view {v.name}: {state}")
            for name in sorted(set(recorded_views(client, target)) - {v.name for v in views}):
                print(f"view {name}: recorded, no file in sinks/views (left as it is)")
            return 0
        newly = migrate(client, target, params, views=[])      # the tables, then
        replaced = migrate_views(client, target, params)       # the views
        if not newly and not replaced:
            print("schema up to date")
        return 0
    finally:
        client.close()


if __name__ == "__main__":
    raise SystemExit(main())
