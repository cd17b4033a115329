"""The worker's own pages: ``/pulse/status/`` (readiness, counters), ``/pulse/debug/``
(where every task of this package is suspended: diagnosing stalls) and ``/metrics`` (the
same figures for Prometheus: streams.prometheus)."""
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
                    "metrics": rt.metrics.as_dict() if rt else {}, "flow": flow_state(pulse.view),
                    # changelog recovery of the table (a restarted worker's wait before it processes)
                    "recovery": pulse.view.recovery()}
            return self.json(body)

    @app.page("/pulse/state/")
    class PulseState(View):
        """What the dossier table holds now (one pass over it: not for frequent polling):
        ``dossiers_held``, ``dossiers_open`` (newest event not a closing status), and the
        process's memory (``rss_mib`` now, ``peak_rss_mib`` since start) from /proc."""

        async def get(self, request: Request) -> Response:
            from rules.lifecycle import CLOSED, ROW_STATUS
            held = pulse.outputs.table.snapshot()
            open_ = sum(1 for _k, events in held if events and events[-1][ROW_STATUS] not in CLOSED)
            body = {"dossiers_held": len(held), "dossiers_open": open_, **_memory_mib()}
            del held
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

    from prometheus_client import generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

    from streams.prometheus import registry
    metrics_registry = registry(pulse)   # one per worker (streams.prometheus)

    @app.page("/metrics")
    class PrometheusMetrics(View):
        """The worker's figures in the Prometheus text format (streams.prometheus)."""

        async def get(self, request: Request) -> Response:
            # the text format 0.0.4 every Prometheus 2.x reads (Debian's is 2.42); set as a
            # header: aiohttp refuses a charset in content_type=
            return self.bytes(generate_latest(metrics_registry), headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})


def _memory_mib() -> dict:
    """This process's resident memory now and its peak (VmRSS, VmHWM of /proc/self/status)."""
    out = {}
    try:
        for line in open("/proc/self/status"):
            if line.startswith(("VmRSS:", "VmHWM:")):
                key = "rss_mib" if line.startswith("VmRSS") else "peak_rss_mib"
                out[key] = round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return out
