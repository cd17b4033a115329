"""``pulse``: the operator's command line.

    pulse topics [--dry-run]
                            create missing topics, compare the others with the settings,
                            apply safe changes (retention, min.insync.replicas); exit 1 if a
                            difference is left (a keyed topic is never repartitioned: a new
                            prefix plus `pulse replay`, docs/KAFKA.md), 2 if it cannot run
    pulse lag               consumer lag of the Faust worker per topic
    pulse up|down|status    the local stack (same as make up / down / status)
    pulse index ...         the national service index (Decision 766) from export files
                            (pulse index --help)
    pulse index import-supplied FILE
                            supplied indicator values for the live index (into ClickHouse)
    pulse reference import FILE... [--communes-of P] [--province CODE] [--dry-run]
                            the province's units, procedures and fields from CSV/XLSX exports
                            (docs/REFERENCE.md); running workers pick the new version up
    pulse replay [--tables T,...] [--source-db DB] [--batch N] [--resume] [--keep-old]
                            rebuild ClickHouse from its raw tables into a fresh database, then
                            swap it in (docs/REPLAY.md)
"""
from __future__ import annotations

import argparse
import sys

from pulse.config import Settings


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["index"]:
        from pulse.index import main as index_main
        return index_main(argv[1:])
    if argv[:2] == ["reference", "import"]:
        from pulse.reference_import import main as reference_import_main
        return reference_import_main(argv[2:])
    if argv[:1] == ["replay"]:
        from pulse.replay import main as replay_main
        return replay_main(argv[1:])
    p = argparse.ArgumentParser(prog="pulse", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["topics", "lag", "up", "down", "status"])
    p.add_argument("--dry-run", action="store_true", help="pulse topics: report, change nothing")
    a = p.parse_args(argv)
    s = Settings.from_env()
    if a.command in ("topics", "lag"):
        # A wrong password or CA file: exit 2 with what is wrong (pulse.kafka_security), not
        # kafka-python's "Unable to bootstrap" after 30 s of retries.
        from pulse.kafka_security import KafkaConnectError, preflight
        try:
            preflight(s)
        except KafkaConnectError as e:
            print(f"pulse {a.command}: {e}", file=sys.stderr)
            return 2
    if a.command == "topics":
        return topics_command(s, dry_run=a.dry_run)
    if a.command == "lag":
        from pulse.admin import consumer_lag
        for topic, n in sorted(consumer_lag(s, s.faust_app_id).items()):
            print(f"{topic:<32} {n}")
        return 0
    from deploy.local.stack import main as stack_main
    return stack_main([a.command])


def topics_command(s: Settings, dry_run: bool = False) -> int:
    """`pulse topics`: one line per topic, then each difference left alone and why."""
    from pulse.admin import TopicsError, sync_topics
    try:
        reports = sync_topics(s, apply=not dry_run)
    except TopicsError as e:
        print(f"pulse topics: {e}", file=sys.stderr)
        return 2
    for r in reports:
        kept = "compacted" if r.spec.compacted else f"retention {r.spec.retention_ms // 86_400_000} d"
        if r.created:
            state = "to create" if dry_run else "created"
        elif r.problems:
            state = "DIFFERS (below)"
        elif r.changes:
            state = ("to change: " if dry_run else "changed: ") + "; ".join(r.changes)
        else:
            state = "ok"
        print(f"{r.name:<32} {r.partitions:>3} partitions  rf {r.replication}  {kept:<16}{state}")
    problems = [p for r in reports for p in r.problems]
    for problem in problems:
        print(f"pulse topics: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
