"""Which tables ``pulse replay`` copies: the pipeline's own MergeTree tables, never the
storage ClickHouse keeps for views (names as ClickHouse 26.9 lists them in system.tables)."""
from __future__ import annotations

import pytest

from pulse.replay import is_history_table


@pytest.mark.parametrize("name,engine,copied", [
    ("dossier_events", "ReplacingMergeTree", True),
    ("dossier_state", "ReplacingMergeTree", True),
    ("alerts", "MergeTree", True),
    ("v_unit_scoreboard", "View", False),
    ("agg_overdue", "MaterializedView", False),
    (".inner.agg_overdue", "MergeTree", False),
    (".inner_id.8262f373-febf-44b3-bd7c-c2e77adb9c33", "MergeTree", False),
    # a refreshable view's table while it refreshes: the full year's replay listed it once
    (".tmp.inner_id.8262f373-febf-44b3-bd7c-c2e77adb9c33", "MergeTree", False),
])
def test_only_the_pipelines_own_tables_are_history(name, engine, copied):
    assert is_history_table(name, engine) is copied
