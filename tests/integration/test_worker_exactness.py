"""The Faust worker on the REAL broker and ClickHouse endpoint: exact results through kill -9.

A simulated month (a few thousand dossiers, with duplicates, out-of-order events and
malformed messages) is produced in chunks; the worker is SIGKILLed three times while it
processes them and restarted each time. When the input is fully consumed (committed
offsets = end offsets), ClickHouse's final state must equal a batch recomputation in
Python from the raw events, with the same rules:

* every dossier_state row (FINAL) column by column, versions included;
* the board view's counts per unit x channel (received, early/on time/late, withdrawn,
  refused, stopped, in progress);
* distinct raw events, ratings and dead letters.

A second test shows a dossier becoming overdue at its promised time without another event.
"""
from __future__ import annotations

import os
import signal
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone

import pytest

from pulse.config import Settings

from tests.support.isolation import isolated

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VN = timezone(timedelta(hours=7))


def input_lag(s: Settings) -> int:
    """Messages of the input topics not yet committed by the worker's group (all partitions)."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    from pulse.topics import DOSSIER_EVENTS, RATINGS
    tps = [TopicPartition(s.topic(spec.name), p) for spec in (DOSSIER_EVENTS, RATINGS)
           for p in range(spec.partition_count(s))]
    admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap, request_timeout_ms=10000)
    consumer = KafkaConsumer(bootstrap_servers=s.kafka_bootstrap)
    try:
        committed = admin.list_group_offsets({s.faust_app_id: None}).get(s.faust_app_id) or {}
        ends = consumer.end_offsets(tps)
    finally:
        admin.close()
        consumer.close()
    return sum(max(0, ends[tp] - (committed[tp].offset if tp in committed else 0)) for tp in tps)


def wait_consumed(s: Settings, worker, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not worker.alive() and worker.proc.returncode == 70:
            # the worker's stall watchdog exited for a restart (streams/watchdog.py); crash-only
            # recovery is exact, so restart it like a supervisor would
            print(f"worker exited on its stall watchdog; restarting\n{worker.tail(5)}")
            worker.start()
        assert worker.alive(), worker.tail()
        if input_lag(s) == 0:
            return
        time.sleep(1.0)
    if worker.alive():
        import json
        import urllib.request
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/pulse/debug/", timeout=5) as r:
                print("worker debug:", json.dumps(json.loads(r.read()), indent=1))
        except Exception as e:  # noqa: BLE001
            print("worker debug unavailable:", e)
    if worker.alive():  # thread stacks into the log (streams/__main__.py registers SIGUSR1)
        os.kill(worker.proc.pid, signal.SIGUSR1)
        time.sleep(1)
    raise TimeoutError(f"input not consumed, lag {input_lag(s)}\n{worker.tail(200)}")


def produce(s: Settings, events) -> None:
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024)
    try:
        for ev in events:
            p.send(s.topic(ev.topic), key=ev.key, value=ev.value)
        p.flush()
    finally:
        p.close()


def processed(worker) -> int:
    st = worker.status() or {}
    return int((st.get("metrics") or {}).get("events", 0))


def ms(t):
    if t is None:
        return None
    return int(t.timestamp() * 1000)


# columns of DOSSIER_STATE_COLUMNS compared exactly / with a float tolerance / skipped
_TIMES = {"submitted_at", "received_at", "promised_at", "finished_at", "returned_at", "refused_at", "closed_at",
          "first_event_time", "last_event_time"}
_FLOATS = {"supplement_wait_working_days", "resolution_working_days"}


def _same(col, a, b) -> bool:
    if col in _TIMES:
        return ms(a) == ms(b)
    if col in _FLOATS:
        if a is None or b is None:
            return a is None and b is None
        return abs(float(a) - float(b)) <= 1e-3 * max(1.0, abs(float(b)))
    if isinstance(b, bool) or isinstance(a, bool):
        return bool(a) == bool(b)
    return a == b


def _diagnose(client, codes, workers, events=()) -> str:
    """What a failure needs to be understood: where the affected dossiers' events are in
    Kafka and ClickHouse, and the workers' warnings."""
    codes = sorted(codes)
    lines = [f"{len(codes)} dossiers affected, e.g. {codes[:5]}"]
    if codes:
        sample = ", ".join(f"'{c}'" for c in codes[:200])
        rows = client.query(f"""
            SELECT kafka_partition, count(), min(kafka_offset), max(kafka_offset), min(inserted_at), max(inserted_at)
            FROM dossier_events WHERE dossier_code IN ({sample}) GROUP BY kafka_partition ORDER BY 1""").result_rows
        lines.append(f"their events in ClickHouse by partition: {rows}")
        from pulse.topics import DOSSIER_EVENTS
        from streams.eviction import partition_of
        wanted = {c.encode() for c in codes}
        by_part = Counter(partition_of(e.key, DOSSIER_EVENTS.partition_count(Settings.from_env())) for e in events
                          if e.topic == "dossier-events" and e.key in wanted)
        lines.append(f"their events in Kafka by partition: {dict(sorted(by_part.items()))}")
        for code in codes[:3]:       # one dossier's story: its state rows (every version) and events
            rows = client.query("SELECT version, status, updated_at FROM dossier_state WHERE dossier_code = {c:String} "
                                "ORDER BY updated_at", parameters={"c": code}).result_rows
            ch = sorted(r[0] for r in client.query("SELECT DISTINCT event_id FROM dossier_events WHERE "
                                                   "dossier_code = {c:String}", parameters={"c": code}).result_rows)
            lines.append(f"{code}: state rows {rows}; events in ClickHouse {ch}")
    for path in [p for w in workers for p in w.logs]:
        try:
            text = path.read_text(errors="replace").splitlines()
        except OSError:
            continue
        keep = [ln for ln in text if ("WARN" in ln or "ERROR" in ln or "Joined group" in ln or "ready" in ln)
                and "woke up too late" not in ln]
        lines.append(f"--- {path.name} ({len(text)} lines)")
        lines.extend(keep[-40:])
    text = "\n".join(lines)
    for w in workers[:1]:       # the whole story beside the workers' logs (pytest cuts long messages)
        if w.logs:
            w.logs[-1].with_name("diagnosis.txt").write_text(text)
    return text


def simulated_month(settings, tmp_path, name: str, scale: float = 0.1, batch: int = 300):
    """Isolated settings and a simulated month (a few thousand dossiers at scale 0.1) with
    duplicates, out-of-order events and malformed messages."""
    from simulator.model import Anomaly, SimConfig, generate
    s = isolated(settings, tmp_path, name, stream_batch_size=batch, stream_batch_window_s=0.1)
    start = datetime.now(VN).date() - timedelta(days=40)
    cfg = SimConfig(start=start, days=30, scale=scale, seed=20261123, anomalies=(
        Anomaly("duplicates", share=0.03), Anomaly("out_of_order", share=0.03), Anomaly("malformed", share=0.005)))
    events = list(generate(cfg))
    n_dossier_msgs = sum(1 for e in events if e.topic == "dossier-events")
    assert n_dossier_msgs > 8000, n_dossier_msgs
    return s, events


def kill_during(s, worker, chunk) -> None:
    """Produce ``chunk``, let the worker get well into it, then SIGKILL it mid-stream."""
    produce(s, chunk)
    target = len(chunk) // 3
    deadline = time.monotonic() + 120
    while processed(worker) < target and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.kill()


def start_traced(s, tmp_path, name: str = "worker", wait: bool = True):
    """A worker whose input offsets are traced in its log: a failure must be explainable."""
    from tests.support.worker import start_worker
    return start_worker(s, {"PULSE_TRACE_OFFSETS": "1"}, log_path=tmp_path / f"{name}.log", wait=wait)


def test_kill_minus_nine_three_times_then_exact_aggregates(settings, tmp_path):
    s, events = simulated_month(settings, tmp_path, "exact")
    worker = start_traced(s, tmp_path)
    try:
        chunks = [events[i * len(events) // 4:(i + 1) * len(events) // 4] for i in range(4)]
        kills = 0
        for chunk in chunks[:3]:
            kill_during(s, worker, chunk)
            kills += 1
            worker.start()
        produce(s, chunks[3])
        wait_consumed(s, worker)
        assert kills >= 3
        status = worker.status()
    finally:
        worker.stop()
    summary = assert_exact(s, events, [worker])
    print(f"\n{summary}, {kills} kills; last worker metrics {status and status.get('metrics')}")


def test_two_workers_rebalancing_over_a_backlog_then_exact_aggregates(settings, tmp_path):
    """The whole month is in the topic before the workers start, so their inboxes are full
    and fetches wait for room when partitions move: two workers start together, one is
    killed mid-stream (the other's partitions are revoked and it takes everything), then
    restarted (revoked and split again)."""
    # small batches: the backlog lasts long enough for the rebalances to happen mid-stream
    s, events = simulated_month(settings, tmp_path, "rebal", scale=0.2, batch=40)
    produce(s, events)
    n = len(events)
    a = start_traced(s, tmp_path, "worker-a", wait=False)
    b = start_traced(s, tmp_path, "worker-b", wait=False)
    try:
        a.wait_ready()
        b.wait_ready()
        deadline = time.monotonic() + 120
        while processed(a) + processed(b) < n // 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        at_kill = processed(a) + processed(b)
        a.kill()
        time.sleep(2)
        a.start()
        wait_consumed(s, b)
        assert at_kill < n, "the backlog was consumed before the kill: no mid-stream rebalance"
        assert processed(b) > 0
    finally:
        a.stop()
        b.stop()
    print("\n" + assert_exact(s, events, [a, b]))


def _status_of(raw) -> int | None:
    import json
    try:
        return json.loads(raw).get("status")
    except (ValueError, AttributeError, TypeError):     # the feed's malformed messages
        return None


def test_kill_minus_nine_with_eviction_in_force_and_late_events_for_evicted_dossiers(settings, tmp_path):
    """Bounded state (streams.eviction) under the same kills: closed dossiers leave the table
    one day (stream time) after closing; the month's 'returned' events of 200 finished
    dossiers are held back and sent once those dossiers are evicted, so they are applied
    through the read-back from ClickHouse. The final state is still exactly the batch
    recomputation from every event."""
    import json

    from tests.support.worker import start_worker
    s, events = simulated_month(settings, tmp_path, "evict")
    by_code = defaultdict(list)
    for e in events:
        if e.topic == "dossier-events":
            by_code[e.key].append(e)
    held_keys = []
    for key, evs in by_code.items():
        statuses = [_status_of(e.value) for e in evs]
        if 9 in statuses and statuses[-1] == 10 and statuses.count(10) == 1:
            held_keys.append(key)
        if len(held_keys) == 200:
            break
    held = {id(by_code[k][-1]) for k in held_keys}
    late = [e for e in events if id(e) in held]
    feed = [e for e in events if id(e) not in held]
    env = {"PULSE_TRACE_OFFSETS": "1",
           "PULSE_TUNABLES": json.dumps({"closed_retention_s": 86400, "eviction_interval_s": 1.0})}
    worker = start_worker(s, env, log_path=tmp_path / "worker.log")
    try:
        chunks = [feed[i * len(feed) // 3:(i + 1) * len(feed) // 3] for i in range(3)]
        for chunk in chunks[:2]:
            kill_during(s, worker, chunk)
            worker.start()
        produce(s, chunks[2])
        wait_consumed(s, worker)
        deadline = time.monotonic() + 60       # the eviction scan runs every second
        while (worker.status() or {}).get("metrics", {}).get("evicted", 0) < 200 and time.monotonic() < deadline:
            time.sleep(0.5)
        evicted = worker.status()["metrics"]["evicted"]
        assert evicted >= 200, evicted
        produce(s, late)
        wait_consumed(s, worker)
        status = worker.status()
    finally:
        worker.stop()
    m = status["metrics"]
    assert m["restored"] >= len(late) * 0.9, m     # (a held-back dossier may still be held if its close came late)
    assert m["dossiers_held"] < len(by_code), m
    summary = assert_exact(s, events, [worker])
    print(f"\n{summary}; evicted {evicted}, restored {m['restored']} in {m['history_queries']} queries, "
          f"held {m['dossiers_held']} of {len(by_code)} dossiers")


def assert_exact(s, events, workers) -> str:
    """ClickHouse equals a batch recomputation from the raw events with the same rules:
    dossier_state (FINAL) column by column, the board view per unit x channel, distinct raw
    events, ratings and dead letters. Returns a one-line summary."""
    from expectations.checks import Checker
    from schemas.reference import load_reference
    from sinks.client import get_client
    from sinks.rows import DOSSIER_STATE_COLUMNS
    from streams.core import DossierLogic, compact, merge

    # ---- batch recomputation from the raw events, with the same rules ----
    ref = load_reference()
    checker = Checker.from_suites(ref, s)
    logic = DossierLogic.from_settings(s, reference=ref)
    by_code: dict[str, list] = defaultdict(list)
    ratings, rejected, event_ids = set(), 0, set()
    for e in events:
        if e.topic == "dossier-events":
            v = checker.check_dossier(e.value)
            if not v.ok:
                rejected += 1
                continue
            by_code[v.event.dossier_code].append(compact(v.event))
            event_ids.add(v.event.event_id)
        else:
            v = checker.check_rating(e.value)
            if not v.ok:
                rejected += 1
                continue
            ratings.add(v.event.rating_id)
    now = datetime.now(timezone.utc)
    expected = {code: logic.state(code, merge(None, evs)[0], now) for code, evs in by_code.items()}

    client = get_client(s)
    try:
        got = {r[0]: r for r in client.query(
            f"SELECT {', '.join(DOSSIER_STATE_COLUMNS)} FROM dossier_state FINAL").result_rows}
        assert set(got) == set(expected), _diagnose(client, set(expected) - set(got), workers, events)
        idx = {c: i for i, c in enumerate(DOSSIER_STATE_COLUMNS)}
        mismatches = []
        for code, st in expected.items():
            row = got[code]
            dl = st.judgement.deadline
            borderline = dl is not None and abs((dl - now).total_seconds()) < 120
            for col, i in idx.items():
                if col == "updated_at" or (borderline and col in ("overdue", "version")):
                    continue
                if not _same(col, row[i], st.row[i]):
                    mismatches.append((code, col, row[i], st.row[i]))
        assert not mismatches, (mismatches[:20], _diagnose(client, {m[0] for m in mismatches}, workers, events))

        # the board view vs the recomputation, per unit x channel (board aggregates refreshed now)
        from sinks.migrate import refresh_board_aggregates
        refresh_board_aggregates(client)
        view = client.query("""
            SELECT unit_code, channel, sum(received), sum(resolved_early), sum(resolved_on_time),
                   sum(resolved_late), sum(withdrawn), sum(refused), sum(stopped), sum(in_progress)
            FROM v_dossier_daily GROUP BY unit_code, channel""").result_rows
        got_board = {(u, c): tuple(int(x) for x in rest) for u, c, *rest in view}
        board: dict = defaultdict(Counter)
        for st in expected.values():
            f, out = st.facts, st.judgement.outcome.value
            b = board[(f.unit_code, f.channel)]
            b["received"] += 1
            if f.is_open:
                b["in_progress"] += 1
            else:
                b[out] += 1
        want_board = {k: (c["received"], c["early"], c["on_time"], c["late"], c["withdrawn"], c["refused"],
                          c["stopped"], c["in_progress"]) for k, c in board.items()}
        assert got_board == want_board

        assert client.query("SELECT count() FROM dossier_events FINAL").result_rows[0][0] == len(event_ids)
        assert client.query("SELECT count() FROM ratings FINAL").result_rows[0][0] == len(ratings)
        assert client.query("SELECT count() FROM dead_letters FINAL").result_rows[0][0] == rejected
        outcomes = Counter(st.judgement.outcome.value for st in expected.values())
        assert outcomes["late"] and outcomes["early"] and outcomes[""], outcomes
        return (f"{len(events)} messages, {len(expected)} dossiers, outcomes {dict(outcomes)}, "
                f"{rejected} dead letters")
    finally:
        client.close()


def test_overdue_fires_at_the_promised_time_without_another_event(settings, tmp_path):
    from schemas.codec import encode
    from schemas.contracts import DossierEvent
    from schemas.reference import load_reference
    from sinks.client import get_client
    from tests.support.worker import start_worker

    s = isolated(settings, tmp_path, "overdue")
    ref = load_reference()
    unit = next(u for u in ref.units.values() if u.kind == "commune")
    proc = ref.procedures_at("commune")[0]
    now = datetime.now(VN).replace(microsecond=0)
    promised = now + timedelta(seconds=12)
    common = dict(source_system="test", dossier_code="HS-OVERDUE-1", procedure_code=proc.code,
                  procedure_field=proc.field_code, unit_code=unit.code)
    evs = [DossierEvent(event_id="HS-OVERDUE-1-e1", event_time=now - timedelta(hours=2), status=2,
                        received_at=now - timedelta(hours=2), promised_at=promised, **common),
           DossierEvent(event_id="HS-OVERDUE-1-e2", event_time=now - timedelta(hours=1), status=4, **common)]

    class E:
        def __init__(self, ev):
            self.topic, self.key, self.value = "dossier-events", b"HS-OVERDUE-1", encode(ev)

    # offsets traced in the worker logs: a failure here must be explainable from them
    worker = start_worker(s, {"PULSE_TRACE_OFFSETS": "1"}, log_path=tmp_path / "worker.log")
    client = get_client(s)
    try:
        produce(s, [E(e) for e in evs])

        def state():
            r = client.query("SELECT overdue, version, is_open FROM dossier_state FINAL "
                             "WHERE dossier_code = 'HS-OVERDUE-1'").result_rows
            return r[0] if r else None

        deadline = time.monotonic() + 60
        while state() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        first = state()
        assert first is not None and not first[0] and first[1] == 4, first   # open, not overdue yet
        assert datetime.now(VN) < promised
        # due_soon right away (promised within OVERDUE_WARNING_HOURS)
        kinds = lambda: {r[0] for r in client.query(  # noqa: E731
            "SELECT kind FROM alerts FINAL WHERE dossier_code = 'HS-OVERDUE-1'").result_rows}
        while "due_soon" not in kinds() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "due_soon" in kinds()
        while not (state() or (0,))[0] and time.monotonic() < deadline:
            time.sleep(0.2)
        flagged_at = datetime.now(VN)
        st = state()
        assert st[0] and st[1] == 5 and st[2], st            # overdue, version 2*2+1, still open
        assert promised <= flagged_at <= promised + timedelta(seconds=5), (promised, flagged_at)
        assert "overdue" in kinds()
        msg = client.query("SELECT message FROM alerts FINAL WHERE kind = 'overdue'").result_rows[0][0]
        assert "quá hạn" in msg
    finally:
        client.close()
        worker.stop()
