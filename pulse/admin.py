"""The pipeline's topics (declared in pulse.topics) on the cluster, with kafka-python's admin client.

``create_topics``: create the missing ones (what the local stack and the tests call).
``sync_topics`` (``pulse topics``): create the missing ones, compare the others with the
settings, apply the safe changes (retention, ``min.insync.replicas``, more partitions of an
unkeyed topic) and report the rest, above all a keyed topic whose partition count differs:
that one is never changed in place (docs/KAFKA.md: a new topic prefix and ``pulse replay``).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import TopicAlreadyExistsError

from pulse.config import Settings
from pulse.kafka_security import kafka_python_kwargs
from pulse.topics import ALL_TOPICS, TopicSpec

# configs pulse topics sets on an existing topic: changing them loses nothing already written
# (retention.ms only shortens or lengthens how long it is kept, from now on)
SAFE_CONFIGS = ("retention.ms", "min.insync.replicas")


class TopicsError(RuntimeError):
    """The cluster cannot have the topics the settings ask for; the message says why and what to do."""


@dataclass
class TopicReport:
    """One topic: what the settings ask for, what was done, what differs and was left alone."""
    name: str
    spec: TopicSpec
    partitions: int
    replication: int
    created: bool = False
    changes: list[str] = field(default_factory=list)     # applied (or, with apply=False, to apply)
    problems: list[str] = field(default_factory=list)    # differences pulse topics does not change

    @property
    def ok(self) -> bool:
        return not self.problems


def setting_env(field_name: str) -> str:
    """The environment variable of a Settings field (for messages that say what to set)."""
    for f in fields(Settings):
        if f.name == field_name:
            return str(f.metadata.get("env", field_name))
    return field_name


def _admin(settings: Settings) -> KafkaAdminClient:
    return KafkaAdminClient(**kafka_python_kwargs(settings), client_id="pulse-admin", request_timeout_ms=30000)


def live_brokers(admin: KafkaAdminClient) -> list[int]:
    """Ids of the brokers the cluster has registered and not fenced (a dead one is fenced
    once its heartbeats stop)."""
    return sorted(b["broker_id"] for b in admin.describe_cluster()["brokers"] if not b.get("is_fenced"))


def check_replication(settings: Settings, admin: KafkaAdminClient) -> None:
    """A replication factor the cluster cannot give fails here, saying so (the broker would
    refuse each topic with InvalidReplicationFactor; Faust's worker would die at start)."""
    rf = settings.kafka_replication_factor
    brokers = live_brokers(admin)
    if rf > len(brokers):
        raise TopicsError(
            f"KAFKA_REPLICATION_FACTOR={rf} but the cluster at {settings.kafka_bootstrap} has "
            f"{len(brokers)} live broker(s) {brokers}: a topic needs as many brokers as replicas. "
            "Start the missing brokers, or for a single-broker stack set KAFKA_REPLICATION_FACTOR=1 "
            "and KAFKA_MIN_INSYNC_REPLICAS=1.")


def _new_topic(settings: Settings, spec: TopicSpec) -> NewTopic:
    return NewTopic(settings.topic(spec.name), num_partitions=spec.partition_count(settings),
                    replication_factor=settings.kafka_replication_factor, topic_configs=spec.config(settings))


def _create(admin: KafkaAdminClient, new: list[NewTopic]) -> None:
    if not new:
        return
    try:
        admin.create_topics(new, timeout_ms=30000)
    except TopicAlreadyExistsError:
        pass  # created concurrently by another process: that is fine


def create_topics(settings: Settings, specs: tuple[TopicSpec, ...] = ALL_TOPICS) -> list[str]:
    """Create missing topics; return the names created. Existing topics are left as they are
    (``sync_topics`` compares them)."""
    admin = _admin(settings)
    try:
        existing = set(admin.list_topics())
        new = [_new_topic(settings, s) for s in specs if settings.topic(s.name) not in existing]
        if new:
            check_replication(settings, admin)
            _create(admin, new)
        return [t.name for t in new]
    finally:
        admin.close()


def _regrow_message(name: str, spec: TopicSpec, have: int, want: int) -> str:
    var = setting_env(spec.partitions) if isinstance(spec.partitions, str) else "its TopicSpec"
    why = ("a keyed topic is never repartitioned in place: its keys would hash to other partitions, "
           "so a key's later messages would land apart from its earlier ones (a dossier's events out "
           "of order, its state split between workers; a kiosk's resubmits past the rating dedup)")
    how = ("To grow it: create new topics under a new PULSE_TOPIC_PREFIX with the new count "
           "(`pulse topics`), move the producers there, let the worker drain the old ones, start it "
           "on the new prefix with a new FAUST_APP_ID, and rebuild ClickHouse's state from its "
           "history with `pulse replay` (docs/KAFKA.md, 'Growing a keyed topic').")
    if have > want:
        return (f"{name} has {have} partitions, the settings ask for {want} ({var}): partitions "
                f"cannot be removed, and the worker must know the real count; set {var}={have}. {how}")
    return f"{name} has {have} partitions, the settings ask for {want} ({var}): refused, {why}. {how}"


def _describe(admin: KafkaAdminClient, names: list[str]) -> dict[str, dict]:
    return {t["name"]: t for t in admin.describe_topics(names)}


def _configs(admin: KafkaAdminClient, names: list[str], keys: tuple[str, ...]) -> dict[str, dict[str, str]]:
    res = [ConfigResource(ConfigResourceType.TOPIC, n, configs={k: None for k in keys}) for n in names]
    got = admin.describe_configs(res, config_filter="all").get("topic", {})
    return {n: {k: v.get("value") for k, v in got.get(n, {}).items()} for n in names}


def _wait_partitions(admin: KafkaAdminClient, want: dict[str, int], timeout: float = 15.0) -> None:
    # The controller has the new partitions when it answers; the brokers' metadata follows a
    # moment later, and a second `pulse topics` right away would read the old count.
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = _describe(admin, list(want))
        if all(len(got[n]["partitions"]) >= k for n, k in want.items()):
            return
        time.sleep(0.2)


def sync_topics(settings: Settings, specs: tuple[TopicSpec, ...] = ALL_TOPICS,
                apply: bool = True) -> list[TopicReport]:
    """Bring the cluster's topics in line with the settings, as far as that is safe.

    Missing topics are created; on existing ones retention and ``min.insync.replicas`` are
    set and an unkeyed topic gets more partitions if the spec asks for more. Everything else
    that differs (a keyed topic's partition count, the replication factor, the cleanup
    policy) is only reported in ``problems``. ``apply=False``: report what would be done."""
    admin = _admin(settings)
    try:
        check_replication(settings, admin)
        existing = set(admin.list_topics())
        reports = [TopicReport(settings.topic(s.name), s, s.partition_count(settings),
                               settings.kafka_replication_factor) for s in specs]
        missing = [r for r in reports if r.name not in existing]
        for r in missing:
            r.created = True
        if apply:
            _create(admin, [_new_topic(settings, r.spec) for r in missing])
        present = [r for r in reports if r.name in existing]
        if not present:
            return reports
        described = _describe(admin, [r.name for r in present])
        keys = ("retention.ms", "min.insync.replicas", "cleanup.policy")
        configs = _configs(admin, [r.name for r in present], keys)
        alter: list[ConfigResource] = []
        grow: dict[str, int] = {}
        for r in present:
            parts = described[r.name]["partitions"]
            have = len(parts)
            if have != r.partitions:
                if r.spec.keyed or have > r.partitions:
                    r.problems.append(_regrow_message(r.name, r.spec, have, r.partitions))
                else:
                    grow[r.name] = r.partitions
                    r.changes.append(f"partitions {have} -> {r.partitions}")
            rf = min(len(p["replica_nodes"]) for p in parts)
            if rf != r.replication:
                r.problems.append(
                    f"{r.name} has replication factor {rf}, the settings ask for {r.replication} "
                    "(KAFKA_REPLICATION_FACTOR): not changed here; a replica reassignment "
                    "(kafka-reassign-partitions.sh) changes it without touching the data")
            want = r.spec.config(settings)
            have_cfg = configs[r.name]
            changed = {k: want[k] for k in SAFE_CONFIGS if k in want and have_cfg.get(k) != want[k]}
            for k, v in changed.items():
                r.changes.append(f"{k} {have_cfg.get(k)} -> {v}")
            if changed:
                alter.append(ConfigResource(ConfigResourceType.TOPIC, r.name, configs=changed))
            policy = want.get("cleanup.policy", "delete")
            if have_cfg.get("cleanup.policy") != policy:
                r.problems.append(f"{r.name} has cleanup.policy={have_cfg.get('cleanup.policy')}, the spec says "
                                  f"{policy}: not changed here (it changes what the topic keeps)")
        if apply and alter:
            admin.alter_configs(alter)
        if apply and grow:
            admin.create_partitions(grow, timeout_ms=30000)
            _wait_partitions(admin, grow)
        return reports
    finally:
        admin.close()


def consumer_lag(settings: Settings, group_id: str) -> dict[str, int]:
    """Messages not yet consumed by ``group_id``, per topic (summed over partitions)."""
    from kafka import KafkaConsumer
    admin = KafkaAdminClient(**kafka_python_kwargs(settings), request_timeout_ms=10000)
    try:
        committed = admin.list_group_offsets(group_id).get(group_id, {})
    finally:
        admin.close()
    if not committed:
        return {}
    consumer = KafkaConsumer(**kafka_python_kwargs(settings))
    try:
        ends = consumer.end_offsets(list(committed))
    finally:
        consumer.close()
    lag: dict[str, int] = {}
    for tp, meta in committed.items():
        lag[tp.topic] = lag.get(tp.topic, 0) + max(0, ends.get(tp, 0) - meta.offset)
    return lag
