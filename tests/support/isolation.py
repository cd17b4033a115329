"""Give one test its own topics, consumer group, state folder and ClickHouse database on
the session's shared broker and endpoint, so tests never see each other's data."""
from __future__ import annotations

import uuid
from pathlib import Path

from pulse.admin import create_topics
from pulse.config import Settings


def isolated(settings: Settings, tmp_path: Path, name: str, **kw) -> Settings:
    tag = uuid.uuid4().hex[:6]
    base = settings.clickhouse_url.rstrip("/").rsplit("/", 1)[0]
    s = settings.with_(topic_prefix=f"{name}{tag}.", faust_app_id=f"pulse-{name}-{tag}",
                       state_dir=tmp_path / f"state-{tag}", clickhouse_url=f"{base}/{name}_{tag}", **kw)
    create_topics(s)
    return s
