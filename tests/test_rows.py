"""Row builders of the sinks (sinks.rows), on decoded contract events."""
from __future__ import annotations

from datetime import date, datetime

from schemas.codec import decode_dossier
from sinks.rows import DOSSIER_EVENT_COLUMNS, dossier_event_row, dossier_event_row_of
from streams.core import compact, to_ms


def _ms(v):
    if isinstance(v, datetime):
        return to_ms(v)
    if isinstance(v, (list, tuple)):
        return [tuple(_ms(x) for x in s) for s in v]
    return v


def test_the_streams_event_row_is_the_models_row_in_milliseconds():
    """``dossier_event_row_of`` (from the compact event) gives ``dossier_event_row``'s values,
    every time as epoch milliseconds: on the simulator's feed, with supplement rounds,
    ingest times set and not, every channel and status."""
    from simulator import DOSSIER_TOPIC, SimConfig, generate
    cfg = SimConfig(start=date(2026, 4, 20), days=5, scale=0.1, seed=5, supplement_share=0.4)
    events = [decode_dossier(e.value) for e in generate(cfg) if e.topic == DOSSIER_TOPIC]
    events += [ev.model_copy(update={"ingest_time": ev.event_time.replace(microsecond=456_000)})
               for ev in events[:50]]
    seen = set()
    for i, ev in enumerate(events):
        want = [_ms(v) for v in dossier_event_row(ev, "t", i % 4, i)]
        got = dossier_event_row_of(compact(ev), ev, "t", i % 4, i)
        assert len(got) == len(DOSSIER_EVENT_COLUMNS)
        assert got == want, [(c, g, w) for c, g, w in zip(DOSSIER_EVENT_COLUMNS, got, want) if g != w]
        seen.add((bool(ev.supplements), ev.ingest_time is not None, int(ev.status)))
    assert {s for s, _, _ in seen} == {True, False} and {g for _, g, _ in seen} == {True, False}
    assert len({st for _, _, st in seen}) >= 6
