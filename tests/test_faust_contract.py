"""The private parts of faust-streaming / mode that streams.faust_adapter relies on are
still there, with the shape relied on. A faust-streaming or mode upgrade that renames or
changes any of them fails here, not silently in production (input was lost twice in
this layer before it was fenced)."""
from __future__ import annotations

import importlib
import inspect

import pytest

from pulse.config import Settings
from streams import faust_adapter
from streams.app import faust_app


def _owner(path: str):
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return importlib.import_module(path)


@pytest.fixture(scope="module")
def consumer():
    app = faust_app(Settings())
    return app._new_consumer()


@pytest.mark.parametrize("owner,name", [(o, n) for o, names in faust_adapter.PRIVATE_NAMES.items() for n in names])
def test_every_private_name_the_adapter_uses_exists(owner, name, consumer):
    obj = _owner(owner)
    if owner.endswith("aiokafka.Consumer"):
        obj = consumer           # instance attributes (offset books) exist only on an instance
    if owner in ("faust.Table", "faust.stores.memory.Store"):
        # ``data``: the table's store and the memory store's dict (set in __init__)
        app = faust_app(Settings())
        table = app.Table("contract-check", default=None)
        obj = table if owner == "faust.Table" else table.data
    if owner == "faust.tables.recovery.Recovery":
        # the recovery service's books (set in __init__): ConsumerView.recovery reads them
        obj = faust_app(Settings()).tables.recovery
    assert hasattr(obj, name), f"{owner}.{name} is gone: streams.faust_adapter must be revisited"


def test_the_shapes_the_adapter_relies_on(consumer):
    from faust.transport.drivers import aiokafka as fa
    # the fetch loop it replaces, and the calls it makes inside it
    assert list(inspect.signature(fa.Consumer._drain_messages).parameters) == ["self", "fetcher"]
    assert list(inspect.signature(fa.Consumer._wait_next_records).parameters) == ["self", "timeout"]
    assert list(inspect.signature(fa.Consumer._to_message).parameters) == ["self", "tp", "record"]
    assert list(inspect.signature(fa.Consumer._add_gap).parameters) == ["self", "tp", "offset_from", "offset_to"]
    assert list(inspect.signature(fa.Consumer._commit).parameters) == ["self", "offsets"]
    # ack_many copies Consumer.ack's bookkeeping: its books are the types it updates
    assert isinstance(consumer._unacked_messages, (set, type(consumer._unacked_messages)))
    assert hasattr(consumer._unacked_messages, "discard") and hasattr(consumer._unacked_messages, "add")
    assert isinstance(consumer._n_acked, int)
    src = inspect.getsource(type(consumer).__mro__[2].ack) if hasattr(type(consumer).__mro__[2], "ack") else ""
    base_ack = inspect.getsource(importlib.import_module("faust.transport.consumer").Consumer.ack)
    for used in ("_committed_offset", "_acked_index", "_acked", "_unacked_messages", "_n_acked",
                 "_waiting_for_ack", "ack_lock", "acks_enabled_for"):
        assert used in base_ack or used in src, f"Consumer.ack no longer uses {used}: re-check ack_many"
    # the app builds its transport through _new_transport, whose Consumer class we swap
    app = faust_app(Settings())
    assert app._new_consumer().__class__ is faust_adapter.BatchingConsumer


def test_an_untested_version_is_refused_with_a_clear_message():
    faust_adapter.check_versions()       # the pinned ones pass
    with pytest.raises(faust_adapter.UntestedVersion, match=r"faust-streaming 0\.16\.0.*TESTED"):
        faust_adapter.check_versions({"faust-streaming": "0.16.0", "mode-streaming": "0.7.1", "aiokafka": "0.14.0"})
    with pytest.raises(faust_adapter.UntestedVersion, match="mode-streaming 0.8.0"):
        faust_adapter.check_versions({"faust-streaming": "0.15.3", "mode-streaming": "0.8.0", "aiokafka": "0.14.0"})


def test_recovery_progress_reads_the_recovery_books_with_their_shapes():
    """ConsumerView.recovery on a real app's Recovery service: idle at first, then what a
    recovery in progress looks like in Faust's own books (offsets read and highwaters per
    changelog partition, the start time): partitions, offsets done / total, percent, eta."""
    from time import monotonic

    from faust.types import TP
    app = faust_app(Settings())
    view = faust_adapter.ConsumerView(app)
    assert view.recovery() == {"active": False, "partitions": 0, "offsets_done": 0, "offsets_total": 0,
                               "percent": 100.0, "eta_s": None}
    rec = app.tables.recovery
    tps = [TP("x-changelog", 0), TP("x-changelog", 1)]
    rec._set_recovery_started()              # what Faust calls right before it reads the changelogs
    rec._recovery_started_at = monotonic() - 10.0
    rec.active_tps.update(tps)
    # (Counters: set, not update(), which adds)
    rec.active_offsets[tps[0]], rec.active_offsets[tps[1]] = -1, 99
    rec.active_highwaters[tps[0]], rec.active_highwaters[tps[1]] = 999, 1099
    first = view.recovery()
    assert first["active"] is True and first["partitions"] == 2 and first["offsets_done"] == 0, first
    assert first["offsets_total"] == 2000 and first["percent"] == 0.0, first
    rec.active_offsets[tps[0]], rec.active_offsets[tps[1]] = 499, 599   # half of each read
    half = view.recovery()
    assert (half["offsets_done"], half["offsets_total"], half["percent"]) == (1000, 2000, 50.0), half
    assert half["eta_s"] is not None and 9.0 <= half["eta_s"] <= 11.0, half     # as long again as so far
    rec.active_offsets[tps[0]], rec.active_offsets[tps[1]] = 999, 1099
    rec._set_recovery_ended()
    done = view.recovery()
    assert done["active"] is False and done["percent"] == 100.0 and done["offsets_done"] == 2000, done
    assert done["last_s"] is not None and done["last_s"] >= 0, done


def test_recovery_progress_counts_from_where_the_fetch_loop_began_reading():
    """A recovery read faster than the status page samples it (the bulk path reads a
    partition in tens of milliseconds) still reports the offsets it read: the fetch loop
    notes where each partition's reading began before it hands the first records on, so
    the first sample, taken after the end, counts from there and not from the end (CI
    once saw a finished recovery of 4 partitions reported as 0 offsets)."""
    from faust.types import TP
    app = faust_app(Settings())
    view = faust_adapter.ConsumerView(app)
    consumer = app._new_consumer()
    rec = app.tables.recovery
    tp = TP("x-changelog", 2)
    rec._set_recovery_started()
    rec.active_tps.add(tp)
    rec.active_offsets[tp], rec.active_highwaters[tp] = -1, 2587
    assert consumer._bulk_recovery(tp) is None         # not a table's changelog: Faust's own path
    rec.active_offsets[tp] = 2587                      # read to the end before any sample
    rec._set_recovery_ended()
    done = view.recovery()
    assert (done["offsets_done"], done["offsets_total"], done["percent"]) == (2588, 2588, 100.0), done
    # a new recovery starts its own count
    rec._set_recovery_started()
    rec.active_highwaters[tp] = 3000
    again = view.recovery()
    assert (again["offsets_done"], again["offsets_total"]) == (0, 413), again


def _changelog_records(topic: str, partition: int):
    """A changelog partition as aiokafka delivers it: several records per dossier (each the
    dossier's whole event set so far), tombstones of evicted dossiers, one re-created after
    its tombstone, in offset order."""
    import random

    import orjson
    from aiokafka.structs import ConsumerRecord
    rng = random.Random(7)
    held: dict[bytes, list] = {}
    out = []
    for offset in range(3000):
        key = f"H{rng.randrange(400):05d}".encode()
        if key in held and rng.random() < 0.15:
            value = None                       # evicted: a tombstone
            held.pop(key)
        else:
            held.setdefault(key, []).append([offset, rng.randrange(1, 11), f"u{offset % 7}", None, True])
            value = orjson.dumps(held[key])
        out.append(ConsumerRecord(topic=topic, partition=partition, offset=offset, timestamp=offset,
                                  timestamp_type=0, key=key, value=value, checksum=None,
                                  serialized_key_size=len(key), serialized_value_size=len(value or b""),
                                  headers=()))
    return out, held


def test_bulk_recovery_applies_a_changelog_as_fausts_own_recovery_does():
    """DurableTable.apply_recovered (the bulk recovery path) against Faust's own: the same
    changelog records decoded by the changelog topic into Events and applied with
    Table.apply_changelog_batch, in Faust's recovery buffer size. Same store dict, same key
    partitions, and both equal the dossiers held when the records were written."""
    import asyncio

    from faust.types import TP
    from streams.app import Pulse
    a, b = Pulse(Settings()).outputs.table, Pulse(Settings()).outputs.table
    topic = a.changelog_topic.get_topic_name()
    records, held = _changelog_records(topic, 3)
    # the bulk path, in fetches of uneven size (a key's records span fetches)
    for start, end in ((0, 700), (700, 701), (701, 2500), (2500, 3000)):
        assert a.apply_recovered(records[start:end]) <= end - start
    # Faust's: message -> Event through the changelog topic, then apply_changelog_batch
    consumer = b.app._new_consumer()

    async def faust_recovery():
        events = [await b.changelog_topic.decode(consumer._to_message(TP(topic, 3), r)) for r in records]
        for i in range(0, len(events), b.recovery_buffer_size):
            b.apply_changelog_batch(events[i:i + b.recovery_buffer_size])
    asyncio.run(faust_recovery())
    want = {k: v for k, v in held.items()}
    assert a.data.data == b.data.data == want
    assert a.data._key_partition == {k: 3 for k in want}
    assert b.data._key_partition == a.data._key_partition
