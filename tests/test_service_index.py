"""The national service index (rules.service_index, pulse index).

Expected scores are computed by hand from the formulas (docs/SERVICE-INDEX.md), written
out below as arithmetic on the fixture's counts; they are never taken from the code.

The fixture (tests/fixtures/service_index/export.jsonl, ratings.csv, supplied.json),
period 2026-11 (previous 2026-10), all instants +07:00:

Sở Tư pháp 000.00.01.H24 (department), procedure 2.000488 (full online):
  A1 received 11-02, promised 11-13, finished 11-05 (early), online, digitised, e-result,
     VNeID, paid online 1
  A2 received 11-03, promised 11-10 17:00, status 6 on 11-04, finished 11-12 (late), digitised
  A3 received 11-20, promised 12-04, open at the end (within deadline), online, VNeID;
     rated 2 (KHL) on 11-25 -> dislike
  A4 received 10-20, promised 10-30, open at the end -> late (carried over from October)
  A5 received 10-05, finished 10-09 on time (October only), online, e-result
  A6 received 11-10, promised 12-10, finished 12-03: open at the November end, within deadline
  ratings without a dossier: level 1 on 11-15 (counts), level 1 on 12-02 (December)
Sở Xây dựng 000.00.02.H24 (department): B1 (1.002856 full, online, e-result, digitised,
  VNeID, paid 2), B2 (1.009974 partial, online), B3, B4, B5 (1.002856, direct); all on time.
Phường Bắc Giang 000.01.50.H24 (commune): C1-0001 as a DVCQG object (1.001193 full,
  online, finished on time, result file, digitised, VNeID); C1-0002 (2.000815) late.
Phường Đa Mai 000.02.50.H24 (commune): no dossier.
"""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from pulse.index import DEFAULT_CONFIG, build_report, load_config, load_supplied, IndexFailed
from rules import service_index as si
from schemas.supplied_indicators import SCHEMA_FILE, SuppliedIndicators, SuppliedValue, schema_text

FIX = Path(__file__).resolve().parent / "fixtures" / "service_index"
EXPORT, RATINGS, SUPPLIED, BAD = FIX / "export.jsonl", FIX / "ratings.csv", FIX / "supplied.json", FIX / "bad.jsonl"
REPO = Path(__file__).resolve().parent.parent
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
AS_OF = datetime(2026, 12, 2, 12, 0, tzinfo=TZ)
D1, D2, C1, C2, PROVINCE = "000.00.01.H24", "000.00.02.H24", "000.01.50.H24", "000.02.50.H24", "000.00.00.H24"


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture(scope="module")
def report():
    r, bad = build_report([EXPORT, RATINGS], "2026-11", supplied_path=SUPPLIED, as_of=AS_OF)
    assert bad == []
    return r


def unit(report, code):
    if code == report["province"]["unit_code"]:
        return report["province"]
    return next(u for u in report["units"] if u["unit_code"] == code)


def ind(u, code):
    return next(i for i in u["indicators"] if i["code"] == code)


# --------------------------------------------------------------------------- configuration

def test_config_adds_up_to_the_portal_groups(config):
    groups = {g.code: g.points for g in config.groups.values()}
    assert groups == {"openness": 18, "progress": 20, "online": 12, "payment": 10, "digitisation": 22,
                      "satisfaction": 18}
    assert sum(i.points for i in config.indicators) == 100
    assert config.grade_bands is None


def test_config_rejects_points_not_adding_up(config):
    import yaml
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    raw["indicators"][0]["points"] = 7
    with pytest.raises(ValueError, match="group openness"):
        si.parse_config(raw)
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    raw["indicators"][4]["numerator"] = "no_such_count"
    with pytest.raises(ValueError, match="resolved_on_time"):
        si.parse_config(raw)


# --------------------------------------------------------------------------- one indicator from two counts

def test_threshold_crossed_from_both_sides(config):
    online = config.indicator("full_online_dossiers")           # 12 points, full at 50%
    assert online.points == 12 and online.threshold == 0.5
    below = si.score_indicator(1, 4, online)                     # 25% -> 12 x 0.25 / 0.5
    assert below.points == pytest.approx(6.0) and below.ratio == 0.25 and below.measured
    at = si.score_indicator(2, 4, online)                        # exactly 50% -> full
    assert at.points == pytest.approx(12.0)
    above = si.score_indicator(3, 4, online)                     # 75% -> still full, no bonus
    assert above.points == pytest.approx(12.0)
    sat = config.indicator("dossier_handling_satisfaction")     # 6 points, full at 90%
    assert si.score_indicator(89, 100, sat).points == pytest.approx(6 * 0.89 / 0.9)
    assert si.score_indicator(90, 100, sat).points == pytest.approx(6.0)


def test_denominator_zero_follows_the_method(config):
    progress = si.score_indicator(0, 0, config.indicator("resolved_on_time"))
    assert not progress.measured and progress.points is None          # N/A, not 0, not 20
    sat = si.score_indicator(0, 0, config.indicator("dossier_handling_satisfaction"))
    assert sat.measured and sat.points == 0                            # portal: 0 without dossiers
    pakn = si.score_indicator(0, 0, config.indicator("feedback_handled_on_time"))
    assert pakn.measured and pakn.points == 6                          # portal: 6 without PAKN
    none = si.score_indicator(None, None, config.indicator("procedures_published_on_time"))
    assert not none.measured and none.points is None and none.ratio is None


def test_unit_with_no_dossiers(config):
    u = si.score_unit(C2, "commune", None, config)
    # commune: online full (12) and the two population-data indicators (2 + 2) do not apply
    assert u.max_points == 100 - 12 - 2 - 2
    # only satisfaction with dossier handling is measurable with no dossier, at 0 points
    assert u.measured_max == 6 and u.total == 0
    assert "resolved_on_time" in u.not_measured and "procedures_published_on_time" in u.not_measured
    assert set(u.not_applicable) == {"full_online_dossiers", "population_data_dossiers", "population_data_procedures"}


def test_supplied_values_are_scored_and_missing_ones_not_measured(config):
    supplied = {"procedures_published_on_time": SuppliedValue(unit_code=D1, period="2026-11",
                                                              indicator="procedures_published_on_time",
                                                              numerator=9, denominator=10, source="t"),
                "dossiers_synced": SuppliedValue(unit_code=D1, period="2026-11", indicator="dossiers_synced",
                                                 ratio=0.5, source="t")}
    u = si.score_unit(D1, "department", None, config, supplied)
    by = {s.code: s for s in u.indicators}
    assert by["procedures_published_on_time"].points == pytest.approx(6 * 0.9)
    assert by["procedures_published_on_time"].source == "supplied"
    assert by["dossiers_synced"].points == pytest.approx(6 * 0.5)
    assert not by["procedures_updated_on_time"].measured and by["procedures_updated_on_time"].points is None


def test_ranks_among_peers_only():
    def u(code, kind, total):
        return si.UnitIndex(code, kind, (), (), total, 100, 50, (), ())
    ranks = si.rank_peers([u("d1", "department", 40), u("d2", "department", 50), u("d3", "department", 40),
                           u("c1", "commune", 10), si.UnitIndex("c2", "commune", (), (), 0, 84, 0, (), ())])
    assert ranks == {"d2": (1, 3), "d1": (2, 3), "d3": (2, 3), "c1": (1, 1)}   # c2: nothing measured


# --------------------------------------------------------------------------- periods

def test_periods():
    p = si.parse_period("2026-11", TZ)
    assert (p.start, p.end) == (datetime(2026, 11, 1, tzinfo=TZ), datetime(2026, 12, 1, tzinfo=TZ))
    assert si.previous_period(p).label == "2026-10"
    q = si.parse_period("2026-Q1", TZ)
    assert si.previous_period(q).label == "2025-Q4" and q.end == datetime(2026, 4, 1, tzinfo=TZ)
    assert si.previous_period(si.parse_period("2026", TZ)).label == "2025"
    m = si.parse_period("2026-03-MTD", TZ, as_of=datetime(2026, 3, 31, 12, tzinfo=TZ))
    prev = si.previous_period(m)
    assert prev.label == "2026-02-MTD" and prev.end == datetime(2026, 3, 1, tzinfo=TZ)  # clipped to February
    with pytest.raises(ValueError):
        si.parse_period("2026-13", TZ)


# --------------------------------------------------------------------------- the fixture, end to end

def test_department_every_measurable_indicator(report):
    u = unit(report, D1)
    # resolved on time: (A1 finished early + A3, A6 open within deadline) / (A1, A2 finished + A3, A4, A6 open)
    assert (ind(u, "resolved_on_time")["numerator"], ind(u, "resolved_on_time")["denominator"]) == (3, 5)
    assert ind(u, "resolved_on_time")["points"] == pytest.approx(20 * 3 / 5)
    # online: A1, A3 online of A1, A2, A3, A6 received (all full-online procedure): 50% -> full 12
    assert (ind(u, "full_online_dossiers")["numerator"], ind(u, "full_online_dossiers")["denominator"]) == (2, 4)
    assert ind(u, "full_online_dossiers")["points"] == pytest.approx(12)
    # paid online: A1 of A1 (paid) and A2 (status 6)
    assert ind(u, "dossiers_paid_online")["points"] == pytest.approx(6 * 1 / 2)
    # electronic results: A1 of A1, A2 finished in November
    assert ind(u, "electronic_results")["points"] == pytest.approx(6 * 1 / 2)
    # digitised with an electronic result: A1 of 4 received
    assert ind(u, "digitised_dossiers")["points"] == pytest.approx(4 * 1 / 4)
    # VNeID: A1, A3 of 4 received
    assert ind(u, "population_data_dossiers")["points"] == pytest.approx(2 * 2 / 4)
    # satisfaction: 5 - (A2, A4 late; A3 disliked) - 1 unlinked dislike = 1 of 5, below 90%
    assert (ind(u, "dossier_handling_satisfaction")["numerator"],
            ind(u, "dossier_handling_satisfaction")["denominator"]) == (1, 5)
    assert ind(u, "dossier_handling_satisfaction")["points"] == pytest.approx(6 * (1 / 5) / 0.9, abs=1e-4)
    # supplied: published on time 9/10; PAKN on time with no PAKN -> full 6
    assert ind(u, "procedures_published_on_time")["points"] == pytest.approx(6 * 0.9)
    assert ind(u, "feedback_handled_on_time")["points"] == pytest.approx(6)
    live = 20 * 3 / 5 + 12 + 6 / 2 + 6 / 2 + 4 / 4 + 2 * 2 / 4 + 6 * (1 / 5) / 0.9
    assert u["total"] == pytest.approx(live + 6 * 0.9 + 6, abs=1e-3)
    assert u["measured_max"] == 20 + 12 + 6 + 6 + 4 + 2 + 6 + 6 + 6 and u["max_points"] == 100
    assert not ind(u, "procedures_updated_on_time")["measured"]
    assert u["grade"] is None


def test_department_previous_period_and_change(report):
    u = unit(report, D1)
    # October: A5 finished on time, A4 open and late at 1 November -> 1 of 2; online A5 of A4, A5;
    # paid: no financial obligation -> not measured; e-result A5 1/1; digitised 0/2; VNeID 0/2;
    # satisfaction (2 - A4 late) / 2
    october = 20 * 1 / 2 + 12 + 6 * 1 / 1 + 0 + 0 + 6 * (1 / 2) / 0.9
    assert u["previous_total"] == pytest.approx(october, abs=1e-3)
    assert ind(u, "dossiers_paid_online")["previous_points"] is None
    assert u["change"] == pytest.approx(u["total"] - october, abs=1e-3)


def test_threshold_from_below_and_ranking(report):
    u = unit(report, D2)
    # online: B1 online of B1, B3, B4, B5 (full-online procedure; B2's is partial): 25% < 50%
    assert (ind(u, "full_online_dossiers")["numerator"], ind(u, "full_online_dossiers")["denominator"]) == (1, 4)
    assert ind(u, "full_online_dossiers")["points"] == pytest.approx(12 * 0.25 / 0.5)
    total = 20 + 12 * 0.25 / 0.5 + 6 + 6 * 1 / 5 + 4 * 1 / 5 + 2 * 1 / 5 + 6
    assert u["total"] == pytest.approx(total, abs=1e-3)
    d1 = unit(report, D1)
    assert (d1["rank"], d1["peers"], u["rank"], u["peers"]) == (1, 2, 2, 2)
    c1 = unit(report, C1)
    assert (c1["rank"], c1["peers"]) == (1, 1)     # communes ranked with communes


def test_commune_from_a_dvcqg_object(report):
    u = unit(report, C1)
    assert ind(u, "resolved_on_time")["points"] == pytest.approx(20 * 1 / 2)
    assert ind(u, "electronic_results")["points"] == pytest.approx(6 * 1 / 2)   # the DVCQG result file
    assert ind(u, "digitised_dossiers")["points"] == pytest.approx(4 * 1 / 2)
    assert not ind(u, "dossiers_paid_online")["measured"]                       # no financial obligation
    assert "full_online_dossiers" in u["not_applicable"]
    assert u["total"] == pytest.approx(10 + 3 + 2 + 6 * 0.5 / 0.9, abs=1e-3)
    assert u["max_points"] == 84


def test_province_rolls_up_every_unit(report):
    p = unit(report, PROVINCE)
    expected = (12 * (4 / 9) / 0.5        # online: 2 + 1 + 1 of 4 + 4 + 1 full-procedure dossiers
                + 20 * 9 / 12             # on time: 3 + 5 + 1 of 5 + 5 + 2
                + 6 * 2 / 3               # paid: A1, B1 of A1, A2, B1
                + 6 * 3 / 9               # e-results: A1, B1, C1-0001 of 2 + 5 + 2
                + 4 * 3 / 11              # digitised with e-result: 3 of 11 received
                + 2 * 4 / 11              # VNeID: A1, A3, B1, C1-0001 of 11
                + 6 * (7 / 12) / 0.9)     # satisfaction: 12 - (A2, A4, A3, C1-0002) - 1 unlinked
    assert p["total"] == pytest.approx(expected, abs=1e-3)
    assert p["kind"] == "province" and p["rank"] is None


def test_unit_filter_shows_a_unit_without_dossiers():
    r, _ = build_report([EXPORT, RATINGS], "2026-11", unit=C2, as_of=AS_OF)
    assert [u["unit_code"] for u in r["units"]] == [C2]
    u = r["units"][0]
    assert u["measured_max"] == 6 and u["total"] == 0 and u["counts"]["received"] == 0


def test_month_to_date_counts_up_to_as_of():
    r, _ = build_report([EXPORT, RATINGS], "2026-11-MTD", as_of=datetime(2026, 11, 8, 0, 0, tzinfo=TZ))
    u = unit(r, D1)
    # by 8 November: A1 finished early; A2 (promised 11-10) and A4 open; A4 late
    on_time = ind(u, "resolved_on_time")
    assert (on_time["numerator"], on_time["denominator"]) == (2, 3)
    assert r["previous_period"]["label"] == "2026-10-MTD"


def test_supplied_file_checked_against_the_config(tmp_path, config):
    doc = json.loads(SUPPLIED.read_text(encoding="utf-8"))
    doc["values"][0]["indicator"] = "resolved_on_time"        # measured live: not suppliable
    p = tmp_path / "s.json"
    p.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(IndexFailed, match="measured from the streams"):
        load_supplied(p, config)
    doc["values"][0].update(indicator="procedures_published_on_time", numerator=11)   # 11 > 10
    p.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(IndexFailed, match="numerator is larger"):
        load_supplied(p, config)


def test_published_schema_matches_the_model():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == schema_text()
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(json.loads(SUPPLIED.read_text(encoding="utf-8")), json.loads(schema_text()))
    SuppliedIndicators.model_validate_json(SUPPLIED.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- the CLI, as a subprocess

def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "pulse.cli", "index", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_cli_json_and_csv():
    common = ["--from", str(EXPORT), str(RATINGS), "--period", "2026-11", "--as-of", AS_OF.isoformat(),
              "--supplied", str(SUPPLIED)]
    j = run_cli(*common, "--format", "json")
    assert j.returncode == 0, j.stderr
    out = json.loads(j.stdout)
    d1 = unit(out, D1)
    assert d1["total"] == pytest.approx(20 * 3 / 5 + 12 + 3 + 3 + 1 + 1 + 6 * 0.2 / 0.9 + 5.4 + 6, abs=1e-3)
    c = run_cli(*common, "--format", "csv", "--unit", D2)
    assert c.returncode == 0, c.stderr
    rows = list(csv.DictReader(io.StringIO(c.stdout)))
    assert {r["unit_code"] for r in rows} == {PROVINCE, D2}
    total = next(r for r in rows if r["unit_code"] == D2 and r["row"] == "total")
    assert float(total["points"]) == pytest.approx(20 + 6 + 6 + 1.2 + 0.8 + 0.4 + 6, abs=1e-3)
    assert (total["rank"], total["peers"]) == ("2", "2")
    online = next(r for r in rows if r["unit_code"] == D2 and r["code"] == "full_online_dossiers")
    assert (online["numerator"], online["denominator"], online["measured"]) == ("1.0", "4.0", "1")


def test_cli_bad_line_is_named():
    r = run_cli("--from", str(BAD), "--period", "2026-11", "--as-of", AS_OF.isoformat())
    assert r.returncode == 1 and r.stdout == ""
    assert f"{BAD}:2: status" in r.stderr            # status 11 is not a TrangThaiHoSo
    assert f"{BAD}:3: invalid JSON" in r.stderr
    assert f"{BAD}:1" not in r.stderr
    ok = run_cli("--from", str(BAD), "--period", "2026-11", "--as-of", AS_OF.isoformat(), "--skip-bad")
    assert ok.returncode == 0 and json.loads(ok.stdout)["rejected"]


def test_cli_unusable_input_exit_2(tmp_path):
    assert run_cli("--from", str(tmp_path / "nope.jsonl"), "--period", "2026-11").returncode == 2
    r = run_cli("--from", str(EXPORT), "--period", "2026-13")
    assert r.returncode == 2 and "2026-13" in r.stderr
