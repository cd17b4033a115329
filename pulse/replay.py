"""``pulse replay``: rebuild ClickHouse from the pipeline's own history, then swap it in.

Where a year lives (docs/REPLAY.md): ClickHouse's raw tables. The Kafka input topics keep
30 days (pulse/topics.py); ``dossier_events`` keeps every applied event for
``raw_retention_days`` (3 years), ``ratings``, ``dead_letters``, ``alerts`` ... likewise.

A replay, in order, each step recorded in the replay database itself (``replay_progress``)
so that ``--resume`` after a kill continues where it stopped:

1. a fresh database ``<db>__replay_<ts>``, made by the same migrations and views as the
   live one (``sinks.migrate.migrate``); its board aggregates are stopped (nobody reads them);
2. every named table that is history (raw events, ratings, dead letters, alerts, data
   quality, metrics, reference data, the stored service index) copied from the source,
   FINAL (one row per key, as readers see it), by ClickHouse itself;
3. ``dossier_state`` re-derived: the source's ``dossier_events`` FINAL sorted by dossier
   into a helper table ``replay_events`` (ORDER BY dossier_code, event_time, event_id),
   read back in chunks of whole dossiers (about ``batch`` events each, by dossier-code
   range on that key), each dossier's events merged and folded with the worker's own
   functions (``streams.core.merge`` and ``DossierLogic.state``: event order (event_time,
   event_id), duplicates by event id) as of one ``now`` fixed when the replay started, the
   rows inserted, the chunk recorded;
4. the swap: the rows the live pipeline wrote meanwhile copied over (``TAIL_COLUMNS``), then
   ``EXCHANGE TABLES live.t AND replay.t, ...`` for every rebuilt table in ONE statement
   (Atomic databases: each name is swapped atomically; the live views read by name, so
   they read the new tables; ``RENAME DATABASE`` would leave views pointing at the old name),
   the rows landed in between copied again, the live board aggregates refreshed. The old
   tables are then in the replay database: dropped, or kept with ``--keep-old``.

``replay(settings, ...) -> ReplayResult`` is the library entry (bench/bench_replay.py and
the year benchmark call it); ``main(argv)`` is ``pulse replay``.
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from pulse.config import Settings

UTC = timezone.utc
REPLAY_MARK = "__replay_"
META_TABLE = "replay_meta"
PROGRESS_TABLE = "replay_progress"
EVENTS_TABLE = "replay_events"
DERIVED = ("dossier_state",)             # re-derived from dossier_events with the worker's functions
DEFAULT_BATCH = 50_000
# Tables of the database that are not rebuilt: the schema bookkeeping (each database has its
# own, made by its migrations) and the replay's own.
NOT_REBUILT = frozenset({"schema_migrations", "schema_views", META_TABLE, PROGRESS_TABLE, EVENTS_TABLE})
# The column telling when a row landed, per table, for the rows the live pipeline writes
# while a replay runs (copied over at the swap; dossier_state is folded again instead, for
# the dossiers of the events copied). Some are the writer's wall clock (updated_at is a
# batch's start), so the copy reaches back TAIL_MARGIN before the replay's start.
TAIL_COLUMNS = {
    "dossier_events": "inserted_at", "ratings": "inserted_at",
    "dead_letters": "updated_at", "alerts": "raised_at", "dq_results": "batch_time", "pipeline_metrics": "ts",
    "service_index": "computed_at", "service_index_supplied": "loaded_at",
}
TAIL_MARGIN = timedelta(minutes=10)
# inserted_at is the server's clock at the insert: a margin only for an insert under way at
# the mark (folding again is exact but costs what the fold costs, so it is kept short)
REFOLD_MARGIN = timedelta(seconds=5)
# Columns that are by nature wall clock (when the row was written), not the pipeline's
# result: the only ones a replayed table may differ in from the live one.
WALL_CLOCK_COLUMNS = {"dossier_events": ("inserted_at",), "ratings": ("inserted_at",),
                      "dossier_state": ("updated_at",)}

# replay_events: the source's applied events in the stream's compact layout (times in epoch
# ms), sorted by dossier. The columns after dossier_code are rules.lifecycle's event-row
# fields in order (streams.eviction.HISTORY_COLUMNS), so a row read back is the compact
# event but for the flags (``_compact``).
_EVENTS_SELECT = """
SELECT dossier_code, event_id, toUnixTimestamp64Milli(event_time) AS event_ms, status, unit_code, procedure_code,
       procedure_field, channel, toUnixTimestamp64Milli(submitted_at) AS submitted_ms,
       toUnixTimestamp64Milli(received_at) AS received_ms, toUnixTimestamp64Milli(promised_at) AS promised_ms,
       toUnixTimestamp64Milli(finished_at) AS finished_ms, toUnixTimestamp64Milli(returned_at) AS returned_ms,
       toUnixTimestamp64Milli(refused_at) AS refused_ms,
       arrayMap(s -> (toUnixTimestamp64Milli(s.1), toUnixTimestamp64Milli(s.2), toUnixTimestamp64Milli(s.3),
                      toUnixTimestamp64Milli(s.4)), supplements) AS supplements_ms,
       has_digitised_components, electronic_result, vneid_authenticated, paid_online
FROM {src}.dossier_events FINAL
"""


class ReplayError(RuntimeError):
    """A replay that cannot run as asked (bad table name, no such database, nothing to resume...)."""


@dataclass
class ReplayResult:
    database: str                 # the replay database (holds the old tables after the swap, if kept)
    live: str                     # the database swapped into
    tables: list[str]
    events: int                   # events folded into dossier_state (0 if it was not rebuilt)
    dossiers: int
    seconds: float                # this run's wall time (a resumed run: since the resume)
    fold_seconds: float           # of which the fold of the events (read, fold, insert)
    swapped: bool
    resumed: bool
    copied: dict[str, int] = field(default_factory=dict)   # rows copied per history table

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


# ----------------------------------------------------------------------------- helpers

def q(name: str) -> str:
    """A ClickHouse identifier, quoted."""
    return "`" + name.replace("`", "``") + "`"


def _one(client, sql: str, **params) -> Any:
    rows = client.query(sql, parameters=params).result_rows
    return rows[0][0] if rows else None


def is_history_table(name: str, engine: str) -> bool:
    """A table of the pipeline's own (MergeTree), not the storage of a view: ClickHouse names
    those with a leading dot: ``.inner.`` / ``.inner_id.<uuid>`` for a materialized view's
    table, and ``.tmp.inner_id.<uuid>`` for the one a refreshable view fills while it
    refreshes (listed by system.tables for that moment: the full year's replay once picked
    one up and failed on it)."""
    return "MergeTree" in engine and not name.startswith(".")


def base_tables(client, database: str) -> dict[str, str]:
    """name -> engine of the database's own tables (no views, no aggregates' inner tables)."""
    rows = client.query("SELECT name, engine FROM system.tables WHERE database = {db:String} AND NOT is_temporary",
                        parameters={"db": database}).result_rows
    return {n: e for n, e in rows if is_history_table(n, e)}


def columns_of(client, database: str, table: str) -> list[str]:
    """The table's insertable columns in order (no MATERIALIZED / ALIAS)."""
    return [r[0] for r in client.query(
        "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String} "
        "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS', 'EPHEMERAL') ORDER BY position",
        parameters={"db": database, "t": table}).result_rows]


def table_uuids(client, database: str, tables: Iterable[str]) -> dict[str, str]:
    names = list(tables)
    return {n: str(u) for n, u in client.query(
        "SELECT name, uuid FROM system.tables WHERE database = {db:String} AND name IN {t:Array(String)}",
        parameters={"db": database, "t": names}).result_rows}


def replay_databases(client, live: str) -> list[str]:
    """The replay databases of ``live`` (oldest first: the names sort by their time)."""
    return sorted(r[0] for r in client.query(
        "SELECT name FROM system.databases WHERE startsWith(name, {p:String})",
        parameters={"p": live + REPLAY_MARK}).result_rows)


def _compact(r) -> tuple:
    """A ``replay_events`` row (dossier_code first) as the stream's compact event
    (streams.core.compact / streams.eviction.compact_from_row: the same tuple, checked
    event by event in tests/integration/test_replay.py)."""
    from rules.lifecycle import FLAG_DIGITISED, FLAG_ERESULT, FLAG_VNEID
    return (r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
            tuple(r[14]) if r[14] else (),
            (FLAG_DIGITISED if r[15] else 0) | (FLAG_ERESULT if r[16] else 0) | (FLAG_VNEID if r[17] else 0),
            int(r[18]))


def fold_chunk(logic, rows: list, now: datetime) -> tuple[list[list], int]:
    """``dossier_state`` rows of a chunk's events (ordered by dossier): each dossier's events
    merged and folded as the worker does (``streams.core.merge``, ``DossierLogic.state``).
    Returns (rows, dossiers)."""
    from streams.core import merge
    out: list[list] = []
    state = logic.state
    code = None
    events: list = []
    for r in rows:
        if r[0] != code:
            if events:
                out.append(state(code, merge(None, events)[0], now, now).row)
            code, events = r[0], []
        events.append(_compact(r))
    if events:
        out.append(state(code, merge(None, events)[0], now, now).row)
    return out, len(out)


# ----------------------------------------------------------------------------- progress

class Progress:
    """The bar on stderr: events done / total, rate, ETA (tqdm). ``None`` output: silent."""

    def __init__(self, enabled: bool | None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.bar: Any = None

    def note(self, text: str) -> None:
        if self.enabled:
            if self.bar is not None:
                self.bar.write(text, file=sys.stderr)
            else:
                print(text, file=sys.stderr, flush=True)

    def start(self, total: int, done: int) -> None:
        if self.enabled:
            from tqdm import tqdm
            self.bar = tqdm(total=total, initial=done, unit="ev", unit_scale=True, desc="replay", file=sys.stderr,
                            dynamic_ncols=True, mininterval=0.5, smoothing=0.1,
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} events "
                                       "[{elapsed}<{remaining}, {rate_fmt}]")

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


# ----------------------------------------------------------------------------- the replay

class Replay:
    """One replay database and its recorded progress."""

    def __init__(self, settings: Settings, client, live: str, database: str, log: Callable[[str], None]):
        self.settings, self.client, self.live, self.db, self.log = settings, client, live, database, log

    # --- bookkeeping in the replay database itself
    def create_bookkeeping(self) -> None:
        c, db = self.client, q(self.db)
        c.command(f"CREATE TABLE IF NOT EXISTS {db}.{META_TABLE} (source String, live String, tables Array(String), "
                  "batch UInt64, now_ms Int64, started_at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY tuple()")
        c.command(f"CREATE TABLE IF NOT EXISTS {db}.{PROGRESS_TABLE} (step String, item String, n UInt64, "
                  "info String, done_at DateTime64(3, 'UTC') DEFAULT now64(3)) ENGINE = MergeTree ORDER BY (step, item)")

    def meta(self) -> dict | None:
        res = self.client.query(f"SELECT source, live, tables, batch, now_ms, started_at FROM {q(self.db)}.{META_TABLE}")
        if not res.result_rows:
            return None
        return dict(zip(res.column_names, res.result_rows[0]))

    def done(self) -> dict[tuple[str, str], tuple[int, str]]:
        return {(s, i): (int(n), info) for s, i, n, info in self.client.query(
            f"SELECT step, item, n, info FROM {q(self.db)}.{PROGRESS_TABLE}").result_rows}

    def record(self, step: str, item: str = "", n: int = 0, info: str = "") -> None:
        self.client.insert(f"{q(self.db)}.{PROGRESS_TABLE}", [[step, item, n, info]],
                           column_names=["step", "item", "n", "info"])


def _params(settings) -> dict:
    from sinks.migrate import params_from_settings
    return params_from_settings(settings)


def _check_tables(requested: list[str] | None, available: Iterable[str]) -> list[str]:
    avail = sorted(available)
    if not requested:
        return avail
    unknown = [t for t in requested if t not in avail]
    if unknown:
        raise ReplayError(f"unknown table(s) {', '.join(unknown)}: the tables a replay rebuilds are {', '.join(avail)}")
    return [t for t in avail if t in set(requested)]


def replay(settings: Settings, *, tables: list[str] | None = None, source_db: str | None = None,
           batch: int = DEFAULT_BATCH, resume: bool = False, keep_old: bool = False, swap: bool = True,
           progress: bool | None = None, log: Callable[[str], None] | None = None) -> ReplayResult:
    """Rebuild ``tables`` (default: every table) of the settings' database from ``source_db``
    (default: the same database) into a fresh database, then swap them in (``swap``).
    ``resume``: continue the newest unfinished replay of this database instead."""
    from sinks.client import database_of, get_client
    from sinks.migrate import Target, migrate

    if batch < 1:
        raise ReplayError(f"--batch must be at least 1, got {batch}")
    t_start = time.monotonic()
    bar = Progress(progress)
    say = log or bar.note
    live = database_of(settings)
    client = get_client(settings, database="")
    try:
        # --- the replay database: a new one, or the unfinished one to resume
        unfinished = []
        for name in replay_databases(client, live):
            r = Replay(settings, client, live, name, say)
            if META_TABLE in base_tables(client, name) and ("swap", "done") not in r.done():
                unfinished.append(name)
        if resume:
            if not unfinished:
                raise ReplayError(f"nothing to resume: no unfinished replay of database {live} "
                                  f"(replay databases: {', '.join(replay_databases(client, live)) or 'none'})")
            rp = Replay(settings, client, live, unfinished[-1], say)
            meta = rp.meta()
            if meta is None:       # killed before its meta row: it had done nothing yet
                raise ReplayError(f"{rp.db} was left before it started; drop it (DROP DATABASE {rp.db}) and run again")
            for name, given, stored in (("--tables", tables, list(meta["tables"])),
                                        ("--source-db", source_db, meta["source"])):
                if given is not None and ((sorted(given) != sorted(stored)) if isinstance(given, list)
                                          else given != stored):
                    raise ReplayError(f"--resume continues {rp.db} with {name} {stored}, not {given}")
            source, tables, batch = meta["source"], list(meta["tables"]), int(meta["batch"])
            now = datetime.fromtimestamp(meta["now_ms"] / 1000, UTC)
            say(f"resuming {rp.db} (source {source}, tables {', '.join(tables)})")
        else:
            if unfinished:
                raise ReplayError(f"an unfinished replay of {live} exists: {unfinished[-1]}; continue it with "
                                  f"--resume, or drop it (DROP DATABASE {unfinished[-1]})")
            source = source_db or live
            if not _one(client, "SELECT count() FROM system.databases WHERE name = {n:String}", n=source):
                raise ReplayError(f"source database {source} does not exist")
            src_tables = base_tables(client, source)
            if "dossier_events" not in src_tables:
                raise ReplayError(f"source database {source} has no dossier_events table: not a motcua-pulse database")
            # the live database at the current schema (what every worker's start does), so
            # the fresh one matches it table for table
            migrate(client, Target(live), _params(settings), log=None)
            rebuildable = [t for t in base_tables(client, live) if t not in NOT_REBUILT]
            tables = _check_tables(tables, rebuildable)
            now = datetime.fromtimestamp(int(time.time() * 1000) / 1000, UTC)   # whole ms: stored, resumed
            name = f"{live}{REPLAY_MARK}{now.strftime('%Y%m%d%H%M%S')}{now.microsecond // 1000:03d}"
            rp = Replay(settings, client, live, name, say)
            # tables only: the board aggregates that read the rebuilt tables are the live
            # database's (EXCHANGE TABLES puts the new tables under them). Created here too,
            # their first refresh ran over tables being filled and was cancelled by the stop
            # that followed, and chDB gave the cancellation to the next statement (seen in CI:
            # "Refresh for view ...agg_dossier_daily cancelled" on a progress-row insert).
            migrate(client, Target(name), _params(settings), log=None, views=[])
            rp.create_bookkeeping()
            client.insert(f"{q(name)}.{META_TABLE}",
                          [[source, live, tables, batch, int(now.timestamp() * 1000), server_now(client)]],
                          column_names=["source", "live", "tables", "batch", "now_ms", "started_at"])
            say(f"replay of {', '.join(tables)} from {source} into {name}")
        _stop_aggregates(client, rp.db)

        done = rp.done()
        copied = _copy_history(client, rp, source, [t for t in tables if t not in DERIVED], done)
        events = dossiers = 0
        t_fold = time.monotonic()
        if "dossier_state" in tables:
            events, dossiers = _derive_state(settings, client, rp, source, batch, now, rp.done(), bar)
        fold_seconds = time.monotonic() - t_fold
        swapped = False
        if swap:
            meta = rp.meta()
            assert meta is not None
            _swap(client, rp, tables, now, meta["started_at"], done)
            swapped = True
            if not keep_old:
                client.command(f"DROP DATABASE IF EXISTS {q(rp.db)} SYNC")
                say(f"swapped in; old tables dropped with {rp.db}")
            else:
                say(f"swapped in; the old tables are kept in {rp.db}")
        return ReplayResult(database=rp.db, live=live, tables=tables, events=events, dossiers=dossiers,
                            seconds=time.monotonic() - t_start, fold_seconds=fold_seconds, swapped=swapped,
                            resumed=resume, copied=copied)
    finally:
        bar.close()
        client.close()


def _stop_aggregates(client, database: str) -> None:
    """The replay database's refreshable aggregates would recompute every minute over tables
    being filled, for no reader: stopped (the live database's are refreshed after the swap)."""
    from sinks.migrate import BOARD_AGGREGATES
    present = {r[0] for r in client.query("SELECT name FROM system.tables WHERE database = {db:String}",
                                          parameters={"db": database}).result_rows}
    for v in BOARD_AGGREGATES:
        if v in present:
            client.command(f"SYSTEM STOP VIEW {q(database)}.{q(v)}")


def _copy_history(client, rp: Replay, source: str, tables: list[str], done: dict) -> dict[str, int]:
    """History tables copied as readers see them (FINAL), by ClickHouse; a copy cut short by a
    kill is started again from an empty table."""
    src_tables = base_tables(client, source)
    out = {}
    for t in tables:
        if ("copy", t) in done:
            out[t] = done[("copy", t)][0]
            continue
        cols = columns_of(client, rp.db, t)
        client.command(f"TRUNCATE TABLE {q(rp.db)}.{q(t)}")
        if t in src_tables:
            have = set(columns_of(client, source, t))
            use = [c for c in cols if c in have]       # a column the source lacks gets its default
            names = ", ".join(q(c) for c in use)
            final = " FINAL" if "Replacing" in src_tables[t] else ""
            client.command(f"INSERT INTO {q(rp.db)}.{q(t)} ({names}) SELECT {names} FROM {q(source)}.{q(t)}{final}")
        n = int(_one(client, f"SELECT count() FROM {q(rp.db)}.{q(t)}") or 0)
        rp.record("copy", t, n)
        out[t] = n
        rp.log(f"copied {t}: {n} rows")
    return out


def _chunks(client, db: str, batch: int) -> list[tuple[str, str, int]]:
    """(after, last, events) of each chunk: the dossiers with code in (after, last], about
    ``batch`` events, never a dossier cut in two. Deterministic for the same events."""
    rows = client.query(f"""
        SELECT max(dossier_code), sum(n) FROM (
            SELECT dossier_code, n, sum(n) OVER (ORDER BY dossier_code ROWS UNBOUNDED PRECEDING) - n AS before
            FROM (SELECT dossier_code, count() AS n FROM {q(db)}.{EVENTS_TABLE} GROUP BY dossier_code))
        GROUP BY intDiv(before, {int(batch)}) ORDER BY 1""").result_rows
    out, after = [], ""
    for last, n in rows:
        out.append((after, last, int(n)))
        after = last
    return out


def reference_in_force(settings):
    """The catalogue the workers judge with now (an imported one, else the bundled set):
    the replay folds every dossier with it, as a worker restarted now would. A dossier
    judged live under an older catalogue version (a procedure's legal time since changed)
    gets today's judgement: a replay is how a corrected catalogue reaches the past."""
    from streams.catalogue import initial
    return initial(settings)[1]


def _derive_state(settings, client, rp: Replay, source: str, batch: int, now: datetime, done: dict,
                  bar: Progress) -> tuple[int, int]:
    """dossier_state from the source's events, chunk by chunk (module docstring, step 3)."""
    from sinks.rows import DOSSIER_STATE_COLUMNS
    from streams.core import DossierLogic

    db = q(rp.db)
    if ("sort", "") not in done:
        client.command(f"DROP TABLE IF EXISTS {db}.{EVENTS_TABLE} SYNC")
        # from the copy made a step earlier when there is one (already FINAL: one merge less)
        select = (_EVENTS_SELECT.format(src=db).replace(" FINAL", "") if ("copy", "dossier_events") in done
                  else _EVENTS_SELECT.format(src=q(source)))
        client.command(f"CREATE TABLE {db}.{EVENTS_TABLE} ENGINE = MergeTree ORDER BY (dossier_code, event_ms, event_id) "
                       f"AS {select}")
        client.command(f"TRUNCATE TABLE {db}.dossier_state")   # rows of chunks folded before a re-sort
        n = int(_one(client, f"SELECT count() FROM {db}.{EVENTS_TABLE}") or 0)
        rp.record("sort", "", n)
        done = rp.done()
    chunks = _chunks(client, rp.db, batch)
    total = sum(c[2] for c in chunks)
    finished = {item for (step, item) in done if step == "fold"}
    already = sum(done[("fold", last)][0] for _, last, _ in chunks if last in finished)
    todo = [c for c in chunks if c[1] not in finished]
    bar.start(total, already)
    logic = DossierLogic.from_settings(settings, reference=reference_in_force(settings))
    sel = (f"SELECT * FROM {db}.{EVENTS_TABLE} WHERE dossier_code > {{a:String}} AND dossier_code <= {{b:String}} "
           "ORDER BY dossier_code, event_ms, event_id")
    from sinks.client import get_client

    # Reads run one chunk ahead and inserts one behind, each on its own connection in a
    # thread, so the fold (Python, this thread) overlaps ClickHouse's work.
    reader, writer = get_client(settings, database=""), get_client(settings, database="")
    dossiers = 0
    try:
        with ThreadPoolExecutor(1) as rpool, ThreadPoolExecutor(1) as wpool:
            def read(c):
                return reader.query(sel, parameters={"a": c[0], "b": c[1]}).result_rows

            def write(c, rows, n_dossiers):
                if rows:
                    writer.insert(f"{db}.dossier_state", rows, column_names=DOSSIER_STATE_COLUMNS)
                rp_w = Replay(settings, writer, rp.live, rp.db, rp.log)
                rp_w.record("fold", c[1], c[2], str(n_dossiers))
                return c[2]

            pending = rpool.submit(read, todo[0]) if todo else None
            last_write = None
            for i, c in enumerate(todo):
                assert pending is not None
                rows = pending.result()
                pending = rpool.submit(read, todo[i + 1]) if i + 1 < len(todo) else None
                state_rows, n = fold_chunk(logic, rows, now)
                del rows
                dossiers += n
                if last_write is not None:
                    bar.update(last_write.result())
                last_write = wpool.submit(write, c, state_rows, n)
            if last_write is not None:
                bar.update(last_write.result())
    finally:
        reader.close()
        writer.close()
    return total, dossiers


def server_now(client) -> datetime:
    """The ClickHouse server's clock (it sets inserted_at): the marks of the tail copies."""
    return datetime.fromtimestamp(int(_one(client, "SELECT toUnixTimestamp64Milli(now64(3))")) / 1000, UTC)


def _swap(client, rp: Replay, tables: list[str], now: datetime, started: datetime, done: dict) -> None:
    """Step 4 of the module docstring. A kill anywhere in it resumes correctly: the table
    UUIDs recorded before the exchange tell whether it happened."""
    from sinks.migrate import refresh_board_aggregates
    live, db = rp.live, rp.db
    if ("swap", "exchanged") not in done:
        if ("swap", "begin") not in done:
            client.command(f"DROP TABLE IF EXISTS {q(db)}.{EVENTS_TABLE} SYNC")
            for t in tables:     # same columns, same order, or the views would read the wrong ones
                a, b = columns_of(client, live, t), columns_of(client, db, t)
                if a != b:
                    raise ReplayError(f"table {t}: live columns {a} differ from the replayed {b}; "
                                      f"migrate {live} first")
            mark = server_now(client)
            _copy_tail(rp, live, db, tables, started, now)
            rp.record("swap", "begin", info=repr(sorted(table_uuids(client, db, tables).items())) + "|" +
                      mark.isoformat())
            done = rp.done()
        info = done[("swap", "begin")][1]
        new_uuids = dict(eval(info.rsplit("|", 1)[0]))  # noqa: S307 - our own repr of str pairs
        mark = datetime.fromisoformat(info.rsplit("|", 1)[1])
        if table_uuids(client, live, tables) != new_uuids:    # not exchanged yet
            pairs = ", ".join(f"{q(live)}.{q(t)} AND {q(db)}.{q(t)}" for t in tables)
            client.command(f"EXCHANGE TABLES {pairs}")
        rp.record("swap", "exchanged", info=mark.isoformat())
        done = rp.done()
    mark = datetime.fromisoformat(done[("swap", "exchanged")][1])
    # what the live pipeline wrote into the old tables between the first copy and the exchange
    _copy_tail(rp, db, live, tables, mark, now)
    # Twice: a scheduled refresh already running over the old tables is what a refresh
    # request waits for (the board showed the old numbers for up to a minute after the swap);
    # the second one starts after the exchange.
    refresh_board_aggregates(client, live)
    refresh_board_aggregates(client, live)
    rp.record("swap", "done")


def _copy_tail(rp: Replay, src: str, dst: str, tables: list[str], mark: datetime, now: datetime) -> None:
    """What the live pipeline wrote into ``src`` since ``mark`` (server clock), into ``dst``: raw and
    history rows copied (idempotent: ReplacingMergeTree), and the dossiers those new events
    belong to folded again from all their events (``dossier_state`` is never copied: a row
    written meanwhile by anything but the worker, a wrong one included, must not survive)."""
    client = rp.client
    since = mark.replace(tzinfo=UTC) if mark.tzinfo is None else mark
    for t in tables:
        col = TAIL_COLUMNS.get(t)
        if col is None or t in DERIVED:
            continue
        names = ", ".join(q(c) for c in columns_of(client, dst, t))
        client.command(f"INSERT INTO {q(dst)}.{q(t)} ({names}) SELECT {names} FROM {q(src)}.{q(t)} "
                       f"WHERE {q(col)} >= fromUnixTimestamp64Milli({int((since - TAIL_MARGIN).timestamp() * 1000)})")
    if "dossier_state" not in tables:
        return
    codes = [r[0] for r in client.query(
        f"SELECT DISTINCT dossier_code FROM {q(src)}.dossier_events WHERE inserted_at >= "
        f"fromUnixTimestamp64Milli({int((since - REFOLD_MARGIN).timestamp() * 1000)})").result_rows]
    if not codes:
        return
    from sinks.rows import DOSSIER_STATE_COLUMNS
    from streams.core import DossierLogic
    logic = DossierLogic.from_settings(rp.settings, reference=reference_in_force(rp.settings))
    # every event of those dossiers: the live database's dossier_events holds them all
    # (before the exchange: the source; after: the new table, its tail copied just above)
    rows = client.query(_EVENTS_SELECT.format(src=q(rp.live)) + "WHERE dossier_code IN {codes:Array(String)} "
                        "ORDER BY dossier_code, event_ms, event_id", parameters={"codes": codes}).result_rows
    state_rows, n = fold_chunk(logic, rows, now)
    if state_rows:
        client.insert(f"{q(dst)}.dossier_state", state_rows, column_names=DOSSIER_STATE_COLUMNS)
    rp.log(f"{n} dossiers with events written during the replay folded again")


# ----------------------------------------------------------------------------- CLI

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pulse replay", description=__doc__.split("\n")[0])
    p.add_argument("--tables", help="comma-separated tables to rebuild (default: all)")
    p.add_argument("--source-db", help="database to replay from (default: the one in CLICKHOUSE_URL)")
    p.add_argument("--batch", type=int, default=None, help=f"events per chunk (default {DEFAULT_BATCH})")
    p.add_argument("--resume", action="store_true", help="continue the unfinished replay of this database")
    p.add_argument("--keep-old", action="store_true", help="keep the old tables (in the replay database) after the swap")
    p.add_argument("--no-swap", action="store_true", help="build the replay database, do not swap it in")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    tables = [t.strip() for t in a.tables.split(",") if t.strip()] if a.tables is not None else None
    if a.tables is not None and not tables:
        p.error("--tables: no table named")
    if a.batch is not None and a.batch < 1:
        p.error(f"--batch must be at least 1, got {a.batch}")
    settings = Settings.from_env()
    try:
        r = replay(settings, tables=tables, source_db=a.source_db,
                   batch=a.batch if a.batch is not None else DEFAULT_BATCH, resume=a.resume,
                   keep_old=a.keep_old, swap=not a.no_swap, progress=False if a.quiet else True)
    except ReplayError as e:
        print(f"pulse replay: {e}", file=sys.stderr)
        return 2
    print(f"replay: {r.events} events ({r.dossiers} dossiers) in {r.seconds:.1f} s, {r.rate:,.0f} ev/s; "
          f"tables {', '.join(r.tables)}; {'swapped into ' + r.live if r.swapped else 'built in ' + r.database}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
