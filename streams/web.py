"""The worker's own pages: ``/pulse/status/`` (readiness, counters) and ``/pulse/debug/``
(where every task of this package is suspended: diagnosing stalls)."""
from __future__ import annotations

import asyncio

from faust.web import Request, Response, View

from streams.watchdog import await_chain, flow_state


def register(app, pulse) -> None:
    """Add the pages to the Faust app; ``pulse`` is the streams.app.Pulse they report on."""

    @app.page("/pulse/status/")
    class PulseStatus(View):
        """Readiness and counters: ``ready`` once partitions are assigned and tables
        recovered and the deadline index is rebuilt for the current generation; ``gx``: the
        data-quality child's start-up ('starting', 'ready', 'off', 'failed'), which the
        stream does not wait for."""

        async def get(self, request: Request) -> Response:
            rt = pulse.runtime
            body = {"ready": pulse.ready(), "gx": rt.quality.state() if rt else "starting",
                    "generation": app.consumer_generation_id,
                    "assigned": sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment()),
                    "metrics": rt.metrics.as_dict() if rt else {}, "flow": flow_state(pulse.view)}
            return self.json(body)

    @app.page("/pulse/debug/")
    class PulseDebug(View):
        """Where every asyncio task of the worker's own code is suspended."""

        async def get(self, request: Request) -> Response:
            tasks = {}
            for t in asyncio.all_tasks():
                chain = await_chain(t.get_coro())
                if any("streams/" in c for c in chain):
                    tasks[t.get_name()] = chain
            return self.json({"flow": flow_state(pulse.view), "tasks": tasks})
