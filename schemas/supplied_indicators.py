"""Contract "supplied-indicators": indicator values of the national service index that the
pipeline cannot measure from its own streams, per unit and period.

What needs other data than dossier events and kiosk ratings (procedures published on
time, PAKN feedback handling, data taken from the citizen's DVCQG store, ...) comes in
through this file: ``pulse index --supplied FILE``. Until a value is supplied the
indicator is "not measured" (no points, never zero and never full marks).

One JSON document::

    {"contract_version": "1.0",
     "config_version": "766-portal-2025.1",          # optional: the index configuration it was made for
     "values": [
       {"unit_code": "000.00.01.H24", "period": "2026-11", "indicator": "procedures_published_on_time",
        "numerator": 12, "denominator": 12, "source": "CSDLQG về TTHC, 2026-12-01"},
       {"unit_code": "000.00.00.H24", "period": "2026-11", "indicator": "feedback_handled_on_time",
        "ratio": 0.95, "source": "Hệ thống PAKN"}]}

A value gives ``numerator`` and ``denominator`` (counts, as the portal shows them) or
``ratio`` (0..1). Indicator codes are those of the configuration
(``rules/service_index.v2025.yaml``) whose ``measure`` is ``supplied``; the reader checks
that. ``period`` is a label of ``rules.service_index.parse_period`` (2026-11, 2026-Q4,
2026); a month's value also applies to that month's month-to-date period. A denominator
of 0 means "nothing to measure in the period" (e.g. no PAKN): scored as the
configuration's ``when_no_dossiers`` says.

The published JSON Schema is ``schemas/supplied-indicators.v1.schema.json``
(``python -m schemas.supplied_indicators`` writes it; tests keep it in agreement).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.contracts import CODE_PATTERN

SUPPLIED_CONTRACT = "supplied-indicators"
SUPPLIED_CONTRACT_VERSION = "1.0"
SCHEMA_FILE = Path(__file__).resolve().parent / "supplied-indicators.v1.schema.json"
PERIOD_PATTERN = r"^[0-9]{4}(-[0-9]{2}|-[Qq][1-4])?$"
INDICATOR_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class SuppliedValue(BaseModel):
    """One indicator's value for one unit and period."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    unit_code: str = Field(pattern=CODE_PATTERN, max_length=64, description="DonViXuLy: code of the unit (the province's code for the province)")
    period: str = Field(pattern=PERIOD_PATTERN, description="2026-11 (month), 2026-Q4 (quarter) or 2026 (year)")
    indicator: str = Field(pattern=INDICATOR_PATTERN, description="Indicator code of the index configuration (a 'supplied' indicator)")
    numerator: float | None = Field(None, ge=0, description="Tử số: count meeting the indicator")
    denominator: float | None = Field(None, ge=0, description="Mẫu số: count the indicator is over; 0 = nothing to measure")
    ratio: float | None = Field(None, ge=0, le=1, description="Tỷ lệ 0..1, when the counts are not known")
    source: str = Field(min_length=1, max_length=200, description="Where the value comes from (system, export, date)")
    note: str | None = Field(None, max_length=1000)

    @model_validator(mode="after")
    def _counts_or_ratio(self):
        has_counts = self.numerator is not None and self.denominator is not None
        if (self.numerator is None) != (self.denominator is None):
            raise ValueError("give both numerator and denominator, or neither")
        if not has_counts and self.ratio is None:
            raise ValueError("give numerator and denominator, or ratio")
        if has_counts and self.numerator > self.denominator:
            raise ValueError("numerator is larger than denominator")
        return self


class SuppliedIndicators(BaseModel):
    """A file of supplied indicator values (contract supplied-indicators)."""
    model_config = ConfigDict(extra="forbid", frozen=True)

    contract_version: str = Field(SUPPLIED_CONTRACT_VERSION, pattern=r"^1\.[0-9]+$",
                                  description="MAJOR.MINOR of the supplied-indicators contract; readers accept any 1.x")
    config_version: str | None = Field(None, max_length=64, description="Index configuration version the values were prepared for")
    values: tuple[SuppliedValue, ...] = Field(description="One value per (unit_code, period, indicator)")

    @model_validator(mode="after")
    def _unique(self):
        seen = set()
        for v in self.values:
            key = (v.unit_code, v.period.upper(), v.indicator)
            if key in seen:
                raise ValueError(f"duplicate value for unit {v.unit_code}, period {v.period}, indicator {v.indicator}")
            seen.add(key)
        return self


def json_schema() -> dict:
    model = {k: v for k, v in SuppliedIndicators.model_json_schema().items() if k != "title"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:motcua-pulse:schema:supplied-indicators:v1",
        "title": "Supplied indicator values of the national service index (Decision 766), v1.0",
        "x-contract": SUPPLIED_CONTRACT,
        "x-contract-version": SUPPLIED_CONTRACT_VERSION,
        **model,
    }


def schema_text() -> str:
    return json.dumps(json_schema(), ensure_ascii=False, indent=2, sort_keys=False) + "\n"


if __name__ == "__main__":  # python -m schemas.supplied_indicators: write the published schema
    SCHEMA_FILE.write_text(schema_text(), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}", file=sys.stderr)
