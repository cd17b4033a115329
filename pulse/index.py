"""``pulse index``: the national service index (Decision 766) from export files, without Kafka or ClickHouse.

    pulse index --from FILE... --period 2026-11 [--unit CODE] [--supplied FILE]
                [--format json|csv] [--as-of ISO] [--kind auto|dossier|dvcqg|rating]
                [--source ID] [--config YAML] [--all-units] [--skip-bad]
    pulse index import-supplied FILE     load supplied values for the live index (ClickHouse)

Input files are the importer's formats (``frontdoor.importer``): JSON lines or CSV, read
with ``frontdoor.importer.iter_records``. A record is a dossier-status event (contract
fields), a kiosk rating (``rating_id``), or a DVCQG dossier object (``MaHoSo`` with its
QuaTrinhXuLy history, converted by ``frontdoor.dvcqg.convert_dossier``); ``--kind auto``
tells them apart per record. Every bad line is reported as FILE:LINE: reason; without
``--skip-bad`` nothing is computed then (exit 1).

Periods: ``2026-11`` (month), ``2026-Q4``, ``2026``, ``2026-11-MTD`` (month to ``--as-of``,
default now). A period not over at ``--as-of`` is counted up to ``--as-of``. Each unit is
also computed for the previous period, for the change.

The indicators, points and thresholds are in ``rules/service_index.v2025.yaml``; the
functions in ``rules.service_index`` (the live ClickHouse path uses the same ones).
Values the streams cannot measure come from ``--supplied FILE`` (contract
``schemas.supplied_indicators``); without them those indicators are "not measured" and
each unit's ``measured_max`` says how many of its points were measurable.

Exit code: 0 done; 1 bad lines in the input (listed on stderr); 2 could not run (no such
file, bad period, bad supplied file or configuration).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections import defaultdict
from collections.abc import Set
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from rules import service_index as si
from rules.lifecycle import EventFacts

DEFAULT_CONFIG = Path(si.__file__).resolve().parent / "service_index.v2025.yaml"
KINDS = ("auto", "dossier", "dvcqg", "rating")
GRADE_NOTE = ("No official grade band for the index was found (DOMAIN.md: one provincial board draws "
              "Xuất sắc / Tốt / Khá / Trung bình / Yếu with unknown cut-offs); none is given.")


class IndexFailed(Exception):
    pass


def load_config(path: Path | str = DEFAULT_CONFIG) -> si.IndexConfig:
    """The index configuration from its YAML file (default: the shipped v2025)."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise IndexFailed(f"configuration {path}: {e}") from None
    try:
        return si.parse_config(raw)
    except ValueError as e:
        raise IndexFailed(f"configuration {path}: {e}") from None


# --------------------------------------------------------------------------- input

def read_exports(files: list[Path], *, kind: str = "auto", fmt: str | None = None, source: str = "dvcqg",
                 tz: str = "Asia/Ho_Chi_Minh") -> tuple[list, list, list[str]]:
    """(dossier events, kiosk ratings, bad lines as "FILE:LINE: reason")."""
    from frontdoor import dvcqg
    from frontdoor.api import contract_errors
    from frontdoor.importer import iter_records
    from schemas import codec
    from schemas.contracts import DossierEvent, KioskRating

    events: list = []
    ratings: list = []
    bad: list[str] = []
    for path in files:
        path = Path(path)
        if not path.exists():
            raise IndexFailed(f"{path}: no such file")
        f = fmt or ("csv" if path.suffix.lower() == ".csv" else "jsonl")
        try:
            for n, obj in iter_records(path, f):
                where = f"{path}:{n}"
                if isinstance(obj, Exception):
                    bad.append(f"{where}: {obj}")
                    continue
                if not isinstance(obj, dict):
                    bad.append(f"{where}: a record must be a JSON object")
                    continue
                k = kind
                if k == "auto":
                    k = "dvcqg" if "MaHoSo" in obj else "rating" if "rating_id" in obj else "dossier"
                if k == "dvcqg":
                    try:
                        events.extend(dvcqg.convert_dossier(obj, source, tz=tz))
                    except dvcqg.DvcqgError as e:
                        bad.append(f"{where}: " + "; ".join(f"{p['field']}: {p['reason']}" for p in e.problems))
                    continue
                model = KioskRating if k == "rating" else DossierEvent
                raw = json.dumps(obj, ensure_ascii=False).encode()
                try:
                    ev = codec.decode_as(model, raw)
                except ValueError:
                    errs = contract_errors(model, raw) or [{"field": "$", "reason": "invalid"}]
                    bad.append(f"{where}: " + "; ".join(f"{e['field']}: {e['reason']}" for e in errs))
                    continue
                (ratings if k == "rating" else events).append(ev)
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise IndexFailed(f"{path}: unreadable: {e}") from None
    return events, ratings, bad


def load_supplied(path: Path, config: si.IndexConfig) -> tuple[Any, list[str]]:
    """(SuppliedIndicators, warnings); raises IndexFailed naming every problem."""
    from pydantic import ValidationError

    from schemas.supplied_indicators import SuppliedIndicators
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as e:
        raise IndexFailed(f"supplied values {path}: {e}") from None
    try:
        doc = SuppliedIndicators.model_validate_json(text)
    except ValidationError as e:
        detail = "; ".join(f"{'.'.join(str(x) for x in err['loc']) or '$'}: {err['msg']}" for err in e.errors())
        raise IndexFailed(f"supplied values {path}: {detail}") from None
    problems: list[str] = []
    for i, v in enumerate(doc.values):
        try:
            spec = config.indicator(v.indicator)
        except KeyError:
            problems.append(f"values[{i}].indicator: {v.indicator!r} is not an indicator of configuration {config.version}")
            continue
        if spec.measure != "supplied":
            problems.append(f"values[{i}].indicator: {v.indicator!r} is measured from the streams, not supplied")
    if problems:
        raise IndexFailed(f"supplied values {path}: " + "; ".join(problems))
    warnings = []
    if doc.config_version and doc.config_version != config.version:
        warnings.append(f"supplied values were prepared for configuration {doc.config_version}, "
                        f"computing with {config.version}")
    return doc, warnings


def supplied_for(doc, unit_code: str, period: si.Period) -> dict[str, Any]:
    """Indicator code -> supplied value of a unit for a period (a month's values apply to its MTD)."""
    if doc is None:
        return {}
    labels = {period.label.upper()}
    month = period.month_label
    if period.kind == "mtd" and month is not None:  # an MTD period always has its month
        labels.add(month)
    return {v.indicator: v for v in doc.values if v.unit_code == unit_code and v.period.upper() in labels}


# --------------------------------------------------------------------------- computing

def compute_period(events_by_dossier: dict[str, list[EventFacts]], ratings: list, period: si.Period,
                   config: si.IndexConfig, ref, cal, *, early_min_working_days: float,
                   supplied=None, extra_units: Set[str] = frozenset(), all_units: bool = False
                   ) -> tuple[si.UnitIndex, dict[str, si.UnitIndex], list[str]]:
    """(province, {unit code: UnitIndex}, units of unknown kind) for one period."""
    dislike_max = config.dissatisfied_max_level
    disliked: set[str] = set()
    unlinked: dict[str, int] = defaultdict(int)
    for r in ratings:
        if int(r.level) > dislike_max or r.event_time >= period.end:
            continue
        if r.dossier_code and r.dossier_code in events_by_dossier:
            disliked.add(r.dossier_code)
        elif r.event_time >= period.start:
            unlinked[r.unit_code] += 1
    facts = []
    for code, evs in events_by_dossier.items():
        proc_code = next((e.procedure_code for e in reversed(evs) if e.procedure_code), "")
        proc = ref.procedures.get(proc_code)
        d = si.dossier_period_facts(
            code, evs, period, cal, full_online_procedure=proc is not None and proc.online == "full",
            legal_working_days=proc.legal_working_days if proc is not None else None,
            early_min_working_days=early_min_working_days, disliked=code in disliked)
        if d is not None:
            facts.append(d)
    counts = si.count_dossiers(facts, unlinked)
    codes = set(extra_units)
    if supplied is not None:
        codes |= {v.unit_code for v in supplied.values}
    if all_units:
        codes |= {u.code for u in ref.units.values() if u.kind != "province"}
    # the scoring step the live worker shares (streams.service_index): counts -> scores
    return si.score_units(counts, {c: u.kind for c, u in ref.units.items()}, ref.province.code, config,
                          lambda code: supplied_for(supplied, code, period), units=codes)


def resolve_periods(full: si.Period, as_of: datetime, warn=lambda msg: None) -> tuple[si.Period, si.Period]:
    """(period, previous period) as computed: a period not over at ``as_of`` is counted up to
    then and compared with the same span of the previous one. The live worker
    (streams.service_index) cuts its periods the same way."""
    period = full
    if full.kind != "mtd" and full.end > as_of:
        warn(f"period {full.label} is not over at {as_of.isoformat()}: counted up to then")
        period = si.Period(full.label, full.kind, full.start, max(full.start, as_of))
    previous = si.previous_period(full)
    if period.end < full.end:  # a period cut at as_of compares with the same span of the previous one
        previous = si.Period(previous.label, previous.kind, previous.start,
                             min(previous.end, previous.start + (period.end - period.start)))
    return period, previous


def _r(x, nd=4):
    return None if x is None else round(float(x), nd)


def _period_json(p: si.Period) -> dict:
    return {"label": p.label, "kind": p.kind, "start": p.start.isoformat(), "end": p.end.isoformat()}


def unit_json(u: si.UnitIndex, prev: si.UnitIndex | None, rank: tuple[int, int] | None, ref, config) -> dict:
    ref_unit = ref.units.get(u.unit_code)
    prev_by = {s.code: s for s in prev.indicators} if prev is not None else {}
    inds = []
    for s in u.indicators:
        spec = config.indicator(s.code)
        p = prev_by.get(s.code)
        inds.append({
            "code": s.code, "group": s.group, "name_vi": spec.name_vi, "portal_code": spec.portal_code,
            "measure": spec.measure, "numerator": _r(s.numerator), "denominator": _r(s.denominator),
            "ratio": _r(s.ratio, 6), "threshold": spec.threshold, "points": _r(s.points), "max_points": s.max_points,
            "measured": s.measured, "source": s.source, "note": s.note,
            "previous_ratio": _r(p.ratio, 6) if p else None, "previous_points": _r(p.points) if p else None,
            "change": _r(s.points - p.points) if p and s.points is not None and p.points is not None else None,
        })
    comparable = prev is not None and prev.measured_max > 0 and u.measured_max > 0
    return {
        "unit_code": u.unit_code, "name": ref_unit.name if ref_unit else "", "kind": u.kind,
        "total": _r(u.total), "max_points": u.max_points, "measured_max": u.measured_max,
        "measured_note": f"{u.measured_max:g} of the {u.max_points:g} points applicable to this unit were measurable",
        "rank": rank[0] if rank else None, "peers": rank[1] if rank else None,
        "previous_total": _r(prev.total) if prev is not None and prev.measured_max > 0 else None,
        "previous_measured_max": prev.measured_max if prev is not None else None,
        "change": _r(u.total - prev.total) if comparable and prev is not None else None,
        "grade": None,
        "groups": {g.code: {"name_vi": g.name_vi, "points": _r(g.points), "max_points": g.max_points,
                            "measured_max": g.measured_max} for g in u.groups},
        "not_measured": list(u.not_measured), "not_applicable": list(u.not_applicable),
        "average_resolution_working_days": _r(u.average_resolution_working_days),
        "counts": {k: _r(v) for k, v in u.counts.items()},
        "indicators": inds,
    }


CSV_COLUMNS = ("period", "unit_code", "unit_name", "kind", "row", "code", "name_vi", "numerator", "denominator",
               "ratio", "points", "max_points", "measured", "measured_max", "source", "rank", "peers", "previous_points", "change")


def to_csv(report: dict) -> str:
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    label = report["period"]["label"]
    for u in [report["province"], *report["units"]]:
        base = {"period": label, "unit_code": u["unit_code"], "unit_name": u["name"], "kind": u["kind"]}
        for i in u["indicators"]:
            w.writerow({**base, "row": "indicator", "code": i["code"], "name_vi": i["name_vi"],
                        "numerator": i["numerator"], "denominator": i["denominator"], "ratio": i["ratio"],
                        "points": i["points"], "max_points": i["max_points"], "measured": int(i["measured"]),
                        "source": i["source"] or "", "previous_points": i["previous_points"], "change": i["change"]})
        for code, g in u["groups"].items():
            w.writerow({**base, "row": "group", "code": code, "name_vi": g["name_vi"], "points": g["points"],
                        "max_points": g["max_points"], "measured_max": g["measured_max"]})
        w.writerow({**base, "row": "total", "code": "total", "points": u["total"], "max_points": u["max_points"],
                    "measured_max": u["measured_max"], "rank": u["rank"], "peers": u["peers"], "change": u["change"]})
    return out.getvalue()


def build_report(files: list[Path], period_text: str, *, unit: str | None = None, supplied_path: Path | None = None,
                 as_of: datetime | None = None, kind: str = "auto", fmt: str | None = None, source: str = "dvcqg",
                 config_path: Path | str = DEFAULT_CONFIG, all_units: bool = False, skip_bad: bool = False,
                 settings=None, warn=lambda msg: None) -> tuple[dict | None, list[str]]:
    """(report, bad lines); the report is None when there were bad lines and not ``skip_bad``."""
    from pulse.config import Settings
    from rules.calendar import default_calendar
    from schemas.reference import load_reference

    settings = settings or Settings.from_env()
    tz = ZoneInfo(settings.timezone)
    as_of = as_of or datetime.now(tz)
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=tz)
    config = load_config(config_path)
    try:
        full = si.parse_period(period_text, tz, as_of=as_of)
    except ValueError as e:
        raise IndexFailed(str(e)) from None
    period, previous = resolve_periods(full, as_of, warn)
    supplied = None
    if supplied_path is not None:
        supplied, warnings = load_supplied(supplied_path, config)
        for w in warnings:
            warn(w)
    events, ratings, bad = read_exports(files, kind=kind, fmt=fmt, source=source, tz=settings.timezone)
    if bad and not skip_bad:
        return None, bad
    by_dossier: dict[str, list[EventFacts]] = defaultdict(list)
    for ev in events:
        by_dossier[ev.dossier_code].append(EventFacts.from_event(ev))
    ref = load_reference()
    if unit and unit not in ref.units:
        raise IndexFailed(f"--unit {unit}: not a unit of the reference data (schemas/reference/units.csv)")
    cal = default_calendar()
    extra = {unit} if unit else set()
    kw = dict(early_min_working_days=settings.early_min_working_days, supplied=supplied, extra_units=extra,
              all_units=all_units)
    prov, units, unknown = compute_period(by_dossier, ratings, period, config, ref, cal, **kw)
    kw["extra_units"] = set(units)  # the same units in the previous period, dossiers or not
    p_prov, p_units, _ = compute_period(by_dossier, ratings, previous, config, ref, cal, **kw)
    for code in unknown:
        warn(f"unit {code} is not in the reference data: its dossiers count for the province only")
    ranks = si.rank_peers(list(units.values()))
    shown = [u for c, u in sorted(units.items()) if unit is None or c == unit]
    report = {
        "index": config.title, "config_version": config.version,
        "period": _period_json(period), "previous_period": _period_json(previous),
        "as_of": as_of.isoformat(), "grade_bands": config.grade_bands, "grade_note": GRADE_NOTE,
        "province": unit_json(prov, p_prov, None, ref, config),
        "units": [unit_json(u, p_units.get(u.unit_code), ranks.get(u.unit_code), ref, config) for u in shown],
        "rejected": bad,
    }
    return report, bad


def import_supplied(argv: list[str]) -> int:
    """``pulse index import-supplied FILE``: check a supplied-indicators file (as ``--supplied``)
    and load it into ClickHouse (``service_index_supplied``), where the live index
    (streams.service_index) reads it at its next run. A value loaded again replaces the old one."""
    from datetime import timezone

    from pulse.config import Settings
    from sinks.client import database_of, get_client
    from sinks.rows import SERVICE_INDEX_SUPPLIED_COLUMNS
    from streams.service_index import supplied_rows

    ap = argparse.ArgumentParser(prog="pulse index import-supplied", description=import_supplied.__doc__)
    ap.add_argument("file", type=Path, help="supplied indicator values (schemas/supplied-indicators.v1.schema.json)")
    ap.add_argument("--config", default=str(DEFAULT_CONFIG), help="index configuration YAML")
    a = ap.parse_args(argv)
    try:
        config = load_config(a.config)
        doc, warnings = load_supplied(a.file, config)
    except IndexFailed as e:
        print(f"pulse index: {e}", file=sys.stderr)
        return 2
    for w in warnings:
        print(f"pulse index: {w}", file=sys.stderr)
    settings = Settings.from_env()
    client = get_client(settings)
    try:
        rows = supplied_rows(doc, config.version, datetime.now(timezone.utc))
        client.insert("service_index_supplied", rows, column_names=SERVICE_INDEX_SUPPLIED_COLUMNS,
                      database=database_of(settings))
    finally:
        client.close()
    print(f"pulse index: {len(rows)} supplied value(s) loaded from {a.file}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["import-supplied"]:
        return import_supplied(argv[1:])
    ap = argparse.ArgumentParser(prog="pulse index", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="files", nargs="+", type=Path, required=True, metavar="FILE",
                    help="export files: JSON lines or CSV (contract or DVCQG field names)")
    ap.add_argument("--period", required=True, help="2026-11, 2026-Q4, 2026 or 2026-11-MTD")
    ap.add_argument("--unit", default=None, help="only this unit (DonViXuLy code); ranks are still among all peers")
    ap.add_argument("--supplied", type=Path, default=None, help="supplied indicator values (schemas/supplied-indicators.v1.schema.json)")
    ap.add_argument("--format", choices=("json", "csv"), default="json", help="output format")
    ap.add_argument("--input-format", choices=("jsonl", "csv"), default=None, help="default: from each file's extension")
    ap.add_argument("--kind", choices=KINDS, default="auto", help="what the records are (auto: per record)")
    ap.add_argument("--source", default="dvcqg", help="source_system for DVCQG records (part of their event ids)")
    ap.add_argument("--as-of", default=None, help="ISO instant for month-to-date and unfinished periods (default: now)")
    ap.add_argument("--config", default=str(DEFAULT_CONFIG), help="index configuration YAML")
    ap.add_argument("--all-units", action="store_true", help="every department and commune of the reference data")
    ap.add_argument("--skip-bad", action="store_true", help="compute without the bad lines (still listed on stderr)")
    a = ap.parse_args(argv)

    def warn(msg: str) -> None:
        print(f"pulse index: {msg}", file=sys.stderr)

    try:
        as_of = datetime.fromisoformat(a.as_of) if a.as_of else None
    except ValueError:
        warn(f"--as-of {a.as_of!r}: not an ISO date-time")
        return 2
    try:
        report, bad = build_report(a.files, a.period, unit=a.unit, supplied_path=a.supplied, as_of=as_of,
                                   kind=a.kind, fmt=a.input_format, source=a.source, config_path=a.config,
                                   all_units=a.all_units, skip_bad=a.skip_bad, warn=warn)
    except IndexFailed as e:
        warn(str(e))
        return 2
    for line in bad:
        print(f"bad line {line}", file=sys.stderr)
    if report is None:
        warn(f"{len(bad)} bad line(s): nothing computed (fix them, or --skip-bad to compute without them)")
        return 1
    sys.stdout.write(to_csv(report) if a.format == "csv" else json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
