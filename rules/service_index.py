"""The national service index (Decision 766/QĐ-TTg, "Bộ chỉ số phục vụ"), per unit and period.

Pure functions, no I/O. The indicators, their points, thresholds and unit levels are NOT
here: they are in the versioned configuration ``rules/service_index.v2025.yaml`` (read by
``pulse.index.load_config`` and turned into an ``IndexConfig`` by ``parse_config``), so a
new decision or a new portal method is an edit of that file. docs/SERVICE-INDEX.md has the
table with sources. The method followed is the national portal's current one (the
administrators' points sheet, the formula description "Mô tả công thức tính chỉ số 766"
and the portal's scores as reverse-engineered, see the YAML header), not the 2022 annex
where they differ (the 2022 annex has five groups; the portal has six, with online
payment split out: 18 / 20 / 12 / 10 / 22 / 18).

Three layers, so the batch CLI (``pulse index``) and the live path (ClickHouse, the
Superset board "Bộ chỉ số phục vụ") compute the same thing:

1. ``dossier_period_facts``: ONE place for what the indicators need to know about one
   dossier in one period (``DossierPeriodFacts``). The dossier's state is
   ``rules.lifecycle.fold`` of its events up to the period's end, and its on-time outcome
   is ``rules.timeliness.judge`` at the period's end (``as_of``): never re-derived here.
2. ``count_dossiers``: named counts per unit (``BASE_COUNTS``), additive across units and
   dossiers, so the live path can produce the same names with SQL sums;
   ``derive_counts`` adds the non-additive ones (``DERIVED_COUNTS``).
3. ``score_indicator(numerator, denominator, spec)``: one indicator from two counts and
   its configuration -> ``IndicatorScore`` (ratio, points, max points, measured flag);
   ``score_unit`` does all of a unit's indicators from its counts and supplied values.

Which dossiers belong to a period (period = [start, end), local time; the portal's
formula description [DOC], record ids in brackets):

* received in the period: NgayTiepNhan in the period, else NgayNopHoSo for a dossier
  that got past "newly registered" ([DOC] 1.4, 3.2, 3.3, 3.5, 4.3: "có Ngày tiếp nhận
  trong kỳ"; a dossier never received, status 1 or 3, is not counted). Used by online
  share, online payment (3.6: "Ngày bắt đầu xử lý trong kỳ", the start being the
  reception), digitisation, VNeID.
* progress population ([DOC] 2.1, sheet row 6: "hồ sơ đã xử lý và đang xử lý ... trong
  kỳ"): dossiers that FINISHED in the period (finish time in the period, judged early /
  on time / late) plus dossiers STILL OPEN at the period's end, whenever received
  ("A dossier still open at the end of a period counts by the period's end": judged at
  the end, an open dossier is either within its deadline or already late). Also the
  population of "satisfaction with dossier handling" ([DOC] 5.4, "đã tiếp nhận, giải
  quyết").
* results in the period ([DOC] 4.1: "hồ sơ đã hoàn thành, trả kết quả"): dossiers
  finished (9) or returned (10) with their finish time in the period.

Deviation, stated: [DOC] 2.1 also ends a received dossier at refusal, stop or withdrawal
and compares that time with NgayHenTra; ``rules.timeliness.judge`` gives those dossiers
their own outcome (refused / stopped / withdrawn) and no on-time verdict, so they are
left out of the progress population rather than judged here.
"""
from __future__ import annotations

import calendar as _calendar
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping, Sequence

from rules.lifecycle import FINANCIAL, FINISHED, NEW, NOT_ACCEPTED, RETURNED, EventFacts, fold
from rules.satisfaction import threshold_linear
from rules.timeliness import Outcome, judge

UNIT_KINDS = ("province", "department", "commune")
MEASURES = ("live", "supplied")
WHEN_NO_DOSSIERS = ("not_measured", "zero", "full")

# --------------------------------------------------------------------------- periods

PERIOD_KINDS = ("month", "quarter", "year", "mtd")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-[Qq]([1-4])$")
_YEAR = re.compile(r"^(\d{4})$")
_MTD = re.compile(r"^(\d{4})-(\d{2})-(?:mtd|MTD)$")


@dataclass(frozen=True)
class Period:
    """A reporting period [start, end) in local time. ``label``: 2026-11, 2026-Q4, 2026, 2026-11-MTD."""
    label: str
    kind: str
    start: datetime
    end: datetime

    @property
    def month_label(self) -> str | None:
        """The calendar month of a month or month-to-date period (supplied values of the month apply to its MTD)."""
        return self.label[:7] if self.kind in ("month", "mtd") else None


def _month_start(y: int, m: int, tz) -> datetime:
    return datetime(y, m, 1, tzinfo=tz)


def _add_months(y: int, m: int, n: int) -> tuple[int, int]:
    k = y * 12 + (m - 1) + n
    return k // 12, k % 12 + 1


def parse_period(text: str, tz, as_of: datetime | None = None) -> Period:
    """``2026-11`` (month), ``2026-Q4`` (quarter), ``2026`` (year), ``2026-11-MTD`` (month to
    ``as_of``, which is required and clipped to the month). Raises ValueError."""
    s = text.strip()
    if m := _MONTH.match(s):
        y, mo = int(m[1]), int(m[2])
        if not 1 <= mo <= 12:
            raise ValueError(f"bad month in period {text!r}")
        return Period(f"{y:04d}-{mo:02d}", "month", _month_start(y, mo, tz), _month_start(*_add_months(y, mo, 1), tz))
    if m := _QUARTER.match(s):
        y, q = int(m[1]), int(m[2])
        mo = 3 * (q - 1) + 1
        return Period(f"{y:04d}-Q{q}", "quarter", _month_start(y, mo, tz), _month_start(*_add_months(y, mo, 3), tz))
    if m := _YEAR.match(s):
        y = int(m[1])
        return Period(f"{y:04d}", "year", _month_start(y, 1, tz), _month_start(y + 1, 1, tz))
    if m := _MTD.match(s):
        y, mo = int(m[1]), int(m[2])
        if not 1 <= mo <= 12:
            raise ValueError(f"bad month in period {text!r}")
        if as_of is None:
            raise ValueError("a month-to-date period needs an as-of instant")
        start, month_end = _month_start(y, mo, tz), _month_start(*_add_months(y, mo, 1), tz)
        end = min(max(as_of, start), month_end)
        return Period(f"{y:04d}-{mo:02d}-MTD", "mtd", start, end)
    raise ValueError(f"period {text!r}: expected YYYY-MM, YYYY-Qn, YYYY or YYYY-MM-MTD")


def previous_period(p: Period) -> Period:
    """The period before: previous month / quarter / year; for month-to-date, the previous
    month up to the same offset from its start (clipped to that month)."""
    tz = p.start.tzinfo
    y, mo = p.start.year, p.start.month
    if p.kind == "month":
        return parse_period("%04d-%02d" % _add_months(y, mo, -1), tz)
    if p.kind == "quarter":
        py, pm = _add_months(y, mo, -3)
        return parse_period(f"{py:04d}-Q{(pm - 1) // 3 + 1}", tz)
    if p.kind == "year":
        return parse_period(f"{y - 1:04d}", tz)
    py, pm = _add_months(y, mo, -1)
    start = _month_start(py, pm, tz)
    offset = p.end - p.start
    # same day-of-month and time, clipped to the previous month's length
    days_in_prev = _calendar.monthrange(py, pm)[1]
    offset = min(offset, timedelta(days=days_in_prev))
    return Period(f"{py:04d}-{pm:02d}-MTD", "mtd", start, start + offset)


# --------------------------------------------------------------------------- configuration

@dataclass(frozen=True)
class GroupSpec:
    code: str
    name_vi: str
    points: float


@dataclass(frozen=True)
class IndicatorSpec:
    """One indicator as the configuration defines it."""
    code: str
    group: str
    name_vi: str
    points: float
    threshold: float                 # full points at or above; below: ratio x points / threshold
    measure: str                     # "live" (counted from the streams) or "supplied"
    levels: frozenset[str]           # unit kinds it applies to
    numerator: str | None = None     # count names (live only)
    denominator: str | None = None
    when_no_dossiers: str = "not_measured"
    portal_code: str | None = None
    formula: str = ""
    source: str = ""

    def applies_to(self, kind: str) -> bool:
        return kind in self.levels


@dataclass(frozen=True)
class IndexConfig:
    version: str
    title: str
    total_points: float
    groups: dict[str, GroupSpec]
    indicators: tuple[IndicatorSpec, ...]
    dissatisfied_max_level: int = 2
    grade_bands: Any = None          # None: no official band (DOMAIN.md); never invented

    def indicator(self, code: str) -> IndicatorSpec:
        for i in self.indicators:
            if i.code == code:
                return i
        raise KeyError(code)


def parse_config(raw: Mapping[str, Any]) -> IndexConfig:
    """An ``IndexConfig`` from the YAML's mapping, checked: group points add up to the total,
    indicator points to their group's, live indicators name known counts. Raises ValueError."""
    problems: list[str] = []
    try:
        groups = {code: GroupSpec(code, str(g["name_vi"]), float(g["points"])) for code, g in raw["groups"].items()}
        specs = []
        for i in raw["indicators"]:
            spec = IndicatorSpec(
                code=str(i["code"]), group=str(i["group"]), name_vi=str(i["name_vi"]),
                points=float(i["points"]), threshold=float(i["threshold"]), measure=str(i["measure"]),
                levels=frozenset(i["levels"]), numerator=i.get("numerator"), denominator=i.get("denominator"),
                when_no_dossiers=str(i.get("when_no_dossiers", "not_measured")),
                portal_code=i.get("portal_code"), formula=str(i.get("formula", "")), source=str(i.get("source", "")))
            specs.append(spec)
        total = float(raw.get("total_points", 100))
        cfg = IndexConfig(str(raw["version"]), str(raw.get("title", "")), total, groups, tuple(specs),
                          int(raw.get("dissatisfied_max_level", 2)), raw.get("grade_bands"))
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"service index configuration: malformed ({type(e).__name__}: {e})") from None
    codes = [s.code for s in cfg.indicators]
    if len(set(codes)) != len(codes):
        problems.append("indicator codes must be unique")
    known = set(BASE_COUNTS) | set(DERIVED_COUNTS)
    for s in cfg.indicators:
        if s.group not in cfg.groups:
            problems.append(f"{s.code}: unknown group {s.group!r}")
        if s.measure not in MEASURES:
            problems.append(f"{s.code}: measure must be one of {MEASURES}")
        if not 0 < s.threshold <= 1:
            problems.append(f"{s.code}: threshold must be in (0, 1]")
        if s.points < 0:
            problems.append(f"{s.code}: points must be >= 0")
        if s.when_no_dossiers not in WHEN_NO_DOSSIERS:
            problems.append(f"{s.code}: when_no_dossiers must be one of {WHEN_NO_DOSSIERS}")
        if not s.levels or not s.levels <= set(UNIT_KINDS):
            problems.append(f"{s.code}: levels must be a non-empty subset of {UNIT_KINDS}")
        if s.measure == "live" and (s.numerator not in known or s.denominator not in known):
            problems.append(f"{s.code}: a live indicator needs numerator and denominator among {sorted(known)}")
    for g in cfg.groups.values():
        got = sum(s.points for s in cfg.indicators if s.group == g.code)
        if abs(got - g.points) > 1e-9:
            problems.append(f"group {g.code}: indicators give {got:g} points, the group has {g.points:g}")
    if abs(sum(g.points for g in cfg.groups.values()) - cfg.total_points) > 1e-9:
        problems.append(f"groups do not add up to {cfg.total_points:g} points")
    if problems:
        raise ValueError("service index configuration: " + "; ".join(problems))
    return cfg


# --------------------------------------------------------------------------- per-dossier facts

@dataclass(frozen=True)
class DossierPeriodFacts:
    """Everything the indicators need to know about one dossier in one period."""
    dossier_code: str
    unit_code: str
    procedure_code: str
    outcome: Outcome                 # rules.timeliness.judge at the period's end
    received: bool                   # received in the period
    finished: bool                   # finished (9/10) in the period, judged early / on time / late
    open_at_end: bool                # received, still open at the period's end
    online: bool                     # KenhThucHien = 2
    full_online_procedure: bool      # procedure offered as a full online service (reference data)
    digitised: bool                  # HoSoCoThanhPhanSoHoa
    electronic_result: bool          # result file issued electronically
    vneid: bool                      # TaiKhoanDuocXacThucVoiVNeID
    paid_online: bool                # DuocThanhToanTrucTuyen 1 or 2
    financial_obligation: bool       # went through status 6, or paid online
    disliked: bool                   # a rating of this dossier at a dissatisfied level, before the end
    resolution_working_days: float | None

    @property
    def in_progress_population(self) -> bool:
        return self.finished or self.open_at_end

    @property
    def on_time(self) -> bool:
        """Early or on time (finished in the period), or within the deadline at the period's end."""
        if self.finished:
            return self.outcome in (Outcome.EARLY, Outcome.ON_TIME)
        return self.open_at_end and self.outcome == Outcome.OPEN

    @property
    def late(self) -> bool:
        return self.in_progress_population and self.outcome == Outcome.LATE


def dossier_period_facts(dossier_code: str, events: Iterable[EventFacts], period: Period, cal, *,
                         full_online_procedure: bool = False, legal_working_days: float | None = None,
                         early_min_working_days: float = 1.0, disliked: bool = False,
                         judge_options: Mapping[str, Any] | None = None) -> DossierPeriodFacts | None:
    """The dossier's facts in ``period``: its events up to the period's end are folded
    (``rules.lifecycle.fold``) and judged at the end (``rules.timeliness.judge`` with
    ``as_of=period.end``; ``judge_options`` are passed on as keyword arguments, for the
    judgement's optional settings). None if the dossier had no event before the end."""
    upto = [e for e in events if e.event_time < period.end]
    f = fold(dossier_code, upto)
    if f is None:
        return None
    j = judge(f, cal, early_min_working_days=early_min_working_days,
              legal_working_days=legal_working_days, as_of=period.end, **dict(judge_options or {}))
    got_in = f.status not in (NEW, NOT_ACCEPTED)
    start = f.received_at or f.submitted_at
    received = got_in and start is not None and period.start <= start < period.end
    finished = (f.status in (FINISHED, RETURNED) and j.outcome.judged and j.finish_time is not None
                and period.start <= j.finish_time < period.end)
    open_at_end = got_in and f.is_open
    return DossierPeriodFacts(
        dossier_code=dossier_code, unit_code=f.unit_code, procedure_code=f.procedure_code, outcome=j.outcome,
        received=received, finished=finished, open_at_end=open_at_end, online=f.channel == 2,
        full_online_procedure=full_online_procedure, digitised=f.digitised, electronic_result=f.electronic_result,
        vneid=f.vneid, paid_online=bool(f.paid_online),
        financial_obligation=bool(f.paid_online) or any(e.status == FINANCIAL for e in upto),
        disliked=disliked, resolution_working_days=j.resolution_working_days if finished else None,
    )


# --------------------------------------------------------------------------- counts

BASE_COUNTS = (
    "received",                         # received in the period
    "received_online",                  # ... online (KenhThucHien 2)
    "received_full_procedure",          # ... of procedures offered full online
    "received_online_full_procedure",   # ... online, of those procedures
    "received_digitised",               # ... with digitised components
    "received_digitised_with_eresult",  # ... with digitised components and an electronic result
    "received_vneid",                   # ... owner authenticated with VNeID
    "paid_online",                      # ... paid online
    "financial_obligation",             # ... with a financial obligation (status 6, or paid online)
    "finished",                         # finished (9/10) in the period, judged
    "finished_on_time",                 # ... early or on time
    "finished_late",
    "open_at_end",                      # open at the period's end
    "open_within_deadline",
    "open_late",
    "results_electronic",               # finished in the period with an electronic result
    "late_or_disliked",                 # progress population: late, or rated dissatisfied
    "unlinked_dislikes",                # dissatisfied ratings in the period naming no known dossier
    "resolution_days_sum",              # working days, finished dossiers (information, no points)
)
DERIVED_COUNTS = (
    "progress_dossiers",                # finished + open_at_end
    "progress_on_time",                 # finished_on_time + open_within_deadline
    "results_in_period",                # = finished
    "late",                             # finished_late + open_late
    "satisfaction_ok",                  # progress_dossiers - late_or_disliked - unlinked_dislikes (>= 0)
)


def empty_counts() -> dict[str, float]:
    return {k: 0 for k in BASE_COUNTS}


def add_dossier(counts: dict[str, float], d: DossierPeriodFacts) -> None:
    """Add one dossier's facts to a unit's base counts."""
    if d.received:
        counts["received"] += 1
        counts["received_online"] += d.online
        counts["received_full_procedure"] += d.full_online_procedure
        counts["received_online_full_procedure"] += d.online and d.full_online_procedure
        counts["received_digitised"] += d.digitised
        counts["received_digitised_with_eresult"] += d.digitised and d.electronic_result
        counts["received_vneid"] += d.vneid
        counts["paid_online"] += d.paid_online
        counts["financial_obligation"] += d.financial_obligation
    if d.finished:
        counts["finished"] += 1
        counts["finished_on_time"] += d.on_time
        counts["finished_late"] += d.late
        counts["results_electronic"] += d.electronic_result
        if d.resolution_working_days is not None:
            counts["resolution_days_sum"] += d.resolution_working_days
    elif d.open_at_end:
        counts["open_at_end"] += 1
        counts["open_within_deadline"] += d.on_time
        counts["open_late"] += d.late
    if d.in_progress_population:
        counts["late_or_disliked"] += d.late or d.disliked


def derive_counts(base: Mapping[str, float]) -> dict[str, float]:
    """Base counts plus the derived ones (computed after summing, e.g. for the province)."""
    c = {k: base.get(k, 0) for k in BASE_COUNTS}
    c["progress_dossiers"] = c["finished"] + c["open_at_end"]
    c["progress_on_time"] = c["finished_on_time"] + c["open_within_deadline"]
    c["results_in_period"] = c["finished"]
    c["late"] = c["finished_late"] + c["open_late"]
    c["satisfaction_ok"] = max(0, c["progress_dossiers"] - c["late_or_disliked"] - c["unlinked_dislikes"])
    return c


def sum_counts(many: Iterable[Mapping[str, float]]) -> dict[str, float]:
    out = empty_counts()
    for c in many:
        for k in BASE_COUNTS:
            out[k] += c.get(k, 0)
    return out


def count_dossiers(dossiers: Iterable[DossierPeriodFacts], unlinked_dislikes: Mapping[str, int] | None = None
                   ) -> dict[str, dict[str, float]]:
    """Base counts per unit code from the period facts of dossiers, plus each unit's dissatisfied
    ratings that name no dossier of the data (each counted as one dossier with a dislike)."""
    out: dict[str, dict[str, float]] = {}
    for d in dossiers:
        add_dossier(out.setdefault(d.unit_code, empty_counts()), d)
    for unit, n in (unlinked_dislikes or {}).items():
        out.setdefault(unit, empty_counts())["unlinked_dislikes"] += n
    return out


# --------------------------------------------------------------------------- scores

@dataclass(frozen=True)
class IndicatorScore:
    code: str
    group: str
    numerator: float | None
    denominator: float | None
    ratio: float | None              # None: not measured, or nothing to divide by
    points: float | None             # None: not measured
    max_points: float
    measured: bool
    source: str | None = None        # "live", "supplied", or None (not measured)
    note: str = ""


def score_indicator(numerator: float | None, denominator: float | None, spec: IndicatorSpec,
                    *, source: str = "live") -> IndicatorScore:
    """One indicator from its numerator and denominator counts: ratio = numerator ÷ denominator
    (clipped to [0, 1]); points = threshold-linear (full at or above ``spec.threshold``, else
    ratio × points ÷ threshold). No counts: not measured (no points, never zero nor full).
    Denominator 0: as ``spec.when_no_dossiers`` says (not measured, zero or full points)."""
    if numerator is None or denominator is None:
        return IndicatorScore(spec.code, spec.group, numerator, denominator, None, None, spec.points, False, None,
                              "not measured")
    if denominator <= 0:
        rule = spec.when_no_dossiers
        if rule == "not_measured":
            return IndicatorScore(spec.code, spec.group, numerator, denominator, None, None, spec.points, False,
                                  None, "nothing in the period (denominator 0)")
        pts = spec.points if rule == "full" else 0.0
        return IndicatorScore(spec.code, spec.group, numerator, denominator, None, float(pts), spec.points, True,
                              source, f"denominator 0: {rule} points by the method")
    ratio = min(max(float(numerator) / float(denominator), 0.0), 1.0)
    return score_ratio(ratio, spec, source=source, numerator=numerator, denominator=denominator)


def score_ratio(ratio: float, spec: IndicatorSpec, *, source: str = "supplied", numerator: float | None = None,
                denominator: float | None = None) -> IndicatorScore:
    """Points of a known ratio (a supplied indicator given as a ratio)."""
    ratio = min(max(float(ratio), 0.0), 1.0)
    pts = threshold_linear(ratio, spec.points, spec.threshold)
    return IndicatorScore(spec.code, spec.group, numerator, denominator, ratio, pts, spec.points, True, source)


@dataclass(frozen=True)
class GroupScore:
    code: str
    name_vi: str
    points: float                    # earned, over measured indicators
    max_points: float                # applicable to the unit
    measured_max: float              # of the measured indicators


@dataclass(frozen=True)
class UnitIndex:
    unit_code: str
    kind: str
    indicators: tuple[IndicatorScore, ...]
    groups: tuple[GroupScore, ...]
    total: float                     # points earned over the measured indicators
    max_points: float                # points of the indicators applicable to this kind of unit
    measured_max: float              # how many of those points were measurable
    not_measured: tuple[str, ...]
    not_applicable: tuple[str, ...]
    counts: dict[str, float] = field(default_factory=dict)

    @property
    def average_resolution_working_days(self) -> float | None:
        n = self.counts.get("finished", 0)
        return self.counts.get("resolution_days_sum", 0) / n if n else None


def score_unit(unit_code: str, kind: str, counts: Mapping[str, float] | None, config: IndexConfig,
               supplied: Mapping[str, Any] | None = None) -> UnitIndex:
    """All indicators of one unit. ``counts``: its base counts (None or {}: no dossier at all;
    live indicators then follow their ``when_no_dossiers``). ``supplied``: indicator code ->
    an object with ``ratio`` / ``numerator`` / ``denominator`` (schemas.supplied_indicators.
    SuppliedValue); supplied indicators without one are not measured."""
    c = derive_counts(counts or {})
    supplied = supplied or {}
    scores: list[IndicatorScore] = []
    not_applicable = []
    for spec in config.indicators:
        if not spec.applies_to(kind):
            not_applicable.append(spec.code)
            continue
        if spec.measure == "live":
            # both named for a live indicator: checked when the configuration is read
            assert spec.numerator is not None and spec.denominator is not None
            scores.append(score_indicator(c[spec.numerator], c[spec.denominator], spec, source="live"))
            continue
        v = supplied.get(spec.code)
        if v is None:
            scores.append(score_indicator(None, None, spec))
        elif getattr(v, "ratio", None) is not None:
            scores.append(score_ratio(v.ratio, spec, source="supplied", numerator=getattr(v, "numerator", None),
                                      denominator=getattr(v, "denominator", None)))
        else:
            scores.append(score_indicator(v.numerator, v.denominator, spec, source="supplied"))
    groups = []
    for g in config.groups.values():
        mine = [s for s in scores if s.group == g.code]
        # points is None exactly when the indicator is not measured
        groups.append(GroupScore(g.code, g.name_vi, sum(s.points for s in mine if s.points is not None),
                                 sum(s.max_points for s in mine), sum(s.max_points for s in mine if s.measured)))
    return UnitIndex(
        unit_code=unit_code, kind=kind, indicators=tuple(scores), groups=tuple(groups),
        total=sum(s.points for s in scores if s.points is not None), max_points=sum(s.max_points for s in scores),
        measured_max=sum(s.max_points for s in scores if s.measured),
        not_measured=tuple(s.code for s in scores if not s.measured), not_applicable=tuple(not_applicable),
        counts=c)


def rank_peers(indices: Sequence[UnitIndex]) -> dict[str, tuple[int, int]]:
    """unit code -> (rank, number of peers) among units of the same kind, by total points,
    highest first; ties share a rank (1, 2, 2, 4). Units with nothing measured are not ranked."""
    out: dict[str, tuple[int, int]] = {}
    by_kind: dict[str, list[UnitIndex]] = {}
    for u in indices:
        if u.measured_max > 0:
            by_kind.setdefault(u.kind, []).append(u)
    for peers in by_kind.values():
        peers.sort(key=lambda u: (-round(u.total, 9), u.unit_code))
        for u in peers:
            better = sum(1 for p in peers if round(p.total, 9) > round(u.total, 9))
            out[u.unit_code] = (better + 1, len(peers))
    return out


def score_units(counts: Mapping[str, Mapping[str, float]], kinds: Mapping[str, str], province_code: str,
                config: IndexConfig, supplied_of=lambda code: {}, *, units: Iterable[str] = ()
                ) -> tuple[UnitIndex, dict[str, UnitIndex], list[str]]:
    """A period's scores from its per-unit base counts (``BASE_COUNTS`` names, however they were
    counted: ``count_dossiers`` in the batch CLI, SQL sums over ClickHouse in the live worker),
    so both paths share one scoring step. ``kinds``: unit code -> unit kind (reference data);
    ``supplied_of(code)``: the unit's supplied values; ``units``: codes to score even without
    counts. Returns (province roll-up, {unit code: UnitIndex}, codes of unknown units, whose
    dossiers still count for the province)."""
    codes = (set(counts) | set(units)) - {province_code}
    out: dict[str, UnitIndex] = {}
    unknown = []
    for code in sorted(codes):
        kind = kinds.get(code)
        if kind is None or kind == "province":
            unknown.append(code)
            continue
        out[code] = score_unit(code, kind, counts.get(code), config, supplied_of(code))
    # every dossier of the province's units, unknown ones included
    total = sum_counts(counts.values())
    return score_unit(province_code, "province", total, config, supplied_of(province_code)), out, unknown
