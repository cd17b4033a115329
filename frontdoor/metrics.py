"""The front doors' figures for Prometheus: ``GET /metrics`` on the API.

``ApiMetrics`` counts every response by route, method and status code, and times every
request, in an ASGI middleware: every answer counts, the ones the endpoints build (201,
409, 422, 429, 503...) and the ones the framework builds (404 for an unknown path, 405,
500 from an exception). The route label is the route's template (``/v1/ratings``), never
the raw path, and ``unmatched`` for a path no route has, so a scan of random URLs cannot
grow the series. One ``CollectorRegistry`` per app (not prometheus_client's global one:
tests build several apps in one process).

Behind the province's reverse proxy ``/metrics`` is for the monitoring network only
(deploy/production/README.md).
"""
from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from starlette.responses import Response

UNMATCHED = "unmatched"
# a client can send any token as the method: others are counted as "other"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds: a rating is answered once Kafka acknowledged it (acks=all, a few ms on a healthy
# cluster); a sync of 1,000 dossiers takes longer; 503s come after the producer's timeout.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.responses = Counter("motcua_pulse_api_responses", "API responses by route template, method and status.",
                                 ["route", "method", "status"], registry=self.registry)
        self.duration = Histogram("motcua_pulse_api_request_duration_seconds",
                                  "Time from a request's arrival to its response's start, by route and method.",
                                  ["route", "method"], buckets=BUCKETS, registry=self.registry)
        ProcessCollector(registry=self.registry)

    def response(self) -> Response:
        # the text format 0.0.4 every Prometheus 2.x reads (Debian's is 2.42)
        return Response(generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


class CountResponses:
    """ASGI middleware counting each HTTP response of the app it wraps into ``metrics``
    (``app.add_middleware(CountResponses, metrics=...)``)."""

    def __init__(self, app: Any, metrics: ApiMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.monotonic()
        status = 500      # no response started (an exception): the server answers 500

        async def send_counted(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
        try:
            await self.app(scope, receive, send_counted)
        finally:
            # the router writes the matched route into the scope (Starlette's "route")
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope.get("method", "")
            method = method if method in METHODS else "other"
            self.metrics.responses.labels(route, method, str(status)).inc()
            self.metrics.duration.labels(route, method).observe(time.monotonic() - t0)
