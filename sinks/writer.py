"""Batched, idempotent, outage-proof writes to ClickHouse.

``ClickHouseSink`` buffers rows and inserts them in batches (``max_rows`` or
``max_seconds``, whichever comes first) from one background thread that owns the
clickhouse-connect client. While ClickHouse is unreachable it retries the same batch
forever with exponential backoff and jitter; it never drops a row. The buffer is bounded
(``max_buffer_rows``): when it is full, ``write()`` blocks (``write_async()`` awaits)
until the flusher makes room. That is the backpressure the stream needs: a Faust agent
that awaits the sink stops consuming, so Kafka offsets are not committed for rows that
are not yet in ClickHouse.

A batch ClickHouse refuses for its data (poison rows) is split until the refused rows are
found when the sink has an ``on_refused`` callback: they go to it, the rest lands, the
stream goes on (``ClickHouseSink``'s docstring has the classification and the contract).

Durability contract for callers that commit offsets::

    ticket = await sink.write_async(rows)      # buffered (may wait for room)
    await sink.wait_async(ticket)              # now in ClickHouse -> safe to commit
    # or simply: await sink.write_async(rows, wait=True)

Idempotency: the tables are ReplacingMergeTree keyed on the event's own id (event_id,
rating_id, (topic, partition, offset), (dossier_code, version)), so a batch replayed after
a restart collapses on merge and reads with FINAL are exact. In addition each batch
carries an ``insert_deduplication_token`` derived from its key columns, so a retry of a
batch whose first attempt did reach the server (reply lost) is dropped by the server
(replicated tables always; single-node MergeTree when the table has
``non_replicated_deduplication_window``).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import re
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from itertools import chain, repeat
from operator import attrgetter, is_, sub
from typing import Any, Callable, Iterable, Mapping, Sequence

from clickhouse_connect.datatypes.registry import get_from_name
from clickhouse_connect.driver.binding import quote_identifier
from clickhouse_connect.driver.common import write_leb128
from clickhouse_connect.driver.compression import get_compressor
from clickhouse_connect.driver.exceptions import (DatabaseError, DataError, NotSupportedError, OperationalError,
                                                  ProgrammingError)

from pulse.histogram import Histogram

try:  # bulk datetime -> ticks in C++ (pyarrow is a dependency of the project; optional here)
    import numpy as _np
    import pyarrow as _pa
except ImportError:  # pragma: no cover - pyarrow is in pyproject
    _np = _pa = None  # type: ignore[assignment]  # optional: the slower path below then

log = logging.getLogger("motcua.sinks.writer")

# How a failed insert is handled (``classify``). The codes are ClickHouse's
# (src/Common/ErrorCodes.cpp; numbers checked against the chDB engine's errorCodeToName()).
#
# TRANSIENT: the server cannot take the insert now; the same batch will land later. Retried
# with backoff, forever, as before (also: any connection-level failure, an HTTP answer
# without a ClickHouse code, 429/503/504, which clickhouse-connect raises as OperationalError).
TRANSIENT_CODES = {
    3,    # UNEXPECTED_END_OF_FILE
    95,   # CANNOT_READ_FROM_SOCKET
    96,   # CANNOT_WRITE_TO_SOCKET
    159,  # TIMEOUT_EXCEEDED
    164,  # READONLY (replica temporarily read-only)
    173,  # CANNOT_ALLOCATE_MEMORY
    201,  # QUOTA_EXCEEDED (per interval: passes when the interval does)
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR (also a server shutting down)
    225,  # NO_ZOOKEEPER
    236,  # ABORTED
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY
    243,  # NOT_ENOUGH_SPACE (disk full: an operator frees it; nothing is dropped meanwhile)
    244,  # UNEXPECTED_ZOOKEEPER_ERROR
    252,  # TOO_MANY_PARTS
    254,  # NO_ACTIVE_REPLICAS
    279,  # ALL_CONNECTION_TRIES_FAILED
    285,  # TOO_FEW_LIVE_REPLICAS
    286,  # UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
    289,  # REPLICA_IS_NOT_IN_QUORUM
    319,  # UNKNOWN_STATUS_OF_INSERT
    394,  # QUERY_WAS_CANCELLED (server restarting)
    425,  # SYSTEM_ERROR
    439,  # CANNOT_SCHEDULE_TASK
    574,  # DISTRIBUTED_TOO_MANY_PENDING_BYTES
    745,  # SERVER_OVERLOADED
    999,  # KEEPER_EXCEPTION
}
# REFUSED: the server's answer says the data is wrong: a value it cannot parse, convert or
# store, or a CHECK constraint / MATERIALIZED expression that rejects it. Retrying the same
# rows can never succeed, but the other rows of the batch can land: with ``on_refused``
# the batch is split until the refused rows are found (``ClickHouseSink``).
REFUSED_CODES = {
    6,    # CANNOT_PARSE_TEXT
    19,   # SIZE_OF_FIXED_STRING_DOESNT_MATCH
    25,   # CANNOT_PARSE_ESCAPE_SEQUENCE
    26,   # CANNOT_PARSE_QUOTED_STRING
    27,   # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,   # CANNOT_PARSE_DATE
    41,   # CANNOT_PARSE_DATETIME
    43,   # ILLEGAL_TYPE_OF_ARGUMENT
    53,   # TYPE_MISMATCH
    69,   # ARGUMENT_OUT_OF_BOUND
    70,   # CANNOT_CONVERT_TYPE
    72,   # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    128,  # TOO_LARGE_ARRAY_SIZE
    131,  # TOO_LARGE_STRING_SIZE
    190,  # SIZES_OF_ARRAYS_DONT_MATCH
    248,  # INVALID_PARTITION_VALUE
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    346,  # CANNOT_CONVERT_CHARSET
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    376,  # CANNOT_PARSE_UUID
    395,  # FUNCTION_THROW_IF_VALUE_IS_NON_ZERO (throwIf in a MATERIALIZED/DEFAULT expression)
    407,  # DECIMAL_OVERFLOW
    441,  # CANNOT_PARSE_DOMAIN_VALUE_FROM_STRING
    467,  # CANNOT_PARSE_BOOL
    469,  # VIOLATED_CONSTRAINT
    675,  # CANNOT_PARSE_IPV4
    676,  # CANNOT_PARSE_IPV6
    691,  # UNKNOWN_ELEMENT_OF_ENUM
}
# FATAL: every other failure with a ClickHouse code (UNKNOWN_TABLE 60, NO_SUCH_COLUMN_IN_TABLE
# 16, THERE_IS_NO_COLUMN 8, UNKNOWN_DATABASE 81, ACCESS_DENIED 497, AUTHENTICATION_FAILED 516,
# SYNTAX_ERROR 62, UNKNOWN_SETTING 115, CANNOT_READ_ALL_DATA 33 = a malformed block...) and
# every client-side programming error: the deployment is wrong, not the rows. Not split:
# retried ``max_permanent_retries`` times, then ``SinkError`` (the rows stay in the sink).
TRANSIENT, REFUSED, FATAL = "transient", "refused", "fatal"

_CODE_RE = re.compile(r"Code: (\d+)")
# clickhouse-connect's message: "Received ClickHouse exception, code: N, server response:
# Code: N. DB::Exception: ... (NAME) (version V) (for url U)": the server's part is kept
_SERVER_MSG_RE = re.compile(r"Code: \d+\. .*", re.S)
_TRAILER_RE = re.compile(r"(?:\s*\((?:version [^)]*|for url [^)]*)\))+\s*$")


_SEQ_TYPES = {list, tuple}


class SinkError(RuntimeError):
    """A batch cannot be written (not a transient outage); rows remain in the sink."""


class SinkClosed(RuntimeError):
    pass


class _Refused(Exception):
    """A (part of a) batch refused for its data: raised to the splitting code."""

    def __init__(self, exc: BaseException):
        super().__init__(str(exc))
        self.message = refusal_message(exc)
        # what "refused alike" compares: the server's code, or the client's error kind
        self.key = error_code(exc) if not isinstance(exc, RowEncodingError) else "encoding"


class RowEncodingError(DataError):
    """The sink could not encode a batch for its table's column types (a value of the wrong
    type or out of the column's range: the client-side twin of a server refusal)."""


_ENCODING_ERRORS = (DataError, TypeError, ValueError, OverflowError, KeyError, IndexError, struct.error)


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code of an exception, if it carries one."""
    code = getattr(exc, "code", None)           # clickhouse-connect >= 0.8: from X-ClickHouse-Exception-Code
    if isinstance(code, int):
        return code
    m = _CODE_RE.search(str(exc))
    return int(m.group(1)) if m else None


def classify(exc: BaseException) -> str:
    """``TRANSIENT``, ``REFUSED`` or ``FATAL`` (see the code tables above)."""
    if isinstance(exc, RowEncodingError):
        return REFUSED
    if isinstance(exc, (DataError, ProgrammingError, NotSupportedError, TypeError, ValueError)):
        return FATAL        # the client refuses the insert itself (not a row's value)
    if isinstance(exc, (OperationalError, ConnectionError, TimeoutError, OSError)):
        return TRANSIENT
    if isinstance(exc, DatabaseError):
        code = error_code(exc)
        if code is None:
            return TRANSIENT  # no ClickHouse code: proxy / endpoint / HTTP-level failure
        if code in TRANSIENT_CODES:
            return TRANSIENT
        return REFUSED if code in REFUSED_CODES else FATAL
    return FATAL


def is_transient(exc: BaseException) -> bool:
    return classify(exc) == TRANSIENT


def refusal_message(exc: BaseException) -> str:
    """The server's own message of a refused insert ("Code: N. DB::Exception: ... (NAME)"),
    without clickhouse-connect's wrapper, the version and the URL; a client-side refusal as
    "RowEncodingError: ...". Stable for one row and one cause, so it can key a dead letter."""
    text = str(exc)
    if not isinstance(exc, RowEncodingError):
        m = _SERVER_MSG_RE.search(text)
        if m:
            return _TRAILER_RE.sub("", m.group(0)).strip()
    return f"{type(exc).__name__}: {text}"


# ------------------------------------------------------------------ batch encoding
#
# The sink's CPU per row is spent here, on the thread that competes with the event loop
# for the GIL. clickhouse-connect's insert() serialises Python values one at a time in
# Python, and two column kinds dominated that for our tables: DateTime64 (per value
# ``datetime.timestamp()`` and arithmetic, ~0.6 us; 5-9 per row) and LowCardinality strings
# (a Python dict loop per value to build the dictionary). So ``_BatchEncoder`` writes the
# Native block itself, column by column, while each column's values are still in the CPU
# cache: it gathers the column (C), converts a datetime column in bulk (pyarrow, C++)
# straight into its Native bytes (null map + ticks), sends LowCardinality(String) as plain
# String (the server converts it: input_format_native_allow_types_conversion) and writes
# every other column with clickhouse-connect's own writer for its type. A datetime column
# the fast path does not recognise (ints, strings, pandas timestamps, naive datetimes
# unless the process runs in UTC, mixed types) also goes to clickhouse-connect's writer
# unchanged, so what is accepted and what is stored are exactly as before.

_NoneType = type(None)
_TZINFO = attrgetter("tzinfo")
_ONE_US = timedelta(microseconds=1)
_CONVERT_CHUNK = 8192               # values per pyarrow call: bounds how long the GIL is held
_NATIVE_CONVERSION_SINCE = "23.8"   # input_format_native_allow_types_conversion: 23.4+, on by default


def _local_time_is_utc() -> bool:
    """clickhouse-connect reads a naive datetime as local time, pyarrow as UTC: the same then."""
    return time.timezone == 0 and time.altzone == 0


def _arrow_values(arr, nullable: bool):
    """(int64 values, uint8 null map or None) of a pyarrow array of a 64-bit type, read
    straight from its buffers (pyarrow compute kernels cost more than the conversion here)."""
    n = len(arr)
    validity, data = arr.buffers()
    values = _np.frombuffer(data, dtype=_np.int64, count=n, offset=arr.offset * 8)
    if validity is None or not arr.null_count:
        return values, (_np.zeros(n, _np.uint8) if nullable else None)
    if not nullable:
        raise ValueError("None in a non-Nullable column")
    bits = _np.unpackbits(_np.frombuffer(validity, _np.uint8), count=arr.offset + n, bitorder="little")
    return values, bits[arr.offset:] ^ 1                  # arrow: 1 bit per row, 1 = valid


def _ticks_converter(t):
    """For the ClickHouse type ``t`` (DateTime or DateTime64(scale), maybe Nullable): a
    function from a column of values to its Native bytes, or None if the column is not
    all aware datetimes (or None). The ticks are those clickhouse-connect writes,
    floor(timestamp * 10**scale)."""
    scale = getattr(t, "scale", 0) if t.base_type == "DateTime64" else 0
    unit_scale = min(9, -(-scale // 3) * 3)            # 0, 3, 6 or 9: an arrow unit at least as fine
    arrow_type = _pa.timestamp({0: "s", 3: "ms", 6: "us", 9: "ns"}[unit_scale], tz="UTC")
    div = 10 ** (unit_scale - scale)
    duration_us = _pa.duration("us")
    uint32 = t.base_type == "DateTime"
    nullable = t.nullable
    epochs: dict[timezone, datetime] = {}

    def any_tz(col):
        # aware datetimes -> UTC ticks in the arrow unit (floor): one utcoffset() call per value
        values, nulls = _arrow_values(_pa.array(col, type=arrow_type), nullable)
        return (values // div if div != 1 else values), nulls

    def one_fixed_tz(col, tz):
        # all in one datetime.timezone object: x - epoch(tz) is wall-clock arithmetic in C
        # (same tzinfo object: no utcoffset() call), then one offset for the whole column
        epoch = epochs.get(tz) or epochs.setdefault(tz, datetime(1970, 1, 1, tzinfo=tz))
        try:
            deltas = list(map(sub, col, repeat(epoch)))
        except TypeError:                                   # None among them
            deltas = [None if x is None else x - epoch for x in col]
        us, nulls = _arrow_values(_pa.array(deltas, type=duration_us), nullable)
        us = us - (epoch.utcoffset() // _ONE_US)            # UTC microseconds since the epoch
        if nulls is not None and nulls.any():
            us[nulls.view(bool)] = 0                        # a NULL's slot: 0, as clickhouse-connect writes it
        return (us // 10 ** (6 - scale) if scale <= 6 else us * 10 ** (scale - 6)), nulls

    def convert(col: Sequence) -> bytes | None:
        n_rows = len(col)
        src, runs = col, None
        if n_rows > 1 and col[0] is col[1] and col[0] is not None:
            # runs of one object (updated_at: the "now" of each stream batch): convert each once
            ids = _np.fromiter(map(id, col), dtype=_np.int64, count=n_rows)
            starts = _np.flatnonzero(_np.concatenate(([True], ids[1:] != ids[:-1])))
            if len(starts) * 4 <= n_rows:
                src = [col[i] for i in starts.tolist()]
                runs = _np.diff(_np.append(starts, n_rows))
        kinds = set(map(type, src))
        kinds.discard(_NoneType)
        if kinds != {datetime}:
            return None             # ints already, all None, str, pandas Timestamp, mixed: clickhouse-connect
        tz = next(filter(None, src)).tzinfo
        if tz.__class__ is timezone and all(map(is_, map(_TZINFO, filter(None, src)), repeat(tz))):
            convert_part = partial(one_fixed_tz, tz=tz)
        elif not _local_time_is_utc() and None in map(_TZINFO, filter(None, src)):
            return None             # naive datetimes in local time: clickhouse-connect's rules
        else:
            convert_part = any_tz  # type: ignore[assignment]  # a plain function beside the partial above
        try:
            parts = [convert_part(src[i:i + _CONVERT_CHUNK]) for i in range(0, len(src), _CONVERT_CHUNK)]
            values = parts[0][0] if len(parts) == 1 else _np.concatenate([v for v, _ in parts])
            nulls = None if not nullable else parts[0][1] if len(parts) == 1 else _np.concatenate([n for _, n in parts])
            if uint32:
                if len(values) and (values.min() < 0 or values.max() > 0xFFFFFFFF):
                    return None     # out of DateTime's range: clickhouse-connect reports it as before
                values = values.astype("<u4")
            else:
                values = values.astype("<i8", copy=False)
        except (_pa.ArrowException, TypeError, ValueError, OverflowError):
            return None             # let clickhouse-connect report (or accept) it as before
        if runs is not None:
            values = _np.repeat(values, runs)
            nulls = None if nulls is None else _np.repeat(nulls, runs)
        return values.tobytes() if nulls is None else nulls.tobytes() + values.tobytes()
    return convert


def _array_writer(t, ctx):
    """Array(T) column writer: clickhouse-connect's, with the offsets computed in C."""
    element = t.element_type

    def write(col) -> bytearray:
        out = bytearray()
        t.write_column_prefix(out)
        out += _np.cumsum(_np.fromiter(map(len, col), dtype=_np.uint64, count=len(col)), dtype="<u8").tobytes()
        element.write_column_data(list(chain.from_iterable(col)), out, ctx)
        return out
    return write


class _BatchEncoder:
    """Writes batches of rows as one Native block for a table's insert columns.

    ``ctx``: the clickhouse-connect InsertContext of the table (column types, formats,
    server timezone), passed to its column writers as its own insert would."""

    def __init__(self, ctx, *, lc_as_string: bool):
        self.ctx = ctx
        self.plan = []    # per column: (header bytes, writer type, converter to Native bytes or None)
        for name, t in zip(ctx.column_names, ctx.column_types):
            convert = None
            if t.base_type in ("DateTime64", "DateTime") and not t.low_card and _pa is not None:
                convert = _ticks_converter(t)
            elif lc_as_string and t.low_card and t.base_type == "String":
                t = get_from_name("Nullable(String)" if t.nullable else "String")
            elif t.base_type == "Array" and t.element_type.base_type != "Array" and _np is not None:
                convert = _array_writer(t, ctx)
            header = bytearray()
            for text in (name, t.insert_name):
                enc = text.encode()
                write_leb128(len(enc), header)
                header += enc
            self.plan.append((bytes(header), t, convert))

    def block(self, rows: list, raw: dict[int, Sequence], prefix: bytes = b"") -> bytearray:
        """``prefix`` and the rows as one Native block. ``raw``: column index -> the column's
        values (filled in for the indexes it holds, e.g. for the deduplication token)."""
        ctx = self.ctx
        out = bytearray(prefix)
        write_leb128(len(self.plan), out)
        write_leb128(len(rows), out)
        columns = zip(*rows)      # one C pass over the rows; a column is a tuple
        for i, ((header, t, convert), col) in enumerate(zip(self.plan, columns)):
            if i in raw:
                raw[i] = col
            out += header
            data = None if convert is None else convert(col)
            if data is not None:
                out += data
            else:
                ctx.start_column(ctx.column_names[i])
                t.write_column(col, out, ctx)
        return out


def arrival_rate(rows_waiting: int, since_insert_s: float, min_s: float) -> float:
    """Rows per second arriving at a sink: those waiting over the time since its last
    insert, but over at least the least interval ``min_s``. Rows that come in a clump just
    after an insert (a batch held up, then let through) are not a busy stream: over the
    bare time since the insert they read as one, and the next insert waited for the busy
    interval (freshness spikes of 1.8 s at 1,000 events/s with a 1.2 s busy interval)."""
    return rows_waiting / max(since_insert_s, min_s, 1e-3)


def insert_interval(rows_per_s: float, min_s: float, busy_s: float, busy_rows_per_s: float) -> float:
    """Least time between two inserts of a sink, given the rate its rows arrive at.

    Each insert has a fixed cost on the server (a chDB insert ~25 ms of CPU whatever its
    size: a new part, its files, later merges). A light stream is inserted every ``min_s``
    (freshness; the cost does not matter there); the interval then grows linearly with the
    rate up to ``busy_s`` at ``busy_rows_per_s`` and above, so that under load the fixed
    cost is spread over more rows (the way ClickHouse's own adaptive async-insert timeout
    grows with the insert rate)."""
    if busy_s <= min_s or busy_rows_per_s <= 0:
        return min_s
    share = min(1.0, max(0.0, rows_per_s / busy_rows_per_s))
    return min_s + (busy_s - min_s) * share


@dataclass
class SinkStats:
    rows_accepted: int = 0
    rows_written: int = 0
    batches: int = 0
    retries: int = 0
    reconnects: int = 0
    blocked_s: float = 0.0
    insert_s: float = 0.0
    last_error: str = ""
    last_error_at: float = 0.0
    outage_s: float = 0.0
    # rows ClickHouse acknowledged but reported as not written (X-ClickHouse-Summary):
    # legitimate when a retried or replayed block was deduplicated (replicated tables,
    # same insert_deduplication_token), a red flag otherwise
    rows_reported_unwritten: int = 0
    errors: list[str] = field(default_factory=list)
    # poison rows (``on_refused``): rows handed to the callback, batches split, the inserts
    # the splits took (the first, failed, insert of each batch included), the last split's
    split_batches: int = 0
    rows_refused: int = 0
    split_inserts: int = 0
    last_split: str = ""
    # for operators (streams.prometheus): outages begun (a batch's first failed insert; the
    # batch is retried until it lands, the outage's time is in outage_s), and the time of
    # each insert that succeeded
    outages: int = 0
    insert_latency: Histogram = field(default_factory=Histogram)


class ClickHouseSink:
    """Bounded, batched, retrying writer for one table.

    ``client_factory``: zero-argument callable returning a clickhouse-connect client
    (e.g. ``lambda: get_client(settings)``); called again after connection failures.
    ``columns``: column order of the rows. Rows may be sequences in that order or mappings.
    ``key_columns``: columns identifying a row (dedup key); used for the insert
    deduplication token. ``None`` disables the token.
    ``compression``: of the insert body; ``None``: the client's (``get_client``: lz4),
    ``False``: none, or a codec name ("lz4", "zstd", ...).
    ``min_interval_s``, ``busy_interval_s``, ``busy_rows_per_s``: least time between two
    inserts while rows keep coming, from ``min_interval_s`` for a light stream up to
    ``busy_interval_s`` at ``busy_rows_per_s`` (``insert_interval``); ``max_rows`` waiting
    are inserted at once.

    Each batch is sent as one Native block written by ``_BatchEncoder`` (below): the rows'
    values are stored exactly as clickhouse-connect's own ``insert()`` stores them, at a
    fraction of the CPU.

    Poison rows (``on_refused``). A failed insert is classified (``classify``): TRANSIENT
    (connection refused/reset, timeouts, an overloaded or restarting server, TOO_MANY_PARTS,
    MEMORY_LIMIT_EXCEEDED...) is retried with backoff, forever; FATAL (unknown table or
    column, access, syntax: the deployment is wrong) is retried ``max_permanent_retries``
    times, then the sink raises ``SinkError`` and keeps the rows; REFUSED (the server says
    the data is wrong: CANNOT_PARSE_*, TYPE_MISMATCH, VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE,
    VIOLATED_CONSTRAINT, UNKNOWN_ELEMENT_OF_ENUM... or a value the sink cannot encode for
    the column, ``RowEncodingError``) is handled as FATAL when ``on_refused`` is None (the
    former behaviour), and otherwise the batch is split: each failing part is halved and
    both halves inserted, recursively, until single rows are isolated. The good rows land;
    each refused row goes to ``on_refused``; the batch's tickets then resolve as if it had
    been written (``pending`` and ``wait`` count the refused rows as done), so the caller
    commits its offsets and the stream goes on. Cost: a batch of n rows with k refused rows
    takes at most 1 + 2k*ceil(log2 n) inserts (+3 probes, below): 5,000 rows with 3 bad
    ones, ~70 inserts; ``stats.split_inserts`` and the log say how many each split took.
    Worst case (most rows bad, for different reasons): 2n - 1 inserts.

    Not poison but a deployment error: when every row would be refused alike (a CHECK
    constraint or a column type deployed wrong), splitting would dead-letter the whole
    stream. So when both halves of the first split are refused with the same code, three
    single rows are probed (the first of each half, the last); all three refused with that
    code too -> a deployment error: logged as an error and handled as FATAL (retries, then
    ``SinkError``, rows kept), no row dead-lettered. Batches too small to probe count
    across batches: three rows in a row refused alike with no row landing in between is a
    deployment error too (the first two, in batches of their own, were already handed to
    the callback: nothing distinguishes them from poison rows at the time).

    ``on_refused(rows, message)`` contract:

    * ``rows``: a list of refused rows exactly as the sink holds them (sequences in
      ``columns`` order; mappings were turned into lists by ``write``), in batch order;
      ``message``: the server's exception, ``"Code: N. DB::Exception: ... (NAME)"``
      (version and URL trimmed, see ``refusal_message``), or ``"RowEncodingError: ..."``
      when the sink itself could not encode the value. Rows refused with the same message
      in one batch come in one call; usually that is one row per call.
    * It runs on the sink's flusher thread, after the batch's good rows landed and before
      the batch's tickets resolve: rows are acknowledged to the caller only once the
      callback has returned, so it must make the rows durable elsewhere before returning
      (e.g. ``dead_letters_sink.write(rows, wait=True)`` on *another* sink, or a Kafka
      produce awaited). It must not use this sink (its flusher is the caller: ``wait`` or a
      full buffer would deadlock) and should be quick: this sink inserts nothing meanwhile.
    * If it raises, it is called again with the same arguments after a backoff, until it
      returns (the batch stays pending meanwhile; nothing is dropped). So it must be
      idempotent, as it must anyway: after a crash the stream replays uncommitted rows and
      the same rows are refused and handed over again.

    Exactly-once stays: the tables are idempotent (ReplacingMergeTree on the row's own id,
    plus a per-insert deduplication token), so a half re-inserted after part of it landed
    (a multi-block insert failing late, a retry after a lost reply, a replay after a crash
    mid-split) collapses with the copy already there.
    """

    def __init__(
        self,
        client_factory: Callable[[], Any],
        table: str,
        columns: Sequence[str],
        *,
        key_columns: Sequence[str] | None = None,
        max_rows: int = 5000,
        max_seconds: float = 1.0,
        max_buffer_rows: int = 50_000,
        retry_initial_s: float = 0.2,
        retry_max_s: float = 5.0,
        max_permanent_retries: int = 3,
        insert_settings: Mapping[str, Any] | None = None,
        compression: str | bool | None = None,
        name: str | None = None,
        min_interval_s: float = 0.0,
        busy_interval_s: float | None = None,
        busy_rows_per_s: float = 10_000.0,
        on_refused: Callable[[list, str], Any] | None = None,
    ) -> None:
        if max_rows <= 0 or max_buffer_rows < max_rows:
            raise ValueError("need 0 < max_rows <= max_buffer_rows")
        self.client_factory = client_factory
        self.table = table
        self.columns = list(columns)
        self.key_idx = [self.columns.index(c) for c in key_columns] if key_columns else None
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self.min_interval_s = min_interval_s
        self.busy_interval_s = min_interval_s if busy_interval_s is None else max(min_interval_s, busy_interval_s)
        self.busy_rows_per_s = busy_rows_per_s
        self.max_buffer_rows = max_buffer_rows
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.max_permanent_retries = max_permanent_retries
        self.insert_settings = dict(insert_settings or {})
        self.compression = compression
        self.name = name or table
        self.on_refused = on_refused
        self.stats = SinkStats()
        self._refused_streak: tuple[Any, int] = (None, 0)  # (refusal key, rows refused alike since a row landed)

        self._cv = threading.Condition()
        self._buf: deque[list] = deque()   # chunks of rows, as handed over (no per-row work)
        self._buf_rows = 0                 # rows in _buf
        self._inflight = 0
        self._seq_in = 0          # rows accepted so far
        self._seq_done = 0        # rows durably written so far (in order)
        self._flush_target = 0
        self._oldest: float | None = None
        self._last_insert = float("-inf")   # when the last insert was started (monotonic)
        self._closing = False
        self._error: SinkError | None = None
        self._client = None
        self._encoder: _BatchEncoder | None = None
        self._insert_query = b""
        self._compression: str | None = None
        self._settings: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, name=f"ch-sink-{self.name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ sync API
    def write(self, rows: Iterable[Sequence[Any] | Mapping[str, Any]], *, wait: bool = False,
              timeout: float | None = None) -> int:
        """Buffer rows (blocking while the buffer is full); return a ticket for ``wait``."""
        rows = self._as_rows(rows)
        deadline = None if timeout is None else time.monotonic() + timeout
        i = 0
        with self._cv:
            while i < len(rows):
                self._check_usable()
                room = self.max_buffer_rows - self._buf_rows - self._inflight
                if room <= 0:
                    t0 = time.monotonic()
                    remaining = None if deadline is None else deadline - t0
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(f"sink {self.name}: buffer full for {timeout}s ({i} of {len(rows)} rows accepted)")
                    self._cv.wait(remaining if remaining is not None else 1.0)
                    self.stats.blocked_s += time.monotonic() - t0
                    continue
                i += self._append_locked(rows[i:i + room])
            ticket = self._seq_in
        if wait:
            self.wait(ticket, timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        return ticket

    def flush(self, timeout: float | None = None) -> None:
        """Return when every row accepted so far is in ClickHouse."""
        with self._cv:
            ticket = self._seq_in
        self.wait(ticket, timeout)

    def wait(self, ticket: int, timeout: float | None = None) -> None:
        """Block until the rows up to ``ticket`` are durably written."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            if self._seq_done >= ticket:
                return
            self._flush_target = max(self._flush_target, ticket)
            self._cv.notify_all()
            while self._seq_done < ticket:
                if self._error is not None:
                    raise self._error
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(f"sink {self.name}: {ticket - self._seq_done} rows not yet written")
                self._cv.wait(min(remaining, 1.0) if remaining is not None else 1.0)

    def close(self, timeout: float | None = None) -> None:
        """Flush everything, then stop the flusher. Raises if rows could not be written in time."""
        try:
            self.flush(timeout)
        finally:
            with self._cv:
                self._closing = True
                self._cv.notify_all()
            if self._seq_done >= self._seq_in or self._error is not None:
                self._thread.join(timeout=5)
                self._drop_client()

    @property
    def pending(self) -> int:
        with self._cv:
            return self._seq_in - self._seq_done

    @property
    def durable_ticket(self) -> int:
        with self._cv:
            return self._seq_done

    # ----------------------------------------------------------------- async API
    async def write_async(self, rows: Iterable[Sequence[Any] | Mapping[str, Any]], *, wait: bool = False) -> int:
        """Like ``write``; never blocks the event loop (waits for room in a thread)."""
        rows = self._as_rows(rows)
        with self._cv:
            self._check_usable()
            room = self.max_buffer_rows - self._buf_rows - self._inflight
            n = self._append_locked(rows[:max(room, 0)]) if room > 0 else 0
            ticket = self._seq_in
        if n < len(rows):
            ticket = await asyncio.to_thread(self.write, rows[n:])
        if wait:
            await self.wait_async(ticket)
        return ticket

    async def wait_async(self, ticket: int) -> None:
        with self._cv:
            if self._seq_done >= ticket:
                return
        await asyncio.to_thread(self.wait, ticket)

    async def flush_async(self) -> None:
        await asyncio.to_thread(self.flush)

    async def close_async(self) -> None:
        await asyncio.to_thread(self.close)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ----------------------------------------------------------------- internals
    def _as_rows(self, rows) -> list:
        """The rows as a new list of sequences in column order (the caller may reuse its list)."""
        rows = list(rows)
        # fast path, C loops only: every row a list/tuple of the right length
        if rows and set(map(type, rows)) <= _SEQ_TYPES and set(map(len, rows)) == {len(self.columns)}:
            return rows
        return [self._as_row(r) for r in rows]

    def _as_row(self, r):
        if isinstance(r, Mapping):
            return [r.get(c) for c in self.columns]
        if len(r) != len(self.columns):
            raise ValueError(f"row has {len(r)} values, table {self.table} sink expects {len(self.columns)}")
        return r

    def _check_usable(self):
        if self._error is not None:
            raise self._error
        if self._closing:
            raise SinkClosed(f"sink {self.name} is closed")

    def _append_locked(self, rows) -> int:
        if not rows:
            return 0
        if self._oldest is None:
            self._oldest = time.monotonic()
        self._buf.append(rows)
        self._buf_rows += len(rows)
        self._seq_in += len(rows)
        self.stats.rows_accepted += len(rows)
        if self._buf_rows >= self.max_rows:
            self._cv.notify_all()
        return len(rows)

    def _next_batch(self):
        """Wait for a batch to be due; return it (or None when closing and empty)."""
        with self._cv:
            while True:
                n = self._buf_rows
                if n == 0 and self._closing:
                    return None
                if n:
                    now = time.monotonic()
                    age = now - (self._oldest or now)
                    due = (n >= self.max_rows or age >= self.max_seconds or self._closing
                           or self._flush_target > self._seq_done)
                    if due and n < self.max_rows and not self._closing:
                        # at most one insert per interval (unless max_rows are waiting); the
                        # interval grows with the rows arriving (insert_interval)
                        since = now - self._last_insert
                        interval = insert_interval(arrival_rate(n, since, self.min_interval_s), self.min_interval_s,
                                                   self.busy_interval_s, self.busy_rows_per_s)
                        rest = interval - since
                        if rest > 0:
                            self._cv.wait(rest)
                            continue
                    if due:
                        batch = self._take_locked(min(n, self.max_rows))
                        self._inflight = len(batch)
                        self._last_insert = now
                        self._oldest = time.monotonic() if self._buf_rows else None
                        return batch
                    self._cv.wait(self.max_seconds - age)
                else:
                    self._cv.wait(1.0)

    def _take_locked(self, k: int) -> list:
        """The first ``k`` buffered rows, in order, as one list."""
        buf = self._buf
        batch = buf.popleft()
        if len(batch) > k:
            buf.appendleft(batch[k:])
            del batch[k:]
        while len(batch) < k:
            chunk = buf.popleft()
            need = k - len(batch)
            if len(chunk) > need:
                buf.appendleft(chunk[need:])
                batch += chunk[:need]
            else:
                batch += chunk
        self._buf_rows -= k
        return batch

    def _run(self):
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                refused = self._write_batch(batch)
            except SinkError as e:
                with self._cv:
                    # keep the rows: put them back in front, in order; callers see the error
                    self._buf.appendleft(batch)
                    self._buf_rows += len(batch)
                    self._inflight = 0
                    self._error = e
                    self._cv.notify_all()
                return
            with self._cv:
                # refused rows are done too: handed to on_refused, which made them durable
                self._inflight = 0
                self._seq_done += len(batch)
                self.stats.rows_written += len(batch) - refused
                self.stats.rows_refused += refused
                self.stats.batches += 1
                self._cv.notify_all()

    def _token(self, key_columns: dict[int, list], n_rows: int) -> str | None:
        """Deterministic id of the batch (its key columns, in order): the same batch retried
        gets the same token. Hashed column by column with C joins, no per-row Python."""
        if self.key_idx is None:
            return None
        h = hashlib.blake2b(digest_size=16)
        h.update(self.table.encode())
        for i in self.key_idx:
            col = key_columns[i]
            try:
                text = "\x1f".join(col)                 # str keys: no per-value call
            except TypeError:
                text = "\x1f".join(map(str, col))
            h.update(b"\x1e")
            h.update(text.encode("utf-8", "surrogatepass"))
        return f"{self.name}:{n_rows}:{h.hexdigest()}"

    def _drop_client(self):
        c, self._client, self._encoder = self._client, None, None
        if c is not None:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing a broken client
                pass

    def _connect(self):
        client = self.client_factory()
        self.stats.reconnects += 1
        # the table's column types from the server (DESCRIBE), as clickhouse-connect's insert() gets them
        ctx = client.create_insert_context(self.table, self.columns)
        lc_as_string = client.min_version(_NATIVE_CONVERSION_SINCE)
        compression = client.write_compression if self.compression is None else self.compression
        settings = dict(self.insert_settings)
        if lc_as_string:
            settings.setdefault("input_format_native_allow_types_conversion", 1)
        # the INSERT statement goes at the head of the (compressed) body, not in the URL:
        # urllib3 re-encodes a URL character by character in Python (~0.4 ms per insert)
        self._insert_query = (f"INSERT INTO {ctx.table} ({', '.join(quote_identifier(c) for c in self.columns)}) "
                              "FORMAT Native\n").encode()
        self._compression = compression if isinstance(compression, str) and compression else None
        self._settings = settings
        self._encoder = _BatchEncoder(ctx, lc_as_string=lc_as_string)
        self._client = client

    def _insert_once(self, batch: list, prepared: dict):
        """Insert a batch as one Native block. ``prepared`` keeps the encoded (and compressed)
        block and the deduplication token for the retries."""
        if self._client is None:
            self._connect()
        if prepared.get("encoder") is not self._encoder:   # first attempt, or reconnected
            keys: dict = dict.fromkeys(self.key_idx or ())
            body: bytes | bytearray
            try:
                assert self._encoder is not None     # set by _connect
                body = self._encoder.block(batch, keys, prefix=self._insert_query)
            except _ENCODING_ERRORS as e:
                # a value the column type cannot take (wrong type, out of range, too long):
                # refused by the client instead of the server, the same for the batch
                raise RowEncodingError(f"{type(e).__name__}: {e}") from e
            prepared.setdefault("token", self._token(keys, len(batch)))
            if self._compression:
                compressor = get_compressor(self._compression)
                body = compressor.compress_block(body) + (compressor.flush() or b"")
            prepared.update(encoder=self._encoder, body=body, compression=self._compression)
        settings = self._settings
        if prepared["token"]:
            settings = {**settings, "insert_deduplication_token": prepared["token"]}
        assert self._client is not None
        return self._client.raw_insert(None, None, prepared["body"], settings=settings,
                                       compression=prepared["compression"])

    def _check_written(self, summary, n_rows: int, attempt: int) -> None:
        written = getattr(summary, "written_rows", None)
        if not isinstance(written, int) or written >= n_rows:
            return
        self.stats.rows_reported_unwritten += n_rows - written
        log.warning("sink %s: ClickHouse acknowledged %d rows but reports %d written (%s)", self.name, n_rows,
                    written, "a retry, probably deduplicated" if attempt else "first attempt")

    # ------------------------------------------------------------ poison rows
    def _write_batch(self, batch: list) -> int:
        """Insert ``batch``; return how many of its rows were refused (and handed to
        ``on_refused``). Raises ``SinkError`` as ``_insert_with_retry`` does."""
        if self.on_refused is None:
            self._insert_with_retry(batch)
            return 0
        try:
            self._insert_with_retry(batch, split=True)
        except _Refused as first:
            return self._split(batch, first)
        self._refused_streak = (None, 0)
        return 0

    def _try(self, rows: list) -> _Refused | None:
        """One split step: insert ``rows`` (transient failures retried as ever); the
        refusal, or None when they landed."""
        self._split_inserts += 1
        try:
            self._insert_with_retry(rows, split=True)
        except _Refused as r:
            return r
        return None

    def _isolate(self, idx: list[int], batch: list, refusal: _Refused, refused: dict[int, _Refused]) -> None:
        """``batch[i] for i in idx`` was refused (``refusal``): find its refused rows."""
        if len(idx) == 1:
            refused[idx[0]] = refusal
            return
        mid = len(idx) // 2
        for part in (idx[:mid], idx[mid:]):
            r = self._try([batch[i] for i in part])
            if r is not None:
                self._isolate(part, batch, r, refused)

    def _split(self, batch: list, first: _Refused) -> int:
        """Split a refused batch until its refused rows are isolated (see the class
        docstring); hand them to ``on_refused``; return their number. A deployment error
        (every row refused alike) is handled as before instead: ``SinkError``."""
        t0 = time.monotonic()
        self._split_inserts = 1               # the batch's own insert, refused
        n = len(batch)
        refused: dict[int, _Refused] = {}     # batch index -> its refusal
        if n == 1:
            refused[0] = first
        else:
            mid = n // 2
            halves = [list(range(mid)), list(range(mid, n))]
            results = [self._try([batch[i] for i in part]) for part in halves]
            if results[0] is not None and results[1] is not None and results[0].key == results[1].key == first.key and n >= 3:
                # Both halves refused alike: a bad row in each, or can no row land at all?
                # Three single rows tell (poison rows would all three have to be among the
                # probed by chance: about (k/n)**3).
                probed: dict[int, _Refused | None] = {}
                for i in sorted({0, mid, n - 1}):
                    h = int(i >= mid)
                    probed[i] = results[h] if len(halves[h]) == 1 else self._try([batch[i]])
                if all(r is not None and r.key == first.key for r in probed.values()):
                    return self._deployment_error(batch, first, "both halves and 3 single rows")
                refused.update((i, r) for i, r in probed.items() if r is not None)
                for part, r in zip(halves, results):
                    rest = [i for i in part if i not in probed]
                    if not rest:
                        continue
                    if any(i in refused for i in part):
                        r = self._try([batch[i] for i in rest])   # the refused row was probed: the rest may land
                        if r is None:
                            continue
                    if r is not None:
                        self._isolate(rest, batch, r, refused)    # else the rest holds the refused row
            else:
                for part, r in zip(halves, results):
                    if r is not None:
                        self._isolate(part, batch, r, refused)
        landed = n - len(refused)
        # deployment errors in batches too small to probe: 3 rows in a row refused alike
        # (across batches), none landing in between
        keys = {r.key for r in refused.values()}
        if landed or len(keys) != 1:
            self._refused_streak = (None, 0)
        else:
            (k,), (key, streak) = keys, self._refused_streak
            self._refused_streak = (k, (streak if key == k else 0) + n)
            if self._refused_streak[1] >= 3:
                return self._deployment_error(batch, first, f"{self._refused_streak[1]} rows in a row")
        inserts = self._split_inserts
        self.stats.split_batches += 1
        self.stats.split_inserts += inserts
        self.stats.last_split = (f"{n} rows: {landed} written, {len(refused)} refused, {inserts} inserts, "
                                 f"{time.monotonic() - t0:.2f}s")
        log.warning("sink %s: batch of %d rows refused (%s); split in %d inserts (%.2fs): %d rows written, %d refused "
                    "and handed to on_refused", self.name, n, first.message[:300], inserts, time.monotonic() - t0,
                    landed, len(refused))
        groups: dict[str, list] = {}
        for i in sorted(refused):
            groups.setdefault(refused[i].message, []).append(batch[i])
        for message, rows in groups.items():
            self._hand_over(rows, message)
        return len(refused)

    def _deployment_error(self, batch: list, first: _Refused, evidence: str) -> int:
        log.error("sink %s: every row of a batch of %d is refused alike (%s): %s. That is a deployment error "
                  "(table definition, constraint, column type), not poison data: nothing is dead-lettered; the batch "
                  "is retried, then the sink stops with SinkError and keeps its rows", self.name, len(batch),
                  evidence, first.message[:500])
        self._refused_streak = (None, 0)
        self._insert_with_retry(batch)       # as without on_refused: retries, then SinkError
        return 0                             # it landed after all (the deployment was fixed meanwhile)

    def _hand_over(self, rows: list, message: str) -> None:
        attempt = 0
        while True:
            try:
                assert self.on_refused is not None   # only called with a callback
                self.on_refused(rows, message)
                return
            except Exception:  # noqa: BLE001 - the rows are kept until the callback takes them
                log.exception("sink %s: on_refused failed for %d rows; calling it again", self.name, len(rows))
                time.sleep(min(self.retry_max_s, self.retry_initial_s * (2 ** min(attempt, 20)))
                           * random.uniform(0.5, 1.5))
                attempt += 1

    def _insert_with_retry(self, batch, *, split: bool = False):
        """Insert ``batch``, retrying as its failures are classified. ``split``: a REFUSED
        failure raises ``_Refused`` at once (the caller splits the batch) instead of being
        retried as FATAL."""
        prepared: dict = {}             # encoded on the first attempt, reused by the retries
        attempt = 0
        permanent = 0
        outage_start = None
        while True:
            t0 = time.monotonic()
            try:
                summary = self._insert_once(batch, prepared)
                took = time.monotonic() - t0
                self.stats.insert_s += took
                self.stats.insert_latency.observe(took)
                self._check_written(summary, len(batch), attempt)
                if outage_start is not None:
                    self.stats.outage_s += time.monotonic() - outage_start
                    log.warning("sink %s: ClickHouse reachable again after %.1fs, %d retries",
                                self.name, time.monotonic() - outage_start, attempt)
                return
            except Exception as e:  # noqa: BLE001 - classified below
                kind = classify(e)
                transient = kind == TRANSIENT
                msg = f"{type(e).__name__}: {str(e)[:300]}"
                self.stats.last_error, self.stats.last_error_at = msg, time.time()
                if kind == REFUSED and split:
                    # no retry, no reconnect: the same rows are refused the same way again
                    if outage_start is not None:
                        self.stats.outage_s += time.monotonic() - outage_start
                    raise _Refused(e) from e
                if kind == REFUSED and permanent == 0 and self.on_refused is None:
                    log.error("sink %s: ClickHouse refuses a batch of %d rows for its data (%s) and the sink has "
                              "no on_refused callback: retried, then the sink stops", self.name, len(batch), msg)
                self.stats.retries += 1
                if outage_start is None:
                    outage_start = t0
                    self.stats.outages += 1
                    log.warning("sink %s: insert of %d rows failed (%s); retrying", self.name, len(batch), msg)
                self._drop_client()
                if not transient:
                    permanent += 1
                    if permanent > self.max_permanent_retries:
                        self.stats.errors.append(msg)
                        raise SinkError(f"sink {self.name}: batch of {len(batch)} rows rejected: {msg}") from e
                delay = min(self.retry_max_s, self.retry_initial_s * (2 ** min(attempt, 20)))
                attempt += 1
                time.sleep(delay * random.uniform(0.5, 1.5))
