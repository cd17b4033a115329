"""Batched, idempotent, outage-proof writes to ClickHouse.

``ClickHouseSink`` buffers rows and inserts them in batches (``max_rows`` or
``max_seconds``, whichever comes first) from one background thread that owns the
clickhouse-connect client. While ClickHouse is unreachable it retries the same batch
forever with exponential backoff and jitter; it never drops a row. The buffer is bounded
(``max_buffer_rows``): when it is full, ``write()`` blocks (``write_async()`` awaits)
until the flusher makes room. That is the backpressure the stream needs: a Faust agent
that awaits the sink stops consuming, so Kafka offsets are not committed for rows that
are not yet in ClickHouse.

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
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from clickhouse_connect.driver.exceptions import (DatabaseError, DataError, NotSupportedError, OperationalError,
                                                  ProgrammingError)

log = logging.getLogger("motcua.sinks.writer")

# ClickHouse error codes worth retrying (server busy / temporarily unable), beside any
# connection-level failure.
TRANSIENT_CODES = {
    3,    # UNEXPECTED_END_OF_FILE
    159,  # TIMEOUT_EXCEEDED
    164,  # READONLY (replica temporarily read-only)
    202,  # TOO_MANY_SIMULTANEOUS_QUERIES
    209,  # SOCKET_TIMEOUT
    210,  # NETWORK_ERROR
    241,  # MEMORY_LIMIT_EXCEEDED
    242,  # TABLE_IS_READ_ONLY
    252,  # TOO_MANY_PARTS
    285,  # TOO_FEW_LIVE_REPLICAS
    319,  # UNKNOWN_STATUS_OF_INSERT
    425,  # SYSTEM_ERROR
    999,  # KEEPER_EXCEPTION
}
_CODE_RE = re.compile(r"Code: (\d+)")


class SinkError(RuntimeError):
    """A batch cannot be written (not a transient outage); rows remain in the sink."""


class SinkClosed(RuntimeError):
    pass


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (DataError, ProgrammingError, NotSupportedError, TypeError, ValueError)):
        return False  # the rows themselves cannot be serialised / are refused by the client
    if isinstance(exc, (OperationalError, ConnectionError, TimeoutError, OSError)):
        return True
    if isinstance(exc, DatabaseError):
        m = _CODE_RE.search(str(exc))
        if not m:
            return True  # no ClickHouse code: proxy / endpoint / HTTP-level failure
        return int(m.group(1)) in TRANSIENT_CODES
    return False


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
    errors: list[str] = field(default_factory=list)


class ClickHouseSink:
    """Bounded, batched, retrying writer for one table.

    ``client_factory``: zero-argument callable returning a clickhouse-connect client
    (e.g. ``lambda: get_client(settings)``); called again after connection failures.
    ``columns``: column order of the rows. Rows may be sequences in that order or mappings.
    ``key_columns``: columns identifying a row (dedup key); used for the insert
    deduplication token. ``None`` disables the token.
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
        name: str | None = None,
    ) -> None:
        if max_rows <= 0 or max_buffer_rows < max_rows:
            raise ValueError("need 0 < max_rows <= max_buffer_rows")
        self.client_factory = client_factory
        self.table = table
        self.columns = list(columns)
        self.key_idx = [self.columns.index(c) for c in key_columns] if key_columns else None
        self.max_rows = max_rows
        self.max_seconds = max_seconds
        self.max_buffer_rows = max_buffer_rows
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.max_permanent_retries = max_permanent_retries
        self.insert_settings = dict(insert_settings or {})
        self.name = name or table
        self.stats = SinkStats()

        self._cv = threading.Condition()
        self._buf: deque = deque()
        self._inflight = 0
        self._seq_in = 0          # rows accepted so far
        self._seq_done = 0        # rows durably written so far (in order)
        self._flush_target = 0
        self._oldest: float | None = None
        self._closing = False
        self._error: SinkError | None = None
        self._client = None
        self._ctx = None
        self._thread = threading.Thread(target=self._run, name=f"ch-sink-{self.name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ sync API
    def write(self, rows: Iterable[Sequence[Any] | Mapping[str, Any]], *, wait: bool = False,
              timeout: float | None = None) -> int:
        """Buffer rows (blocking while the buffer is full); return a ticket for ``wait``."""
        rows = [self._as_row(r) for r in rows]
        deadline = None if timeout is None else time.monotonic() + timeout
        i = 0
        with self._cv:
            while i < len(rows):
                self._check_usable()
                room = self.max_buffer_rows - len(self._buf) - self._inflight
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
        rows = [self._as_row(r) for r in rows]
        with self._cv:
            self._check_usable()
            room = self.max_buffer_rows - len(self._buf) - self._inflight
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
        self._buf.extend(rows)
        self._seq_in += len(rows)
        self.stats.rows_accepted += len(rows)
        if len(self._buf) >= self.max_rows:
            self._cv.notify_all()
        return len(rows)

    def _next_batch(self):
        """Wait for a batch to be due; return it (or None when closing and empty)."""
        with self._cv:
            while True:
                n = len(self._buf)
                if n == 0 and self._closing:
                    return None
                if n:
                    age = time.monotonic() - (self._oldest or time.monotonic())
                    due = (n >= self.max_rows or age >= self.max_seconds or self._closing
                           or self._flush_target > self._seq_done)
                    if due:
                        k = min(n, self.max_rows)
                        batch = [self._buf.popleft() for _ in range(k)]
                        self._inflight = k
                        self._oldest = time.monotonic() if self._buf else None
                        return batch
                    self._cv.wait(self.max_seconds - age)
                else:
                    self._cv.wait(1.0)

    def _run(self):
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._insert_with_retry(batch)
            except SinkError as e:
                with self._cv:
                    # keep the rows: put them back in front, in order; callers see the error
                    self._buf.extendleft(reversed(batch))
                    self._inflight = 0
                    self._error = e
                    self._cv.notify_all()
                return
            with self._cv:
                self._inflight = 0
                self._seq_done += len(batch)
                self.stats.rows_written += len(batch)
                self.stats.batches += 1
                self._cv.notify_all()

    def _token(self, batch) -> str | None:
        if self.key_idx is None:
            return None
        h = hashlib.blake2b(digest_size=16)
        h.update(self.table.encode())
        for row in batch:
            for i in self.key_idx:
                h.update(str(row[i]).encode("utf-8", "surrogatepass"))
                h.update(b"\x1f")
            h.update(b"\x1e")
        return f"{self.name}:{len(batch)}:{h.hexdigest()}"

    def _drop_client(self):
        c, self._client, self._ctx = self._client, None, None
        if c is not None:
            try:
                c.close()
            except Exception:  # noqa: BLE001 - closing a broken client
                pass

    def _insert_once(self, batch, token):
        if self._client is None:
            self._client = self.client_factory()
            self.stats.reconnects += 1
            self._ctx = self._client.create_insert_context(self.table, self.columns)
        ctx = self._ctx
        settings = dict(self.insert_settings)
        if token:
            settings["insert_deduplication_token"] = token
        ctx.settings = {**(ctx.settings or {}), **settings}
        ctx.data = batch
        try:
            self._client.insert(context=ctx)
        finally:
            ctx.data = None

    def _insert_with_retry(self, batch):
        token = self._token(batch)
        attempt = 0
        permanent = 0
        outage_start = None
        while True:
            t0 = time.monotonic()
            try:
                self._insert_once(batch, token)
                self.stats.insert_s += time.monotonic() - t0
                if outage_start is not None:
                    self.stats.outage_s += time.monotonic() - outage_start
                    log.warning("sink %s: ClickHouse reachable again after %.1fs, %d retries",
                                self.name, time.monotonic() - outage_start, attempt)
                return
            except Exception as e:  # noqa: BLE001 - classified below
                transient = is_transient(e)
                msg = f"{type(e).__name__}: {str(e)[:300]}"
                self.stats.last_error, self.stats.last_error_at = msg, time.time()
                self.stats.retries += 1
                if outage_start is None:
                    outage_start = t0
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
