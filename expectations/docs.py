"""Build GX Data Docs for the suites, offline, into a folder.

    python -m expectations.docs --out DIR [--days 1 --scale 0.3] [--no-sample]

The pages show both suites (as resolved from the current reference data and settings) and,
unless ``--no-sample``, their validation on a simulated sample (``simulator.generate``)
with a few events deliberately broken so failing expectations show up too.

GX's page templates pull Bootstrap, bootstrap-table, jQuery, Font Awesome, vega and a logo
from CDNs; offline the index is empty (its table is filled by bootstrap-table) and pages
are unstyled. After building, every HTML page is rewritten:
- remote ``<link>``/``<script src>`` tags are removed; the page gets
  ``static/offline/offline.css`` (a small stylesheet written for these pages: the Bootstrap
  subset they use, icons as Unicode) and ``static/offline/offline.js`` (renders the
  bootstrap-table data as plain tables with links; other jQuery calls become no-ops);
- remote images and CSS ``url()``s point at GX's own logo, shipped in ``static/images``;
- the newsletter and "tutorials" footers are dropped.
``tests/test_expectations_docs.py`` checks that no http(s) asset reference remains.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
from datetime import timedelta
from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parent / "docs_assets"
SITE_NAME = "motcua_pulse_docs"
LOCAL_LOGO = "static/images/logo-long.png"

_REMOTE_LINK = re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']https?://[^>]*>\s*", re.I)
_REMOTE_SCRIPT = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']https?://[^>]*>\s*</script>\s*", re.I)
_REMOTE_IMG_SRC = re.compile(r"(<img\b[^>]*\bsrc\s*=\s*)([\"'])https?://[^\"']*\2", re.I | re.S)
_REMOTE_CSS_URL = re.compile(r"url\(\s*([\"']?)https?://[^)\"']*\1\s*\)", re.I)
_FOOTER = re.compile(r"<footer\b.*?</footer>\s*", re.I | re.S)
_CTA_SCRIPT = re.compile(r"<script>\s*if \(sessionStorage\.getItem\(\"showCta\"\).*?</script>\s*", re.S)
# what the test looks for: any asset (not a plain navigation link) fetched over http(s)
ASSET_REF = re.compile(
    r"(<(?:script|img|iframe|source|video|audio|embed)\b[^>]*\bsrc\s*=\s*[\"']https?://)"
    r"|(<link\b[^>]*\bhref\s*=\s*[\"']https?://)"
    r"|(url\(\s*[\"']?https?://)"
    r"|(@import\s+[\"']https?://)", re.I)


def offline_page(html: str, rel_root: str) -> str:
    """Rewrite one Data Docs page so it needs nothing from the internet."""
    prefix = (rel_root.rstrip("/") + "/") if rel_root not in ("", ".") else ""
    html = _REMOTE_LINK.sub("", html)
    html = _REMOTE_SCRIPT.sub("", html)
    html = _REMOTE_IMG_SRC.sub(lambda m: f"{m.group(1)}{m.group(2)}{prefix}{LOCAL_LOGO}{m.group(2)}", html)
    html = _REMOTE_CSS_URL.sub(f"url('{prefix}{LOCAL_LOGO}')", html)
    html = _FOOTER.sub("", html)
    html = _CTA_SCRIPT.sub("", html)
    tags = (f'<link rel="stylesheet" href="{prefix}static/offline/offline.css">\n'
            f'<script src="{prefix}static/offline/offline.js"></script>\n')
    if "static/offline/offline.css" not in html:
        html = re.sub(r"</head>", tags + "</head>", html, count=1, flags=re.I) if re.search(r"</head>", html, re.I) \
            else tags + html
    return html


def make_offline(site_dir: Path) -> list[Path]:
    """Vendor the local assets into the site and rewrite every HTML page; returns the pages."""
    site_dir = Path(site_dir)
    dest = site_dir / "static" / "offline"
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("offline.css", "offline.js"):
        shutil.copyfile(ASSETS_DIR / name, dest / name)
    pages = sorted(site_dir.rglob("*.html"))
    for page in pages:
        rel_root = os.path.relpath(site_dir, page.parent).replace(os.sep, "/")
        text = page.read_text(encoding="utf-8")
        page.write_text(offline_page(text, rel_root), encoding="utf-8")
    for css in site_dir.rglob("*.css"):
        text = css.read_text(encoding="utf-8", errors="surrogateescape")
        rel_root = os.path.relpath(site_dir, css.parent).replace(os.sep, "/")
        new = _REMOTE_CSS_URL.sub(f"url('{rel_root}/{LOCAL_LOGO}')", text)
        new = re.sub(r"@import\s+[\"']https?://[^\"']*[\"'];?", "", new)
        if new != text:
            css.write_text(new, encoding="utf-8", errors="surrogateescape")
    return pages


def remote_asset_refs(site_dir: Path) -> list[tuple[str, str]]:
    """(file, reference) for every http(s) asset reference left in the site's HTML/CSS."""
    out = []
    for f in sorted(Path(site_dir).rglob("*")):
        if f.suffix.lower() in (".html", ".css", ".js") and f.is_file():
            for m in ASSET_REF.finditer(f.read_text(encoding="utf-8", errors="replace")):
                out.append((str(f), m.group(0)))
    return out


# --- sample -------------------------------------------------------------------------------

def _break(raw: bytes, i: int, kind: str) -> bytes:
    """Deliberately break a few valid events' data rules (not their contract)."""
    d = json.loads(raw)
    if kind == "dossier":
        if i % 3 == 0:
            d["unit_code"] = "000.00.99.UNKNOWN"
        elif i % 3 == 1 and d.get("submitted_at") and d.get("received_at"):
            d["submitted_at"], d["received_at"] = d["received_at"], d["submitted_at"]
            if d["submitted_at"] == d["received_at"]:
                d["unit_code"] = "000.00.98.UNKNOWN"
        else:
            d["procedure_field"] = "XX"
    else:
        d["scale"], d["level"] = 3, 5
    return json.dumps(d, ensure_ascii=False).encode("utf-8")


def sample_rows(checker, days: int = 1, scale: float = 0.3, broken_every: int = 40) -> dict[str, list[dict]]:
    from datetime import date

    from simulator.model import SimConfig, generate
    cfg = SimConfig(start=date(2026, 11, 2), days=days, scale=scale)  # a Monday: counters open
    now = cfg.end + timedelta(days=1)
    rows: dict[str, list[dict]] = {"dossier_events": [], "ratings": []}
    seen = {"dossier": 0, "rating": 0}
    for ev in generate(cfg):
        kind = "dossier" if ev.topic == "dossier-events" else "rating"
        raw = ev.value
        seen[kind] += 1
        every = broken_every if kind == "dossier" else max(2, broken_every // 8)
        if ev.anomaly is None and seen[kind] % every == 0:
            raw = _break(raw, seen[kind] // every, kind)
        v = (checker.check_dossier if kind == "dossier" else checker.check_rating)(raw, now)
        if v.row is not None:
            rows["dossier_events" if kind == "dossier" else "ratings"].append(v.row)
    return rows


# --- build --------------------------------------------------------------------------------

def build(out: Path, reference=None, settings=None, sample: bool = True, days: int = 1,
          scale: float = 0.3) -> Path:
    """Build the offline Data Docs into ``out``; returns the index page."""
    import great_expectations as gx

    from .checks import Checker
    from .flatten import to_dataframe
    from .gx_batch import GXBatchRunner

    if reference is None:
        from schemas.reference import load_reference
        reference = load_reference()
    if settings is None:
        from pulse.config import Settings
        settings = Settings.from_env()
    out = Path(out).resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    runner = GXBatchRunner(reference, settings)
    ctx = runner.context
    ctx.add_data_docs_site(SITE_NAME, {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "show_how_to_buttons": False},
    })
    if sample:
        rows = sample_rows(Checker.from_suites(reference, settings), days=days, scale=scale)
        for name, batch in rows.items():
            if not batch:
                continue
            vd = ctx.validation_definitions.add(gx.ValidationDefinition(
                name=f"{name}_sample", data=runner._batch_defs[name], suite=runner.suites[name]))
            cp = ctx.checkpoints.add(gx.Checkpoint(
                name=f"{name}_docs", validation_definitions=[vd], result_format="SUMMARY",
                actions=[gx.checkpoint.UpdateDataDocsAction(name="docs", site_names=[SITE_NAME])]))
            cp.run(batch_parameters={"dataframe": to_dataframe(batch, name)})
    ctx.build_data_docs(site_names=[SITE_NAME])
    make_offline(out)
    leftovers = remote_asset_refs(out)
    if leftovers:
        raise RuntimeError(f"remote asset references left: {leftovers[:5]}")
    return out / "index.html"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m expectations.docs", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, type=Path, help="output folder (replaced)")
    p.add_argument("--no-sample", action="store_true", help="suites only, no sample validation")
    p.add_argument("--days", type=int, default=1, help="simulated days in the sample")
    p.add_argument("--scale", type=float, default=0.3, help="simulator scale of the sample")
    args = p.parse_args(argv)
    index = build(args.out, sample=not args.no_sample, days=args.days, scale=args.scale)
    print(f"Data Docs: {index}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
