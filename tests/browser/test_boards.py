"""The province boards, provisioned as code, checked in a real browser.

One module-scoped stack: a chDB endpoint of its own (isolated from other tests' data)
seeded with a realistic province (tests/browser/seed.py), Superset started by
``deploy/superset/manage.py`` on a free port with a temporary state directory, the asset
bundle imported twice, the leader roles and RLS set up. Then headless Chromium (Debian's
chromium through Playwright) logs in, opens every board, waits for every chart, fails on
any chart error, compares the overview's big numbers with ClickHouse, and saves a PNG
of each board under artifacts/screenshots/. A unit leader sees only its unit's rows.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from pulse.config import Settings

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
SUPERSET_PY = REPO / ".venv-superset" / "bin" / "python"
MANAGE = REPO / "deploy" / "superset" / "manage.py"
ASSETS = REPO / "deploy" / "superset" / "assets"
SHOTS = REPO / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BOARDS = ["tong-quan-tinh", "muc-do-hai-long", "chat-luong-du-lieu", "bo-chi-so-phuc-vu"]

if not SUPERSET_PY.exists() or not Path(CHROMIUM).exists():
    pytest.skip("Superset venv or chromium missing: run deploy/superset/install.sh", allow_module_level=True)


def _yaml(path: Path) -> dict:
    import yaml
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def board_charts(slug: str) -> list[str]:
    """Chart titles of a board, from the bundle."""
    dash = _yaml(ASSETS / "dashboards" / f"{slug}.yaml")
    return [v["meta"]["sliceName"] for v in dash["position"].values()
            if isinstance(v, dict) and v.get("type") == "CHART"]


class Stack:
    def __init__(self, settings: Settings, env: dict):
        self.settings, self.env = settings, env
        self.url = f"http://127.0.0.1:{settings.superset_port}"
        self.state = Path(settings.state_dir) / "superset"

    def manage(self, *args: str, timeout: float = 300) -> str:
        r = subprocess.run([str(SUPERSET_PY), str(MANAGE), *args], env=self.env, cwd=REPO, capture_output=True,
                           text=True, timeout=timeout)
        assert r.returncode == 0, f"manage.py {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        return r.stdout

    def password(self, who: str = "admin") -> str:
        name = {"admin": "admin_password", "unit": "unit_user_password", "province": "province_user_password"}[who]
        return (self.state / name).read_text().strip()

    def api(self, user: str, password: str):
        import httpx
        c = httpx.Client(base_url=self.url, timeout=120)
        r = c.post("/api/v1/security/login", json={"username": user, "password": password, "provider": "db",
                                                    "refresh": False})
        assert r.status_code == 200, r.text
        c.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
        c.headers["X-CSRFToken"] = c.get("/api/v1/security/csrf_token/").json()["result"]
        c.headers["Referer"] = self.url
        return c

    def ch(self):
        from sinks.client import get_client
        return get_client(self.settings)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    from pulse.procs import free_port
    from tests.browser.seed import seed
    from tests.support.endpoint import start_endpoint

    ep = start_endpoint(tmp_path_factory.mktemp("boards-chdb") / "data")
    state = tmp_path_factory.mktemp("boards-state")
    settings = Settings.from_env().with_(clickhouse_url=f"{ep.url}/motcua", state_dir=state,
                                         superset_port=free_port(), superset_admin_password="")
    counts = seed(settings)
    # the index board reads what the leader worker stores: compute it once, as the worker would
    from sinks.client import get_client
    from streams.service_index import ServiceIndexJob
    ch = get_client(settings)
    try:
        ServiceIndexJob(settings).run(ch)
    finally:
        ch.close()
    env = {k: v for k, v in os.environ.items() if k not in ("SUPERSET_ADMIN_PASSWORD", "SUPERSET_SECRET_KEY")}
    env.update(PULSE_STATE_DIR=str(state), SUPERSET_PORT=str(settings.superset_port),
               CLICKHOUSE_URL=settings.clickhouse_url, SUPERSET_ADMIN_USER="admin")
    s = Stack(settings, env)
    s.seeded = counts
    try:
        s.manage("init")
        s.manage("start")
        yield s
    finally:
        subprocess.run([str(SUPERSET_PY), str(MANAGE), "stop"], env=env, cwd=REPO, timeout=60)
        ep.stop()


def _counts(api) -> dict:
    out = {k: api.get(f"/api/v1/{k}/?q=(page_size:1)").json()["count"]
           for k in ("database", "dataset", "chart", "dashboard")}
    for slug in BOARDS:
        out[slug] = len(api.get(f"/api/v1/dashboard/{slug}/charts").json()["result"])
    return out


@pytest.fixture(scope="module")
def imported(stack):
    stack.manage("import")
    api = stack.api("admin", stack.password())
    first = _counts(api)
    stack.manage("import")  # idempotent: overwrites, never duplicates
    second = _counts(api)
    out = stack.manage("roles")
    assert "sample unit-leader user" in out, out
    return first, second


def test_import_is_idempotent(stack, imported):
    first, second = imported
    assert first == second
    assert first["database"] == 1
    assert first["dashboard"] == len(BOARDS)
    n_charts = sum(len(board_charts(s)) for s in BOARDS)
    assert first["chart"] == n_charts
    for slug in BOARDS:
        assert first[slug] == len(board_charts(slug)), slug
    # The password never lands in the bundle; the URI's host and port come from CLICKHOUSE_URL.
    api = stack.api("admin", stack.password())
    db = api.get("/api/v1/database/?q=(page_size:5)").json()["result"][0]
    detail = api.get(f"/api/v1/database/{db['id']}/connection").json()["result"]
    assert f":{stack.settings.clickhouse_url.split(':')[-1].split('/')[0]}/motcua" in detail["sqlalchemy_uri"]
    # Every board refreshes itself at most every 60 s.
    for slug in BOARDS:
        meta = json.loads(api.get(f"/api/v1/dashboard/{slug}").json()["result"]["json_metadata"])
        assert 0 < meta["refresh_frequency"] <= 60
        assert all(f.get("chartsInScope") for f in meta["native_filter_configuration"]), slug


# ------------------------------------------------------------------------------------
# browser
# ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        ctx_dirs = []

        def new_context():
            d = tempfile.mkdtemp(prefix="pulse-chromium-")
            ctx_dirs.append(d)
            return p.chromium.launch_persistent_context(
                d, executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True,
                viewport={"width": 1600, "height": 1000}, locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh")
        yield new_context
        for d in ctx_dirs:
            shutil.rmtree(d, ignore_errors=True)


def login(page, stack, user: str, password: str) -> None:
    page.goto(f"{stack.url}/login/")
    page.fill("input#username", user)
    page.fill("input#password", password)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda u: "/login" not in u, timeout=30_000)


JS_CHARTS = """() => Array.from(document.querySelectorAll('.dashboard-component-chart-holder')).map(h => ({
    title: (h.querySelector('[data-test="editable-title"], .header-title, .editable-title') || {}).innerText || '',
    text: h.innerText,
    loading: !!h.querySelector('.loading, [data-test="loading-indicator"], .ant-skeleton'),
    error: !!h.querySelector('[data-test="alert"][role="alert"], .ant-alert-error, [data-test="chart-error"]'),
    empty: !!h.querySelector('[data-test="empty-state"], .empty-state'),
    bignum: (h.querySelector('.header-line') || {}).innerText || null,
}))"""


def open_board(page, stack, slug: str, expected: list[str], timeout: float = 90) -> list[dict]:
    page.goto(f"{stack.url}/superset/dashboard/{slug}/")
    deadline = time.monotonic() + timeout
    charts: list[dict] = []
    while time.monotonic() < deadline:
        charts = page.evaluate(JS_CHARTS)
        done = len(charts) >= len(expected) and all(not c["loading"] and c["text"].strip() for c in charts)
        if done:
            page.wait_for_timeout(1500)  # let echarts finish its animation before the screenshot
            return page.evaluate(JS_CHARTS)
        page.wait_for_timeout(500)
    raise AssertionError(f"{slug}: charts not rendered in {timeout} s: "
                         f"{[(c['title'], c['loading']) for c in charts]}")


def parse_vn_number(text: str) -> float:
    """'2.544' -> 2544 ; '92,4%' -> 0.924 (Vietnamese grouping and decimal marks)."""
    t = text.strip().replace("\u00a0", "").replace(" ", "")
    pct = t.endswith("%")
    t = t.rstrip("%").replace(".", "").replace(",", ".")
    v = float(t)
    return v / 100 if pct else v


BIG_NUMBERS = {  # overview chart title -> v_province_now column
    "Tiếp nhận hôm nay": "received_today",
    "Tiếp nhận trong kỳ": "received_month",
    "Đã giải quyết trong kỳ": "resolved_month",
    "Tỷ lệ đúng hạn": "on_time_share",
    "Quá hạn hiện tại": "overdue_now",
    "Đang xử lý": "in_progress",
    "Trực tuyến": "online_share",
    "Số hóa": "digitised_share",
    "Hài lòng": "satisfaction_share",
}


NO_DATA = ("no data", "không có dữ liệu")  # English (administrator) and Vietnamese (leaders)


def _bignums(charts: list[dict]) -> dict[str, float]:
    """Big-number charts by title. Superset's "No data" (a unit leader's unit with no
    rating yet, no dossier today) is left out: ``_assert_same`` then says "not shown"."""
    out = {}
    for c in charts:
        title = c["title"].strip() or c["text"].split("\n")[0].strip()
        if title in BIG_NUMBERS and c["bignum"] and c["bignum"].strip().lower() not in NO_DATA:
            out[title] = parse_vn_number(c["bignum"])
    return out


def _province_now(stack) -> dict:
    ch = stack.ch()
    r = ch.query("SELECT * FROM v_province_now")
    return dict(zip(r.column_names, r.result_rows[0]))


def _assert_same(shown: dict[str, float], truth: dict) -> list[str]:
    bad = []
    for title, col in BIG_NUMBERS.items():
        want = truth[col]
        got = shown.get(title)
        if got is None:
            bad.append(f"{title}: not shown")
        elif col.endswith("share"):
            # shown as a percentage with one decimal, rounded half up (0.3625 -> 36.3%):
            # within half a unit of the last digit (round(0.3625, 3) is 0.362 in binary)
            if abs(got - want) > 0.0005 + 1e-9:
                bad.append(f"{title}: board {got:.3f} vs ClickHouse {want:.4f}")
        elif int(got) != int(want):
            bad.append(f"{title}: board {got} vs ClickHouse {want}")
    return bad


def test_boards_render_without_errors(stack, imported, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    ctx = browser()
    page = ctx.new_page()
    outside: list[str] = []
    page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((stack.url, "data:", "blob:"))
            else None)
    login(page, stack, "admin", stack.password())
    for slug in BOARDS:
        expected = board_charts(slug)
        charts = open_board(page, stack, slug, expected)
        page.screenshot(path=str(SHOTS / f"{slug}.png"), full_page=True)
        titles = [c["title"].strip() for c in charts]
        assert sorted(titles) == sorted(expected), (slug, titles)
        errors = [c["title"] + ": " + c["text"][:300] for c in charts if c["error"]
                  or "error" in c["text"].lower() and "Data error" in c["text"]]
        assert not errors, f"{slug}: chart errors: {errors}"
        empty = [c["title"] for c in charts if c["empty"] or "No results" in c["text"]]
        assert not empty, f"{slug}: empty charts: {empty}"
    ctx.close()
    # Offline: the only outside request the bundled front end tries is blocked by the CSP.
    assert all("scarf.sh" in u for u in outside), outside


def test_overview_big_numbers_match_clickhouse(stack, imported, browser):
    ctx = browser()
    page = ctx.new_page()
    login(page, stack, "admin", stack.password())
    expected = board_charts("tong-quan-tinh")
    bad: list[str] = []
    for _ in range(3):  # "now" moves between the board's queries and ours: retry a mismatch
        shown = _bignums(open_board(page, stack, "tong-quan-tinh", expected))
        bad = _assert_same(shown, _province_now(stack))
        if not bad:
            break
    ctx.close()
    assert not bad, bad


def _unit_of_sample_user(stack) -> tuple[str, str]:
    api = stack.api("admin", stack.password())
    users = api.get("/api/v1/security/users/?q=(filters:!((col:username,opr:eq,value:lanhdao_donvi)))").json()
    role = users["result"][0]["roles"][0]["name"]
    code = role.removeprefix("unit_leader_")
    name = stack.ch().query("SELECT unit_name FROM ref_units FINAL WHERE unit_code = {c:String}",
                            parameters={"c": code}).result_rows[0][0]
    return code, name


def _dataset_id(api, table: str) -> int:
    q = f"/api/v1/dataset/?q=(filters:!((col:table_name,opr:eq,value:{table})))"
    return api.get(q).json()["result"][0]["id"]


def _chart_rows(api, ds_id: int, columns: list[str], metrics: list[str]):
    payload = {"datasource": {"id": ds_id, "type": "table"}, "force": True, "result_format": "json",
               "result_type": "full", "queries": [{"columns": columns, "metrics": metrics, "row_limit": 5000,
                                                   "filters": [], "orderby": []}]}
    return api.post("/api/v1/chart/data", json=payload)


def test_unit_leader_sees_only_own_unit(stack, imported, browser):
    code, name = _unit_of_sample_user(stack)
    admin = stack.api("admin", stack.password())
    leader = stack.api("lanhdao_donvi", stack.password("unit"))
    for table, metric in (("v_dossier_daily", "total_received"), ("v_ratings_daily", "total_ratings"),
                          ("v_unit_scoreboard", "sb_received"), ("v_overdue_now", "overdue_count")):
        ds = _dataset_id(admin, table)
        all_rows = _chart_rows(admin, ds, ["unit_code"], [metric])
        assert all_rows.status_code == 200, all_rows.text
        assert len({r["unit_code"] for r in all_rows.json()["result"][0]["data"]}) > 1, table
        mine = _chart_rows(leader, ds, ["unit_code"], [metric])
        assert mine.status_code == 200, (table, mine.text)
        units = {r["unit_code"] for r in mine.json()["result"][0]["data"]}
        assert units <= {code}, (table, units)
    # Operations datasets (no unit column) are not granted to unit leaders at all.
    denied = _chart_rows(leader, _dataset_id(admin, "dq_results"), ["suite"], ["dq_checks"])
    assert denied.status_code in (403, 404), denied.text

    # In the browser: the overview shows the unit's own figure, not the province's.
    month = stack.ch().query(
        "SELECT sum(received) FROM v_dossier_daily WHERE unit_code = {c:String} "
        "AND day >= toStartOfMonth(toDate(now(), 'Asia/Ho_Chi_Minh'))", parameters={"c": code}).result_rows[0][0]
    ctx = browser()
    page = ctx.new_page()
    login(page, stack, "lanhdao_donvi", stack.password("unit"))
    charts = open_board(page, stack, "tong-quan-tinh", board_charts("tong-quan-tinh"))
    page.screenshot(path=str(SHOTS / "tong-quan-tinh-unit-leader.png"), full_page=True)
    ctx.close()
    shown = _bignums(charts)
    assert shown.get("Tiếp nhận trong kỳ") == month, (shown, month, name)
    drill = next(c for c in charts if c["title"].startswith("Chi tiết"))
    other_units = set(re.findall(r"(?:Xã|Phường|Sở) [^\n\t]+", drill["text"])) - {name}
    assert not other_units, other_units


# ------------------------------------------------------------------------------------
# language (issue 22): Superset in Vietnamese for the leaders, English for the administrator
# ------------------------------------------------------------------------------------
I18N_DIR = REPO / "deploy" / "superset"
I18N_OUT = REPO / "artifacts" / "i18n"
# The parts of a board page a leader reads; none of Superset's strings in them may be English.
VI_AREAS = ("login", "header", "filter_bar", "date_picker", "dashboard_menu", "chart_menu")
# Strings that must be seen in Vietnamese (so an empty page or a missed menu cannot pass).
MUST_SEE = {"login": {"Sign in", "Username:", "Password:"},
            "filter_bar": {"Filters and controls", "Apply filters", "Clear all"},
            "header": {"Refresh dashboard"},
            "date_picker": {"Range type", "Actual time range", "Last week", "Current month", "APPLY"},
            # leaders are read-only: no "Share", and no chart "Download" (CSV export)
            "chart_menu": {"Force refresh", "View as table", "View query"},
            "dashboard_menu": {"Refresh dashboard", "Enter fullscreen", "Download"}}


def _i18n():
    import importlib.util
    import sys
    sys.path.insert(0, str(I18N_DIR))
    spec = importlib.util.spec_from_file_location("i18n_remainder", I18N_DIR / "i18n_remainder.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_language_pack_built_not_committed():
    rem = _i18n()
    i18n = rem.i18n
    pot = rem.default_pot()
    _, entries = i18n.read_po(i18n.PO)
    assert not i18n.problems(entries, pot)
    vi = i18n.translations()
    assert len(vi) >= 300, len(vi)
    built = pot.parent / "vi" / "LC_MESSAGES"
    pack = json.loads((built / "messages.json").read_text(encoding="utf-8"))["locale_data"]["superset"]
    assert {k: v[0] for k, v in pack.items() if k} == vi, "messages.json is stale: run deploy/superset/install.sh"
    import gettext
    with open(built / "messages.mo", "rb") as fh:
        mo = gettext.GNUTranslations(fh)
    assert all(mo.gettext(k) == v for k, v in vi.items() if "\x04" not in k), "messages.mo is stale"
    tracked = subprocess.run(["git", "ls-files", "deploy/superset"], cwd=REPO, capture_output=True, text=True).stdout
    assert ".mo" not in tracked and "messages.json" not in tracked, "build output committed"


def _leader_report(stack, browser, user: str, password: str, boards: list[str]) -> dict:
    rem = _i18n()
    SHOTS.mkdir(parents=True, exist_ok=True)
    I18N_OUT.mkdir(parents=True, exist_ok=True)
    ctx = browser()
    page = ctx.new_page()
    report = rem.measure(page, stack.url, user, password, boards, screenshots=SHOTS)
    ctx.close()
    (I18N_OUT / f"remainder-{user}.json").write_text(json.dumps(report, ensure_ascii=False, indent=1),
                                                     encoding="utf-8")
    (I18N_OUT / f"remainder-{user}.txt").write_text(rem.summary(report) + "\n", encoding="utf-8")
    return report


def _has_time_filter(slug: str) -> bool:
    dash = _yaml(ASSETS / "dashboards" / f"{slug}.yaml")
    filters = dash.get("metadata", {}).get("native_filter_configuration", [])
    return any(f.get("filterType") == "filter_time" for f in filters)


def _assert_vietnamese(report: dict, boards: list[str]) -> None:
    bad, missing = [], []
    pages = ["login"] + boards
    for pg in pages:
        for area in VI_AREAS:
            if pg == "login" and area != "login" or pg != "login" and area == "login":
                continue
            r = report[pg].get(area)
            if r is None and area == "date_picker" and not _has_time_filter(pg):
                continue       # a board without a time-range filter (the index board picks periods)
            if r is None:
                missing.append(f"{pg}/{area}: not opened")
                continue
            bad += [f"{pg}/{area}: {s!r}" for s in r["english"]]
            missing += [f"{pg}/{area}: {s!r} not seen in Vietnamese" for s in MUST_SEE[area] - set(r["translated"])]
    assert not bad, "still English: " + "; ".join(bad)
    assert not missing, "; ".join(missing)


def test_boards_in_vietnamese_for_province_leader(stack, imported, browser):
    report = _leader_report(stack, browser, "lanhdao_tinh", stack.password("province"), BOARDS)
    _assert_vietnamese(report, BOARDS)


def test_boards_in_vietnamese_for_unit_leader(stack, imported, browser):
    # A unit leader's boards: the operations board has no unit data and is not theirs.
    boards = ["tong-quan-tinh", "muc-do-hai-long", "bo-chi-so-phuc-vu"]
    leader = stack.api("lanhdao_donvi", stack.password("unit"))
    assert leader.get("/api/v1/dashboard/chat-luong-du-lieu").status_code in (403, 404)
    report = _leader_report(stack, browser, "lanhdao_donvi", stack.password("unit"), boards)
    _assert_vietnamese(report, boards)


def _filter_bar_title(page, stack) -> str:
    page.goto(f"{stack.url}/superset/dashboard/tong-quan-tinh/")
    # attached, with its text rendered (it can be laid out hidden for a moment while charts load)
    page.wait_for_function("() => { const e = document.querySelector('[data-test=\"filter-bar\"]');"
                           " return e && e.textContent.trim().length > 0; }", timeout=60_000)
    page.wait_for_timeout(500)
    return page.locator('[data-test="filter-bar"]').text_content()


def test_admin_english_and_language_choice(stack, imported, browser):
    ctx = browser()
    page = ctx.new_page()
    login(page, stack, "admin", stack.password())
    assert "Filters and controls" in _filter_bar_title(page, stack)
    page.screenshot(path=str(SHOTS / "tong-quan-tinh-admin-en.png"))
    # The navbar's language picker (/lang/<code>) switches, and the choice sticks.
    page.goto(f"{stack.url}/lang/vi")
    assert "Bộ lọc và điều khiển" in _filter_bar_title(page, stack)
    page.goto(f"{stack.url}/lang/en")
    text = _filter_bar_title(page, stack)
    assert "Filters and controls" in text and "Bộ lọc" not in text
    ctx.close()
    # A leader who picks English keeps English.
    ctx = browser()
    page = ctx.new_page()
    login(page, stack, "lanhdao_tinh", stack.password("province"))
    assert "Bộ lọc và điều khiển" in _filter_bar_title(page, stack)
    page.goto(f"{stack.url}/lang/en")
    assert "Filters and controls" in _filter_bar_title(page, stack)
    ctx.close()


def test_times_in_vietnam_convention(stack, imported, browser):
    """Timestamps show Vietnam's wall-clock time as dd/mm/yyyy HH:MM (they showed UTC)."""
    want = stack.ch().query("SELECT formatDateTime(max(raised_at), '%d/%m/%Y %H:%i', 'Asia/Ho_Chi_Minh') "
                            "FROM alerts").result_rows[0][0]
    ctx = browser()
    page = ctx.new_page()
    login(page, stack, "lanhdao_tinh", stack.password("province"))
    charts = open_board(page, stack, "tong-quan-tinh", board_charts("tong-quan-tinh"))
    ctx.close()
    alerts = next(c for c in charts if c["title"].strip() == "Cảnh báo gần đây")
    shown = re.findall(r"\d{2}/\d{2}/\d{4} \d{2}:\d{2}", alerts["text"])
    assert shown and shown[0] == want, (shown[:3], want)
