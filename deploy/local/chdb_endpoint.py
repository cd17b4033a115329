"""Local ClickHouse HTTP endpoint backed by an in-process chDB session.

chDB (ClickHouse 26.9 as a library) opens no network port, and only one process
may open a chDB data directory.  This module is that one process: it owns the
directory through ``chdb.session.Session(path)`` and serves ClickHouse's HTTP
interface on ``host:port`` so that other processes (the Faust worker, the CLI,
Superset through clickhouse-connect's ``clickhousedb://`` dialect) talk to the
same database with the ordinary ``clickhouse_connect.get_client(host=, port=)``.

Command line::

    python -m deploy.local.chdb_endpoint --path DIR [--host 127.0.0.1] [--port 8123]
                                         [--user default] [--password ...]

Library::

    server = serve(path, host="127.0.0.1", port=0, password="")
    server.port, server.url
    server.shutdown()          # stops serving, closes the chDB session (flushes)

What is implemented (ClickHouse HTTP semantics):

* ``GET``/``POST``/``HEAD`` on ``/``; ``query`` from the URL and/or the body (the
  URL part, a newline, then the body, as ClickHouse concatenates them);
  ``multipart/form-data`` bodies with ``query`` and ``param_*`` fields.
* ``/ping``, ``/replicas_status`` and ``GET /`` without a query answer ``Ok.\\n``.
* ``database`` parameter / ``X-ClickHouse-Database``; ``default_format`` /
  ``X-ClickHouse-Format``; ``param_<name>`` values for ``{name:Type}``
  placeholders (passed to chDB's own parameter binding, no string splicing).
* Every other URL parameter is a ClickHouse setting and is applied to that
  request only (``SET`` before, restored afterwards; unknown settings fail as in
  ClickHouse).  HTTP-layer settings are implemented here (``enable_http_compression``,
  ``http_zlib_compression_level``) or are transport-only and harmless to ignore
  (``wait_end_of_query`` - responses are always buffered -,
  ``send_progress_in_http_headers``, ``http_headers_progress_interval_ms``,
  ``cancel_http_readonly_queries_on_client_close``, ``buffer_size``...).
  ``readonly`` (and the implicit read-only mode of ``GET``) is enforced by the
  endpoint, because a chDB session cannot leave read-only mode once set.
* ``session_id``: ``SET`` and ``USE`` statements are remembered per session and
  applied to that session's later requests; without a session they are
  validated and have no lasting effect, as in ClickHouse.
* Authentication: ``X-ClickHouse-User``/``X-ClickHouse-Key``, HTTP basic auth or
  ``user``/``password`` parameters; one configured user (default ``default``,
  empty password).
* Response compression (``enable_http_compression=1`` + ``Accept-Encoding``):
  lz4 (one LZ4 frame), zstd, gzip, deflate, br (if ``brotli`` is importable),
  xz, bz2.  Request bodies with ``Content-Encoding`` of the same list are fully
  decoded, including streams made of many concatenated frames/members.
* INSERT ... FORMAT <fmt> with data in the body is streamed into chDB through
  ``Session.send_insert`` (binary safe, any input format, no temp files).
* Errors: status from ClickHouse's exceptionCodeToHTTPStatus, body
  ``Code: N. DB::Exception: ...`` and ``X-ClickHouse-Exception-Code: N``.
  That includes an insert refused past its input format (a CHECK constraint, a
  throwing MATERIALIZED expression), which chDB's streaming insert reports as a
  success: it is found in system.errors (``ChdbEngine._raise_swallowed``).
* Headers: X-ClickHouse-Format, X-ClickHouse-Summary, X-ClickHouse-Query-Id,
  X-ClickHouse-Server-Display-Name, X-ClickHouse-Timezone.

Not implemented (explicit errors, never silently ignored): ClickHouse native
compression (``compress=1``/``decompress=1``), external data tables in
multipart requests, ``client_protocol_version`` > 0 for Native output.

Concurrency: a ThreadingHTTPServer; request bodies are read and decoded by the
request thread without any lock, then the chDB session is used under one
process-wide lock (queries run one at a time, each using ClickHouse's own
intra-query parallelism).  The lock is required anyway because settings and the
current database are per-session state that each request changes.
"""

from __future__ import annotations

import argparse
import base64
import bz2
import email.parser
import email.policy
import hmac
import json
import logging
import lzma
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger("deploy.local.chdb_endpoint")

try:  # optional codecs
    import lz4.frame as _lz4f
except ImportError:  # pragma: no cover
    _lz4f = None
try:
    from backports import zstd as _zstd  # Python 3.11-3.13 (same API as compression.zstd)
except ImportError:  # pragma: no cover
    try:
        from compression import zstd as _zstd  # type: ignore[no-redef]
    except ImportError:
        _zstd = None
try:
    import brotli as _brotli  # type: ignore
except ImportError:
    _brotli = None

# --------------------------------------------------------------------------- errors

# ClickHouse src/Server/HTTP/exceptionCodeToHTTPStatus.cpp, keyed by error name.
_STATUS_BY_NAME: dict[str, int] = {"REQUIRED_PASSWORD": 401}
for _n in ("UNKNOWN_USER WRONG_PASSWORD AUTHENTICATION_FAILED SET_NON_GRANTED_ROLE ACCESS_DENIED").split():
    _STATUS_BY_NAME[_n] = 403
for _n in (
    "BAD_ARGUMENTS CANNOT_COMPILE_REGEXP CANNOT_PARSE_TEXT CANNOT_PARSE_ESCAPE_SEQUENCE "
    "CANNOT_PARSE_QUOTED_STRING CANNOT_PARSE_DATE CANNOT_PARSE_DATETIME CANNOT_PARSE_NUMBER "
    "CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING CANNOT_PARSE_IPV4 CANNOT_PARSE_IPV6 "
    "CANNOT_PARSE_INPUT_ASSERTION_FAILED CANNOT_PARSE_UUID DUPLICATE_COLUMN ILLEGAL_COLUMN "
    "UNKNOWN_ELEMENT_IN_AST UNKNOWN_TYPE_OF_AST_NODE THERE_IS_NO_COLUMN TOO_DEEP_AST TOO_BIG_AST "
    "UNEXPECTED_AST_STRUCTURE SYNTAX_ERROR INCORRECT_DATA TYPE_MISMATCH "
    "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE"
).split():
    _STATUS_BY_NAME[_n] = 400
for _n in (
    "UNKNOWN_TABLE UNKNOWN_FUNCTION UNKNOWN_IDENTIFIER UNKNOWN_TYPE UNKNOWN_STORAGE UNKNOWN_DATABASE "
    "UNKNOWN_SETTING UNKNOWN_DIRECTION_OF_SORTING UNKNOWN_AGGREGATE_FUNCTION UNKNOWN_FORMAT "
    "UNKNOWN_DATABASE_ENGINE UNKNOWN_TYPE_OF_QUERY UNKNOWN_ROLE"
).split():
    _STATUS_BY_NAME[_n] = 404
_STATUS_BY_NAME.update(
    QUERY_IS_TOO_LARGE=413,
    NOT_IMPLEMENTED=501,
    SOCKET_TIMEOUT=503,
    CANNOT_OPEN_FILE=503,
    HTTP_LENGTH_REQUIRED=411,
    TIMEOUT_EXCEEDED=408,
    CANNOT_SCHEDULE_TASK=503,
    UNSUPPORTED_MEDIA_TYPE=415,
)

# Codes of errors raised by the endpoint itself (names as in ErrorCodes.cpp;
# numbers checked against chDB's errorCodeToName()).
_OWN_CODES = {
    "BAD_ARGUMENTS": 36,
    "NOT_IMPLEMENTED": 48,
    "UNKNOWN_SETTING": 115,
    "READONLY": 164,
    "CANNOT_DECOMPRESS": 271,
    "UNKNOWN_USER": 192,
    "AUTHENTICATION_FAILED": 516,
    "UNKNOWN_FORMAT": 73,
    "SYNTAX_ERROR": 62,
    "CANNOT_PARSE_TEXT": 6,
}

_CODE_RE = re.compile(r"Code: (\d+)\. ")
_NAME_RE = re.compile(r"\(([A-Z][A-Z0-9_]+)\)(?: \(version [^)]*\))?\s*$")


class ClickHouseError(Exception):
    """An error reported to the client as a ClickHouse exception."""

    def __init__(self, code: int, name: str, message: str):
        super().__init__(message)
        self.code = code
        self.name = name
        self.message = message

    @classmethod
    def own(cls, name: str, text: str) -> "ClickHouseError":
        code = _OWN_CODES[name]
        return cls(code, name, f"Code: {code}. DB::Exception: {text}. ({name})")

    @classmethod
    def from_chdb(cls, exc: BaseException) -> "ClickHouseError":
        text = str(exc)
        m = _CODE_RE.search(text)
        if not m:
            code, name = 1001, "STD_EXCEPTION"
            return cls(code, name, f"Code: {code}. DB::Exception: {text}. ({name})")
        text = text[m.start():]  # drop wrappers such as "Streaming insert finish failed: "
        nm = _NAME_RE.search(text)
        return cls(int(m.group(1)), nm.group(1) if nm else "", text)

    @property
    def http_status(self) -> int:
        return _STATUS_BY_NAME.get(self.name, 500)


# --------------------------------------------------------------------------- codecs

class _MultiFrame:
    """Incremental decoder for a stream of concatenated frames/members.

    LZ4 frame, zstd, gzip, xz and bz2 streams may consist of many independent
    frames (clickhouse-connect sends one LZ4 frame per insert block); every one
    of them is decoded, not only the first.
    """

    def __init__(self, factory: Callable[[], Any], name: str):
        self.factory = factory
        self.name = name
        self.dec = factory()
        self.in_frame = False

    def feed(self, data: bytes) -> bytes:
        out = []
        while data:
            if self.dec.eof:
                self.dec = self.factory()
            self.in_frame = True
            out.append(self.dec.decompress(data))
            if self.dec.eof:
                self.in_frame = False
                data = self.dec.unused_data
            else:
                data = b""
        return b"".join(out)

    def finish(self) -> bytes:
        if self.in_frame and not self.dec.eof:
            raise ClickHouseError.own("CANNOT_DECOMPRESS", f"Truncated {self.name} stream in request body")
        return b""


class _Deflate:
    """HTTP 'deflate' (zlib-wrapped; raw deflate accepted too)."""

    def __init__(self):
        self.dec = None

    def feed(self, data: bytes) -> bytes:
        if self.dec is None:
            if not data:
                return b""
            raw = not (len(data) >= 2 and (data[0] & 0x0F) == 8 and ((data[0] << 8) | data[1]) % 31 == 0)
            self.dec = zlib.decompressobj(-15 if raw else 15)
        return self.dec.decompress(data)

    def finish(self) -> bytes:
        if self.dec is None:
            return b""
        out = self.dec.flush()
        if not self.dec.eof:
            raise ClickHouseError.own("CANNOT_DECOMPRESS", "Truncated deflate stream in request body")
        return out


class _Brotli:
    def __init__(self):
        self.dec = _brotli.Decompressor()

    def feed(self, data: bytes) -> bytes:
        return self.dec.process(data)

    def finish(self) -> bytes:
        if hasattr(self.dec, "is_finished") and not self.dec.is_finished():
            raise ClickHouseError.own("CANNOT_DECOMPRESS", "Truncated br stream in request body")
        return b""


def _decoder(encoding: str):
    if encoding == "lz4":
        if _lz4f is None:
            return None
        return _MultiFrame(_lz4f.LZ4FrameDecompressor, "lz4")
    if encoding == "zstd":
        return None if _zstd is None else _MultiFrame(_zstd.ZstdDecompressor, "zstd")
    if encoding in ("gzip", "x-gzip"):
        return _MultiFrame(lambda: zlib.decompressobj(31), "gzip")
    if encoding == "deflate":
        return _Deflate()
    if encoding in ("br",):
        return None if _brotli is None else _Brotli()
    if encoding == "xz":
        return _MultiFrame(lzma.LZMADecompressor, "xz")
    if encoding in ("bz2", "bzip2"):
        return _MultiFrame(bz2.BZ2Decompressor, "bz2")
    return None


def _response_encodings() -> list[str]:
    enc = ["gzip", "deflate"]
    if _lz4f is not None:
        enc.insert(0, "lz4")
    if _zstd is not None:
        enc.insert(0, "zstd")
    if _brotli is not None:
        enc.append("br")
    return enc + ["xz", "bz2"]


def _compress(encoding: str, data, level: int | None) -> bytes:
    if encoding == "lz4":
        return _lz4f.compress(data)  # one frame: clickhouse-connect reads a single frame
    if encoding == "zstd":
        return _zstd.compress(data)
    if encoding == "gzip":
        c = zlib.compressobj(level if level is not None else 3, zlib.DEFLATED, 31)
        return c.compress(data) + c.flush()
    if encoding == "deflate":
        c = zlib.compressobj(level if level is not None else 3, zlib.DEFLATED, 15)
        return c.compress(data) + c.flush()
    if encoding == "br":
        return _brotli.compress(bytes(data))
    if encoding == "xz":
        return lzma.compress(data)
    if encoding == "bz2":
        return bz2.compress(data)
    raise AssertionError(encoding)


# --------------------------------------------------------------------------- SQL helpers

_COMMENT_RE = re.compile(r"\s+|--[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)|/\*.*?\*/", re.S)
_WORD_RE = re.compile(r"[A-Za-z_]+")
# Statements refused in readonly mode (other first words go to the parser, so that
# malformed SQL still gets ClickHouse's SYNTAX_ERROR).
_WRITE_KEYWORDS = {
    "INSERT", "CREATE", "DROP", "ALTER", "RENAME", "TRUNCATE", "DELETE", "UPDATE", "OPTIMIZE", "ATTACH",
    "DETACH", "EXCHANGE", "UNDROP", "REPLACE", "GRANT", "REVOKE", "SYSTEM", "KILL", "BACKUP", "RESTORE", "MOVE",
}
_INSERT_FORMAT_RE = re.compile(rb"\bFORMAT\s+([A-Za-z_][A-Za-z0-9_]*)")
_OUTPUT_FORMAT_RE = re.compile(
    r"\bFORMAT\s+([A-Za-z_][A-Za-z0-9_]*)(?:\s+SETTINGS\b(?:[^'`\"]|'(?:[^'\\]|\\.)*')*)?\s*;?\s*$",
    re.I | re.S,
)
_USE_RE = re.compile(r"USE\s+(`(?:[^`\\]|\\.)+`|\"(?:[^\"\\]|\\.)+\"|[A-Za-z_][A-Za-z0-9_]*)\s*;?\s*$", re.I | re.S)
_SETTING_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _skip_ws_comments(sql: str, pos: int = 0) -> int:
    while True:
        m = _COMMENT_RE.match(sql, pos)
        if not m or m.end() == pos:
            return pos
        pos = m.end()


def first_keyword(sql: str) -> str:
    pos = _skip_ws_comments(sql)
    while pos < len(sql) and sql[pos] == "(":
        pos = _skip_ws_comments(sql, pos + 1)
    m = _WORD_RE.match(sql, pos)
    return m.group(0).upper() if m else ""


def set_statement_names(sql: str) -> list[str] | None:
    """Setting names assigned by ``SET a = x, b = 'y'`` (None if not of that shape)."""
    pos = _skip_ws_comments(sql)
    m = re.compile(r"SET\b", re.I).match(sql, pos)
    if not m:
        return None
    i, n, depth = m.end(), len(sql), 0
    names: list[str] = []
    expect_name = True
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            j = i + 1
            while j < n and sql[j] != ch:
                j += 2 if sql[j] == "\\" else 1
            i = j + 1
            continue
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            expect_name = True
        elif expect_name and (ch.isalpha() or ch == "_"):
            mm = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*=").match(sql, i)
            if not mm:
                return None
            names.append(mm.group(1))
            expect_name = False
            i = mm.end()
            continue
        elif expect_name and not ch.isspace() and ch != ";":
            return None
        i += 1
    return names or None


def quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def quote_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _unquote_ident(tok: str) -> str:
    if tok[:1] in "`\"":
        return re.sub(r"\\(.)", r"\1", tok[1:-1])
    return tok


_CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8",
    "TSV": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "CSVWithNames": "text/csv; charset=UTF-8; header=present",
    "JSON": "application/json; charset=UTF-8",
    "JSONCompact": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "JSONStrings": "application/json; charset=UTF-8",
    "XML": "application/xml; charset=UTF-8",
    "Pretty": "text/plain; charset=UTF-8",
    "Markdown": "text/markdown; charset=UTF-8",
}
_TEXT_PREFIXES = ("TabSeparated", "TSV", "CSV", "JSON", "Pretty", "Vertical", "Values", "Markdown", "XML",
                  "CustomSeparated", "Template", "Raw", "LineAsString", "Prometheus", "Null", "PrettyCompact")


def _content_type(fmt: str) -> str:
    if fmt in _CONTENT_TYPES:
        return _CONTENT_TYPES[fmt]
    if fmt.startswith(("JSONCompactEachRow", "JSONEachRow", "JSONStringsEachRow", "JSONLines", "NDJSON")):
        return "application/x-ndjson; charset=UTF-8" if "EachRow" in fmt or fmt in ("JSONLines", "NDJSON") \
            else "application/json; charset=UTF-8"
    if fmt.startswith("JSON"):
        return "application/json; charset=UTF-8"
    if fmt.startswith(("TabSeparated", "TSV")):
        return "text/tab-separated-values; charset=UTF-8"
    if fmt.startswith("CSV"):
        return "text/csv; charset=UTF-8"
    if fmt.startswith(_TEXT_PREFIXES):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


# URL parameters that are not ClickHouse settings (HTTPHandler's reserved names).
_HTTP_PARAMS = {
    "query", "database", "default_format", "user", "password", "quota_key", "query_id",
    "session_id", "session_timeout", "session_check", "close_session", "compress", "decompress",
    "buffer_size", "wait_end_of_query", "role", "client_protocol_version", "stacktrace",
    "http_response_buffer_size", "max_query_size_for_http"  # last one: harmless placeholder
}
# Settings that only steer ClickHouse's HTTP transport (no effect on results here).
_HTTP_ONLY_SETTINGS = {
    "enable_http_compression", "http_zlib_compression_level", "send_progress_in_http_headers",
    "http_headers_progress_interval_ms", "cancel_http_readonly_queries_on_client_close",
    "http_native_compression_disable_checksumming_on_decompress", "add_http_cors_header",
    "http_wait_end_of_query", "http_response_buffer_size", "http_write_exception_in_output_format",
    "http_response_headers", "http_connection_timeout", "http_send_timeout", "http_receive_timeout",
}


# --------------------------------------------------------------------------- engine

class _Session:
    __slots__ = ("settings", "database", "last_used", "timeout")

    def __init__(self, timeout: float):
        self.settings: dict[str, str] = {}
        self.database: str | None = None
        self.last_used = time.monotonic()
        self.timeout = timeout


class _Result:
    __slots__ = ("body", "fmt", "summary", "keep")

    def __init__(self, body, fmt: str, summary: dict[str, Any], keep: Any = None):
        self.body = body  # bytes or memoryview
        self.fmt = fmt
        self.summary = summary
        self.keep = keep  # owner of a memoryview body


class ChdbEngine:
    """Owns the chDB session; executes requests one at a time under a lock."""

    def __init__(self, path: str):
        from chdb import session as chs

        os.makedirs(path, exist_ok=True)
        self.path = path
        self.session = chs.Session(path)
        self.lock = threading.Lock()
        self.closed = False
        rows = self._q("SELECT name, value, changed FROM system.settings", "JSONCompactEachRow").bytes().decode()
        self.baseline: dict[str, tuple[str, bool]] = {}
        for line in rows.splitlines():
            name, value, changed = json.loads(line)
            self.baseline[name] = (value, bool(changed))
        self.applied: dict[str, str] = {}  # settings currently differing from baseline
        tz, ver = self._q("SELECT timezone(), version()", "TSVRaw").bytes().decode().rstrip("\n").split("\t")
        self.timezone, self.version = tz, ver
        self.current_db = self._q("SELECT currentDatabase()", "TSVRaw").bytes().decode().strip()
        self.input_formats = set(
            self._q("SELECT name FROM system.formats WHERE is_input", "TSVRaw").bytes().decode().split()
        )
        self.sessions: dict[str, _Session] = {}
        self.sessions_lock = threading.Lock()

    # -- low level (caller holds self.lock or is single threaded)
    def _q(self, sql: str, fmt: str = "TSV", params: dict | None = None):
        return self.session.query(sql, fmt, params=params)

    def close(self) -> None:
        with self.lock:
            if not self.closed:
                self.closed = True
                self.session.close()

    # -- sessions
    def get_session(self, sid: str, timeout: float, check: bool) -> _Session:
        now = time.monotonic()
        with self.sessions_lock:
            for k in [k for k, s in self.sessions.items() if now - s.last_used > s.timeout]:
                del self.sessions[k]
            s = self.sessions.get(sid)
            if s is None:
                if check:
                    raise ClickHouseError(372, "SESSION_NOT_FOUND",
                                          f"Code: 372. DB::Exception: Session {sid} not found. (SESSION_NOT_FOUND)")
                s = self.sessions[sid] = _Session(timeout)
            s.last_used = now
            s.timeout = timeout
            return s

    # -- settings and database state (caller holds self.lock)
    def _set_state(self, want: dict[str, str], database: str) -> None:
        changes = []
        for k, v in want.items():
            if self.applied.get(k) != v:
                if not _SETTING_NAME_RE.match(k):
                    raise ClickHouseError.own("UNKNOWN_SETTING", f"Unknown setting '{k}'")
                changes.append(f"{k} = {quote_literal(v)}")
        for k in self.applied:
            if k not in want:
                changes.append(self._reset_expr(k))
        if changes:
            try:
                self._q("SET " + ", ".join(changes))
            except Exception as exc:
                self._reset_all()
                raise ClickHouseError.from_chdb(exc) from None
            self.applied = dict(want)
        if database != self.current_db:
            try:
                self._q("USE " + quote_ident(database))
            except Exception as exc:
                raise ClickHouseError.from_chdb(exc) from None
            self.current_db = database

    def _reset_expr(self, k: str) -> str:
        value, changed = self.baseline.get(k, ("", False))
        return f"{k} = {quote_literal(value)}" if changed else f"{k} = DEFAULT"

    def _reset_all(self) -> None:
        for k in list(self.applied):
            try:
                self._q("SET " + self._reset_expr(k))
            except Exception:  # pragma: no cover - baseline values are always valid
                log.exception("could not restore setting %s", k)
        self.applied = {}

    # -- execution
    def execute(self, sql: str, *, body: "_Body | None", fmt: str, params: dict[str, str],
                settings: dict[str, str], database: str, readonly: int,
                session: _Session | None) -> _Result:
        insert = None  # (head, input format, chunk iterator) when data is streamed into send_insert
        if body is not None:
            if sql.strip():
                if first_keyword(sql) == "INSERT":
                    raw = sql.encode("utf-8")
                    found = self._find_format(raw)
                    if found is not None and found[2] == len(raw):
                        insert = (found[0], found[1], body.chunks())
            else:
                prefix = body.peek(1 << 20)
                if first_keyword(prefix[:4096].decode("utf-8", "replace")) == "INSERT":
                    found = self._find_format(prefix)
                    if found is not None:
                        insert = (found[0], found[1], body.chunks(found[2]))
            if insert is None:
                # The query text continues in the body (ClickHouse reads URL query + "\n" + body).
                try:
                    text = body.read_all().decode("utf-8")
                except UnicodeDecodeError:
                    raise ClickHouseError.own(
                        "CANNOT_PARSE_TEXT",
                        "Request body is not UTF-8 text and the query has no INSERT ... FORMAT clause") from None
                sql = sql + "\n" + text if sql else text
        kw = first_keyword(insert[0] if insert else sql)
        if readonly and (kw in _WRITE_KEYWORDS or (kw == "SET" and readonly == 1)):
            raise ClickHouseError.own("READONLY", "default: Cannot execute query in readonly mode")
        m = _OUTPUT_FORMAT_RE.search(sql) if kw != "INSERT" else None
        out_fmt = m.group(1) if m else fmt
        t0 = time.perf_counter()
        with self.lock:
            if self.closed:
                raise ClickHouseError(210, "NETWORK_ERROR",
                                      "Code: 210. DB::Exception: Server is shutting down. (NETWORK_ERROR)")
            self._set_state(settings, database)
            if insert is not None:
                return self._do_insert(insert[0], insert[1], insert[2], t0)
            if kw == "SET":
                return self._do_set(sql, session, t0)
            if kw == "USE" and _USE_RE.match(sql, _skip_ws_comments(sql)):
                return self._do_use(sql, session, t0)
            try:
                r = self._q(sql, fmt, params)
            except Exception as exc:
                raise ClickHouseError.from_chdb(exc) from None
            try:
                mv = r.get_memview().view()
            except Exception:  # pragma: no cover
                mv = r.bytes()
            summary = {
                "read_rows": r.rows_read(), "read_bytes": r.bytes_read(),
                "written_rows": r.rows_written(), "written_bytes": r.bytes_written(),
                "total_rows_to_read": r.rows_read(), "result_bytes": len(mv),
                "elapsed_ns": int(r.elapsed() * 1e9),
            }
            return _Result(mv, out_fmt, summary, keep=r)

    def _find_format(self, raw: bytes):
        """Locate ``FORMAT <input format>`` in an INSERT: (head, format, data offset) or None."""
        for m in _INSERT_FORMAT_RE.finditer(raw[: 1 << 20]):
            name = m.group(1).decode()
            if name in self.input_formats:
                data = m.end()
                # ParserInsertQuery: data starts after the first newline if there is one,
                # otherwise after the whitespace.
                while data < len(raw) and raw[data] in b" \t\f":
                    data += 1
                if data < len(raw) and raw[data] == 0x0D:
                    data += 1
                if data < len(raw) and raw[data] == 0x0A:
                    data += 1
                return raw[: m.start()].decode("utf-8"), name, data
        return None

    def _do_insert(self, head: str, fmt: str, chunks, t0: float) -> _Result:
        errors_before = self._error_counts()
        try:
            ins = self.session.send_insert(head, fmt)
        except Exception as exc:
            raise ClickHouseError.from_chdb(exc) from None
        try:
            for chunk in chunks:
                if chunk:
                    ins.append(chunk)
            res = ins.finish()
        except ClickHouseError:
            self._cancel(ins)
            raise
        except Exception as exc:
            self._cancel(ins)
            raise ClickHouseError.from_chdb(exc) from None
        self._raise_swallowed(errors_before)
        summary = {
            "read_rows": res.rows_written, "read_bytes": res.bytes_written,
            "written_rows": res.rows_written, "written_bytes": res.bytes_written,
            "total_rows_to_read": 0, "result_rows": res.rows_written, "result_bytes": 0,
            "elapsed_ns": int((time.perf_counter() - t0) * 1e9),
        }
        return _Result(b"", fmt, summary)

    # chDB's streaming insert (send_insert) reports success when the exception is thrown
    # past the input format, in the insert's sink chain: a CHECK constraint violated
    # (VIOLATED_CONSTRAINT), a MATERIALIZED/DEFAULT expression that throws, a refusing
    # materialized view... finish() returns rows_written as if the rows were stored, and
    # nothing is stored. A real ClickHouse server answers such an insert with HTTP 500 and
    # the exception, and clickhouse-connect raises DatabaseError; a client of this endpoint
    # must see the same, or a refused batch counts as written and is lost. The exception is
    # still counted in system.errors, so the counts are read before and after the insert
    # (~1.5 ms each; the insert itself is ~25 ms) and an error counted meanwhile fails the
    # insert. The session lock keeps other requests out of that window; a background task
    # (merge, view refresh) failing in the very same window would be misattributed to the
    # insert, which its client then retries: a spurious failure, never a lost row.
    _ERRORS_SQL = "SELECT code, name, value, last_error_message FROM system.errors WHERE remote = 0"

    def _error_counts(self) -> dict[int, int] | None:
        try:
            rows = self._q(self._ERRORS_SQL, "JSONCompactEachRow").bytes().decode()
        except Exception:  # pragma: no cover - system.errors is always there
            log.exception("cannot read system.errors: swallowed insert errors go undetected")
            return None
        return {int(code): int(value) for code, _name, value, _msg in map(json.loads, rows.splitlines())}

    def _raise_swallowed(self, before: dict[int, int] | None) -> None:
        if before is None:
            return
        try:
            rows = self._q(self._ERRORS_SQL, "JSONCompactEachRow").bytes().decode()
        except Exception:  # pragma: no cover
            log.exception("cannot read system.errors after an insert")
            return
        for code, name, value, message in map(json.loads, rows.splitlines()):
            if int(value) > before.get(int(code), 0):
                log.debug("insert reported success by chDB but raised %s: %s", name, message)
                raise ClickHouseError(int(code), name, f"Code: {code}. DB::Exception: {message}. ({name})")

    @staticmethod
    def _cancel(ins) -> None:
        try:
            ins.cancel()
        except Exception:
            pass

    def _do_set(self, sql: str, session: _Session | None, t0: float) -> _Result:
        names = set_statement_names(sql)
        if names is None:
            raise ClickHouseError.own("NOT_IMPLEMENTED", "Only 'SET name = value[, ...]' statements are supported "
                                      "by chdb_endpoint")
        if "readonly" in names:
            # a chDB session can never leave read-only mode again: refuse instead of breaking the server
            raise ClickHouseError.own("NOT_IMPLEMENTED", "SET readonly is not supported by chdb_endpoint; "
                                      "pass readonly=1 as a URL parameter instead")
        if any(n.startswith("param_") for n in names):
            raise ClickHouseError.own("NOT_IMPLEMENTED", "SET param_<name> is not supported by chdb_endpoint; "
                                      "pass param_<name> as a URL parameter instead")
        try:
            self._q(sql)
        except Exception as exc:
            self._reset_all()
            raise ClickHouseError.from_chdb(exc) from None
        # read the new values back in one row (unaffected by result limits the SET may impose)
        probe = "SELECT " + ", ".join(f"toString(getSetting({quote_literal(n)}))" for n in names)
        try:
            values = json.loads(self._q(probe, "JSONCompactEachRow").bytes())
        finally:
            # Undo on the shared chDB session: the SET belongs to the HTTP session only.
            undo = [f"{k} = {quote_literal(self.applied[k])}" if k in self.applied else self._reset_expr(k)
                    for k in names]
            self._q("SET " + ", ".join(undo))
        if session is not None:
            session.settings.update(zip(names, values))
        return _Result(b"", "TabSeparated", {"elapsed_ns": int((time.perf_counter() - t0) * 1e9)})

    def _do_use(self, sql: str, session: _Session | None, t0: float) -> _Result:
        m = _USE_RE.match(sql, _skip_ws_comments(sql))
        db = _unquote_ident(m.group(1))
        prev = self.current_db
        try:
            self._q("USE " + quote_ident(db))
        except Exception as exc:
            raise ClickHouseError.from_chdb(exc) from None
        self._q("USE " + quote_ident(prev))
        if session is not None:
            session.database = db
        return _Result(b"", "TabSeparated", {"elapsed_ns": int((time.perf_counter() - t0) * 1e9)})


# --------------------------------------------------------------------------- request body

class _Body:
    """Request body, read (and decoded) completely before the chDB lock is taken.

    Decoded data is spooled to a temporary file above 64 MiB so huge inserts do
    not need to fit in memory twice.
    """

    CHUNK = 1 << 22  # pieces handed to chDB
    READ_CHUNK = 1 << 18  # socket reads (small: multi-frame decoders copy the unread rest of a read)

    def __init__(self, spool):
        self.spool = spool

    @classmethod
    def read(cls, rfile, length: int | None, chunked: bool, encoding: str | None) -> "_Body | None":
        dec = None
        if encoding and encoding != "identity":
            dec = _decoder(encoding)
            if dec is None:
                raise ClickHouseError.own("NOT_IMPLEMENTED", f"Unsupported Content-Encoding '{encoding}'")
        spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)
        total = 0

        def put(data: bytes):
            nonlocal total
            if dec is not None:
                try:
                    data = dec.feed(data)
                except ClickHouseError:
                    raise
                except Exception as exc:
                    raise ClickHouseError.own("CANNOT_DECOMPRESS",
                                              f"Cannot decompress {encoding} request body: {exc}") from None
            if data:
                spool.write(data)
                total += len(data)

        if chunked:
            while True:
                line = rfile.readline(65537)
                if not line:
                    raise ClickHouseError.own("CANNOT_PARSE_TEXT", "Unexpected end of chunked request body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                remaining = size
                while remaining:
                    part = rfile.read(min(remaining, cls.READ_CHUNK))
                    if not part:
                        raise ClickHouseError.own("CANNOT_PARSE_TEXT", "Unexpected end of chunked request body")
                    put(part)
                    remaining -= len(part)
                rfile.readline(65537)
        elif length:
            remaining = length
            while remaining:
                part = rfile.read(min(remaining, cls.READ_CHUNK))
                if not part:
                    raise ClickHouseError.own("CANNOT_PARSE_TEXT", "Unexpected end of request body")
                put(part)
                remaining -= len(part)
        if dec is not None:
            put_tail = dec.finish()
            if put_tail:
                spool.write(put_tail)
                total += len(put_tail)
        if total == 0:
            spool.close()
            return None
        spool.seek(0)
        return cls(spool)

    @classmethod
    def from_bytes(cls, data: bytes) -> "_Body | None":
        if not data:
            return None
        spool = tempfile.SpooledTemporaryFile(max_size=64 << 20)
        spool.write(data)
        spool.seek(0)
        return cls(spool)

    def peek(self, n: int) -> bytes:
        self.spool.seek(0)
        return self.spool.read(n)

    def chunks(self, offset: int = 0):
        self.spool.seek(offset)
        while True:
            part = self.spool.read(self.CHUNK)
            if not part:
                return
            yield part

    def read_all(self) -> bytes:
        self.spool.seek(0)
        return self.spool.read()

    def close(self) -> None:
        self.spool.close()


# --------------------------------------------------------------------------- HTTP

_NO_HANDLER = (
    "There is no handle {path}\n\nUse / or /ping for health checks.\n"
    "Or /replicas_status for more sophisticated health checks.\n\n"
    "Send queries from your program with POST method or GET /?query=...\n"
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chdb-endpoint"
    server: "EndpointServer"

    def setup(self) -> None:
        super().setup()
        try:  # headers and body are separate writes: avoid Nagle + delayed-ACK stalls (~40 ms)
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_HEAD(self):
        self._handle("HEAD")

    # -------------------------------------------------------------------------
    def _send(self, status: int, body, headers: dict[str, str], method: str) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "Keep-Alive" if not self.close_connection else "close")
        self.send_header("Keep-Alive", "timeout=10, max=10000")
        self.end_headers()
        if method != "HEAD" and len(body):
            self.wfile.write(body)

    def _handle(self, method: str) -> None:
        srv = self.server
        url = urlsplit(self.path)
        path = url.path
        query_id = None
        body: _Body | None = None
        try:
            if path in ("/ping", "/replicas_status") or (path == "/" and method in ("GET", "HEAD") and "query" not in url.query
                                                           and not self._has_body()):
                self._drain()
                self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"}, method)
                return
            if path != "/":
                self._drain()
                self._send(404, _NO_HANDLER.format(path=path).encode(), {"Content-Type": "text/plain; charset=UTF-8"},
                           method)
                return
            params: dict[str, str] = dict(parse_qsl(url.query, keep_blank_values=True))
            query_id = params.get("query_id") or str(uuid.uuid4())
            self._authenticate(params)

            ctype = self.headers.get("Content-Type", "")
            length = self.headers.get("Content-Length")
            chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
            encoding = (self.headers.get("Content-Encoding") or "").strip().lower() or None
            if params.get("decompress") in ("1", "true"):
                self._drain()
                raise ClickHouseError.own("NOT_IMPLEMENTED", "decompress=1 (ClickHouse native compression of the "
                                          "request body) is not supported by chdb_endpoint; use Content-Encoding")
            if ctype.lower().startswith("multipart/form-data"):
                raw = _Body.read(self.rfile, int(length) if length else None, chunked, encoding)
                raw_bytes = raw.read_all() if raw else b""
                body = self._parse_multipart(ctype, raw_bytes, params)
            else:
                body = _Body.read(self.rfile, int(length) if length else None, chunked, encoding)

            if params.get("compress") in ("1", "true"):
                raise ClickHouseError.own("NOT_IMPLEMENTED", "compress=1 (ClickHouse native compression of the "
                                          "response) is not supported by chdb_endpoint; use enable_http_compression=1 "
                                          "with Accept-Encoding")
            sql = params.get("query", "")
            if not sql and body is None:
                raise ClickHouseError.own("SYNTAX_ERROR", "Empty query")

            # session
            session = None
            sid = params.get("session_id")
            if sid:
                timeout = float(params.get("session_timeout") or 60)
                session = srv.engine.get_session(sid, timeout, params.get("session_check") in ("1", "true"))
            # settings
            settings: dict[str, str] = dict(session.settings) if session else {}
            bind: dict[str, str] = {}
            readonly = 2 if method in ("GET", "HEAD") else 0
            for k, v in params.items():
                if k.startswith("param_"):
                    bind[k[6:]] = v
                elif k == "readonly":
                    if v not in ("0", "1", "2"):
                        raise ClickHouseError.own("BAD_ARGUMENTS", f"Invalid value for readonly: '{v}'")
                    readonly = max(readonly, int(v))
                elif k in _HTTP_PARAMS or k in _HTTP_ONLY_SETTINGS:
                    continue
                else:
                    settings[k] = v
            if session and session.settings.get("readonly") not in (None, "0"):
                readonly = max(readonly, int(session.settings["readonly"]))
            settings.pop("readonly", None)
            database = (params.get("database") or self.headers.get("X-ClickHouse-Database")
                        or (session.database if session else None) or "default")
            fmt = params.get("default_format") or self.headers.get("X-ClickHouse-Format") or "TabSeparated"
            first = first_keyword(sql) if sql else ""
            cpv = params.get("client_protocol_version")
            if cpv not in (None, "", "0"):
                out = _OUTPUT_FORMAT_RE.search(sql)
                if (out.group(1) if out else fmt).startswith("Native") and first != "INSERT":
                    raise ClickHouseError.own("NOT_IMPLEMENTED", "client_protocol_version is not supported by "
                                              "chdb_endpoint (Native output is written for protocol version 0)")
            result = srv.engine.execute(sql, body=body, fmt=fmt, params=bind, settings=settings,
                                        database=database, readonly=readonly, session=session)

            out_body = result.body
            headers = {
                "Content-Type": _content_type(result.fmt),
                "X-ClickHouse-Server-Display-Name": srv.display_name,
                "X-ClickHouse-Query-Id": query_id,
                "X-ClickHouse-Format": result.fmt,
                "X-ClickHouse-Timezone": settings.get("session_timezone") or srv.engine.timezone,
                "X-ClickHouse-Summary": json.dumps({k: str(v) for k, v in result.summary.items()},
                                                   separators=(",", ":")),
            }
            if self._http_setting(params, session, "enable_http_compression") in ("1", "true") and len(out_body):
                enc = self._pick_encoding()
                if enc:
                    level = self._http_setting(params, session, "http_zlib_compression_level")
                    out_body = _compress(enc, out_body, int(level) if level else None)
                    headers["Content-Encoding"] = enc
            self._send(200, out_body, headers, method)
            log.debug("%s %s ok %.1f ms", method, query_id, result.summary.get("elapsed_ns", 0) / 1e6)
        except ClickHouseError as err:
            self._error(err, method, query_id)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as exc:  # unexpected: still a ClickHouse-shaped 500, never a 200
            log.exception("endpoint failure")
            self._error(ClickHouseError(1001, "STD_EXCEPTION",
                                        f"Code: 1001. DB::Exception: {type(exc).__name__}: {exc}. (STD_EXCEPTION)"),
                        method, query_id)
        finally:
            if body is not None:
                body.close()

    def _http_setting(self, params: dict[str, str], session: "_Session | None", name: str) -> str | None:
        """An HTTP-layer setting: URL parameter, else HTTP session, else the engine default."""
        if name in params:
            return params[name]
        if session is not None and name in session.settings:
            return session.settings[name]
        return self.server.engine.baseline.get(name, (None, False))[0]

    def _has_body(self) -> bool:
        return bool(int(self.headers.get("Content-Length") or 0)) or "chunked" in self.headers.get(
            "Transfer-Encoding", "").lower()

    def _drain(self) -> None:
        if self._has_body():
            try:
                b = _Body.read(self.rfile, int(self.headers.get("Content-Length") or 0),
                               "chunked" in self.headers.get("Transfer-Encoding", "").lower(), None)
                if b:
                    b.close()
            except Exception:
                self.close_connection = True

    def _error(self, err: ClickHouseError, method: str, query_id: str | None) -> None:
        log.debug("%s %s error %s", method, query_id, err.message)
        # body may be unread if the error came early: do not reuse the connection then
        self.close_connection = True
        headers = {
            "Content-Type": "text/plain; charset=UTF-8",
            "X-ClickHouse-Exception-Code": str(err.code),
            "X-ClickHouse-Server-Display-Name": self.server.display_name,
        }
        if query_id:
            headers["X-ClickHouse-Query-Id"] = query_id
        text = err.message
        if "(version " not in text:
            text += f" (version {self.server.engine.version})"
        try:
            self._send(err.http_status, (text + "\n").encode("utf-8", "backslashreplace"), headers, method)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _authenticate(self, params: dict[str, str]) -> None:
        user = self.headers.get("X-ClickHouse-User")
        password = self.headers.get("X-ClickHouse-Key")
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                u, _, p = base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")
            except Exception:
                raise ClickHouseError.own("AUTHENTICATION_FAILED", "Invalid Authorization header") from None
            user = user if user is not None else u
            password = password if password is not None else p
        if user is None:
            user = params.get("user")
        if password is None:
            password = params.get("password")
        user = user or "default"
        password = password or ""
        srv = self.server
        if user != srv.user or not hmac.compare_digest(password.encode(), srv.password.encode()):
            raise ClickHouseError.own(
                "AUTHENTICATION_FAILED",
                f"{user}: Authentication failed: password is incorrect, or there is no user with such name")

    def _pick_encoding(self) -> str | None:
        accept = self.headers.get("Accept-Encoding", "")
        offered = []
        for part in accept.split(","):
            name, _, q = part.strip().partition(";")
            name = name.strip().lower()
            if q.strip().replace(" ", "") in ("q=0", "q=0.0"):
                continue
            if name:
                offered.append(name)
        supported = _response_encodings()
        for name in offered:  # client preference order
            if name in supported:
                return name
        return None

    def _parse_multipart(self, ctype: str, raw: bytes, params: dict[str, str]) -> "_Body | None":
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + raw)
        if not msg.is_multipart():
            raise ClickHouseError.own("BAD_ARGUMENTS", "Malformed multipart/form-data body")
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            filename = part.get_param("filename", header="content-disposition")
            data = part.get_payload(decode=True) or b""
            if filename is not None or (name and (name + "_structure" in params or name + "_types" in params)):
                raise ClickHouseError.own("NOT_IMPLEMENTED",
                                          "External data (multipart file parts) is not supported by chdb_endpoint")
            if name == "query":
                params["query"] = data.decode("utf-8")
            elif name and name.startswith("param_"):
                params[name] = data.decode("utf-8")
            elif name:
                params[name] = data.decode("utf-8")
        return None


class EndpointServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, path: str, host: str, port: int, user: str = "default", password: str = ""):
        self.engine = ChdbEngine(path)
        self.user = user
        self.password = password
        self.display_name = socket.gethostname()
        self._thread: threading.Thread | None = None
        self._stopped = False
        try:
            super().__init__((host, port), _Handler)
        except Exception:
            self.engine.close()
            raise

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def host(self) -> str:
        return self.server_address[0]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "EndpointServer":
        self._thread = threading.Thread(target=self.serve_forever, name="chdb-endpoint", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:  # type: ignore[override]
        """Stop serving, wait for in-flight queries, close chDB (flushes data)."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread is not None:
            super().shutdown()
            self._thread.join()
        self.server_close()
        self.engine.close()  # takes the engine lock: waits for the running query


def serve(path: str, host: str = "127.0.0.1", port: int = 8123, password: str = "",
          user: str = "default") -> EndpointServer:
    """Open the chDB data directory and serve it in a background thread.

    ``port=0`` picks a free port (see ``server.port``).  Call ``server.shutdown()``.
    """
    return EndpointServer(path, host, port, user=user, password=password).start()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m deploy.local.chdb_endpoint",
        description="Serve a chDB data directory over ClickHouse's HTTP interface.")
    ap.add_argument("--path", required=True, help="chDB data directory (created if missing)")
    ap.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    ap.add_argument("--port", type=int, default=8123, help="listen port (default 8123, 0 = any free port)")
    ap.add_argument("--user", default="default", help="accepted user name (default 'default')")
    ap.add_argument("--password", default=os.environ.get("CHDB_ENDPOINT_PASSWORD", ""),
                    help="required password (default empty, or $CHDB_ENDPOINT_PASSWORD)")
    ap.add_argument("--log-level", default="INFO", help="logging level (DEBUG logs one line per request)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    server = EndpointServer(args.path, args.host, args.port, user=args.user, password=args.password)
    stop = threading.Event()

    def on_signal(signum, _frame):
        log.info("signal %s: shutting down", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    log.info("chDB endpoint serving %s on %s (ClickHouse %s)", args.path, server.url, server.engine.version)
    print(f"chdb_endpoint listening on {server.url}", flush=True)
    while not stop.wait(0.5):
        pass
    server.shutdown()
    log.info("chDB endpoint stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
