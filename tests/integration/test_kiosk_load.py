"""Load: 500 ratings/s for 20 s from this process into the API in another process;
every rating answered 2xx must reach ClickHouse (Faust worker + sink), none lost."""
from __future__ import annotations

import importlib.util
import sys
import uuid

import pytest

from pulse.config import REPO_ROOT
from tests.integration.frontdoor_support import ProcessServer

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RATE, SECONDS = 500, 20


def _bench():
    spec = importlib.util.spec_from_file_location("bench_kiosk_api", REPO_ROOT / "bench" / "bench_kiosk_api.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod   # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_every_2xx_rating_reaches_clickhouse(settings, tmp_path):
    from pulse.admin import create_topics
    from tests.support.worker import start_worker
    bench = _bench()
    tag = uuid.uuid4().hex[:8]
    s = settings.with_(topic_prefix=f"load{tag}.", faust_app_id=f"motcua-load-{tag}",
                       state_dir=tmp_path / "state")
    (tmp_path / "state").mkdir()
    create_topics(s)
    kiosks = bench.make_kiosks(tmp_path / "credentials.yaml", 200)
    with start_worker(s, log_path=tmp_path / "worker.log") as worker:
        with ProcessServer(s, tmp_path / "credentials.yaml", tmp_path / "api.log") as api:
            res = bench.run_load(api.url, kiosks, RATE, SECONDS, concurrency=64, tag=f"load{tag}")
        print("\n" + res.render())
        assert res.sent == RATE * SECONDS
        assert res.ok >= 0.99 * res.sent, res.render()           # the API keeps up
        missing, waited = bench.verify_clickhouse(s, res.accepted_ids, timeout=180)
        print(f"downstream: {len(res.accepted_ids) - len(missing)}/{len(res.accepted_ids)} in ClickHouse "
              f"after {waited:.1f} s")
        assert not missing, (f"{len(missing)} ratings answered 2xx are not in ClickHouse, e.g. {sorted(missing)[:5]}\n"
                             + worker.tail())
