"""The national service index end to end: hand-computed figures against the batch CLI, the
live stored index and the Superset board, after the fixture went through the front door.

tests/fixtures/service_index_e2e: DVCQG dossier objects, kiosk ratings and supplied values
for two departments and two communes in one month (2026-11), with every figure of the index
computed by hand in expected.yaml (each with its derivation). The fixture is moved, whole
months at a time, to the month before the one the test runs in, so the leader worker
computes it as the previous month (streams.service_index.periods_due); the figures do not
depend on that move (no holiday, no supplement wait; every day of the month at most the 28th).

The path: dossiers POSTed to the sync API (/v1/dossiers/sync, a source credential), ratings
to the kiosk API (/v1/ratings:batch, one credential per kiosk), the supplied values loaded
with ``pulse index import-supplied``; the real broker; a real worker (python -m streams
worker) into ClickHouse (the chDB endpoint); the leader's own timer computes and stores the
index. The worker first runs with the index timer out of the way until every event and
rating has landed, then is restarted with a short interval: a past month is computed once
(when not stored yet), so a computation before the feed drained would stay partial.

Then (a) ``pulse index`` (the CLI in a subprocess) on the same files, (b) the stored index
(``service_index`` FINAL and the view ``v_service_index``) and (c) the board's datasets read
through Superset's chart-data API (the queries of the board's charts: indicator table, rank
tables, province big numbers) all give the hand-computed points, numerators, denominators,
totals, measurable points, ranks and changes; (d) the index's on-time, online and
satisfaction shares are those of the existing boards (v_dossier_daily, v_ratings_daily for
the same unit and month, through Superset) and of the hand computation.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml

from schemas.reference import load_reference
from tests.browser.test_boards import MANAGE, REPO, SUPERSET_PY, Stack, _dataset_id

pytestmark = pytest.mark.browser
FIX = REPO / "tests" / "fixtures" / "service_index_e2e"
EXPECTED = yaml.safe_load((FIX / "expected.yaml").read_text(encoding="utf-8"))
VN = ZoneInfo("Asia/Ho_Chi_Minh")
REF = load_reference()
TEMPLATE = (2026, 11)          # the month the fixture is written in
SOURCE = "dvc-bacninh"         # the unit system's credential (its id is the events' source_system)
TOL = 1e-4


def _months_to_shift(now: datetime) -> int:
    y, m = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    return (y * 12 + m - 1) - (TEMPLATE[0] * 12 + TEMPLATE[1] - 1)


def _shift(t: datetime, months: int) -> datetime:
    k = t.year * 12 + t.month - 1 + months
    return t.replace(year=k // 12, month=k % 12 + 1)   # every fixture day is <= 28


def _shift_dvcqg(value: str, months: int) -> str:
    t = datetime.strptime(value, "%Y%m%d%H%M%S")
    return _shift(t, months).strftime("%Y%m%d%H%M%S")


def _shifted_fixture(months: int, out: Path) -> tuple[list[dict], list[dict], Path, str]:
    """(dossier objects, ratings, supplied file, period label) moved by ``months``, written under ``out``."""
    dossiers = [json.loads(line) for line in (FIX / "dossiers.jsonl").read_text(encoding="utf-8").splitlines()]
    ratings = [json.loads(line) for line in (FIX / "ratings.jsonl").read_text(encoding="utf-8").splitlines()]
    for d in dossiers:
        for k in [k for k in d if k.startswith("Ngay")]:
            d[k] = _shift_dvcqg(d[k], months)
        for rec in d["QuaTrinhXuLy"]:
            rec["ThoiDiemXuLy"] = _shift_dvcqg(rec["ThoiDiemXuLy"], months)
    for r in ratings:
        r["event_time"] = _shift(datetime.fromisoformat(r["event_time"]), months).isoformat()
    k = TEMPLATE[0] * 12 + TEMPLATE[1] - 1 + months
    label = f"{k // 12:04d}-{k % 12 + 1:02d}"
    supplied = json.loads((FIX / "supplied.json").read_text(encoding="utf-8"))
    for v in supplied["values"]:
        assert v["period"] == EXPECTED["period"]
        v["period"] = label
    out.mkdir(parents=True, exist_ok=True)
    (out / "dossiers.jsonl").write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in dossiers),
                                        encoding="utf-8")
    (out / "ratings.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ratings), encoding="utf-8")
    (out / "supplied.json").write_text(json.dumps(supplied, ensure_ascii=False), encoding="utf-8")
    return dossiers, ratings, out / "supplied.json", label


def _through_the_front_door(s, tmp: Path, dossiers: list[dict], ratings: list[dict]) -> int:
    """POST the dossiers to the sync API and the ratings to the kiosk API; the events produced."""
    from frontdoor.api import create_app
    from tests.integration.frontdoor_support import ThreadServer, write_credentials

    kiosks = sorted({(r["kiosk_id"], r["unit_code"]) for r in ratings})
    tokens = write_credentials(tmp / "credentials.yaml", [(SOURCE, "source", ["*"])] +
                               [(k, "kiosk", [unit]) for k, unit in kiosks])
    produced = 0
    with ThreadServer(create_app(s, tmp / "credentials.yaml")) as api:
        r = httpx.post(f"{api.url}/v1/dossiers/sync", json=dossiers, timeout=60,
                       headers={"Authorization": f"Bearer {tokens[SOURCE]}"})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["rejected"] == 0 and body["dossiers"] == len(dossiers), body
        produced = body["produced"]
        for k, _unit in kiosks:
            mine = [x for x in ratings if x["kiosk_id"] == k]
            r = httpx.post(f"{api.url}/v1/ratings:batch", json=mine, timeout=60,
                           headers={"Authorization": f"Bearer {tokens[k]}"})
            assert r.status_code == 200 and r.json()["accepted"] == len(mine), r.text
    return produced


def _wait(what: str, cond, timeout: float, worker=None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(1)
    raise AssertionError(f"{what}: not after {timeout:.0f} s\n{worker.tail() if worker else ''}")


@pytest.fixture(scope="module")
def e2e(settings, tmp_path_factory):
    from pulse.admin import create_topics
    from pulse.procs import free_port
    from sinks.client import get_client
    from sinks.migrate import migrate_settings, refresh_board_aggregates
    from sinks.reference import load_reference_tables
    from tests.support.endpoint import start_endpoint
    from tests.support.worker import WorkerHandle

    tag = uuid.uuid4().hex[:8]
    tmp = tmp_path_factory.mktemp("si-e2e")
    state = tmp / "state"
    # its own ClickHouse with the production database name the board's datasets use
    ep = start_endpoint(tmp_path_factory.mktemp("si-e2e-chdb") / "data")
    s = settings.with_(clickhouse_url=f"{ep.url}/motcua", topic_prefix=f"sie2e{tag}.",
                       faust_app_id=f"motcua-sie2e-{tag}", state_dir=state, superset_port=free_port(),
                       superset_admin_password="")
    create_topics(s)
    migrate_settings(s, log=None)
    client = get_client(s)
    load_reference_tables(client, REF)
    now = datetime.now(VN)
    months = _months_to_shift(now)
    dossiers, ratings, supplied, label = _shifted_fixture(months, tmp / "files")
    env = {**os.environ, **s.to_env()}
    done = subprocess.run([sys.executable, "-m", "pulse.cli", "index", "import-supplied", str(supplied)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    produced = _through_the_front_door(s, tmp, dossiers, ratings)
    worker = WorkerHandle(s, env={"PULSE_TUNABLES": json.dumps({"service_index_interval_s": 3600})},
                          log_path=state / "worker.log", ready_timeout=300)
    stack = None
    try:
        worker.start()
        _wait("every event and rating in ClickHouse", lambda: (
            client.command("SELECT count() FROM dossier_events FINAL") == produced
            and client.command("SELECT count() FROM dossier_state FINAL") == len(dossiers)
            and client.command("SELECT count() FROM ratings FINAL") == len(ratings)), 300, worker)
        assert client.command("SELECT count() FROM dead_letters") == 0
        assert client.command("SELECT count() FROM service_index") == 0   # the timer stayed out of the way
        # the leader's timer, for real: restart with a short interval, wait for its rows of the month
        worker.stop()
        worker.env = {"PULSE_TUNABLES": json.dumps({"service_index_interval_s": 5})}
        worker.start()
        _wait(f"the leader's index of {label}", lambda: client.command(
            "SELECT count() FROM service_index WHERE period = {p:String}", parameters={"p": label}) > 0,
            300, worker)
        worker.stop()   # its part is done: the month is stored (and Superset's start needs the CPU)
        refresh_board_aggregates(client)
        sup_env = {k: v for k, v in os.environ.items() if k not in ("SUPERSET_ADMIN_PASSWORD", "SUPERSET_SECRET_KEY")}
        sup_env.update(PULSE_STATE_DIR=str(state), SUPERSET_PORT=str(s.superset_port),
                       CLICKHOUSE_URL=s.clickhouse_url, SUPERSET_ADMIN_USER="admin")
        stack = Stack(s, sup_env)
        # generous: Superset's first init takes minutes on a busy machine
        stack.manage("init", timeout=900)
        stack.manage("start", timeout=600)
        stack.manage("import", timeout=600)
        yield {"stack": stack, "client": client, "label": label, "files": tmp / "files", "settings": s}
    finally:
        if stack is not None:
            subprocess.run([str(SUPERSET_PY), str(MANAGE), "stop"], env=stack.env, cwd=REPO, timeout=60)
        worker.stop()
        client.close()
        ep.stop()


# ------------------------------------------------------------------------------ comparison

def _close(want, got) -> bool:
    return (want is None and got is None) or (want is not None and got is not None and abs(float(want) - float(got)) < TOL)


def _expected_units() -> dict[str, dict]:
    return {**EXPECTED["units"], EXPECTED["province"]["code"]: {**EXPECTED["province"], "kind": "province"}}


def _compare(where: str, got_units: dict[str, dict], *, totals_only: bool = False) -> list:
    """Mismatches between the hand figures and ``got_units``: code -> {"indicators": {code:
    {numerator, denominator, points, measured}}, "total", "measured_max", "rank", "peers", "change"}."""
    bad: list = []
    for code, want in _expected_units().items():
        got = got_units.get(code)
        if got is None:
            bad.append((where, code, "missing"))
            continue
        keys = ["total", "measured_max", "change"] + (["rank", "peers"] if want["kind"] != "province" else [])
        bad += [(where, code, k, want[k], got.get(k)) for k in keys if not _close(want[k], got.get(k))]
        if totals_only:
            continue
        for ind, w in want["indicators"].items():
            g = got["indicators"].get(ind)
            if g is None:
                bad.append((where, code, ind, "missing"))
                continue
            bad += [(where, code, ind, k, w[k], g.get(k)) for k in ("numerator", "denominator", "points")
                    if not _close(w[k], g.get(k))]
            if bool(g.get("measured")) != (w["points"] is not None):
                bad.append((where, code, ind, "measured", w["points"] is not None, g.get("measured")))
        if "not_measured" in want:
            nm = {i for i, g in got["indicators"].items() if not g.get("measured")}
            if nm != set(want["not_measured"]):
                bad.append((where, code, "not measured", sorted(nm ^ set(want["not_measured"]))))
        if "not_applicable" in want and set(want["not_applicable"]) & set(got["indicators"]):
            bad.append((where, code, "applicable", sorted(set(want["not_applicable"]) & set(got["indicators"]))))
    # every other unit of the reference data: no dossier, 0 points of 6 measurable, third
    others = EXPECTED["others"]
    for code, got in got_units.items():
        if code in _expected_units():
            continue
        if not (_close(others["total"], got.get("total")) and _close(others["measured_max"], got.get("measured_max"))
                and _close(others["rank"], got.get("rank"))):
            bad.append((where, code, "other unit", got.get("total"), got.get("measured_max"), got.get("rank")))
    n_others = sum(1 for u in REF.units.values() if u.kind != "province") - len(EXPECTED["units"])
    if sum(1 for c in got_units if c not in _expected_units()) != n_others:
        bad.append((where, "other units", n_others, len(got_units) - len(_expected_units())))
    return bad


def test_hand_figures_equal_pulse_index(e2e):
    files = e2e["files"]
    done = subprocess.run([sys.executable, "-m", "pulse.cli", "index", "--from", str(files / "dossiers.jsonl"),
                           str(files / "ratings.jsonl"), "--period", e2e["label"], "--supplied",
                           str(files / "supplied.json"), "--source", SOURCE, "--all-units", "--format", "json"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    got = {u["unit_code"]: {**u, "indicators": {i["code"]: i for i in u["indicators"]}}
           for u in [report["province"], *report["units"]]}
    bad = _compare("pulse index", got)
    assert bad == [], bad


def _stored(client, label: str) -> dict[str, dict]:
    cols = ["unit_code", "indicator", "numerator", "denominator", "points", "measured", "measured_max", "rank",
            "peers", "change"]
    out: dict[str, dict] = {}
    for r in client.query(f"SELECT {', '.join(cols)} FROM service_index FINAL WHERE period = {{p:String}}",
                          parameters={"p": label}).result_rows:
        row = dict(zip(cols, r))
        u = out.setdefault(row["unit_code"], {"indicators": {}})
        if row["indicator"] == "_total":
            u.update(total=row["points"], measured_max=row["measured_max"], rank=row["rank"], peers=row["peers"],
                     change=row["change"])
        else:
            u["indicators"][row["indicator"]] = row
    return out


def test_hand_figures_equal_the_live_stored_index(e2e):
    client, label = e2e["client"], e2e["label"]
    bad = _compare("service_index", _stored(client, label))
    # the board's view: the same rows, "Chưa đo" exactly for the not-measured ones
    cols = ["unit_code", "indicator", "row_kind", "numerator", "denominator", "points", "points_text", "measured",
            "measured_max", "rank", "peers", "change"]
    view: dict[str, dict] = {}
    for r in client.query(f"SELECT {', '.join(cols)} FROM v_service_index WHERE period = {{p:String}}",
                          parameters={"p": label}).result_rows:
        row = dict(zip(cols, r))
        u = view.setdefault(row["unit_code"], {"indicators": {}})
        if row["row_kind"] == "total":
            u.update(total=row["points"], measured_max=row["measured_max"], rank=row["rank"], peers=row["peers"],
                     change=row["change"])
        else:
            u["indicators"][row["indicator"]] = row
            if (row["points_text"] == "Chưa đo") != (row["points"] is None):
                bad.append(("v_service_index", row["unit_code"], row["indicator"], row["points_text"]))
    bad += _compare("v_service_index", view)
    assert bad == [], bad


def _chart(api, table: str, columns: list, metrics: list, filters: list, where: str = ""):
    payload = {"datasource": {"id": _dataset_id(api, table), "type": "table"}, "force": True,
               "result_format": "json", "result_type": "full",
               "queries": [{"columns": columns, "metrics": metrics, "row_limit": 10000, "filters": filters,
                            "extras": {"where": where} if where else {}, "orderby": []}]}
    r = api.post("/api/v1/chart/data", json=payload)
    assert r.status_code == 200, r.text
    return r.json()["result"][0]["data"]


def test_hand_figures_equal_the_board(e2e):
    """The board's queries through Superset (as the province leader's board asks them, with
    its period filter set to the month): the indicator table's rows, the rank tables'
    metrics, the province's big numbers."""
    stack, label = e2e["stack"], e2e["label"]
    api = stack.api("admin", stack.password())
    period = [{"col": "period", "op": "==", "val": label}]
    got: dict[str, dict] = {}
    # "Chi tiết từng chỉ số" (si_indicators): raw rows; the board shows points_text
    rows = _chart(api, "v_service_index", ["unit_code", "indicator", "numerator", "denominator", "ratio", "points",
                                           "points_text", "measured_text", "max_points"], [],
                  period, "row_kind = 'indicator'")
    bad = []
    for r in rows:
        got.setdefault(r["unit_code"], {"indicators": {}})["indicators"][r["indicator"]] = {
            **r, "measured": r["measured_text"] == "Đã đo"}
        want = _expected_units().get(r["unit_code"], {}).get("indicators", {}).get(r["indicator"])
        if want is not None:
            shown = "Chưa đo" if want["points"] is None else str(round(want["points"], 2)).removesuffix(".0")
            if r["points_text"].removesuffix(".0") != shown:
                bad.append(("board points_text", r["unit_code"], r["indicator"], shown, r["points_text"]))
    # "Sở, ngành / Xã, phường: tổng điểm và xếp hạng" (si_rank_dept, si_rank_commune) and the
    # province's "tổng điểm" / "điểm đo được" big numbers: the dataset's metrics
    for r in _chart(api, "v_service_index", ["unit_code"], ["si_total", "si_measurable", "si_rank", "si_change"],
                    period, "row_kind = 'total'"):
        got.setdefault(r["unit_code"], {"indicators": {}}).update(
            total=r["si_total"], measured_max=r["si_measurable"], rank=r["si_rank"], change=r["si_change"])
    for r in _chart(api, "v_service_index", ["unit_code", "peers"], [], period, "row_kind = 'total'"):
        got[r["unit_code"]]["peers"] = r["peers"]
    (prov,) = _chart(api, "v_service_index", [], ["si_total", "si_measurable"], period, "unit_kind = 'province'")
    pw = EXPECTED["province"]
    if not (_close(pw["total"], prov["si_total"]) and _close(pw["measured_max"], prov["si_measurable"])):
        bad.append(("board province big numbers", prov))
    bad += _compare("board", got)
    assert bad == [], bad


def test_index_shares_equal_the_existing_boards(e2e):
    """On-time, online and satisfaction shares: the index's stored counts (v_service_index),
    the overview and satisfaction boards' datasets for the same unit and month
    (v_dossier_daily, v_ratings_daily with the boards' time-range filter), and the hand figures."""
    stack, label = e2e["stack"], e2e["label"]
    api = stack.api("admin", stack.password())
    from rules.service_index import parse_period
    p = parse_period(label, VN)
    month = [{"col": "day", "op": "TEMPORAL_RANGE",
              "val": f"{p.start.date().isoformat()}T00:00:00 : {p.end.date().isoformat()}T00:00:00"}]
    index = {r["unit_code"]: r for r in _chart(
        api, "v_service_index", ["unit_code", "finished", "finished_on_time", "received", "received_online",
                                 "ratings", "ratings_satisfied"], [],
        [{"col": "period", "op": "==", "val": label}], "row_kind = 'total'")}
    dossiers = {r["unit_code"]: r for r in _chart(api, "v_dossier_daily", ["unit_code"],
                                                  ["on_time_share", "online_share"], month)}
    rated = {r["unit_code"]: r for r in _chart(api, "v_ratings_daily", ["unit_code"], ["satisfaction_share"], month)}
    bad, checked = [], 0
    for code, want in EXPECTED["units"].items():
        if not want["shares"]:
            assert code not in dossiers and code not in rated, code     # no dossier, no rating: not on the boards
            continue
        i = index[code]
        idx = {"on_time": i["finished_on_time"] / i["finished"], "online": i["received_online"] / i["received"],
               "satisfaction": i["ratings_satisfied"] / i["ratings"]}
        boards = {"on_time": dossiers[code]["on_time_share"], "online": dossiers[code]["online_share"],
                  "satisfaction": rated[code]["satisfaction_share"]}
        for share, w in want["shares"].items():
            hand = w["numerator"] / w["denominator"]
            if not (_close(hand, idx[share]) and _close(hand, boards[share])):
                bad.append((code, share, "hand", hand, "index", idx[share], "board", boards[share]))
            checked += 1
    assert bad == [], bad
    assert checked == 12


def test_the_board_shows_one_period_at_a_time(e2e):
    """The board's only period filter picks exactly one stored period (required, one value,
    by default this month to date), and picking the fixture's month shows its hand total:
    a kind filter with an optional period let the charts sum every stored month of a kind."""
    stack, label = e2e["stack"], e2e["label"]
    api = stack.api("admin", stack.password())
    meta = json.loads(api.get("/api/v1/dashboard/bo-chi-so-phuc-vu").json()["result"]["json_metadata"])
    period_cols = {"period_kind", "period_kind_name", "period", "period_name"}
    filters = [f for f in meta["native_filter_configuration"]
               if any(t.get("column", {}).get("name") in period_cols for t in f["targets"])]
    assert [f["targets"][0]["column"]["name"] for f in filters] == ["period_name"], filters
    (f,) = filters
    assert f["controlValues"]["enableEmptyFilter"] and not f["controlValues"]["multiSelect"], f["controlValues"]
    default = f["defaultDataMask"]["filterState"]["value"]
    names: dict[str, set] = {}
    for r in _chart(api, "v_service_index", ["period_name", "period_kind", "period"], [], []):
        names.setdefault(r["period_name"], set()).add((r["period_kind"], r["period"]))
    assert all(len(v) == 1 for v in names.values()), names      # one name, one period
    assert default == ["Tháng này (đến nay)"] and default[0] in names, (default, sorted(names))
    month = f"Tháng {label}"
    assert names.get(month) == {("month", label)}, sorted(names)
    (prov,) = _chart(api, "v_service_index", [], ["si_total", "si_measurable"],
                     [{"col": "period_name", "op": "IN", "val": [month]}], "unit_kind = 'province'")
    assert _close(EXPECTED["province"]["total"], prov["si_total"]), prov
    assert _close(EXPECTED["province"]["measured_max"], prov["si_measurable"]), prov
