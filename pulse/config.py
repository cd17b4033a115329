"""One configuration object, read from the environment.

Every process of the pipeline (broker tooling, Faust worker, kiosk API, CLI, tests) builds
its settings with ``Settings.from_env()``; nothing else reads ``os.environ`` (Superset's
own ``superset_config.py`` runs in Superset's process and virtualenv, and reads the
variables ``deploy/superset/manage.py`` hands it). Local defaults describe the
single-machine stack started by ``make up``; production overrides them with environment
variables (see deploy/production/README.md).

Each field names its variable (``env("NAME")``) and is converted by its annotation, so a
wrong value fails at start with the variable's name. The worker's tuning knobs are typed
fields of ``WorkerTunables``, set as one JSON object in ``PULSE_TUNABLES``; an unknown key
there is an error, not silently ignored.
"""
from __future__ import annotations

import json
import os
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A variable of the environment has a value its setting cannot take."""


def env(name: str, default: Any = MISSING, *, factory: Any = MISSING) -> Any:
    """A settings field read from the environment variable ``name``."""
    if factory is not MISSING:
        return field(default_factory=factory, metadata={"env": name})
    return field(default=default, metadata={"env": name})


def _convert(kind: Any, raw: str, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        if raw == "":
            return None
        return _convert(args[0], raw, where)
    try:
        if kind is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off", ""):
                return False
            raise ValueError(f"not a boolean: {raw!r}")
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind is Path:
            return Path(raw)
        if kind is str:
            return raw
        if origin is tuple or kind is tuple:
            value = json.loads(raw) if raw.strip().startswith("[") else [x.strip() for x in raw.split(",") if x.strip()]
            (item, *_rest) = typing.get_args(kind) or (Any,)
            return tuple(value if item in (Any, dict) else (_convert(item, str(v), where) for v in value))
        if origin is dict or kind is dict:
            value = json.loads(raw) if raw.strip() else {}
            if not isinstance(value, dict):
                raise ValueError("expected a JSON object")
            return value
    except (ValueError, TypeError) as e:
        raise SettingsError(f"{where}={raw!r}: {e}") from None
    raise SettingsError(f"{where}: no conversion for {kind!r}")


def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


@dataclass(frozen=True)
class WorkerTunables:
    """Tuning knobs of the Faust worker (not domain configuration). ``PULSE_TUNABLES``
    holds a JSON object of any of them; each value says below why it is what it is."""

    overdue_scan_interval_s: float = 1.0      # how often the deadline index is scanned
    metrics_interval_s: float = 5.0           # pipeline_metrics rows
    alert_eval_interval_s: float = 30.0       # share / silence alerts evaluated over ClickHouse
    alert_min_count: int = 10                 # fewer dossiers/ratings in the window: no share alert
    # the national service index (streams.service_index, leader): a month-to-date score moves
    # slowly, the portal itself publishes monthly, and a run is a few full FINAL scans of
    # dossier_state (two per period: it and its previous period): every 5 minutes is fresh
    # enough for a board and cheap on 2 cores
    service_index_interval_s: float = 300.0
    # GX micro-batches (streams.quality.gx_due): a light stream is validated whole every
    # gx_batch_seconds; once gx_batch_rows wait (under load), one run per gx_min_interval_s
    # on the newest gx_batch_rows (a sample). A run costs ~0.3 s of CPU whatever its
    # size (0.32 s for 1,000 rows, 0.37 s for 5,000, 0.42 s for 10,000, measured), so the
    # cadence is what costs: one run per 5 s was 6-11 µs of CPU per event in a two-worker
    # run at 17,600 events/s.
    # An illegal status transition is alerted only if still there this long after it was seen
    # (streams.transitions): a late-syncing unit system sends an event before its
    # predecessor, and the gap heals when the predecessor arrives. 10 minutes covers the
    # sync intervals of the one-stop systems we know (every 1-5 minutes); 0 = alert at once.
    illegal_transition_grace_s: float = 600.0
    # Bounded state (streams.eviction): a dossier closed this long ago, by the stream's clock,
    # leaves the table (tombstone on its changelog) and is read back from ClickHouse if a late
    # event comes. 7 days: late syncs come within hours to a couple of days (nightly
    # re-syncs), and the month-end report reads ClickHouse, not the table. 0 = keep for ever.
    closed_retention_s: float = 7 * 86400.0
    eviction_interval_s: float = 300.0        # how often the table is scanned for closed dossiers
    reference_poll_interval_s: float = 5.0    # how often a worker asks ClickHouse for a newer reference catalogue (streams.catalogue)
    # an eviction scan also runs once this many events were applied since the last (checked every
    # eviction_check_s): the table grows with the events applied (~0.7 KiB each), and a
    # backlog or replay applies 10,000+ per second per worker, 300 s of which is ~2 GiB;
    # 100,000 is ~70 MiB between scans, a scan of ~50,000 dossiers held ~50 ms
    eviction_every_events: int = 100_000
    eviction_check_s: float = 5.0
    gx_batch_rows: int = 10_000
    gx_batch_seconds: float = 10.0
    gx_min_interval_s: float = 30.0
    gx_enabled: bool = True
    # CPU priority of the GX child (os.nice increment). Data-quality reporting is a sample
    # off the hot path: when the machine is saturated it should wait, not the stream. A
    # starved child just runs less often (one run at a time, the newest rows).
    gx_nice: int = 10
    rating_recent_ids: int = 200_000          # bounded recent-id set for the rating counters
    commit_interval_s: float = 1.0
    publish_state: bool = False               # also publish state rows to the compacted dossier-state topic
    stall_exit_s: float = 60.0                # no input this long with lag and idle sinks: exit for a restart (0 = never)
    # prepared batches waiting while one is being finished: the CPU work of the next ones
    # overlaps the ClickHouse insert and broker acks of the current one (bench_pipeline:
    # one worker 13.0k events/s at depth 1, 14.5k at 2, 16.6k at 4, same session); 6
    # covers the sinks' minimum interval below at 20,000 events/s; 8 covers the longer busy
    # interval (1.2 s) only just: a batch waits for that interval, then for the insert
    # (0.1-0.3 s). At 16 the workers no longer stall behind their inserts (simulated feed,
    # same run, 2 December: depth 8 19,038 and 20,250 events/s, 88-89% of the cores busy;
    # depth 20 20,645 and 20,508, 92-93%). Each batch in flight is ~2,000 events.
    pipeline_depth: int = 16
    # at most one insert per table per this many seconds while batches keep coming: a chDB
    # insert costs ~25 ms of CPU whatever its size, and once batches no longer waited for
    # each other every batch was its own insert (endpoint 20-22 µs of CPU per event, vs
    # 11-15 µs at 0.3-0.5 s in the same session; freshness p99 at 1,000 events/s 0.38 s)
    sink_min_interval_s: float = 0.3
    # ... growing with the rows a sink receives, up to this interval at this many rows per
    # second (sinks.writer.insert_interval). Two workers on two cores, same session:
    # 20,720 events/s with endpoint 9 µs of CPU per event at a fixed 0.6 s, 18,061 and
    # 12 µs at 0.3 s; a light stream keeps the short interval (freshness). Then 1.2 s at
    # 6,000 rows/s (from 0.8 s at 10,000): endpoint 7 µs of CPU per event, from 11-13, and
    # 23,101 events/s steady (lifecycles feed; 20,079-21,373 in the runs before it that day);
    # at 1,000 events/s a worker's sink is at ~0.375 s instead of ~0.33.
    sink_busy_interval_s: float = 1.2
    sink_busy_rows_per_s: float = 6_000.0

    @classmethod
    def from_json(cls, text: str, where: str = "PULSE_TUNABLES") -> "WorkerTunables":
        """Typed tunables from a JSON object; an unknown name or a wrong type is an error."""
        try:
            given = json.loads(text) if text.strip() else {}
        except ValueError as e:
            raise SettingsError(f"{where}: not JSON ({e})") from None
        if not isinstance(given, dict):
            raise SettingsError(f"{where}: expected a JSON object, got {type(given).__name__}")
        return cls.from_mapping(given, where)

    @classmethod
    def from_mapping(cls, given: Mapping[str, Any], where: str = "tunables") -> "WorkerTunables":
        hints = _hints(cls)
        unknown = sorted(set(given) - set(hints))
        if unknown:
            raise SettingsError(f"{where}: unknown tunable(s) {', '.join(unknown)}; known: {', '.join(sorted(hints))}")
        values = {}
        for name, value in given.items():
            kind = hints[name]
            if kind is bool and not isinstance(value, bool):
                raise SettingsError(f"{where}: {name} must be true or false, got {value!r}")
            if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise SettingsError(f"{where}: {name} must be a number, got {value!r}")
            if kind is int and float(value) != int(value):
                raise SettingsError(f"{where}: {name} must be a whole number, got {value!r}")
            values[name] = kind(value)
        return cls(**values)


@dataclass(frozen=True)
class Settings:
    # Where local state lives (Kafka log, chDB data, Superset metadata, pid files, logs).
    state_dir: Path = env("PULSE_STATE_DIR", REPO_ROOT / ".state")

    # Kafka
    kafka_bootstrap: str = env("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    kafka_controller_port: int = env("KAFKA_CONTROLLER_PORT", 9093)
    kafka_libs: str = env("KAFKA_LIBS", "")      # empty: <state_dir>/kafka-libs (deploy/local/kafka_broker.py)
    topic_prefix: str = env("PULSE_TOPIC_PREFIX", "motcua.")
    # Scale-out (issue 19; docs/KAFKA.md). Production defaults: a large province (4-5 M
    # dossiers, 15-20 M status events a year) on a cluster of three or more brokers. The
    # single-broker local stack (deploy/local/stack.py) and the tests (tests/conftest.py)
    # set 1 / 1 explicitly; 3 on one broker fails at `pulse topics` saying so.
    # Replication: every partition on 3 brokers; a write is acknowledged (acks=all) once 2
    # have it, so one broker can die at any moment without losing an acknowledged record
    # and writes go on; with 2 down, producers get 503s instead of a silent single copy.
    kafka_replication_factor: int = env("KAFKA_REPLICATION_FACTOR", 3)
    kafka_min_insync_replicas: int = env("KAFKA_MIN_INSYNC_REPLICAS", 2)
    # Partitions of the keyed topics: they can never grow in place (a dossier's events must
    # stay on one partition, in order), so they are sized for the ceiling, not for today.
    # 20 M events/year x 2.5 growth = 50 M; over ~2,250 office hours that is ~6 events/s,
    # ~30/s in a peak hour, a few thousand/s in a unit's bulk re-sync; one worker does
    # 13-20 k/s (bench_pipeline), so throughput needs one worker. Partitions buy parallel
    # and standby workers and a short takeover (a worker replaying a dead one's table
    # changelog replays only its partitions): 12 splits evenly over 1, 2, 3, 4, 6 or 12
    # workers, 6 times the two a province plans to run. dossier-state, the dossier table's
    # changelog and Faust's repartition topics take this same count (co-partitioned).
    kafka_partitions_dossier_events: int = env("PULSE_PARTITIONS_DOSSIER_EVENTS", 12)
    # Ratings, keyed by kiosk id (a kiosk's resubmits reach the same worker's rating-id
    # dedup): at most one per dossier, <= 5 M/year; 6 splits evenly over 1, 2, 3 or 6 workers.
    kafka_partitions_ratings: int = env("PULSE_PARTITIONS_RATINGS", 6)
    # Short session timeout: a worker joins its group in ~3 s instead of ~30 s (STACK-NOTES).
    kafka_session_timeout_s: float = env("KAFKA_SESSION_TIMEOUT_S", 6.0)
    # How every client reaches the brokers (issue 21; deploy/production/README.md, "Secured
    # Kafka"). PLAINTEXT is the local stack; a province cluster is SASL_SSL with SCRAM-SHA-512.
    # pulse.kafka_security is the one place that turns these into each library's arguments.
    kafka_security_protocol: str = env("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT")
    kafka_sasl_mechanism: str = env("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    kafka_sasl_username: str = env("KAFKA_SASL_USERNAME", "")
    # repr=False: a Settings printed in a log or a traceback never shows the password.
    # Prefer KAFKA_SASL_PASSWORD_FILE (a secret mounted as a file, read when a client is
    # made: pulse.kafka_security.sasl_password); then to_env() hands children the path only.
    kafka_sasl_password: str = field(default="", repr=False, metadata={"env": "KAFKA_SASL_PASSWORD"})
    kafka_sasl_password_file: str = env("KAFKA_SASL_PASSWORD_FILE", "")
    kafka_ssl_cafile: str = env("KAFKA_SSL_CAFILE", "")      # PEM; empty: the system's CAs
    kafka_ssl_certfile: str = env("KAFKA_SSL_CERTFILE", "")  # PEM client certificate (mutual TLS), optional
    kafka_ssl_keyfile: str = env("KAFKA_SSL_KEYFILE", "")    # its key; empty: in the certfile
    kafka_ssl_check_hostname: bool = env("KAFKA_SSL_CHECK_HOSTNAME", True)

    # ClickHouse: http(s)://user:password@host:port/database ; the local endpoint serves chDB.
    clickhouse_url: str = env("CLICKHOUSE_URL", "http://default:@127.0.0.1:8123/motcua")
    # Migration parameters (sinks.migrate.DEFAULT_PARAMS: retention days, board refresh), as JSON.
    clickhouse_params: dict = env("PULSE_CLICKHOUSE_PARAMS", factory=dict)

    # Faust worker
    faust_app_id: str = env("FAUST_APP_ID", "motcua-pulse")
    faust_web_port: int = env("FAUST_WEB_PORT", 6066)
    faust_store: str = env("FAUST_STORE", "memory://")  # "rocksdb://" for large state
    stream_batch_size: int = env("STREAM_BATCH_SIZE", 2000)
    stream_batch_window_s: float = env("STREAM_BATCH_WINDOW_S", 0.25)
    tunables: WorkerTunables = field(default_factory=WorkerTunables, metadata={"env": "PULSE_TUNABLES"})
    # The cyclic GC's thresholds "gen0,gen1,gen2" (streams.__main__.gc_thresholds); empty: the worker's default.
    gc_threshold: str = env("PULSE_GC_THRESHOLD", "")
    # Log every delivery, seek, ack and commit of the input topics (the kill -9 exactness
    # test turns it on, so a failure there shows where offsets went).
    trace_offsets: bool = env("PULSE_TRACE_OFFSETS", False)
    # Run the worker under cProfile and write the stats here at a clean shutdown (bench_pipeline --profile-worker).
    profile_path: str = env("PULSE_PROFILE", "")

    # Kiosk API / unit-system ingestion
    api_host: str = env("API_HOST", "127.0.0.1")
    api_port: int = env("API_PORT", 8000)
    kiosk_rate_limit_per_minute: int = env("KIOSK_RATE_LIMIT_PER_MINUTE", 600)
    max_request_bytes: int = env("MAX_REQUEST_BYTES", 1_000_000)
    credentials_file: str = env("PULSE_CREDENTIALS", "")  # empty: <state_dir>/credentials.yaml

    # Superset
    superset_port: int = env("SUPERSET_PORT", 8088)
    superset_admin_user: str = env("SUPERSET_ADMIN_USER", "admin")
    # repr=False, as for the Kafka password: never in a log line or a traceback.
    superset_admin_password: str = field(default="", repr=False, metadata={"env": "SUPERSET_ADMIN_PASSWORD"})  # empty: `make up` generates one (local only)

    # Domain configuration (values marked "lead" in DOMAIN.md belong here, not in code).
    timezone: str = env("PULSE_TIMEZONE", "Asia/Ho_Chi_Minh")
    # How a supplement round moves the deadline (rules.timeliness.SupplementReading, docs/RULES.md):
    # "shift_by_wait" (the first promise + the working time waited; the official reading,
    # the default) or "new_promise" (the unit's NgayHenTraMoi). Stored with every judgement.
    supplement_reading: str = env("SUPPLEMENT_READING", "shift_by_wait")
    early_min_working_days: float = env("EARLY_MIN_WORKING_DAYS", 1.0)  # finished at least this many working days before NgayHenTra
    future_tolerance_s: float = env("FUTURE_TOLERANCE_S", 300.0)         # events more than this in the future are rejected
    overdue_warning_hours: float = env("OVERDUE_WARNING_HOURS", 24.0)     # "about to pass its promised date" lead time
    ontime_alert_threshold: float = env("ONTIME_ALERT_THRESHOLD", 0.80)
    satisfaction_alert_threshold: float = env("SATISFACTION_ALERT_THRESHOLD", 0.90)
    alert_window_minutes: int = env("ALERT_WINDOW_MINUTES", 60)
    silent_kiosk_minutes: int = env("SILENT_KIOSK_MINUTES", 120)
    silent_unit_minutes: int = env("SILENT_UNIT_MINUTES", 240)
    # Index scoring indicators (rules.satisfaction.ScoringConfig), a JSON list of
    # {"name", "group", "points", "threshold"}; empty: the built-in defaults.
    scoring: tuple = env("PULSE_SCORING", ())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Settings from ``environ`` (default: the process environment); a variable that is
        not set keeps the field's default."""
        environ = os.environ if environ is None else environ
        hints = _hints(cls)
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata.get("env")
            if name is None or name not in environ:
                continue
            raw = environ[name]
            if hints[f.name] is WorkerTunables:
                values[f.name] = WorkerTunables.from_json(raw, name)
            else:
                values[f.name] = _convert(hints[f.name], raw, name)
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Values whose type is right but whose value is not one of the allowed ones."""
        from rules.timeliness import SupplementReading
        allowed = [r.value for r in SupplementReading]
        if self.supplement_reading not in allowed:
            raise SettingsError(f"SUPPLEMENT_READING={self.supplement_reading!r}: expected one of {allowed}")
        self._validate_kafka_security()
        self._validate_kafka_topics()

    def _validate_kafka_topics(self) -> None:
        rf, isr = self.kafka_replication_factor, self.kafka_min_insync_replicas
        if rf < 1:
            raise SettingsError(f"KAFKA_REPLICATION_FACTOR={rf}: at least 1")
        if not 1 <= isr <= rf:
            # more than RF: every acks=all write would fail (NotEnoughReplicas) for ever
            raise SettingsError(f"KAFKA_MIN_INSYNC_REPLICAS={isr}: between 1 and KAFKA_REPLICATION_FACTOR ({rf})")
        for name, n in (("PULSE_PARTITIONS_DOSSIER_EVENTS", self.kafka_partitions_dossier_events),
                        ("PULSE_PARTITIONS_RATINGS", self.kafka_partitions_ratings)):
            if n < 1:
                raise SettingsError(f"{name}={n}: at least 1")

    def _validate_kafka_security(self) -> None:
        protocols = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
        mechanisms = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
        protocol = self.kafka_security_protocol
        if protocol not in protocols:
            raise SettingsError(f"KAFKA_SECURITY_PROTOCOL={protocol!r}: expected one of {list(protocols)}")
        sasl = protocol.startswith("SASL_")
        given = [n for n, v in (("KAFKA_SASL_USERNAME", self.kafka_sasl_username),
                                ("KAFKA_SASL_PASSWORD", self.kafka_sasl_password),
                                ("KAFKA_SASL_PASSWORD_FILE", self.kafka_sasl_password_file)) if v]
        if not sasl and given:
            # A forgotten KAFKA_SECURITY_PROTOCOL would otherwise connect without logging in.
            raise SettingsError(f"{', '.join(given)} set but KAFKA_SECURITY_PROTOCOL={protocol} does not log in; "
                                "use SASL_SSL or SASL_PLAINTEXT")
        if sasl:
            if self.kafka_sasl_mechanism not in mechanisms:
                raise SettingsError(f"KAFKA_SASL_MECHANISM={self.kafka_sasl_mechanism!r}: "
                                    f"expected one of {list(mechanisms)}")
            if not self.kafka_sasl_username:
                raise SettingsError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME")
            if self.kafka_sasl_password and self.kafka_sasl_password_file:
                raise SettingsError("set KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not both")
            if not (self.kafka_sasl_password or self.kafka_sasl_password_file):
                raise SettingsError(f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_PASSWORD_FILE "
                                    "(or KAFKA_SASL_PASSWORD)")
            pw_file = self.kafka_sasl_password_file
            if pw_file and not os.access(pw_file, os.R_OK):
                raise SettingsError(f"KAFKA_SASL_PASSWORD_FILE={pw_file!r}: no readable file there")
        files = (("KAFKA_SSL_CAFILE", self.kafka_ssl_cafile), ("KAFKA_SSL_CERTFILE", self.kafka_ssl_certfile),
                 ("KAFKA_SSL_KEYFILE", self.kafka_ssl_keyfile))
        if protocol.endswith("SSL"):
            for name, path in files:
                if path and not os.access(path, os.R_OK):
                    raise SettingsError(f"{name}={path!r}: no readable file there")
            if self.kafka_ssl_keyfile and not self.kafka_ssl_certfile:
                raise SettingsError("KAFKA_SSL_KEYFILE set without KAFKA_SSL_CERTFILE")
        else:
            given = [n for n, v in files if v]
            if given:
                raise SettingsError(f"{', '.join(given)} set but KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS; "
                                    "use SSL or SASL_SSL")

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    def with_tunables(self, **changes) -> "Settings":
        """A copy with some worker tunables changed (typed and checked like PULSE_TUNABLES)."""
        current = {f.name: getattr(self.tunables, f.name) for f in fields(WorkerTunables)}
        return replace(self, tunables=WorkerTunables.from_mapping({**current, **changes}))

    def to_env(self) -> dict[str, str]:
        """The environment that makes ``from_env`` give these settings (for child processes)."""
        out = {}
        for f in fields(self):
            name = f.metadata.get("env")
            value = getattr(self, f.name)
            if name is None:
                continue
            if isinstance(value, WorkerTunables):
                out[name] = json.dumps({g.name: getattr(value, g.name) for g in fields(WorkerTunables)})
            elif isinstance(value, bool):
                out[name] = "1" if value else "0"
            elif isinstance(value, (dict, tuple)):
                out[name] = json.dumps(list(value) if isinstance(value, tuple) else value)
            else:
                out[name] = str(value)
        return out

    @property
    def credentials_path(self) -> Path:
        """Per-kiosk and per-source credentials of the front doors (frontdoor/credentials.py)."""
        return Path(self.credentials_file) if self.credentials_file else self.state_dir / "credentials.yaml"

    @property
    def kafka_libs_dir(self) -> Path:
        """Where the local Kafka broker's jars are (deploy/local/kafka_broker.py)."""
        return Path(self.kafka_libs) if self.kafka_libs else self.state_dir / "kafka-libs"

    def __repr__(self) -> str:
        # The generated repr minus secrets: fields marked repr=False are left out, and the
        # ClickHouse URL's password is masked (a Settings is logged at start and shows up
        # in tracebacks; an operator pastes those into tickets).
        shown = []
        for f in fields(self):
            if not f.repr:
                continue
            value = getattr(self, f.name)
            if f.name == "clickhouse_url":
                value = mask_url_password(value)
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    def topic(self, name: str) -> str:
        """Full Kafka topic name for a logical topic name (see pulse.topics)."""
        return f"{self.topic_prefix}{name}"


def mask_url_password(url: str) -> str:
    """``http://user:secret@host/db`` -> ``http://user:***@host/db``; other URLs unchanged."""
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def get_settings() -> Settings:
    return Settings.from_env()
