"""``pulse``: the operator's command line.

    pulse topics            create the pipeline's topics (idempotent) and list them
    pulse lag               consumer lag of the Faust worker per topic
    pulse up|down|status    the local stack (same as make up / down / status)
    pulse index ...         the national service index (Decision 766) from export files
                            (pulse index --help)
    pulse index import-supplied FILE
                            supplied indicator values for the live index (into ClickHouse)
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
    p = argparse.ArgumentParser(prog="pulse", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=["topics", "lag", "up", "down", "status"])
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
        from pulse.admin import create_topics
        from pulse.topics import ALL_TOPICS
        created = set(create_topics(s))
        for spec in ALL_TOPICS:
            name = s.topic(spec.name)
            print(f"{name:<32} {spec.partitions:>2} partitions  "
                  f"{'compacted' if spec.compacted else 'retention ' + str(spec.retention_ms // 86_400_000) + ' d':<16}"
                  f"{'created' if name in created else 'exists'}")
        return 0
    if a.command == "lag":
        from pulse.admin import consumer_lag
        for topic, n in sorted(consumer_lag(s, s.faust_app_id).items()):
            print(f"{topic:<32} {n}")
        return 0
    from deploy.local.stack import main as stack_main
    return stack_main([a.command])


if __name__ == "__main__":
    sys.exit(main())
