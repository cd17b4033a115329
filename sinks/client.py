"""The one way to reach ClickHouse: a clickhouse-connect HTTP client built from settings.

``settings.clickhouse_url`` is ``http(s)://user:password@host:port/database``. Locally it
points at the chDB endpoint (deploy/local/chdb_endpoint.py); in production at a real
server or a cluster's load balancer (port 8123/8443). The database in the URL is created
by ``sinks.migrate`` if missing, so ``get_client`` can also connect without it
(``database=""``: the server's default database).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

DEFAULT_DATABASE = "motcua"
CONNECT_TIMEOUT_S = 5
SEND_RECEIVE_TIMEOUT_S = 120


@dataclass(frozen=True)
class ClickHouseURL:
    scheme: str
    host: str
    port: int
    username: str
    password: str
    database: str

    @property
    def secure(self) -> bool:
        return self.scheme == "https"

    def redacted(self) -> str:
        return f"{self.scheme}://{self.username}:***@{self.host}:{self.port}/{self.database}"


def parse_clickhouse_url(url: str) -> ClickHouseURL:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"CLICKHOUSE_URL must be http(s)://user:password@host:port/database, got scheme {parts.scheme!r}")
    if not parts.hostname:
        raise ValueError("CLICKHOUSE_URL has no host")
    database = parts.path.strip("/") or DEFAULT_DATABASE
    return ClickHouseURL(
        scheme=parts.scheme,
        host=parts.hostname,
        port=parts.port or (8443 if parts.scheme == "https" else 8123),
        username=unquote(parts.username or "default"),
        password=unquote(parts.password or ""),
        database=database,
    )


def get_client(settings, database: str | None = None, **overrides) -> Client:
    """A clickhouse-connect HTTP client for ``settings.clickhouse_url``.

    ``database=None`` uses the URL's database (``motcua``); ``database=""`` connects to the
    server's default database (used by migrations before ``motcua`` exists).
    Inserts and results are LZ4-compressed; short connect timeout so an outage is noticed
    fast (the sink retries), generous send/receive timeout for big inserts and board queries.
    clickhouse-connect's own query retries are kept at 0: ``ClickHouseSink`` owns retries.
    """
    u = parse_clickhouse_url(settings.clickhouse_url)
    db = u.database if database is None else database
    kwargs: dict[str, Any] = dict(
        host=u.host,
        port=u.port,
        username=u.username,
        password=u.password,
        database=db or None,
        secure=u.secure,
        interface=u.scheme,
        compress="lz4",
        connect_timeout=CONNECT_TIMEOUT_S,
        send_receive_timeout=SEND_RECEIVE_TIMEOUT_S,
        query_retries=0,
        client_name="motcua-pulse",
        autogenerate_session_id=False,
    )
    kwargs.update(overrides)
    return clickhouse_connect.get_client(**kwargs)


def database_of(settings) -> str:
    return parse_clickhouse_url(settings.clickhouse_url).database
