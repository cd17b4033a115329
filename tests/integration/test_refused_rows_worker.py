"""A row ClickHouse refuses reaches the dead letters with the server's message (rule
sink.refused) through the worker's own sink wiring (streams.runtime.Sinks), and the rest lands."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest

from pulse.config import Settings
from sinks.client import get_client
from sinks.migrate import migrate_settings
from streams.runtime import REFUSED_RULE, Sinks
from tests.integration.test_poison_rows import _rating

pytestmark = pytest.mark.integration


def test_a_refused_rating_is_dead_lettered_with_the_servers_message(clickhouse_endpoint):
    settings = Settings().with_(
        clickhouse_url=f"{clickhouse_endpoint.url.rstrip('/')}/motcua_refused_{uuid.uuid4().hex[:8]}")
    migrate_settings(settings, log=None)
    client = get_client(settings)
    # a rule of the data the server enforces (not the client): a level above its scale
    client.command("ALTER TABLE ratings ADD CONSTRAINT level_in_scale CHECK level BETWEEN 1 AND scale")
    sinks = Sinks.for_clickhouse(settings)
    now = datetime.now(timezone.utc)
    rows = [_rating(i, "w", now, level=9 if i in (7, 150) else None) for i in range(200)]
    try:
        sinks.ratings.write(rows, wait=True, timeout=120)
        assert client.command("SELECT count() FROM ratings FINAL") == 198
        dead = client.query("SELECT rules, reasons, raw FROM dead_letters FINAL "
                            "WHERE topic = 'clickhouse.ratings'").result_rows
        assert sorted(json.loads(raw)["rating_id"] for _, _, raw in dead) == ["rt-w-000007", "rt-w-000150"]
        for rules, reasons, _ in dead:
            assert rules == [REFUSED_RULE] and "VIOLATED_CONSTRAINT" in reasons[0]
        assert sinks.ratings.pending == 0
        # the same rows again (a replay after a crash): still two dead letters, not four
        sinks.ratings.write(rows, wait=True, timeout=120)
        assert client.command("SELECT count() FROM dead_letters FINAL WHERE topic = 'clickhouse.ratings'") == 2
    finally:
        for sk in sinks.all():
            sk.close()
        client.close()
