"""Which of Superset's own strings on the board pages still show in English.

Drives a running Superset in Chromium (Playwright, Debian's chromium) as one user, opens
the login page, every board and the dashboard list, opens the parts a reader opens (the
date-range picker, the dashboard's and a chart's menu), and collects every visible text and
placeholder / title / aria-label. A text that is one of Superset's msgids (its messages.pot,
placeholders matched as wildcards) is still English; one that is a Vietnamese msgstr of
deploy/superset/translations/vi/LC_MESSAGES/messages.po is translated. The boards' own
content (titles, labels, descriptions from assets/) and data values are neither.

    .venv/bin/python deploy/superset/i18n_remainder.py --url http://127.0.0.1:8088 \
        --user lanhdao_tinh --password "$(cat .state/superset/province_user_password)" \
        [--boards tong-quan-tinh,...] [--out artifacts/i18n]

Prints, per page and area, how many Superset strings were seen translated and which were
English, and writes the same as JSON (``remainder-<user>.json``) into --out.
"""
from __future__ import annotations

import argparse
import glob
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
import i18n  # noqa: E402

BOARDS = ["tong-quan-tinh", "muc-do-hai-long", "chat-luong-du-lieu"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# Portals (menus, popovers, select lists) render outside the page's regions.
OVERLAYS = (".ant-popover:not(.ant-popover-hidden), .ant-dropdown:not(.ant-dropdown-hidden), "
            ".ant-dropdown-menu-submenu-popup:not(.ant-dropdown-menu-submenu-hidden), "
            ".ant-select-dropdown:not(.ant-select-dropdown-hidden), .ant-modal-wrap")

JS_TEXTS = """(sel) => {
  const roots = sel ? Array.from(document.querySelectorAll(sel)) : [document.body];
  const out = new Set();
  const visible = el => { const r = el.getClientRects(); if (!r.length) return false;
      const s = getComputedStyle(el); return s.visibility !== 'hidden' && s.display !== 'none'
      && parseFloat(s.opacity || '1') > 0; };
  for (const root of roots) {
    for (const el of [root, ...root.querySelectorAll('*')]) {
      if (['SCRIPT', 'STYLE', 'NOSCRIPT', 'svg', 'path'].includes(el.tagName) || !visible(el)) continue;
      let own = '';
      for (const n of el.childNodes) if (n.nodeType === 3) own += n.textContent;
      own = own.replace(/\\s+/g, ' ').trim();
      if (own) out.add(own);
      // antd icons carry their icon's name ("right", "down") as aria-label: not UI text
      const icon = el.getAttribute('role') === 'img' || el.classList.contains('anticon');
      for (const a of (icon ? [] : ['placeholder', 'title', 'aria-label', 'alt']))
        if (el.getAttribute(a)) out.add(el.getAttribute(a).replace(/\\s+/g, ' ').trim());
      if (el.tagName === 'INPUT' && ['submit', 'button'].includes(el.type) && el.value) out.add(el.value.trim());
    }
  }
  return Array.from(out);
}"""


def default_pot() -> Path:
    hits = sorted(glob.glob(str(REPO / ".venv-superset/lib/python3*/site-packages/superset/translations/messages.pot")))
    if not hits:
        raise SystemExit("Superset's messages.pot not found: pass --pot")
    return Path(hits[-1])


def _pattern(s: str) -> re.Pattern | None:
    """A msgid with placeholders as a regex over the rendered text (None: no placeholder)."""
    parts = re.split(r"(%\(\w+\)[sdifr]|%[sdif]|\{\w*\})", s)
    if len(parts) == 1:
        return None
    if not re.search(r"[A-Za-z]{2}", "".join(parts[::2])):
        return None  # "%s%s", "%(prefix)s %(title)s": would match any text
    return re.compile("^" + "".join(".+?" if i % 2 else re.escape(p) for i, p in enumerate(parts)) + "$",
                      re.S)


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


class Classifier:
    def __init__(self, pot: Path, po: Path = i18n.PO, assets: Path = HERE / "assets"):
        _, entries = i18n.read_po(pot)
        vi = i18n.translations(po)
        # strings Vietnamese writes the same way ("OK", "Kiosk") are not English on the page
        same = {k for k, v in vi.items() if _norm(k) == _norm(v)}
        self.msgids = {_norm(e.msgid): e.msgid for e in entries if e.msgid.strip() and e.msgid not in same
                       and re.search(r"[A-Za-z]", re.sub(r"%\(\w+\)[sdifr]|%[sdif]|\{\w*\}", "", e.msgid))}
        for e in entries:
            if e.msgid_plural and e.msgid not in same:
                self.msgids.setdefault(_norm(e.msgid_plural), e.msgid)
        self.patterns = [(p, m) for n, m in self.msgids.items() if (p := _pattern(n))]
        # one Vietnamese text may translate several msgids ("Đăng nhập": "Sign in" and "Login")
        self.vi: dict[str, tuple[str, ...]] = {}
        for k, v in vi.items():
            if k not in same:
                self.vi[_norm(v)] = self.vi.get(_norm(v), ()) + (k,)
        self.vi_patterns = [(p, k) for n, k in self.vi.items() if (p := _pattern(n))]
        self.own = self._asset_strings(assets)

    @staticmethod
    def _asset_strings(assets: Path) -> set[str]:
        import yaml
        out: set[str] = set()

        def walk(x):
            if isinstance(x, str):
                out.add(_norm(x))
            elif isinstance(x, dict):
                for v in x.values():
                    walk(v)
            elif isinstance(x, list):
                for v in x:
                    walk(v)
        for f in assets.rglob("*.yaml"):
            walk(yaml.safe_load(f.read_text(encoding="utf-8")))
        return out

    def _match(self, s: str, exact: dict, patterns):
        if s in exact:
            return exact[s]
        if len(s) > 200 or not re.search(r"[A-Za-zÀ-ỹ]", s):
            return None
        for p, m in patterns:
            if p.match(s):
                return m
        return None

    def classify(self, texts: list[str]) -> dict:
        english, translated = set(), set()
        for t in texts:
            s = _norm(t)
            if not s or s in self.own:
                continue
            if (m := self._match(s, self.vi, self.vi_patterns)) is not None:
                translated.update(m)
            elif (m := self._match(s, self.msgids, self.patterns)) is not None:
                english.add(m)
        return {"english": sorted(english), "translated": sorted(translated)}


class Visitor:
    """Opens the pages as one user and collects texts per area."""

    def __init__(self, page, url: str):
        self.page, self.url = page, url.rstrip("/")

    def texts(self, sel: str | None = None) -> list[str]:
        return self.page.evaluate(JS_TEXTS, sel)

    def login_page(self) -> dict[str, list[str]]:
        self.page.goto(f"{self.url}/login/")
        self.page.wait_for_selector('[data-test="login-form"]', timeout=30_000)
        self.page.wait_for_timeout(800)
        return {"login": self.texts()}

    def login(self, user: str, password: str) -> None:
        self.page.goto(f"{self.url}/login/")
        self.page.fill("input#username", user)
        self.page.fill("input#password", password)
        self.page.keyboard.press("Enter")
        self.page.wait_for_url(lambda u: "/login" not in u, timeout=30_000)

    def _close_overlays(self) -> None:
        self.page.keyboard.press("Escape")
        self.page.mouse.click(5, 300)
        self.page.wait_for_timeout(300)

    def _submenus(self) -> list[str]:
        """Hover each submenu of the open menu (Download, Share, ...) and collect its items."""
        texts: list[str] = []
        subs = self.page.locator(".ant-dropdown:not(.ant-dropdown-hidden) .ant-dropdown-menu-submenu-title")
        for i in range(subs.count()):
            try:
                subs.nth(i).hover(timeout=3000)
            except Exception:  # a submenu that moved away while another opened
                continue
            self.page.wait_for_timeout(500)
            texts += self.texts(OVERLAYS)
        return texts

    def board(self, slug: str, wait_s: float = 60, deep: bool = True, shot: Path | None = None,
              ) -> dict[str, list[str]]:
        p = self.page
        p.goto(f"{self.url}/superset/dashboard/{slug}/")
        p.wait_for_selector('[data-test="dashboard-header-container"]', timeout=wait_s * 1000)
        # every chart finished loading (no spinner left), or the deadline
        for _ in range(int(wait_s * 2)):
            if p.evaluate("() => document.querySelectorAll('[data-test=\"chart-container\"]').length > 0 && "
                          "!document.querySelector('.dashboard-component-chart-holder .loading')"):
                break
            p.wait_for_timeout(500)
        p.wait_for_timeout(1000)
        if shot:
            p.screenshot(path=str(shot), full_page=True)
        out = {"navbar": self.texts('[data-test="navbar-top"]'),
               "header": self.texts('[data-test="dashboard-header-container"]'),
               "filter_bar": self.texts('[data-test="filter-bar"]'),
               "charts": self.texts('[data-test="grid-container"]')}
        trigger = p.locator('[data-test="time-range-trigger"]')
        if trigger.count():
            trigger.first.click()
            p.wait_for_timeout(800)
            texts = self.texts(OVERLAYS)
            if deep:  # every range type's panel (Last, Previous, Custom, Advanced...)
                for i in range(8):
                    sel = p.locator(".ant-popover:not(.ant-popover-hidden) .ant-select").first
                    if not sel.count():
                        break
                    sel.click()
                    p.wait_for_timeout(400)
                    opts = p.locator(".ant-select-dropdown:not(.ant-select-dropdown-hidden) .ant-select-item-option")
                    texts += self.texts(OVERLAYS)
                    if i >= opts.count():
                        p.keyboard.press("Escape")
                        break
                    opts.nth(i).click()
                    p.wait_for_timeout(500)
                    texts += self.texts(OVERLAYS)
            out["date_picker"] = texts
            self._close_overlays()
        menu = p.locator('[data-test="actions-trigger"]')
        if menu.count():
            menu.first.click()
            p.wait_for_timeout(600)
            out["dashboard_menu"] = self.texts(OVERLAYS) + (self._submenus() if deep else [])
            self._close_overlays()
        holder = p.locator('[data-test="dashboard-component-chart-holder"]').first
        if holder.count():
            holder.hover()
            trig = holder.locator('[data-test="slice-header"] .ant-dropdown-trigger, '
                                  '[data-test="slice-header"] [aria-label="More Options"], '
                                  '[data-test="slice-header"] [data-test="dropdown-trigger"]')
            if trig.count():
                trig.first.click()
                p.wait_for_timeout(600)
                out["chart_menu"] = self.texts(OVERLAYS) + (self._submenus() if deep else [])
                self._close_overlays()
        return out

    def dashboard_list(self) -> dict[str, list[str]]:
        self.page.goto(f"{self.url}/dashboard/list/")
        self.page.wait_for_timeout(3000)
        out = {"dashboard_list": self.texts()}
        # the user menu (language picker, logout) opens from the navbar's right side
        right = self.page.locator('[data-test="navbar-top"] .ant-menu-submenu-title')
        texts: list[str] = []
        for i in range(right.count()):
            try:
                right.nth(i).hover(timeout=3000)
            except Exception:
                continue
            self.page.wait_for_timeout(500)
            texts += self.texts(".ant-menu-submenu-popup:not(.ant-menu-submenu-hidden)")
        out["user_menu"] = texts
        return out


def measure(page, url: str, user: str, password: str, boards=BOARDS, classifier: Classifier | None = None,
            screenshots: Path | None = None) -> dict:
    """{page: {area: {"english": [...], "translated": [...]}}} for one user."""
    c = classifier or Classifier(default_pot())
    v = Visitor(page, url)
    report: dict = {}
    report["login"] = {a: c.classify(t) for a, t in v.login_page().items()}
    if screenshots:
        page.screenshot(path=str(screenshots / f"login-{user}.png"))
    v.login(user, password)
    for slug in boards:
        shot = screenshots / f"{slug}-{user}.png" if screenshots else None
        report[slug] = {a: c.classify(t) for a, t in v.board(slug, shot=shot).items()}
    report["dashboard_list"] = {a: c.classify(t) for a, t in v.dashboard_list().items()}
    return report


def summary(report: dict) -> str:
    lines = []
    for pg, areas in report.items():
        eng = sorted({s for a in areas.values() for s in a["english"]})
        tr = sorted({s for a in areas.values() for s in a["translated"]})
        lines.append(f"{pg}: {len(tr)} Superset strings in Vietnamese, {len(eng)} still English")
        for area, r in areas.items():
            if r["english"]:
                lines.append(f"  {area}: " + " | ".join(r["english"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8088")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--boards", default=",".join(BOARDS))
    ap.add_argument("--pot", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=REPO / "artifacts" / "i18n")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright
    c = Classifier(a.pot or default_pot())
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=a.chromium, args=CHROMIUM_FLAGS, headless=True)
        page = b.new_page(viewport={"width": 1600, "height": 1000}, locale="vi-VN", timezone_id="Asia/Ho_Chi_Minh")
        report = measure(page, a.url, a.user, a.password, [s for s in a.boards.split(",") if s], c)
        b.close()
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / f"remainder-{a.user}.json").write_text(json.dumps(report, ensure_ascii=False, indent=1),
                                                    encoding="utf-8")
    print(summary(report))


if __name__ == "__main__":
    main()
