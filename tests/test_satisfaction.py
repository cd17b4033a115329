"""Satisfaction shares and 766-style threshold-linear scoring (rules/satisfaction.py)."""
from __future__ import annotations

import pytest

from pulse.config import Settings
from rules.satisfaction import (ScoringConfig, below_threshold, level_counts, satisfied_share, score,
                                threshold_linear)


def test_satisfied_share_counts_levels_4_and_5():
    assert satisfied_share([5, 4, 3, 2, 1, 5, 5, 4, 4, 4]) == pytest.approx(0.7)
    assert satisfied_share([]) is None
    assert level_counts([5, 5, 1]) == {1: 1, 2: 0, 3: 0, 4: 0, 5: 2}


def test_threshold_linear():
    assert threshold_linear(0.95, 18, 0.90) == 18            # above the threshold: full points
    assert threshold_linear(0.90, 18, 0.90) == 18            # at it: full points
    assert threshold_linear(0.45, 18, 0.90) == pytest.approx(9.0)   # half of it: half the points
    assert threshold_linear(0.30, 22, 0.50) == pytest.approx(13.2)  # online share, 50% threshold
    assert threshold_linear(None, 20, 0.8) == 0.0


def test_score_by_group_with_default_and_configured_weights():
    rates = {"synced_share": 1.0, "ontime_share": 0.4, "online_share": 0.25, "paid_online_share": 0.5,
             "electronic_result_share": 0.8, "digitised_share": 0.8, "vneid_share": 0.8,
             "satisfaction_share": 0.99}
    s = score(rates)
    assert s.by_group["progress"] == pytest.approx(10.0)
    assert s.by_group["online"] == pytest.approx(7 + 8)
    assert s.total == pytest.approx(18 + 10 + 15 + 22 + 18)
    assert ScoringConfig().max_points == 100
    cfg = ScoringConfig.from_settings(Settings().with_(scoring=(
        {"name": "ontime_share", "group": "progress", "points": 50, "threshold": 0.5},)))
    assert score(rates, cfg).total == pytest.approx(40.0)


def test_alert_threshold():
    assert below_threshold(8, 10, 0.9, min_count=5)
    assert not below_threshold(9, 10, 0.9, min_count=5)
    assert not below_threshold(0, 3, 0.9, min_count=5)
