"""In-memory stand-ins for the worker's outputs (sinks, table, topics) and a Runtime built
on them: the batch path runs through the real checker, rules and row builders without a
broker or ClickHouse (unit tests, bench_pipeline --profile-batch-path). Kafka and
ClickHouse behaviour is tested on the real components in tests/integration/."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, fields

from pulse.config import Settings
from schemas.reference import load_reference
from streams.core import DossierLogic
from streams.runtime import Outputs, Runtime, Sinks


@dataclass(eq=False)   # hashable by identity, like Faust's messages (tracked in a WeakSet)
class Msg:
    topic: str
    partition: int
    offset: int
    value: bytes
    timestamp: float


class FakeSink:
    def __init__(self):
        self.rows = []

    async def write_async(self, rows, wait=False):
        self.rows.extend(rows)
        return len(self.rows)

    async def wait_async(self, ticket):
        return None


class FakeTopic:
    def __init__(self):
        self.sent = []

    async def send(self, key=None, value=None):
        self.sent.append((key, value))
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)          # the broker's ack
        return fut


class FakeTable(dict):
    """The dossier table: every put is a changelog send, confirmed at once unless ``hold``."""

    def __init__(self):
        super().__init__()
        self.hold = False
        self.sends = []

    def reader(self):
        return self.get

    async def put_many(self, items):
        futs = []
        for key, value, _partition in items:
            self[key] = value
            fut = asyncio.get_running_loop().create_future()
            if not self.hold:
                fut.set_result(None)
            futs.append(fut)
        self.sends += futs
        return futs

    def snapshot(self):
        return list(self.items())

    async def evict_many(self, items):
        self.tombstones = getattr(self, "tombstones", []) + [(k, p) for k, p in items if k in self]
        for key, _partition in items:
            self.pop(key, None)
        fut = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return [fut]


def make_runtime(settings=None, reference=None) -> Runtime:
    """The worker's Runtime with in-memory sinks, table and topics (no ClickHouse, no broker)."""
    from expectations.checks import Checker
    settings = settings or Settings()
    ref = reference or load_reference()
    outputs = Outputs(table=FakeTable(), dead_letters=FakeTopic(), alerts=FakeTopic(), dossier_state=FakeTopic())
    sinks = Sinks(*(FakeSink() for _ in fields(Sinks)))
    return Runtime(settings, outputs, sinks, checker=Checker.from_suites(ref, settings),
                   logic=DossierLogic.from_settings(settings, reference=ref), reference=ref, worker_name="test")


