"""Re-drive dead-lettered events after a fix (e.g. a unit added to the reference data).

    python -m expectations.redrive --rule dossier.unit_known --since 2026-11-01 --dry-run
    python -m expectations.redrive --rule 'dossier.*' --source motcua-bn --kind dossier --limit 1000
    python -m expectations.redrive --unknown-codes     # after `pulse reference import`

1. reads dead letters not yet re-driven from ClickHouse (``dead_letters FINAL`` where
   ``redriven_at IS NULL``), filtered by rule (exact, or a prefix ending in ``*``),
   received time, source system and kind;
2. re-checks each with the CURRENT rules (suites + reference data + settings);
3. re-publishes those that now pass to their input topic with their ORIGINAL bytes
   (event ids unchanged, so the pipeline's idempotency keeps them from counting twice),
   keyed like the front door does (dossier code / kiosk id), with acks=all, and flushes;
4. only then marks them re-driven (a newer row version with ``redriven_at`` set).

Running it twice re-publishes nothing new: marked rows no longer match. A crash between
3 and 4 re-publishes the same bytes on the next run, which downstream dedup absorbs.
The worker must run with the same fix (reload or restart it after changing reference
data), or the re-driven events are dead-lettered again (under new offsets).

``--unknown-codes`` takes only the dead letters whose every failed rule is an unknown code
(UNKNOWN_CODE_RULES: unit, procedure, the procedure's field); the reference data they are
re-checked with is the catalogue in force (the newest ``pulse reference import`` in
ClickHouse, else the bundled set), which running workers load by themselves within
``reference_poll_interval_s`` (streams.catalogue). Run too early, a re-driven event is
dead-lettered again under its new offset, and the next run re-drives that one.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

from .deadletter import DeadLetter

# the rules an event fails only because the reference catalogue does not know its codes yet
UNKNOWN_CODE_RULES = ("dossier.unit_known", "dossier.procedure_known", "dossier.procedure_field_matches",
                      "rating.unit_known", "rating.procedure_known")

SELECT_COLUMNS = ("dead_letter_id", "topic", "partition", "offset", "source_system", "kind", "rules",
                  "reasons", "raw", "received_at", "redriven_at", "updated_at")


@dataclass
class RedriveSummary:
    scanned: int = 0
    republished: int = 0
    still_failing: int = 0
    skipped: int = 0                      # kind unknown: no contract to re-check against
    dry_run: bool = False
    still_failing_rules: Counter = field(default_factory=Counter)
    republished_ids: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        verb = "would re-publish" if self.dry_run else "re-published"
        out = [f"scanned {self.scanned} dead letters (not yet re-driven)",
               f"{verb} {self.republished}", f"still failing {self.still_failing}",
               f"skipped (unknown kind) {self.skipped}"]
        for rule, n in self.still_failing_rules.most_common():
            out.append(f"  still failing {rule}: {n}")
        return out


def build_query(database: str, rule: str | None, since: datetime | None, source: str | None,
                kind: str | None, limit: int | None, unknown_codes: bool = False) -> tuple[str, dict]:
    where = ["redriven_at IS NULL"]
    params: dict[str, Any] = {}
    if unknown_codes:
        listed = ", ".join(f"'{r}'" for r in UNKNOWN_CODE_RULES)
        where.append(f"notEmpty(rules) AND arrayAll(r -> r IN ({listed}), rules)")
    if rule:
        if rule.endswith("*"):
            where.append("arrayExists(r -> startsWith(r, {rule:String}), rules)")
            params["rule"] = rule[:-1]
        else:
            where.append("has(rules, {rule:String})")
            params["rule"] = rule
    if since:
        where.append("received_at >= toDateTime64({since:String}, 3, 'UTC')")
        params["since"] = since.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    if source:
        where.append("source_system = {source:String}")
        params["source"] = source
    if kind:
        where.append("toString(kind) = {kind:String}")
        params["kind"] = kind
    sql = (f"SELECT dead_letter_id, topic, partition, offset, source_system, toString(kind) AS kind, rules, "
           f"reasons, raw, received_at, redriven_at, updated_at FROM {database}.dead_letters FINAL "
           f"WHERE {' AND '.join(where)} ORDER BY received_at, topic, partition, offset")
    if limit:
        sql += f" LIMIT {int(limit)}"
    return sql, params


def read_dead_letters(client, database: str, **filters) -> list[DeadLetter]:
    sql, params = build_query(database, **filters)
    res = client.query(sql, parameters=params, column_formats={"raw": "bytes"})
    return [DeadLetter.from_row(dict(zip(res.column_names, row))) for row in res.result_rows]


def mark_redriven(client, database: str, letters: Iterable[DeadLetter], at: datetime) -> int:
    rows = [dl.redriven(at).to_row() for dl in letters]
    if not rows:
        return 0
    cols = list(DeadLetter.ROW_COLUMNS)
    client.insert(f"{database}.dead_letters", [[r[c] for c in cols] for r in rows], column_names=cols)
    return len(rows)


def _key_of(event: Any) -> bytes | None:
    key = getattr(event, "dossier_code", None) if hasattr(event, "event_id") else getattr(event, "kiosk_id", None)
    return key.encode("utf-8") if key else None


def redrive(letters: list[DeadLetter], checker, producer, *, client=None, database: str = "motcua",
            dry_run: bool = False, now: datetime | None = None) -> RedriveSummary:
    """Core of the CLI (client/producer injectable for tests).

    ``producer``: ``send(topic, value=bytes, key=bytes)`` returning a future with ``get()``,
    and ``flush()`` (kafka-python's KafkaProducer with acks='all').
    """
    now = now or datetime.now(timezone.utc)
    summary = RedriveSummary(dry_run=dry_run)
    passing: list[tuple[DeadLetter, Any]] = []
    for dl in letters:
        summary.scanned += 1
        if dl.kind == "dossier":
            verdict = checker.check_dossier(dl.raw, now)
        elif dl.kind == "rating":
            verdict = checker.check_rating(dl.raw, now)
        else:
            summary.skipped += 1
            continue
        if verdict.ok:
            passing.append((dl, verdict.event))
        else:
            summary.still_failing += 1
            summary.still_failing_rules.update(set(verdict.rules))
    summary.republished = len(passing)
    summary.republished_ids = [dl.dead_letter_id for dl, _ in passing]
    if dry_run or not passing:
        return summary
    futures = [producer.send(dl.topic, value=dl.raw, key=_key_of(ev)) for dl, ev in passing]
    producer.flush()
    for f in futures:
        f.get(timeout=60)  # raises if the broker did not acknowledge (acks=all)
    if client is not None:
        mark_redriven(client, database, [dl for dl, _ in passing], now)
    return summary


def _parse_since(s: str) -> datetime:
    t = datetime.fromisoformat(s)
    if t.tzinfo is None:
        from zoneinfo import ZoneInfo
        from pulse.config import Settings
        t = t.replace(tzinfo=ZoneInfo(Settings().timezone))
    return t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m expectations.redrive", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--rule", help="only dead letters that failed this rule (exact, or prefix ending in '*', e.g. 'dossier.*')")
    p.add_argument("--since", type=_parse_since, help="only dead letters received at or after this ISO time (local time if no offset)")
    p.add_argument("--source", help="only this source_system")
    p.add_argument("--kind", choices=("dossier", "rating"), help="only dossier events or ratings")
    p.add_argument("--limit", type=int, help="at most this many dead letters")
    p.add_argument("--unknown-codes", action="store_true",
                   help="only dead letters that failed for unknown unit/procedure codes alone (after a reference import)")
    p.add_argument("--dry-run", action="store_true", help="re-check and report; publish and mark nothing")
    args = p.parse_args(argv)

    from pulse.config import Settings
    from sinks.client import get_client, parse_clickhouse_url
    from sinks.reference import current_reference

    from .checks import Checker

    settings = Settings.from_env()
    database = parse_clickhouse_url(settings.clickhouse_url).database
    client = get_client(settings)
    version, reference = current_reference(client)   # the catalogue the workers use (streams.catalogue)
    checker = Checker.from_suites(reference, settings)
    letters = read_dead_letters(client, database, rule=args.rule, since=args.since, source=args.source,
                                kind=args.kind, limit=args.limit, unknown_codes=args.unknown_codes)
    producer = None
    if not args.dry_run:
        from kafka import KafkaProducer

        from pulse.kafka_security import KafkaConnectError, kafka_python_kwargs, preflight
        try:
            preflight(settings)   # a wrong password / CA: a clear error now, not retries (pulse.kafka_security)
        except KafkaConnectError as e:
            print(f"redrive: {e}", file=sys.stderr)
            return 2
        producer = KafkaProducer(**kafka_python_kwargs(settings), acks="all", retries=5,
                                 linger_ms=20, max_in_flight_requests_per_connection=1)
    try:
        summary = redrive(letters, checker, producer, client=client, database=database, dry_run=args.dry_run)
    finally:
        if producer is not None:
            producer.close(timeout=30)
    print(f"reference catalogue version {version}" + (" (the bundled set)" if version == 0 else ""))
    print("\n".join(summary.lines()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
