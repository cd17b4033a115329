"""Simulator: mixes within tolerance, determinism, anomalies do what they claim, events pass their contracts."""
from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta

import pytest

from rules.calendar import VIETNAM_TZ, default_calendar
from schemas.codec import decode_dossier, decode_rating
from schemas.errors import ContractError
from simulator import DOSSIER_TOPIC, RATING_TOPIC, Anomaly, SimConfig, Summary, generate
from simulator.__main__ import main as cli_main

START = date(2026, 11, 2)  # a Monday


def run(**kw):
    cfg = SimConfig(**{"start": START, "days": 10, "scale": 0.5, "seed": 7, **kw})
    summary = Summary()
    return cfg, list(generate(cfg, summary)), summary


@pytest.fixture(scope="module")
def baseline():
    return run()


def decode(ev):
    return (decode_dossier if ev.topic == DOSSIER_TOPIC else decode_rating)(ev.value)


def test_every_event_passes_its_contract_and_is_in_time_order(baseline):
    cfg, events, _ = baseline
    assert len(events) > 10_000
    ids = set()
    for prev, ev in zip([None] + events, events):
        model = decode(ev)
        assert model.event_time == ev.event_time
        ids.add(ev.id)
        if prev is not None:
            assert prev.event_time <= ev.event_time
        assert ev.event_time < cfg.end
    assert len(ids) == len(events)  # unique deterministic ids


def test_volume_and_channel_mix(baseline):
    cfg, events, s = baseline
    # 240k/year * 0.5 / 250 working days ~ 480 a working day; 8 working days + 1 weekend
    assert 0.85 * 8 * 480 < s.dossiers < 1.15 * 8 * 480 + 200
    shares = s.shares(s.channels)
    assert shares[2] == pytest.approx(cfg.online_share, abs=0.025)
    assert shares[3] == pytest.approx(cfg.postal_share, abs=0.01)
    # communes take most dossiers
    units = Counter(ev.unit_code for ev in events if ev.topic == DOSSIER_TOPIC and ev.id.endswith(":01-2")
                    or ev.id.endswith(":02-2"))
    commune = sum(v for k, v in units.items() if k.endswith(".50.H24"))
    assert commune / sum(units.values()) == pytest.approx(cfg.commune_share, abs=0.03)


def test_judgement_supplement_and_closing_mix(baseline):
    cfg, events, s = baseline
    planned = s.as_dict()["planned_shares"]
    assert planned["late"] == pytest.approx(cfg.late_share, abs=0.008)
    assert planned["early"] + planned["on_time"] > 0.97
    rounds = s.supplements
    with_round = (rounds[1] + rounds[2]) / s.dossiers
    assert with_round == pytest.approx(cfg.supplement_share, abs=0.015)
    assert rounds[2] <= rounds[1] * 0.25
    closed = sum(s.planned[k] for k in ("not_accepted", "withdrawn", "stopped")) / s.dossiers
    assert closed == pytest.approx(cfg.not_accepted_share + cfg.withdrawn_share + cfg.stopped_share, abs=0.006)
    # units really differ: late shares per unit spread out
    per_unit = defaultdict(Counter)
    for ev in events:
        if ev.judgement in ("early", "on_time", "late"):
            per_unit[ev.unit_code][ev.judgement] += 1
    busy = [c["late"] / sum(c.values()) for c in per_unit.values() if sum(c.values()) >= 60]
    assert max(busy) > 2 * min(busy) + 0.005


def test_ratings_mix(baseline):
    cfg, events, s = baseline
    ratings = [decode(ev) for ev in events if ev.topic == RATING_TOPIC]
    assert len(ratings) > 300
    satisfied = sum(r.level >= 4 for r in ratings) / len(ratings)
    assert 0.85 <= satisfied <= 0.96
    three = [r for r in ratings if r.scale == 3]
    assert three and all(r.level in (2, 3, 4) for r in three)
    assert 0.2 < sum(bool(r.criteria) for r in ratings) / len(ratings) < 0.6


def test_lifecycles_are_plausible(baseline):
    _, events, _ = baseline
    cal = default_calendar()
    by_dossier = defaultdict(list)
    for ev in events:
        if ev.topic == DOSSIER_TOPIC:
            by_dossier[ev.key].append(decode(ev))
    for evs in list(by_dossier.values())[:3000]:
        statuses = [e.status for e in evs]
        assert statuses[0] in (1, 2, 3), statuses  # 3: refused at the counter on reception
        if 9 in statuses and 10 in statuses:
            assert statuses.index(9) < statuses.index(10)
        for e in evs:
            if e.promised_at and e.received_at and not e.supplements:
                # NgayHenTra = received + the procedure's legal working days
                from schemas.reference import load_reference
                legal = load_reference().procedures[e.procedure_code].legal_working_days
                assert cal.working_days_between(e.received_at, e.promised_at) == pytest.approx(legal, abs=1e-3)
        fives = [e for e in evs if e.status == 5]
        for e in fives:
            assert e.supplements and e.supplements[-1].resumed_at is None


def test_deterministic_by_seed():
    a = [(e.key, e.value) for e in generate(SimConfig(start=START, days=3, scale=0.1, seed=3))]
    b = [(e.key, e.value) for e in generate(SimConfig(start=START, days=3, scale=0.1, seed=3))]
    c = [(e.key, e.value) for e in generate(SimConfig(start=START, days=3, scale=0.1, seed=4))]
    assert a == b
    assert a != c


def test_malformed_events_fail_with_the_named_reason():
    _, events, s = run(days=3, anomalies=(Anomaly.parse("malformed:0.05"),))
    bad = [e for e in events if e.anomaly and e.anomaly.startswith("malformed:")]
    assert len(bad) == pytest.approx(0.05 * len(events), rel=0.25)
    assert len({e.anomaly for e in bad}) >= 5
    for ev in bad:
        with pytest.raises(ContractError) as exc:
            decode(ev)
        assert exc.value.reason_code == ev.anomaly.split(":")[1]
    for ev in events:
        if not ev.anomaly:
            decode(ev)


def test_duplicates_repeat_ids_and_bytes():
    _, events, _ = run(days=3, anomalies=(Anomaly.parse("duplicates:0.02"),))
    dups = [e for e in events if e.anomaly == "duplicate"]
    assert len(dups) == pytest.approx(0.02 * len(events), rel=0.3)
    first = {}
    for i, e in enumerate(events):
        if e.anomaly != "duplicate":
            first[e.id] = (i, e.value)
    for i, d in enumerate(events):
        if d.anomaly == "duplicate":
            j, value = first[d.id]
            assert value == d.value and 0 < i - j <= 21
    assert len(Counter(e.id for e in events)) == len(events) - len(dups)


def test_out_of_order_swaps_same_key_events():
    _, events, _ = run(days=3, anomalies=(Anomaly.parse("out_of_order:0.02"),))
    moved = [i for i, e in enumerate(events) if e.anomaly == "out_of_order"]
    assert len(moved) > 20
    for i in moved:
        ev = events[i]
        later_same_key = [e for e in events[i + 1:i + 401] if e.key == ev.key and e.topic == ev.topic]
        assert any(e.event_time < ev.event_time for e in later_same_key)


def test_unit_falling_behind_and_kiosk_silent(baseline):
    _, base_events, _ = baseline
    unit = "000.01.50.H24"   # Phường Bắc Giang: busy, mostly same-day procedures
    kiosk = "KIOSK-000.00.01.H24-1"  # Sở Tư pháp's kiosk
    cfg, events, _ = run(anomalies=(Anomaly.parse(f"unit_falling_behind:{unit}"), Anomaly.parse(f"kiosk_silent:{kiosk}")))
    # other units untouched (each dossier has its own random stream)
    def other(evs):
        return [(e.id, e.value) for e in evs if e.unit_code not in (unit, "000.00.01.H24")]
    assert other(events) == other(base_events)
    # the unit's dossiers go late, increasingly
    def late(evs):
        return sum(e.judgement == "late" for e in evs if e.unit_code == unit)
    assert late(events) > 3 * max(1, late(base_events))
    # the kiosk goes quiet at the window's midpoint
    mid = datetime.combine(cfg.start, datetime.min.time(), VIETNAM_TZ) + timedelta(days=cfg.days / 2)
    k_base = [e for e in base_events if e.topic == RATING_TOPIC and e.key == kiosk.encode()]
    k_now = [e for e in events if e.topic == RATING_TOPIC and e.key == kiosk.encode()]
    assert any(e.event_time >= mid for e in k_base)
    assert k_now and all(e.event_time < mid for e in k_now)


def test_anomaly_parsing():
    assert Anomaly.parse("malformed:0.01") == Anomaly("malformed", share=0.01)
    assert Anomaly.parse("kiosk_silent:KIOSK-1").target == "KIOSK-1"
    for bad in ("malformed", "malformed:2", "typo:0.1"):
        with pytest.raises(ValueError):
            Anomaly.parse(bad)
    with pytest.raises(ValueError):
        list(generate(SimConfig(anomalies=(Anomaly.parse("unit_falling_behind:NOPE"),))))


def test_cli_writes_json_lines(tmp_path, capsys):
    assert cli_main(["--start", "2026-11-02", "--days", "1", "--scale", "0.05", "--to", "files",
                     "--out", str(tmp_path), "--no-progress", "--summary-json", str(tmp_path / "s.json")]) == 0
    lines = (tmp_path / "dossier-events.jsonl").read_bytes().splitlines()
    assert len(lines) > 50
    for line in lines:
        decode_dossier(line)
    assert "events/s" in capsys.readouterr().out


def test_parallel_generation_sends_the_same_events(tmp_path):
    from simulator import run
    from simulator.output import FilesOutput
    cfg = SimConfig(start=START, days=2, scale=0.05, seed=5)
    a = run(cfg, FilesOutput(tmp_path / "seq"))
    b = run(cfg, FilesOutput(tmp_path / "par"), parallel=True)
    assert a.as_dict() == b.as_dict()
    for name in ("dossier-events.jsonl", "ratings.jsonl"):
        assert (tmp_path / "seq" / name).read_bytes() == (tmp_path / "par" / name).read_bytes()


def test_hand_built_json_is_the_models_own_encoding(baseline):
    """The simulator writes the contract JSON itself (no pydantic model per event, for speed):
    it must be byte for byte what schemas.codec.encode gives for the decoded model."""
    from schemas.codec import encode
    _, events, _ = baseline
    for ev in events:
        assert encode(decode(ev)) == ev.value, ev.value
