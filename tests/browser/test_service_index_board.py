"""The board "Bộ chỉ số phục vụ" (issue 20) in a real browser, on the stack of test_boards
(its seeded province, Superset, the imported bundle, the leader roles and RLS).

The index is computed the way the leader worker does it (streams.service_index.ServiceIndexJob
over the stack's ClickHouse), then: the province leader's board renders every chart without
an error, its province total is the stored one, and a not-measured indicator reads "Chưa đo";
a unit leader gets only their unit's rows from both new datasets (RLS by unit_code).
"""
# ruff: noqa: F811 - test_boards' fixtures are imported to be shared, and named as parameters
from __future__ import annotations

import time

import pytest

from tests.browser.test_boards import (SHOTS, _chart_rows, _dataset_id, _unit_of_sample_user, board_charts,  # noqa: F401
                                       browser, imported, login, open_board, parse_vn_number, stack)

pytestmark = pytest.mark.browser
SLUG = "bo-chi-so-phuc-vu"

# Per chart holder: the rectangle of what the chart drew (the largest echarts canvas or svg,
# table or big number in it: the header's icons are svgs too), clipped to the holder (a
# table's element runs on below its scrolling box), whether it has a size, and whether the
# holder lies inside the viewport.
JS_DRAWN = """() => Array.from(document.querySelectorAll('.dashboard-component-chart-holder')).map(h => {
    let r = null;
    for (const el of h.querySelectorAll('canvas, svg, table, .header-line')) {
        const b = el.getBoundingClientRect();
        if (!r || b.width * b.height > r.width * r.height) r = b;
    }
    const hr = h.getBoundingClientRect();
    const c = r ? [Math.max(r.left, hr.left), Math.max(r.top, hr.top),
                   Math.min(r.right, hr.right), Math.min(r.bottom, hr.bottom)] : null;
    return {text: h.innerText.split('\\n')[0], drawn: !!c && c[2] - c[0] > 20 && c[3] - c[1] > 10,
            inside: hr.bottom <= window.innerHeight && hr.right <= window.innerWidth,
            loading: !!h.querySelector('.loading, [data-test="loading-indicator"], .ant-skeleton'),
            rect: c};
})"""


def screenshot_rendered(page, path, n_charts: int, timeout: float = 60) -> list[dict]:
    """A PNG of the whole board with every chart drawn. A full-page screenshot re-lays the
    page out at a new height while it captures, and the charts were not drawn again in time
    (the saved board was blank): the viewport is made as tall as the board instead, the
    charts are waited for (each drawn, inside the viewport, none loading), then the viewport
    is captured as it is. Returns the charts' drawn rectangles."""
    height = page.evaluate("() => Math.max(document.documentElement.scrollHeight, document.body.scrollHeight)")
    page.set_viewport_size({"width": 1600, "height": int(min(max(height, 1000), 8000))})
    deadline = time.monotonic() + timeout
    drawn: list[dict] = []
    while time.monotonic() < deadline:
        drawn = page.evaluate(JS_DRAWN)
        if len(drawn) >= n_charts and all(d["drawn"] and d["inside"] and not d["loading"] for d in drawn):
            break
        page.wait_for_timeout(500)
    else:
        raise AssertionError(f"charts not drawn for the screenshot in {timeout} s: {drawn}")
    page.wait_for_timeout(1500)  # echarts' entry animation
    page.screenshot(path=str(path))
    return drawn


def assert_not_blank(path, drawn: list[dict]) -> None:
    """Every chart's drawn area in the saved PNG has more than one colour (a blank canvas has one)."""
    Image = pytest.importorskip("PIL.Image", reason="Pillow is needed to read the saved PNG back")
    img = Image.open(path).convert("RGB")
    blank = []
    for d in drawn:
        left, top, right, bottom = (int(v) for v in d["rect"])
        colours = img.crop((left, top, right, bottom)).getcolors(maxcolors=1 << 16)
        if colours is not None and len(colours) < 2:
            blank.append(d["text"])
    assert not blank, f"{path}: charts blank in the screenshot: {blank}"


@pytest.fixture(scope="module")
def indexed(stack, imported):
    from streams.service_index import ServiceIndexJob
    client = stack.ch()
    n = ServiceIndexJob(stack.settings).run(client)
    assert n > 0
    total = client.query("SELECT points, measured_max FROM v_service_index WHERE period_kind = 'mtd' "
                         "AND row_kind = 'total' AND unit_kind = 'province'").result_rows
    assert len(total) == 1
    return total[0]


def test_board_renders_for_the_province_leader(stack, indexed, browser):
    points, measurable = indexed
    ctx = browser()
    page = ctx.new_page()
    login(page, stack, "lanhdao_tinh", stack.password("province"))
    charts = open_board(page, stack, SLUG, board_charts(SLUG))
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / f"{SLUG}.png"
    drawn = screenshot_rendered(page, shot, len(board_charts(SLUG)))
    ctx.close()
    assert_not_blank(shot, drawn)
    by_title = {c["title"].strip() or c["text"].split("\n")[0].strip(): c for c in charts}
    # the default period is the month to date: the province's stored total, as the board shows it
    total, measured = by_title["Toàn tỉnh: tổng điểm"], by_title["Toàn tỉnh: điểm đo được / 100"]
    assert total["bignum"] and abs(parse_vn_number(total["bignum"]) - round(points, 2)) < 0.01, (total, points)
    assert measured["bignum"] and parse_vn_number(measured["bignum"]) == measurable, (measured, measurable)
    by_title = {t: c["text"] for t, c in by_title.items()}
    # supplied indicators were not supplied: not measured, shown as such (never 0 or full marks)
    assert "Chưa đo" in by_title["Chi tiết từng chỉ số"]


def test_unit_leader_sees_only_own_unit_index(stack, indexed):
    code, _name = _unit_of_sample_user(stack)
    admin = stack.api("admin", stack.password())
    leader = stack.api("lanhdao_donvi", stack.password("unit"))
    for table, metric in (("v_service_index", "si_total"), ("v_index_lost_dossiers", "lost_dossiers")):
        ds = _dataset_id(admin, table)
        everyone = _chart_rows(admin, ds, ["unit_code"], [metric])
        assert everyone.status_code == 200, everyone.text
        assert len({r["unit_code"] for r in everyone.json()["result"][0]["data"]}) > 1, table
        mine = _chart_rows(leader, ds, ["unit_code"], [metric])
        assert mine.status_code == 200, (table, mine.text)
        units = {r["unit_code"] for r in mine.json()["result"][0]["data"]}
        assert units == {code} if table == "v_service_index" else units <= {code}, (table, units)
