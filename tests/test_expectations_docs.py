"""GX Data Docs build offline: no http(s) asset references remain, the local assets exist."""
from __future__ import annotations

import re

from expectations.docs import build, offline_page, remote_asset_refs


def test_offline_rewrite_of_a_page():
    page = ('<html><head><link rel="stylesheet" href="https://maxcdn.example/bootstrap.min.css"/>'
            '<script src="https://code.jquery.com/jquery.js"></script>'
            "<style>.x{background:url('https://s3.example/logo.png') 0 0}</style></head>"
            '<body><img class="NO-CACHE" src="https://s3.example/logo-long.png?d=1" alt="GX">'
            '<a href="https://greatexpectations.io">GX</a><footer>newsletter</footer></body></html>')
    out = offline_page(page, "../..")
    assert "https://maxcdn" not in out and "code.jquery" not in out and "s3.example" not in out
    assert 'href="../../static/offline/offline.css"' in out and 'src="../../static/offline/offline.js"' in out
    assert 'src="../../static/images/logo-long.png"' in out
    assert "newsletter" not in out
    assert 'href="https://greatexpectations.io"' in out  # a plain link is not an asset


def test_data_docs_build_offline(tmp_path):
    from pulse.config import Settings
    from schemas.reference import load_reference

    index = build(tmp_path / "docs", load_reference(), Settings(), sample=True, days=1, scale=0.05)
    site = index.parent
    assert index.exists()
    assert (site / "static" / "offline" / "offline.css").stat().st_size > 1000
    assert (site / "static" / "offline" / "offline.js").exists()
    assert (site / "static" / "images" / "logo-long.png").exists()
    pages = sorted(site.rglob("*.html"))
    assert {p.name for p in pages} >= {"index.html", "dossier_events.html", "ratings.html"}
    assert any("validations" in p.parts for p in pages)
    assert remote_asset_refs(site) == []
    for p in pages:
        html = p.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)\s*=\s*["']https?://[^"']*\.(css|js)\b""", html), p
        css = re.search(r'href="([^"]*static/offline/offline\.css)"', html)
        assert css, p
        assert (p.parent / css.group(1)).resolve() == (site / "static/offline/offline.css").resolve()
