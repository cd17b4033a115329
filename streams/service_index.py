"""The national service index (Decision 766), live: computed by the leader worker over
ClickHouse and stored in ``service_index`` (sinks/migrations/0010_service_index.sql).

Computed once, stored: the boards read the stored rows (``v_service_index``) instead of
re-deriving the index in SQL, so the board, the batch CLI and any export show the same
points. Every ``service_index_interval_s`` the leader (streams.app) calls
``ServiceIndexJob.run``, in a thread:

1. per unit, the index's base counts (``rules.service_index.BASE_COUNTS``, the names the
   batch ``pulse index`` produces) by one SQL query over ``dossier_state FINAL`` (the
   stream's stored judgement: outcome, is_open, deadline, closed_at, the flags) and
   ``ratings FINAL`` for a period ``[start, end)``;
2. ``rules.service_index.score_units`` (the batch path's scoring step) with the supplied
   values (``service_index_supplied``), ``rank_peers`` for the ranks;
3. rows (one per unit x indicator, a ``_total`` per unit, the province roll-up) inserted
   with a new ``computed_at`` (ReplacingMergeTree: the newest computation wins).

Periods: the current month to date, every run; the previous month, quarter and year once,
when they are not stored yet (just after they end, so the stored state is the state at
their end). Each period is computed with its previous period (pulse.index.resolve_periods)
for the change.

How the stored state stands for "the dossier at the period's end" (the batch folds the
events up to the end and judges there): finished in the period = outcome early / on_time /
late and ``closed_at`` in the period; open at the end = received before the end and open
now or closed after the end; late at the end = two supplement rounds or the effective
``deadline`` before the end. Exact for the month to date (its end is now); for a past
period it is the dossier's state now, except the electronic result, which counts only if
the dossier was closed by the end (it is issued with the result); another flag set after
the end or a deadline moved by a later supplement wait counts as it is now, one reason a
past period is computed once, right after it ends. A dossier waiting for the
citizen at the end (no deadline while the clock is stopped) is within its deadline unless
it has had two rounds; the batch judges it at its open round's request.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo

from rules import service_index as si
from sinks.rows import SERVICE_INDEX_COLUMNS, SERVICE_INDEX_SUPPLIED_COLUMNS

log = logging.getLogger("motcua.streams.service_index")
TOTAL = "_total"

# Per dossier: the facts of rules.service_index.DossierPeriodFacts, from the stored state.
# Status codes (rules.lifecycle): 1 new, 3 not accepted, 6 financial obligation, 9
# finished, 10 returned. NULL comparisons are wrapped in ifNull: a missing time is "no".
_DOSSIERS = """
SELECT
    unit_code, outcome AS d_outcome, channel AS d_channel, digitised AS d_digitised,
    -- an electronic result is issued with the result: one of a dossier closed after the end
    -- did not exist at the end (exact for the month to date, whose end is now)
    toUInt8(electronic_result AND (is_open OR ifNull(closed_at < p_end, 0))) AS d_eresult, vneid AS d_vneid, paid_online AS d_paid, resolution_working_days AS d_rwd,
    toUInt8(ifNull(procedure_code IN {full_online:Array(String)}, 0)) AS f_full_proc,
    toUInt8(ifNull(ifNull(started < p_end, 0)
        AND (status NOT IN (1, 3) OR (ifNull(closed_at >= p_end, 0) AND received_at IS NOT NULL)), 0)) AS f_in_at_end,
    toUInt8(ifNull(f_in_at_end AND started >= p_start, 0)) AS f_received,
    toUInt8(ifNull(status IN (9, 10) AND outcome IN ('early', 'on_time', 'late')
        AND ifNull(closed_at >= p_start AND closed_at < p_end, 0), 0)) AS f_finished,
    toUInt8(ifNull(f_in_at_end AND NOT f_finished AND (is_open OR ifNull(closed_at >= p_end, 0)), 0)) AS f_open_at_end,
    toUInt8(ifNull(f_open_at_end AND (supplement_rounds >= 2 OR ifNull(deadline < p_end, 0)), 0)) AS f_open_late,
    toUInt8(ifNull((f_finished AND outcome = 'late') OR f_open_late, 0)) AS f_late,
    toUInt8(ifNull(paid_online OR dossier_code IN (
        SELECT dossier_code FROM {db}.dossier_events WHERE status = 6 AND event_time < {p_end}), 0)) AS f_financial,
    toUInt8(ifNull(dossier_code IN (
        SELECT assumeNotNull(dossier_code) FROM {db}.ratings FINAL
        WHERE dossier_code IS NOT NULL AND level <= {dislike:UInt8} AND event_time < {p_end}), 0)) AS f_disliked
FROM
(
    SELECT *, coalesce(received_at, submitted_at) AS started,
           fromUnixTimestamp64Milli({start_ms:Int64}, 'Asia/Ho_Chi_Minh') AS p_start,
           fromUnixTimestamp64Milli({end_ms:Int64}, 'Asia/Ho_Chi_Minh') AS p_end
    FROM {db}.dossier_state FINAL
    WHERE first_event_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'Asia/Ho_Chi_Minh')
)
"""

# The base counts, named as rules.service_index.BASE_COUNTS (checked at import below).
COUNTS_SQL = """
SELECT
    unit_code,
    countIf(f_received)                                                AS received,
    countIf(f_received AND d_channel = 2)                              AS received_online,
    countIf(f_received AND f_full_proc)                                AS received_full_procedure,
    countIf(f_received AND d_channel = 2 AND f_full_proc)              AS received_online_full_procedure,
    countIf(f_received AND d_digitised)                                AS received_digitised,
    countIf(f_received AND d_digitised AND d_eresult)                  AS received_digitised_with_eresult,
    countIf(f_received AND d_vneid)                                    AS received_vneid,
    countIf(f_received AND d_paid)                                     AS paid_online,
    countIf(f_received AND f_financial)                                AS financial_obligation,
    countIf(f_finished)                                                AS finished,
    countIf(f_finished AND d_outcome IN ('early', 'on_time'))          AS finished_on_time,
    countIf(f_finished AND d_outcome = 'late')                         AS finished_late,
    countIf(f_open_at_end)                                             AS open_at_end,
    countIf(f_open_at_end AND NOT f_open_late)                         AS open_within_deadline,
    countIf(f_open_late)                                               AS open_late,
    countIf(f_finished AND d_eresult)                                  AS results_electronic,
    countIf((f_finished OR f_open_at_end) AND (f_late OR f_disliked))  AS late_or_disliked,
    toFloat64(0)                                                       AS unlinked_dislikes,
    sumIf(toFloat64(ifNull(d_rwd, 0)), f_finished)                     AS resolution_days_sum
FROM ({dossiers})
GROUP BY unit_code
"""

# Per unit, the ratings of the period: dissatisfied ones naming no known dossier (each one
# more dossier with a dislike, as the batch counts them), and all / satisfied ratings (not
# scored: stored with the counts so the index can be set beside the satisfaction board).
RATINGS_SQL = """
SELECT unit_code,
       countIf(level <= {dislike:UInt8} AND (ifNull(dossier_code, '') = ''
               OR dossier_code NOT IN (SELECT dossier_code FROM {db}.dossier_state))) AS unlinked_dislikes,
       count() AS ratings, countIf(level >= 4) AS ratings_satisfied
FROM {db}.ratings FINAL
WHERE event_time >= fromUnixTimestamp64Milli({start_ms:Int64}, 'Asia/Ho_Chi_Minh')
  AND event_time < fromUnixTimestamp64Milli({end_ms:Int64}, 'Asia/Ho_Chi_Minh')
GROUP BY unit_code
"""
INFO_COUNTS = ("ratings", "ratings_satisfied")

_COUNT_NAMES = [line.rsplit(" AS ", 1)[1].strip().rstrip(",") for line in COUNTS_SQL.splitlines()
                if " AS " in line and not line.strip().startswith("FROM")]
if _COUNT_NAMES != list(si.BASE_COUNTS):   # the SQL and the batch counts must name the same things
    raise RuntimeError(f"streams.service_index: counts {_COUNT_NAMES} are not rules.service_index.BASE_COUNTS")


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def query_counts(client, database: str, period: si.Period, *, full_online: Iterable[str],
                 dissatisfied_max_level: int) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """({unit: base counts}, {unit: information counts}) of ``period`` from ClickHouse."""
    params = {"start_ms": _ms(period.start), "end_ms": _ms(period.end), "full_online": sorted(full_online),
              "dislike": int(dissatisfied_max_level)}
    # the IN subqueries are not correlated: they get the period's end as an expression of their own
    sql = (COUNTS_SQL.replace("{dossiers}", _DOSSIERS).replace("{db}", f"`{database}`")
           .replace("{p_end}", "fromUnixTimestamp64Milli({end_ms:Int64}, 'Asia/Ho_Chi_Minh')"))
    counts: dict[str, dict[str, float]] = {}
    res = client.query(sql, parameters=params)
    names = list(res.column_names)
    for row in res.result_rows:
        counts[row[0]] = {n: float(v) for n, v in zip(names[1:], row[1:])}
    info: dict[str, dict[str, float]] = {}
    for unit, unlinked, n, good in client.query(RATINGS_SQL.replace("{db}", f"`{database}`"),
                                                parameters=params).result_rows:
        if unlinked:
            counts.setdefault(unit, si.empty_counts())["unlinked_dislikes"] = float(unlinked)
        info[unit] = {"ratings": float(n), "ratings_satisfied": float(good)}
    return counts, info


def query_supplied(client, database: str, config: si.IndexConfig) -> Any:
    """The supplied values loaded so far, as a schemas.supplied_indicators.SuppliedIndicators
    (None if there are none); values of indicators the configuration does not supply are left out."""
    from schemas.supplied_indicators import SuppliedIndicators, SuppliedValue
    supplied_codes = {s.code for s in config.indicators if s.measure == "supplied"}
    rows = client.query(f"SELECT {', '.join(SERVICE_INDEX_SUPPLIED_COLUMNS)} "
                        f"FROM `{database}`.service_index_supplied FINAL").result_rows
    values = []
    for r in rows:
        d = dict(zip(SERVICE_INDEX_SUPPLIED_COLUMNS, r))
        if d["indicator"] not in supplied_codes:
            continue
        values.append(SuppliedValue(unit_code=d["unit_code"], period=d["period"], indicator=d["indicator"],
                                    numerator=d["numerator"], denominator=d["denominator"], ratio=d["ratio"],
                                    source=d["source"] or "?", note=d["note"]))
    return SuppliedIndicators(values=tuple(values)) if values else None


def supplied_rows(doc, config_version: str, loaded_at: datetime) -> list[list]:
    """``service_index_supplied`` rows of a supplied-indicators document (pulse index import-supplied)."""
    return [[v.unit_code, v.period.upper(), v.indicator, v.numerator, v.denominator, v.ratio, v.source, v.note,
             doc.config_version or config_version, loaded_at] for v in doc.values]


def score_period(client, database: str, period: si.Period, config: si.IndexConfig, ref, supplied
                 ) -> tuple[si.UnitIndex, dict[str, si.UnitIndex], dict[str, dict[str, float]]]:
    """(province, {unit: UnitIndex}, information counts) of one period, every department and
    commune of the reference data scored (with or without dossiers, as ``pulse index --all-units``)."""
    from pulse.index import supplied_for
    full = {p.code for p in ref.procedures.values() if getattr(p, "online", None) == "full"}
    counts, info = query_counts(client, database, period, full_online=full,
                                dissatisfied_max_level=config.dissatisfied_max_level)
    units = {u.code for u in ref.units.values() if u.kind != "province"}
    prov, scored, unknown = si.score_units(counts, {c: u.kind for c, u in ref.units.items()}, ref.province.code,
                                           config, lambda code: supplied_for(supplied, code, period), units=units)
    if unknown:
        log.info("service index %s: units not in the reference data (province only): %s", period.label, unknown)
    info_total = {k: sum(v.get(k, 0.0) for v in info.values()) for k in INFO_COUNTS}
    return prov, scored, {**info, prov.unit_code: info_total}


def index_rows(period: si.Period, prov: si.UnitIndex, units: Mapping[str, si.UnitIndex],
               previous: tuple[si.UnitIndex, Mapping[str, si.UnitIndex]] | None, config: si.IndexConfig,
               info: Mapping[str, Mapping[str, float]], computed_at: datetime) -> list[list]:
    """``service_index`` rows (SERVICE_INDEX_COLUMNS order) of one period: per unit and the
    province, one row per applicable indicator and a ``_total``. Change as ``pulse index``
    gives it: points against the previous period's, the total only when both had
    measurable points."""
    ranks = si.rank_peers(list(units.values()))
    p_prov, p_units = previous if previous is not None else (None, {})
    rows: list[list] = []
    for u in [prov, *units.values()]:
        prev = p_prov if u is prov else p_units.get(u.unit_code)
        prev_by = {s.code: s for s in prev.indicators} if prev is not None else {}
        head = [period.kind, period.label, u.unit_code]
        times = [period.start, period.end, u.kind]
        for s in u.indicators:
            spec = config.indicator(s.code)
            p = prev_by.get(s.code)
            change = s.points - p.points if p is not None and s.points is not None and p.points is not None else None
            rows.append([*head, s.code, *times, s.group, config.groups[s.group].name_vi, spec.name_vi,
                         s.numerator, s.denominator, s.ratio, s.points, s.max_points, s.measured, s.source or "",
                         s.note, s.max_points if s.measured else 0.0, None, None,
                         p.points if p is not None else None, change, {}, config.version, computed_at])
        rank = ranks.get(u.unit_code)
        comparable = prev is not None and prev.measured_max > 0 and u.measured_max > 0
        counts = {**{k: float(v) for k, v in u.counts.items()}, **dict(info.get(u.unit_code, {}))}
        rows.append([*head, TOTAL, *times, "", "", "Tổng điểm", None, None, None, u.total, u.max_points,
                     u.measured_max > 0, "", f"{u.measured_max:g}/{u.max_points:g} điểm đo được", u.measured_max,
                     rank[0] if rank else None, rank[1] if rank else None,
                     prev.total if prev is not None and prev.measured_max > 0 else None,
                     u.total - prev.total if comparable and prev is not None else None,
                     counts, config.version, computed_at])
    assert all(len(r) == len(SERVICE_INDEX_COLUMNS) for r in rows)
    return rows


def periods_due(now: datetime, stored: set[str]) -> list[si.Period]:
    """The month to date (always) and the previous month, quarter and year unless stored."""
    tz = now.tzinfo
    y, m = now.year, now.month
    out = [si.parse_period(f"{y:04d}-{m:02d}-MTD", tz, as_of=now)]
    py, pm = (y, m - 1) if m > 1 else (y - 1, 12)
    q = (m - 1) // 3 + 1
    pq = f"{y:04d}-Q{q - 1}" if q > 1 else f"{y - 1:04d}-Q4"
    for label in (f"{py:04d}-{pm:02d}", pq, f"{y - 1:04d}"):
        if label not in stored:
            out.append(si.parse_period(label, tz))
    return out


def compute(client, database: str, labels_or_periods: Iterable[si.Period], config: si.IndexConfig, ref,
            as_of: datetime, computed_at: datetime | None = None) -> list[list]:
    """Rows of the given periods (each cut at ``as_of`` if not over, with its previous period)."""
    from pulse.index import resolve_periods
    computed_at = computed_at or datetime.now(timezone.utc)
    supplied = query_supplied(client, database, config)
    rows: list[list] = []
    for full in labels_or_periods:
        period, previous = resolve_periods(full, as_of)
        prov, units, info = score_period(client, database, period, config, ref, supplied)
        p_prov, p_units, _ = score_period(client, database, previous, config, ref, supplied)
        rows += index_rows(period, prov, units, (p_prov, p_units), config, info, computed_at)
    return rows


class ServiceIndexJob:
    """What the leader's timer runs (in a thread): compute the due periods, insert the rows."""

    def __init__(self, settings, config: si.IndexConfig | None = None, ref=None):
        from pulse.index import load_config
        from schemas.reference import load_reference
        self.settings = settings
        self.config = config or load_config()
        self.ref = ref or load_reference()
        self.tz = ZoneInfo(settings.timezone)

    def run(self, client, now: datetime | None = None) -> int:
        from sinks.client import database_of
        db = database_of(self.settings)
        now = (now or datetime.now(self.tz)).astimezone(self.tz)
        stored = {r[0] for r in client.query(
            f"SELECT DISTINCT period FROM `{db}`.service_index WHERE period_kind != 'mtd' "
            "AND config_version = {v:String}", parameters={"v": self.config.version}).result_rows}
        rows = compute(client, db, periods_due(now, stored), self.config, self.ref, now)
        if rows:
            client.insert("service_index", rows, column_names=SERVICE_INDEX_COLUMNS, database=db)
        return len(rows)
