"""Great Expectations on micro-batches of flattened events.

The worker collects the rows the per-event checker made (``Verdict.row``, contract-valid
events) and calls ``validate_batch(rows, suite_name)`` every batch; the results go to the
ClickHouse table ``dq_results`` (``DQResult.to_row()``).

Importing GX and building a context costs ~2 s, so one ``GXBatchRunner`` (one ephemeral
context, one pandas data source, one suite object per suite) is made per process and
reused; ``validate_batch`` uses a module-level runner built on first use.
"""
from __future__ import annotations

import logging
import os
import threading
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from .flatten import to_dataframe
from .suite_io import SUITE_NAMES, load_suite

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DQResult:
    suite: str
    expectation: str        # expectation type, e.g. expect_column_values_to_be_in_set
    rule: str               # meta.rule, e.g. dossier.unit_known
    column: str             # column, or "column_A,column_B" for pair expectations
    success: bool
    success_share: float    # share of evaluated rows that passed (1.0 when none were evaluated)
    unexpected_count: int
    element_count: int      # rows in the batch
    batch_id: str
    batch_time: datetime

    def to_row(self) -> dict:
        """A dict for ClickHouse ``dq_results`` (the writer picks the table's columns)."""
        return asdict(self)


def _column_of(kwargs: dict) -> str:
    if "column" in kwargs:
        return str(kwargs["column"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']},{kwargs['column_B']}"
    if "column_list" in kwargs:
        return ",".join(kwargs["column_list"])
    return ""


class GXBatchRunner:
    """One GX ephemeral context with both suites, reused across batches."""

    def __init__(self, reference: Any, settings: Any):
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self._gx = gx
        self.context = gx.get_context(mode="ephemeral")
        try:
            self.context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        except Exception:  # pragma: no cover - cosmetic only
            pass
        source = self.context.data_sources.add_pandas("motcua_pulse")
        self.suites: dict[str, Any] = {}
        self.suite_dicts: dict[str, dict] = {}
        self._batch_defs: dict[str, Any] = {}
        self._lock = threading.Lock()
        for name in SUITE_NAMES:
            d = load_suite(name, reference, settings)
            self.suite_dicts[name] = d
            suite = gx.ExpectationSuite(name=name, expectations=d["expectations"], meta=d.get("meta") or {})
            self.suites[name] = self.context.suites.add(suite)
            asset = source.add_dataframe_asset(name)
            self._batch_defs[name] = asset.add_batch_definition_whole_dataframe(f"{name}_micro_batch")

    def validate_frame(self, df, suite_name: str, result_format: str | dict = "SUMMARY"):
        """Run the suite on a DataFrame; returns GX's ExpectationSuiteValidationResult."""
        with self._lock:  # GX contexts are not documented as thread-safe
            batch = self._batch_defs[suite_name].get_batch(batch_parameters={"dataframe": df})
            return batch.validate(self.suites[suite_name], result_format=result_format)

    def validate_batch(self, rows: list[dict], suite_name: str, batch_id: str | None = None,
                       batch_time: datetime | None = None) -> list[DQResult]:
        if suite_name not in self.suites:
            raise KeyError(f"unknown suite {suite_name!r}; known: {sorted(self.suites)}")
        batch_id = batch_id or uuid.uuid4().hex
        batch_time = batch_time or datetime.now(timezone.utc)
        if not rows:
            return []
        df = to_dataframe(rows, suite_name)
        result = self.validate_frame(df, suite_name)
        out = []
        n = len(df)
        for r in result.results:
            cfg = r.expectation_config
            res = r.result or {}
            if r.exception_info and r.exception_info.get("raised_exception"):
                log.warning("GX expectation %s raised: %s", (cfg.meta or {}).get("rule"),
                            r.exception_info.get("exception_message"))
            unexpected = int(res.get("unexpected_count") or 0)
            evaluated = int(res.get("element_count") or 0) - int(res.get("missing_count") or 0)
            if cfg.type == "expect_column_values_to_not_be_null":
                evaluated = int(res.get("element_count") or 0)
            share = 1.0 if evaluated <= 0 else max(0.0, 1.0 - unexpected / evaluated)
            out.append(DQResult(
                suite=suite_name, expectation=cfg.type, rule=(cfg.meta or {}).get("rule", ""),
                column=_column_of(cfg.kwargs), success=bool(r.success), success_share=share,
                unexpected_count=unexpected, element_count=n, batch_id=batch_id, batch_time=batch_time,
            ))
        return out

    def failing_rows(self, rows: list[dict], suite_name: str) -> list[set[str]]:
        """For each row, the rules GX finds it breaking (COMPLETE result format; tests and
        debugging only, slower than validate_batch)."""
        df = to_dataframe(rows, suite_name)
        result = self.validate_frame(df, suite_name, result_format={"result_format": "COMPLETE"})
        per_row: list[set[str]] = [set() for _ in range(len(df))]
        for r in result.results:
            rule = (r.expectation_config.meta or {}).get("rule", "")
            if r.exception_info and r.exception_info.get("raised_exception"):
                raise RuntimeError(f"GX raised on {rule}: {r.exception_info.get('exception_message')}")
            for idx in (r.result or {}).get("unexpected_index_list") or []:
                i: Any = idx if isinstance(idx, int) else idx.get("index") if isinstance(idx, dict) else idx
                per_row[int(i)].add(rule)
        return per_row


_runner: GXBatchRunner | None = None
_runner_lock = threading.Lock()


def get_runner(reference: Any = None, settings: Any = None) -> GXBatchRunner:
    """The process-wide runner (built on first call; later calls ignore the arguments)."""
    global _runner
    with _runner_lock:
        if _runner is None:
            if reference is None:
                from schemas.reference import load_reference
                reference = load_reference()
            if settings is None:
                from pulse.config import Settings
                settings = Settings.from_env()
            _runner = GXBatchRunner(reference, settings)
        return _runner


def validate_batch(rows: list[dict], suite_name: str, batch_id: str | None = None,
                   batch_time: datetime | None = None) -> list[DQResult]:
    """Validate a micro-batch of flattened rows with the named suite (``dossier_events`` or
    ``ratings``) using the process-wide runner."""
    return get_runner().validate_batch(rows, suite_name, batch_id, batch_time)
