"""Satisfaction shares and 766-style threshold-linear scoring, pure functions, no I/O.

* ``satisfied_share``: share of ratings at level 4 (HL) or 5 (RHL), the figure reports quote.
* ``threshold_linear(rate, points, threshold)``: Decision 766/QĐ-TTg scoring: at or above the
  threshold the indicator earns full points, below it ``rate * points / threshold``.
* ``score(rates, config)``: a unit's index from its indicator rates, by group, with weights and
  thresholds from configuration (``ScoringConfig.from_settings``: ``settings.scoring``
  (PULSE_SCORING) overrides the defaults; DOMAIN.md marks the weights as "lead", so they are
  configuration, not code).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Mapping

SATISFIED_MIN_LEVEL = 4


def level_counts(levels: Iterable[int]) -> dict[int, int]:
    c = Counter(int(x) for x in levels)
    return {lvl: c.get(lvl, 0) for lvl in range(1, 6)}


def satisfied_share(levels: Iterable[int]) -> float | None:
    """Share of levels >= 4; None with no rating."""
    n = s = 0
    for lvl in levels:
        n += 1
        s += int(lvl) >= SATISFIED_MIN_LEVEL
    return s / n if n else None


def share(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def threshold_linear(rate: float | None, points: float, threshold: float) -> float:
    """766 scoring: full points at or above ``threshold``, else rate × points ÷ threshold.
    No data (None) earns 0. Rates are clipped to [0, 1]."""
    if rate is None:
        return 0.0
    rate = min(max(float(rate), 0.0), 1.0)
    if threshold <= 0 or rate >= threshold:
        return float(points)
    return rate * points / threshold


@dataclass(frozen=True)
class Indicator:
    name: str
    group: str
    points: float
    threshold: float


# Defaults: groups 18/20/22/22/18 (DOMAIN.md); thresholds 80% by default, 50% online share,
# 90% satisfaction. Indicators are those the pipeline can measure from its own data.
DEFAULT_INDICATORS: tuple[Indicator, ...] = (
    Indicator("synced_share", "openness", 18, 0.80),
    Indicator("ontime_share", "progress", 20, 0.80),
    Indicator("online_share", "online", 14, 0.50),
    Indicator("paid_online_share", "online", 8, 0.50),
    Indicator("electronic_result_share", "digitisation", 8, 0.80),
    Indicator("digitised_share", "digitisation", 7, 0.80),
    Indicator("vneid_share", "digitisation", 7, 0.80),
    Indicator("satisfaction_share", "satisfaction", 18, 0.90),
)


@dataclass(frozen=True)
class ScoringConfig:
    indicators: tuple[Indicator, ...] = DEFAULT_INDICATORS

    @classmethod
    def from_settings(cls, settings) -> "ScoringConfig":
        spec = getattr(settings, "scoring", ())
        if not spec:
            return cls()
        return cls(tuple(Indicator(i["name"], i["group"], float(i["points"]), float(i["threshold"]))
                         for i in spec))

    @property
    def max_points(self) -> float:
        return sum(i.points for i in self.indicators)


@dataclass(frozen=True)
class Score:
    total: float
    by_group: dict[str, float] = field(default_factory=dict)
    by_indicator: dict[str, float] = field(default_factory=dict)


def score(rates: Mapping[str, float | None], config: ScoringConfig | None = None) -> Score:
    """Index points from indicator rates (missing indicator: 0 points)."""
    config = config or ScoringConfig()
    by_ind: dict[str, float] = {}
    by_group: dict[str, float] = {}
    for ind in config.indicators:
        pts = threshold_linear(rates.get(ind.name), ind.points, ind.threshold)
        by_ind[ind.name] = pts
        by_group[ind.group] = by_group.get(ind.group, 0.0) + pts
    return Score(sum(by_ind.values()), by_group, by_ind)


def below_threshold(satisfied: int, total: int, threshold: float, min_count: int = 1) -> bool:
    """Alert test: enough ratings and a satisfied share strictly below ``threshold``."""
    return total >= max(1, min_count) and satisfied / total < threshold
