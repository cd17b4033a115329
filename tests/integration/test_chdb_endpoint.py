"""The local chDB ClickHouse HTTP endpoint, exercised with real clients over HTTP.

The endpoint runs as a subprocess (tests/support/endpoint.py) on a free port with a
temporary data directory; clients are clickhouse-connect's ordinary HTTP client,
raw urllib requests and SQLAlchemy (Superset's venv).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
import zlib
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import clickhouse_connect
import lz4.frame
import numpy as np
import pandas as pd
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from tests.support.endpoint import start_endpoint

REPO = Path(__file__).resolve().parents[2]
SUPERSET_PY = REPO / ".venv-superset" / "bin" / "python"
N_BIG = 1_200_000


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    ep = start_endpoint(tmp_path_factory.mktemp("chdb") / "data")
    yield ep
    ep.stop()


def client_for(ep, **kw):
    return clickhouse_connect.get_client(host=ep.host, port=ep.port, username="default", password=ep.password, **kw)


def http(ep, query=None, body: bytes | None = None, params=None, headers=None, method=None):
    q = dict(params or {})
    if query is not None:
        q["query"] = query
    req = urllib.request.Request(f"{ep.url}/?{urllib.parse.urlencode(q)}", data=body, headers=headers or {},
                                 method=method or ("POST" if body is not None else "GET"))
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


# ----------------------------------------------------------------------------- basics

def test_ping_and_get_select(endpoint):
    assert urllib.request.urlopen(endpoint.url + "/ping").read() == b"Ok.\n"
    assert urllib.request.urlopen(endpoint.url + "/replicas_status").read() == b"Ok.\n"
    status, headers, body = http(endpoint, "SELECT 1")
    assert (status, body) == (200, b"1\n")
    assert headers["X-ClickHouse-Format"] == "TabSeparated"
    assert headers["X-ClickHouse-Timezone"]
    assert headers["X-ClickHouse-Server-Display-Name"]
    assert headers["X-ClickHouse-Query-Id"]
    summary = json.loads(headers["X-ClickHouse-Summary"])
    assert summary["read_rows"] == "1"


def test_formats_and_query_id(endpoint):
    status, headers, body = http(endpoint, "SELECT number AS n FROM numbers(3)",
                                 params={"default_format": "JSONEachRow", "query_id": "q-123"})
    assert status == 200 and headers["X-ClickHouse-Query-Id"] == "q-123"
    assert [json.loads(x) for x in body.splitlines()] == [{"n": 0}, {"n": 1}, {"n": 2}]
    status, headers, body = http(endpoint, "SELECT 1 AS a FORMAT JSON")
    assert headers["X-ClickHouse-Format"] == "JSON" and json.loads(body)["data"] == [{"a": 1}]
    status, headers, body = http(endpoint, "SELECT number FROM numbers(5) FORMAT ArrowStream")
    import pyarrow as pa
    assert pa.ipc.open_stream(body).read_all().column(0).to_pylist() == [0, 1, 2, 3, 4]


def test_get_is_readonly_post_is_not(endpoint):
    status, headers, body = http(endpoint, "CREATE TABLE ro_get (a UInt8) ENGINE = Memory")
    assert status != 200 and headers["X-ClickHouse-Exception-Code"] == "164"
    status, _, body = http(endpoint, body=b"CREATE TABLE ro_get (a UInt8) ENGINE = Memory")
    assert status == 200, body
    status, headers, _ = http(endpoint, body=b"INSERT INTO ro_get VALUES (1)", params={"readonly": "1"})
    assert status != 200 and headers["X-ClickHouse-Exception-Code"] == "164"


# ----------------------------------------------------------------------------- (1) big compressed inserts

@pytest.mark.parametrize("compress", ["lz4", "zstd", "gzip"])
def test_big_compressed_insert_arrives_whole(endpoint, compress):
    c = client_for(endpoint, compress=compress)
    table = f"big_{compress}"
    c.command(f"CREATE TABLE {table} (id UInt64, v Float64, s String) ENGINE = MergeTree ORDER BY id")
    ids = np.arange(N_BIG, dtype=np.uint64)
    df = pd.DataFrame({"id": ids, "v": ids * 0.25, "s": np.char.add("row-", (ids % 1000).astype(str))})
    summary = c.insert_df(table, df)
    assert summary.written_rows == N_BIG
    count, total, vsum, distinct_s = c.query(
        f"SELECT count(), sum(id), sum(v), uniqExact(s) FROM {table}").result_rows[0]
    assert count == N_BIG
    assert total == N_BIG * (N_BIG - 1) // 2
    assert vsum == pytest.approx(0.25 * N_BIG * (N_BIG - 1) / 2)
    assert distinct_s == 1000
    # and the (compressed) response of a large result comes back whole too
    got = c.query_np(f"SELECT id FROM {table} ORDER BY id")
    assert len(got) == N_BIG and int(got[:, 0].sum()) == N_BIG * (N_BIG - 1) // 2


def test_raw_body_of_many_concatenated_lz4_frames(endpoint):
    http(endpoint, body=b"CREATE TABLE frames (a UInt32) ENGINE = MergeTree ORDER BY a")
    rows = 300_000
    per_frame = 1000
    body = b"".join(
        lz4.frame.compress("".join(f"{i}\n" for i in range(start, start + per_frame)).encode())
        for start in range(0, rows, per_frame))
    status, headers, resp = http(endpoint, "INSERT INTO frames FORMAT TSV", body=body,
                                 headers={"Content-Encoding": "lz4"})
    assert status == 200, resp
    assert json.loads(headers["X-ClickHouse-Summary"])["written_rows"] == str(rows)
    # gzip with several members, deflate
    gz = b"".join(_gzip(f"{i}\n".encode()) for i in range(rows, rows + 10))
    assert http(endpoint, "INSERT INTO frames FORMAT TSV", body=gz, headers={"Content-Encoding": "gzip"})[0] == 200
    dfl = zlib.compress(b"".join(f"{i}\n".encode() for i in range(rows + 10, rows + 20)))
    assert http(endpoint, "INSERT INTO frames FORMAT TSV", body=dfl, headers={"Content-Encoding": "deflate"})[0] == 200
    status, _, out = http(endpoint, "SELECT count(), sum(a) FROM frames")
    n = rows + 20
    assert out == f"{n}\t{n * (n - 1) // 2}\n".encode()
    # a truncated frame is an error, never a silent partial insert
    bad = lz4.frame.compress(b"1\n2\n" * 1000)[:-10]
    status, headers, _ = http(endpoint, "INSERT INTO frames FORMAT TSV", body=bad, headers={"Content-Encoding": "lz4"})
    assert status != 200 and headers["X-ClickHouse-Exception-Code"]
    assert http(endpoint, "SELECT count() FROM frames")[2] == f"{n}\n".encode()


def _gzip(data: bytes) -> bytes:
    import gzip
    return gzip.compress(data)


def test_insert_statement_and_binary_data_in_one_body(endpoint):
    """clickhouse-connect's raw_insert without compression sends 'INSERT ... FORMAT Native\\n' + binary."""
    c = client_for(endpoint, compress=False)
    c.command("CREATE TABLE rawins (a UInt64, b String) ENGINE = MergeTree ORDER BY a")
    native = c.raw_query("SELECT number AS a, toString(number) AS b FROM numbers(70000)", fmt="Native")
    c.raw_insert("rawins", ["a", "b"], insert_block=native, fmt="Native")
    assert c.query("SELECT count(), sum(a) FROM rawins").result_rows == [(70000, 70000 * 69999 // 2)]


def test_response_compression_negotiated(endpoint):
    for enc in ("lz4", "zstd", "gzip", "deflate"):
        status, headers, body = http(endpoint, "SELECT number FROM numbers(100000)",
                                     headers={"Accept-Encoding": enc})
        assert status == 200 and headers.get("Content-Encoding") == enc
    status, headers, body = http(endpoint, "SELECT 1", headers={"Accept-Encoding": "gzip"},
                                 params={"enable_http_compression": "0"})
    assert "Content-Encoding" not in headers and body == b"1\n"


# ----------------------------------------------------------------------------- (2) errors

def test_errors_raise_database_error_with_clickhouse_message(endpoint):
    c = client_for(endpoint)
    with pytest.raises(DatabaseError) as ei:
        c.query("SELEC 1")
    assert "Code: 62" in str(ei.value) and "SYNTAX_ERROR" in str(ei.value)
    with pytest.raises(DatabaseError) as ei:
        c.query("SELECT * FROM no_such_table")
    assert "Code: 60" in str(ei.value) and "UNKNOWN_TABLE" in str(ei.value)
    with pytest.raises(DatabaseError) as ei:
        c.command("INSERT INTO no_such_table VALUES (1)")
    assert "UNKNOWN_TABLE" in str(ei.value)
    with pytest.raises(DatabaseError) as ei:
        c.insert("no_such_table", [[1]], column_names=["a"])
    assert "no_such_table" in str(ei.value)
    # status codes and headers as ClickHouse sends them
    status, headers, body = http(endpoint, "SELECT * FROM no_such_table")
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "60"
    assert body.startswith(b"Code: 60. DB::Exception: ")
    status, headers, _ = http(endpoint, "SELEC 1")
    assert status == 400 and headers["X-ClickHouse-Exception-Code"] == "62"
    status, headers, _ = http(endpoint, "SELECT throwIf(1)")
    assert status == 500 and headers["X-ClickHouse-Exception-Code"] == "395"
    status, headers, _ = http(endpoint, "SELECT 1", params={"no_such_setting_xyz": "1"})
    assert status == 404 and headers["X-ClickHouse-Exception-Code"] == "115"
    # a malformed binary insert fails and inserts nothing
    c.command("CREATE TABLE bad_native (a UInt64) ENGINE = MergeTree ORDER BY a")
    status, headers, _ = http(endpoint, "INSERT INTO bad_native FORMAT Native", body=b"\x01\x02garbage")
    assert status != 200 and headers["X-ClickHouse-Exception-Code"] == "33"
    assert c.command("SELECT count() FROM bad_native") == 0
    # after all those errors the endpoint still works
    assert c.command("SELECT 42") == 42


# ----------------------------------------------------------------------------- (3) concurrency

def test_concurrent_clients_insert_and_query(endpoint):
    setup = client_for(endpoint)
    setup.command("CREATE TABLE conc (worker UInt8, seq UInt32, payload String) ENGINE = MergeTree ORDER BY (worker, seq)")
    workers, batches, batch_rows = 8, 10, 5000
    errors: list[BaseException] = []

    def work(w: int):
        try:
            c = client_for(endpoint, compress="lz4")
            for b in range(batches):
                rows = [[w, b * batch_rows + i, f"w{w}-{b}-{i}"] for i in range(batch_rows)]
                c.insert("conc", rows, column_names=["worker", "seq", "payload"])
                n = c.query("SELECT count() FROM conc WHERE worker = {w:UInt8}", parameters={"w": w}).result_rows[0][0]
                assert n == (b + 1) * batch_rows, (w, b, n)
                # per-request settings must not leak between concurrent clients
                got = c.query("SELECT getSetting('max_block_size')", settings={"max_block_size": 1000 + w})
                assert int(got.result_rows[0][0]) == 1000 + w
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    rows = setup.query("SELECT worker, count(), sum(seq), uniqExact(payload) FROM conc GROUP BY worker ORDER BY worker")
    n = batches * batch_rows
    assert rows.result_rows == [(w, n, n * (n - 1) // 2, n) for w in range(workers)]
    default_block = setup.query("SELECT getSetting('max_block_size')").result_rows[0][0]
    assert int(default_block) not in range(1000, 1000 + workers)


# ----------------------------------------------------------------------------- (4) parameters, settings, sessions

def test_query_parameters(endpoint):
    c = client_for(endpoint)
    tricky = "O'Brien \\ \"quoted\" ; DROP TABLE x -- Hà Nội"
    r = c.query("SELECT {x:String} AS s, {n:UInt32} + 1 AS n, {d:Date} AS d, {a:Array(String)} AS a",
                parameters={"x": tricky, "n": 41, "d": "2026-11-23", "a": ["p", "q'r"]})
    s, n, d, a = r.result_rows[0]
    assert s == tricky and n == 42 and str(d) == "2026-11-23" and a == ["p", "q'r"]
    # raw HTTP param_ form, in the body as well
    # (values are TSV-escaped, as ClickHouse parses them: a raw tab is rejected, "\\t" is a tab)
    status, _, body = http(endpoint, body=b"SELECT {x:String} = 'hello\tworld'", params={"param_x": "hello\\tworld"})
    assert status == 200 and body == b"1\n"
    status, headers, _ = http(endpoint, body=b"SELECT {x:String}", params={"param_x": "hello\tworld"})
    assert status != 200 and headers["X-ClickHouse-Exception-Code"] == "457"
    # form-encoded (multipart) query parameters
    cf = client_for(endpoint, form_encode_query_params=True)
    assert cf.query("SELECT {x:String}", parameters={"x": tricky}).result_rows == [(tricky,)]


def test_settings_per_request_and_per_session(endpoint):
    c = client_for(endpoint)
    assert c.command("SELECT getSetting('max_result_rows')", settings={"max_result_rows": 7}) == 7
    assert c.command("SELECT getSetting('max_result_rows')") == 0
    # a result-changing setting is applied, not ignored
    with pytest.raises(DatabaseError):
        c.query("SELECT number FROM numbers(100)", settings={"max_result_rows": 10, "result_overflow_mode": "throw"})
    # SET inside an HTTP session lasts for that session only
    sid = {"session_id": "sess-1"}
    assert http(endpoint, body=b"SET max_result_rows = 5", params=sid)[0] == 200
    assert http(endpoint, "SELECT getSetting('max_result_rows')", params=sid)[2] == b"5\n"
    assert http(endpoint, "SELECT getSetting('max_result_rows')")[2] == b"0\n"
    assert http(endpoint, "SELECT getSetting('max_result_rows')", params={"session_id": "other"})[2] == b"0\n"
    # USE and the database parameter
    c.command("CREATE DATABASE IF NOT EXISTS otherdb")
    c.command("CREATE TABLE IF NOT EXISTS otherdb.t (a UInt8) ENGINE = Memory")
    assert http(endpoint, "SELECT currentDatabase()", params={"database": "otherdb"})[2] == b"otherdb\n"
    assert http(endpoint, "SELECT currentDatabase()", headers={"X-ClickHouse-Database": "otherdb"})[2] == b"otherdb\n"
    assert http(endpoint, body=b"USE otherdb", params={"session_id": "sess-2"})[0] == 200
    assert http(endpoint, "SELECT currentDatabase()", params={"session_id": "sess-2"})[2] == b"otherdb\n"
    assert http(endpoint, "SELECT currentDatabase()")[2] == b"default\n"
    c2 = client_for(endpoint, database="otherdb")
    assert c2.command("SELECT currentDatabase()") == "otherdb"
    # SET readonly could never be undone on the shared chDB session: refused
    assert http(endpoint, body=b"SET readonly = 1", params=sid)[0] == 501
    assert http(endpoint, body=b"CREATE TABLE still_writable (a UInt8) ENGINE = Memory")[0] == 200


def test_authentication(tmp_path):
    ep = start_endpoint(tmp_path / "authdata", password="s3cret")
    try:
        c = clickhouse_connect.get_client(host=ep.host, port=ep.port, username="default", password="s3cret")
        assert c.command("SELECT 1") == 1
        with pytest.raises(DatabaseError) as ei:
            clickhouse_connect.get_client(host=ep.host, port=ep.port, username="default", password="wrong")
        assert "516" in str(ei.value) or "Authentication" in str(ei.value)
        status, headers, _ = http(ep, "SELECT 1")
        assert status == 403 and headers["X-ClickHouse-Exception-Code"] == "516"
        status, _, body = http(ep, "SELECT 1", headers={"X-ClickHouse-User": "default", "X-ClickHouse-Key": "s3cret"})
        assert (status, body) == (200, b"1\n")
    finally:
        ep.stop()


# ----------------------------------------------------------------------------- (5) durability

def test_data_survives_stop_restart_and_kill(tmp_path):
    path = tmp_path / "durable"
    ep = start_endpoint(path)
    c = client_for(ep, compress="lz4")
    c.command("CREATE TABLE d (id UInt64, s String) ENGINE = MergeTree ORDER BY id")
    c.insert("d", [[i, f"s{i}"] for i in range(100_000)], column_names=["id", "s"])
    assert ep.stop() == 0
    ep = start_endpoint(path)
    c = client_for(ep)
    assert c.query("SELECT count(), sum(id) FROM d").result_rows == [(100_000, 100_000 * 99_999 // 2)]
    c.insert("d", [[i, f"s{i}"] for i in range(100_000, 150_000)], column_names=["id", "s"])
    ep.kill()  # SIGKILL right after an acknowledged insert
    ep = start_endpoint(path)
    c = client_for(ep)
    assert c.query("SELECT count(), sum(id) FROM d").result_rows == [(150_000, 150_000 * 149_999 // 2)]
    ep.stop()


# ----------------------------------------------------------------------------- (6) types

def test_types_round_trip(endpoint):
    c = client_for(endpoint, compress="zstd")
    c.command("""
        CREATE TABLE typed (
            id UInt32,
            ts DateTime64(3, 'Asia/Ho_Chi_Minh'),
            ts_utc DateTime64(6, 'UTC'),
            d Date,
            n Nullable(String),
            ni Nullable(Int64),
            lc LowCardinality(String),
            lcn LowCardinality(Nullable(String)),
            m Map(String, UInt32),
            arr Array(String),
            arrn Array(Nullable(Int32)),
            nested Array(Array(UInt8)),
            dec Decimal(18, 4),
            u UUID,
            f Float64
        ) ENGINE = MergeTree ORDER BY id""")
    hcm = ZoneInfo("Asia/Ho_Chi_Minh")
    base = datetime(2026, 11, 23, 8, 30, 15, 123000, tzinfo=hcm)
    rows = []
    import uuid
    for i in range(2000):
        rows.append([
            i, base + timedelta(seconds=i), datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=i),
            (base + timedelta(days=i % 30)).date(),
            None if i % 3 == 0 else f"n{i} ‘ư’", None if i % 2 else -i * 10**12,
            ["hồ sơ", "đã nhận", "trả kết quả"][i % 3], None if i % 5 == 0 else f"lc{i % 4}",
            {"a": i, "b": i * 2} if i % 2 else {}, [f"x{i}", "", "ý"], [i, None, -i], [[1, 2], [], [i % 256]],
            Decimal(i) / Decimal(8), uuid.UUID(int=i), i / 3,
        ])
    cols = ["id", "ts", "ts_utc", "d", "n", "ni", "lc", "lcn", "m", "arr", "arrn", "nested", "dec", "u", "f"]
    c.insert("typed", rows, column_names=cols)
    got = c.query("SELECT * FROM typed ORDER BY id").result_rows
    assert len(got) == len(rows)
    for want, have in zip(rows, got):
        w = list(want)
        h = list(have)
        # timestamps: same instant (the client returns naive UTC or tz-aware depending on policy)
        for idx in (1, 2):
            hv = h[idx] if h[idx].tzinfo else h[idx].replace(tzinfo=timezone.utc)
            assert hv == w[idx], (idx, w[idx], h[idx])
            h[idx] = w[idx] = None
        assert h == w
    # server side sees the same values (timezone applied in the column type)
    assert c.command("SELECT toString(ts) FROM typed WHERE id = 0") == "2026-11-23 08:30:15.123"
    assert c.command("SELECT countIf(n IS NULL), countIf(lcn IS NULL), sum(length(arr)) FROM typed") == \
        [str(sum(1 for r in rows if r[4] is None)), str(sum(1 for r in rows if r[7] is None)), str(3 * len(rows))]
    # pandas round trip of a DataFrame with nullable and timezone columns
    df = c.query_df("SELECT id, ts, n, lc, m FROM typed ORDER BY id LIMIT 10")
    assert list(df["id"]) == list(range(10)) and df["n"].isna().sum() == 4


# ----------------------------------------------------------------------------- (7) SQLAlchemy (Superset's venv)

SQLA_SCRIPT = r"""
import sys, sqlalchemy as sa
engine = sa.create_engine(sys.argv[1])
with engine.connect() as conn:
    print(conn.execute(sa.text("SELECT count() AS n, sum(id) AS s FROM sqla_t")).fetchall())
    print(sorted(sa.inspect(engine).get_table_names()))
    print(conn.execute(sa.text("SELECT version()")).scalar())
"""


@pytest.mark.skipif(not SUPERSET_PY.exists(), reason="Superset venv not present")
def test_sqlalchemy_clickhousedb_dialect(endpoint):
    c = client_for(endpoint)
    c.command("CREATE TABLE sqla_t (id UInt32) ENGINE = MergeTree ORDER BY id")
    c.insert("sqla_t", [[i] for i in range(10)], column_names=["id"])
    dsn = f"clickhousedb://default:@{endpoint.host}:{endpoint.port}/default"
    out = subprocess.run([str(SUPERSET_PY), "-c", SQLA_SCRIPT, dsn], capture_output=True, text=True, timeout=120,
                         env={k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "[(10, 45)]"
    assert "sqla_t" in lines[1]
    assert lines[2].startswith("26.")
