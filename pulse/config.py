"""One configuration object, read from the environment.

Every process of the pipeline (broker tooling, Faust worker, kiosk API, CLI, tests) builds
its settings with ``Settings.from_env()``; nothing else reads ``os.environ``. Local
defaults describe the single-machine stack started by ``make up``; production overrides
them with environment variables (see deploy/production/README.md).
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class Settings:
    # Where local state lives (Kafka log, chDB data, Superset metadata, pid files, logs).
    state_dir: Path = REPO_ROOT / ".state"

    # Kafka
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_controller_port: int = 9093
    topic_prefix: str = "motcua."
    # Short session timeout: a worker joins its group in ~3 s instead of ~30 s (STACK-NOTES).
    kafka_session_timeout_s: float = 6.0

    # ClickHouse: http(s)://user:password@host:port/database ; the local endpoint serves chDB.
    clickhouse_url: str = "http://default:@127.0.0.1:8123/motcua"

    # Faust worker
    faust_app_id: str = "motcua-pulse"
    faust_web_port: int = 6066
    faust_store: str = "memory://"  # "rocksdb://" for large state
    stream_batch_size: int = 2000
    stream_batch_window_s: float = 0.25

    # Kiosk API / unit-system ingestion
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    kiosk_rate_limit_per_minute: int = 600
    max_request_bytes: int = 1_000_000
    credentials_file: str = ""  # empty: <state_dir>/credentials.yaml

    # Superset
    superset_port: int = 8088
    superset_admin_user: str = "admin"
    superset_admin_password: str = ""  # empty: `make up` generates one and prints it (local only)

    # Domain configuration (values marked "lead" in DOMAIN.md belong here, not in code).
    timezone: str = "Asia/Ho_Chi_Minh"
    early_min_working_days: float = 1.0   # finished at least this many working days before NgayHenTra
    future_tolerance_s: float = 300.0     # events more than this in the future are rejected
    overdue_warning_hours: float = 24.0   # "about to pass its promised date" lead time
    ontime_alert_threshold: float = 0.80
    satisfaction_alert_threshold: float = 0.90
    alert_window_minutes: int = 60
    silent_kiosk_minutes: int = 120
    silent_unit_minutes: int = 240

    # Tuning knobs of single components (e.g. the worker's GX cadence), as JSON in PULSE_TUNABLES.
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> "Settings":
        d = cls()
        return cls(
            state_dir=Path(_env("PULSE_STATE_DIR", str(d.state_dir))),
            kafka_bootstrap=_env("KAFKA_BOOTSTRAP", d.kafka_bootstrap),
            kafka_controller_port=_env_int("KAFKA_CONTROLLER_PORT", d.kafka_controller_port),
            topic_prefix=_env("PULSE_TOPIC_PREFIX", d.topic_prefix),
            kafka_session_timeout_s=_env_float("KAFKA_SESSION_TIMEOUT_S", d.kafka_session_timeout_s),
            clickhouse_url=_env("CLICKHOUSE_URL", d.clickhouse_url),
            faust_app_id=_env("FAUST_APP_ID", d.faust_app_id),
            faust_web_port=_env_int("FAUST_WEB_PORT", d.faust_web_port),
            faust_store=_env("FAUST_STORE", d.faust_store),
            stream_batch_size=_env_int("STREAM_BATCH_SIZE", d.stream_batch_size),
            stream_batch_window_s=_env_float("STREAM_BATCH_WINDOW_S", d.stream_batch_window_s),
            api_host=_env("API_HOST", d.api_host),
            api_port=_env_int("API_PORT", d.api_port),
            kiosk_rate_limit_per_minute=_env_int("KIOSK_RATE_LIMIT_PER_MINUTE", d.kiosk_rate_limit_per_minute),
            max_request_bytes=_env_int("MAX_REQUEST_BYTES", d.max_request_bytes),
            credentials_file=_env("PULSE_CREDENTIALS", d.credentials_file),
            superset_port=_env_int("SUPERSET_PORT", d.superset_port),
            superset_admin_user=_env("SUPERSET_ADMIN_USER", d.superset_admin_user),
            superset_admin_password=_env("SUPERSET_ADMIN_PASSWORD", d.superset_admin_password),
            timezone=_env("PULSE_TIMEZONE", d.timezone),
            early_min_working_days=_env_float("EARLY_MIN_WORKING_DAYS", d.early_min_working_days),
            future_tolerance_s=_env_float("FUTURE_TOLERANCE_S", d.future_tolerance_s),
            overdue_warning_hours=_env_float("OVERDUE_WARNING_HOURS", d.overdue_warning_hours),
            ontime_alert_threshold=_env_float("ONTIME_ALERT_THRESHOLD", d.ontime_alert_threshold),
            satisfaction_alert_threshold=_env_float("SATISFACTION_ALERT_THRESHOLD", d.satisfaction_alert_threshold),
            alert_window_minutes=_env_int("ALERT_WINDOW_MINUTES", d.alert_window_minutes),
            silent_kiosk_minutes=_env_int("SILENT_KIOSK_MINUTES", d.silent_kiosk_minutes),
            silent_unit_minutes=_env_int("SILENT_UNIT_MINUTES", d.silent_unit_minutes),
            extra=json.loads(os.environ.get("PULSE_TUNABLES", "{}")),
        )

    def with_(self, **changes) -> "Settings":
        return replace(self, **changes)

    @property
    def credentials_path(self) -> Path:
        """Per-kiosk and per-source credentials of the front doors (frontdoor/credentials.py)."""
        return Path(self.credentials_file) if self.credentials_file else self.state_dir / "credentials.yaml"

    def topic(self, name: str) -> str:
        """Full Kafka topic name for a logical topic name (see pulse.topics)."""
        return f"{self.topic_prefix}{name}"


def get_settings() -> Settings:
    return Settings.from_env()
