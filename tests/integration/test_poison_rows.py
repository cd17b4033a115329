"""A poison row never stops the pipeline (issue 19), on the real ClickHouse engine behind
the local endpoint (no mocks).

The refused rows are refused by the server itself: kiosk ratings whose level is over their
scale, against a CHECK constraint on a copy of the ``ratings`` table. 7 fits the UInt8
column, so the client encodes it without complaint; only ClickHouse says no
(VIOLATED_CONSTRAINT, code 469), as it would for any value its table definition refuses.

(a) 5,000 rows with 3 refused: exactly the 4,997 others land, the 3 reach ``on_refused``
    with the server's message, ``pending`` goes to 0, and the sink goes on.
(b) an outage (endpoint stopped, restarted) is retried, not dead-lettered.
(c) a deployment error (a column missing, a constraint every row fails) is not
    dead-lettered: the sink keeps the rows and stops with SinkError, as before.
"""
from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from pulse.config import Settings
from sinks.client import get_client
from sinks.migrate import migrate_settings
from sinks.rows import RATING_COLUMNS, SINK_KEYS
from sinks.writer import ClickHouseSink, SinkError

pytestmark = pytest.mark.integration

VN = ZoneInfo("Asia/Ho_Chi_Minh")
LEVEL, SCALE = RATING_COLUMNS.index("level"), RATING_COLUMNS.index("scale")
log = logging.getLogger(__name__)


def _settings_for(url: str, database: str) -> Settings:
    return Settings().with_(clickhouse_url=f"{url.rstrip('/')}/{database}")


@pytest.fixture(scope="module")
def ch_settings(clickhouse_endpoint):
    s = _settings_for(clickhouse_endpoint.url, f"motcua_poison_{uuid.uuid4().hex[:8]}")
    migrate_settings(s, log=None)
    return s


@pytest.fixture(scope="module")
def client(ch_settings):
    c = get_client(ch_settings)
    yield c
    c.close()


def _ratings_table(client, name: str, check: str = "level BETWEEN 1 AND scale") -> str:
    """A copy of the migrated ``ratings`` table with a CHECK constraint."""
    client.command(f"DROP TABLE IF EXISTS {name}")
    client.command(f"CREATE TABLE {name} AS ratings")
    if check:
        client.command(f"ALTER TABLE {name} ADD CONSTRAINT level_check CHECK {check}")
    return name


def _rating(i: int, tag: str, now: datetime, level: int | None = None) -> list:
    t = now - timedelta(minutes=i % 600)
    return [f"rt-{tag}-{i:06d}", t, t, "poison-test", "1.0", f"K{i % 9}", f"U{i % 7:03d}", None, None, None, None,
            1 + i % 5 if level is None else level, 5, {}, None, "motcua.kiosk-rating", i % 3, i]


class Refused:
    """The on_refused callback of the tests: records what the sink hands over."""

    def __init__(self):
        self.calls: list[tuple[list, str]] = []
        self.lock = threading.Lock()

    def __call__(self, rows, message):
        with self.lock:
            self.calls.append((list(rows), message))

    @property
    def ids(self) -> list[str]:
        return [r[0] for rows, _ in self.calls for r in rows]


def _sink(ch_settings, table, refused, **kw):
    kw.setdefault("max_rows", 5000)
    kw.setdefault("max_seconds", 0.2)
    kw.setdefault("max_buffer_rows", 20_000)
    return ClickHouseSink(lambda: get_client(ch_settings), table, RATING_COLUMNS, key_columns=SINK_KEYS["ratings"],
                          on_refused=refused, **kw)


def _ids(client, table) -> tuple[int, int, set[str]]:
    n_plain = client.command(f"SELECT count() FROM {table}")
    ids = {r[0] for r in client.query(f"SELECT rating_id FROM {table} FINAL").result_rows}
    n_final = client.command(f"SELECT count() FROM {table} FINAL")
    return n_plain, n_final, ids


# ----------------------------------------------------------------------------- (a)

def test_refused_rows_are_isolated_the_rest_lands_and_the_sink_goes_on(ch_settings, client):
    table = _ratings_table(client, "ratings_poison")
    now = datetime.now(VN).replace(microsecond=0)
    bad_at = {17, 2500, 4998}
    rows = [_rating(i, "a", now, level=7 if i in bad_at else None) for i in range(5000)]
    refused = Refused()
    sink = _sink(ch_settings, table, refused)

    ticket = sink.write(rows)
    sink.wait(ticket, timeout=300)          # resolves although 3 rows never land: the worker acks
    assert sink.pending == 0 and sink.durable_ticket == 5000

    good = {r[0] for i, r in enumerate(rows) if i not in bad_at}
    n_plain, n_final, ids = _ids(client, table)
    assert ids == good and n_final == 4997
    # each good row landed once: a half is inserted only after it was refused, and a
    # refused insert stores nothing (the endpoint no longer answers it as a success)
    assert n_plain == 4997

    assert sorted(refused.ids) == sorted(rows[i][0] for i in bad_at)
    for batch, message in refused.calls:
        assert message.startswith("Code: 469. DB::Exception: Constraint `level_check`")
        assert message.endswith("(VIOLATED_CONSTRAINT)") and "level = 7, scale = 5" in message
        assert all(r[LEVEL] == 7 for r in batch)
        assert batch[0] in rows                      # the row itself, as written
    st = sink.stats
    assert (st.rows_written, st.rows_refused, st.split_batches) == (4997, 3, 1)
    # O(k log n): 1 + 2 * 3 * ceil(log2 5000) = 79 at most (+ 3 probes if both halves fail alike)
    assert st.split_inserts <= 1 + 2 * 3 * math.ceil(math.log2(5000)) + 3, st.last_split
    log.warning("split of 5,000 rows with 3 refused: %s", st.last_split)
    print(f"\nsplit of 5,000 rows with 3 refused: {st.last_split}")

    # the sink goes on: later batches land, a later poison row is isolated too
    more = [_rating(i, "a", now) for i in range(5000, 6000)]
    more[400][LEVEL] = 9
    sink.write(more, wait=True, timeout=120)
    sink.write([_rating(i, "a", now) for i in range(6000, 6500)], wait=True, timeout=60)
    sink.close()
    n_plain, n_final, ids = _ids(client, table)
    assert n_final == 4997 + 999 + 500 and len(ids) == n_final
    assert refused.ids[-1] == more[400][0] and len(refused.ids) == 4
    assert sink.pending == 0 and sink.stats.rows_refused == 4


def test_both_halves_poisoned_is_not_mistaken_for_a_deployment_error(ch_settings, client):
    """A bad row in each half of the first split is refused alike in both: the probes of
    single rows land, so it is poison, not a deployment error."""
    table = _ratings_table(client, "ratings_poison_halves")
    now = datetime.now(VN).replace(microsecond=0)
    bad_at = {10, 700, 1500, 1999}
    rows = [_rating(i, "h", now, level=8 if i in bad_at else None) for i in range(2000)]
    refused = Refused()
    sink = _sink(ch_settings, table, refused, max_rows=2000)
    sink.write(rows, wait=True, timeout=300)
    sink.close()
    assert sorted(refused.ids) == sorted(rows[i][0] for i in bad_at)
    n_plain, n_final, ids = _ids(client, table)
    assert n_final == n_plain == 1996 and ids == {r[0] for i, r in enumerate(rows) if i not in bad_at}
    print(f"\nsplit of 2,000 rows with 4 refused, one of them probed: {sink.stats.last_split}")


def test_a_value_the_sink_cannot_encode_is_a_refused_row_too(ch_settings, client):
    """level 300 does not fit UInt8: the client refuses the block before the server sees
    it; that row is isolated the same way (message 'RowEncodingError: ...')."""
    table = _ratings_table(client, "ratings_poison_encoding", check="")
    now = datetime.now(VN).replace(microsecond=0)
    rows = [_rating(i, "e", now) for i in range(300)]
    rows[123][LEVEL] = 300
    refused = Refused()
    sink = _sink(ch_settings, table, refused)
    sink.write(rows, wait=True, timeout=120)
    sink.close()
    assert refused.ids == [rows[123][0]]
    assert refused.calls[0][1].startswith("RowEncodingError: ")
    assert client.command(f"SELECT count() FROM {table} FINAL") == 299


# ----------------------------------------------------------------------------- (b)

def test_an_outage_is_retried_not_dead_lettered(tmp_path):
    from tests.support.endpoint import start_endpoint

    path = tmp_path / "chdb"
    ep = start_endpoint(path)
    s = _settings_for(ep.url, "motcua")
    try:
        c = get_client(s, database="")
        c.command("CREATE DATABASE IF NOT EXISTS motcua")
        c.close()
        c = get_client(s)
        c.command("CREATE TABLE ratings_outage (rating_id String, event_time DateTime64(3, 'Asia/Ho_Chi_Minh'), "
                  "level UInt8, scale UInt8, CONSTRAINT level_check CHECK level BETWEEN 1 AND scale) "
                  "ENGINE = ReplacingMergeTree ORDER BY rating_id")
        c.close()
        refused = Refused()
        cols = ["rating_id", "event_time", "level", "scale"]
        sink = ClickHouseSink(lambda: get_client(s), "ratings_outage", cols, key_columns=["rating_id"],
                              max_rows=1000, max_seconds=0.1, retry_initial_s=0.1, retry_max_s=0.5,
                              on_refused=refused)
        now = datetime.now(VN)
        sink.write([[f"before-{i}", now, 3, 5] for i in range(100)], wait=True, timeout=60)  # connected

        ep.stop()
        rows = [[f"during-{i}", now, 9 if i == 250 else 4, 5] for i in range(500)]  # one poison row among them
        ticket = sink.write(rows)
        time.sleep(3)
        # a connection refused is not the data's fault: retried, nothing handed over
        assert sink.stats.retries >= 3
        assert refused.calls == [] and sink.pending == 500

        ep = start_endpoint(path, port=ep.port)
        sink.wait(ticket, timeout=120)
        sink.close()
        # after the outage the batch meets the server: only the poison row is refused
        assert refused.ids == ["during-250"]
        c = get_client(s)
        assert c.command("SELECT count() FROM ratings_outage FINAL") == 100 + 499
        c.close()
    finally:
        ep.stop()


# ----------------------------------------------------------------------------- (c)

def test_a_missing_column_is_a_deployment_error_not_dead_letters(ch_settings, client):
    table = _ratings_table(client, "ratings_no_comment", check="")
    client.command(f"ALTER TABLE {table} DROP COLUMN comment")
    now = datetime.now(VN).replace(microsecond=0)
    refused = Refused()
    sink = _sink(ch_settings, table, refused, retry_initial_s=0.01, max_permanent_retries=1)
    with pytest.raises(SinkError):
        sink.write([_rating(i, "m", now) for i in range(200)], wait=True, timeout=60)
    assert refused.calls == []
    assert sink.pending == 200                       # kept: nothing acked, nothing dropped
    assert client.command(f"SELECT count() FROM {table}") == 0


def test_a_constraint_every_row_fails_is_a_deployment_error_not_dead_letters(ch_settings, client):
    """A constraint deployed wrong (the 10-point kiosks' scale while the kiosks send 5):
    ClickHouse refuses every row with a data code. Both halves and the three probed rows
    are refused alike: nothing is dead-lettered, the sink stops as before."""
    table = _ratings_table(client, "ratings_wrong_check", check="scale = 10")
    now = datetime.now(VN).replace(microsecond=0)
    refused = Refused()
    sink = _sink(ch_settings, table, refused, retry_initial_s=0.01, max_permanent_retries=1)
    with pytest.raises(SinkError, match="code: 469"):
        sink.write([_rating(i, "w", now) for i in range(3000)], wait=True, timeout=120)
    assert refused.calls == [] and sink.pending == 3000
    assert client.command(f"SELECT count() FROM {table}") == 0


def test_small_batches_all_refused_alike_stop_after_three_rows(ch_settings, client):
    """Batches of one row cannot be probed: three in a row refused alike, with no row
    landing in between, is a deployment error. The first two are handed over (nothing
    told them from poison rows then); the third stops the sink."""
    table = _ratings_table(client, "ratings_wrong_check_small", check="scale = 10")
    now = datetime.now(VN).replace(microsecond=0)
    refused = Refused()
    sink = _sink(ch_settings, table, refused, retry_initial_s=0.01, max_permanent_retries=1)
    sink.write([_rating(0, "s", now)], wait=True, timeout=30)
    sink.write([_rating(1, "s", now)], wait=True, timeout=30)
    assert len(refused.ids) == 2
    with pytest.raises(SinkError):
        sink.write([_rating(2, "s", now)], wait=True, timeout=30)
    assert len(refused.ids) == 2 and sink.pending == 1


def test_without_on_refused_a_refused_batch_blocks_as_before(ch_settings, client):
    table = _ratings_table(client, "ratings_poison_old")
    now = datetime.now(VN).replace(microsecond=0)
    rows = [_rating(i, "o", now, level=7 if i == 5 else None) for i in range(50)]
    sink = ClickHouseSink(lambda: get_client(ch_settings), table, RATING_COLUMNS, key_columns=SINK_KEYS["ratings"],
                          max_rows=100, max_seconds=0.05, retry_initial_s=0.01, max_permanent_retries=1)
    with pytest.raises(SinkError, match="code: 469"):
        sink.write(rows, wait=True, timeout=30)
    assert sink.pending == 50 and client.command(f"SELECT count() FROM {table}") == 0
