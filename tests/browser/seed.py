"""A realistic, deterministic province dataset written straight into ClickHouse's tables.

Used by the board test (and handy for a demo: ``python -m tests.browser.seed``): migrations,
the reference tables (Bắc Ninh units, fields, procedures, calendar), then ~45 days of
dossier state, kiosk ratings, dead letters, GX results, pipeline metrics and alerts, with
"today" and "this month" well populated so every chart on every board has data.
"""
from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

VN = ZoneInfo("Asia/Ho_Chi_Minh")
CRITERIA = ("access", "procedure", "officer", "time", "result", "feedback")

STATE_COLS = ["dossier_code", "unit_code", "procedure_code", "procedure_field", "channel", "status",
              "submitted_at", "received_at", "promised_at", "finished_at", "returned_at", "refused_at",
              "closed_at", "supplement_rounds", "supplement_wait_working_days", "outcome",
              "resolution_working_days", "is_open", "overdue", "deadline", "deadline_reading",
              "digitised", "paid_online", "vneid",
              "electronic_result", "first_event_time", "last_event_time", "version"]
RATING_COLS = ["rating_id", "event_time", "ingest_time", "source_system", "contract_version", "kiosk_id",
               "unit_code", "counter_id", "officer_id", "dossier_code", "procedure_code", "level", "scale",
               "criteria", "comment", "kafka_topic", "kafka_partition", "kafka_offset"]


def _working_days_after(start: datetime, days: float) -> datetime:
    t, left = start, days
    while left > 0:
        t += timedelta(days=min(1.0, left))
        if t.weekday() < 5:
            left -= min(1.0, left)
    return t


def seed(settings, days: int = 45, dossiers_per_day: int = 160, ratings_per_day: int = 300,
         now: datetime | None = None, rng_seed: int = 7) -> dict:
    from schemas.reference import load_reference
    from sinks.client import get_client
    from sinks.migrate import migrate_settings, refresh_board_aggregates
    from sinks.reference import load_reference_tables

    rng = random.Random(rng_seed)
    now = (now or datetime.now(VN)).astimezone(VN)
    migrate_settings(settings, log=None)
    client = get_client(settings)
    ref = load_reference()
    load_reference_tables(client, ref)

    communes = ref.units_of_kind("commune")
    departments = ref.units_of_kind("department")
    commune_procs = ref.procedures_at("commune")
    province_procs = ref.procedures_at("province")
    # A few busy communes, a long tail of quiet ones (as in the seeds' figures).
    weights = [rng.paretovariate(1.3) for _ in communes]

    state, n = [], 0
    for d in range(days, -1, -1):
        day0 = (now - timedelta(days=d)).replace(hour=7, minute=30, second=0, microsecond=0)
        if day0.weekday() >= 5:
            continue
        count = dossiers_per_day if d else max(30, int(dossiers_per_day * min(1.0, (now.hour - 7) / 10)))
        for _ in range(count):
            n += 1
            if rng.random() < 0.72:
                unit = rng.choices(communes, weights)[0]
                proc = rng.choice(commune_procs)
            else:
                proc = rng.choice(province_procs)
                unit = ref.department_for(proc)
            if d == 0:
                span = max(60, int((now - day0).total_seconds()) - 60)
                received = day0 + timedelta(seconds=rng.randrange(span))
            else:
                received = day0 + timedelta(minutes=rng.randrange(9 * 60))
            channel = rng.choices([1, 2, 3], [0.55, 0.42, 0.03])[0]
            legal = float(proc.legal_working_days or 3)
            promised = _working_days_after(received, max(legal, 0.5))
            p_open = 0.9 if d == 0 else (0.5 if d < 3 else (0.12 if d < 10 else 0.015))
            is_open = rng.random() < p_open
            outcome, finished, closed, rwd, refused = "", None, None, None, None
            status = rng.choice([2, 4, 4, 5]) if is_open else 10
            if not is_open:
                r = rng.random()
                if r < 0.025:
                    outcome, status = rng.choice([("withdrawn", 7), ("refused", 3), ("stopped", 8)])
                    closed = received + timedelta(hours=rng.uniform(1, 30))
                    refused = closed if outcome == "refused" else None
                else:
                    if r < 0.68:
                        outcome, frac = "early", rng.uniform(0.05, 0.7)
                    elif r < 0.94:
                        outcome, frac = "on_time", rng.uniform(0.75, 1.0)
                    else:
                        outcome, frac = "late", rng.uniform(1.1, 2.0)
                    finished = received + (promised - received) * frac
                    closed = finished
                    rwd = round(legal * frac, 2)
                if closed > now:  # would close in the future: still open now
                    is_open, outcome, finished, closed, rwd, refused, status = True, "", None, None, None, None, 4
            code = f"{unit.code}-{received:%y%m%d}-{n:06d}"
            state.append([
                code, unit.code, proc.code, proc.field_code, channel, status,
                received - timedelta(minutes=rng.randrange(0, 120)) if channel == 2 else None,
                received, promised, finished, closed if outcome in ("early", "on_time", "late") else None,
                refused, closed, 0, 0.0, outcome, rwd, is_open, is_open and promised < now,
                promised, "shift_by_wait",      # the stream's judgement: no supplement round here
                rng.random() < 0.62, rng.random() < 0.18 and channel == 2, rng.random() < 0.35 and channel == 2,
                outcome in ("early", "on_time", "late") and rng.random() < 0.4,
                received, closed or received + timedelta(minutes=5), 3,
            ])
    client.insert("dossier_state", state, column_names=STATE_COLS)

    # Ratings: one or two kiosks per busy unit; a few kiosks fall silent in the afternoon.
    kiosk_units = departments + sorted(communes, key=lambda u: -weights[communes.index(u)])[:40]
    kiosks = [(f"KIOSK-{u.code}-{k}", u) for u in kiosk_units for k in (1, 2)[: 1 + (u in departments)]]
    silent = set(k for k, _ in kiosks[::9])
    ratings, m = [], 0
    for d in range(days, -1, -1):
        day0 = (now - timedelta(days=d)).replace(hour=7, minute=30, second=0, microsecond=0)
        if day0.weekday() >= 5:
            continue
        for _ in range(ratings_per_day):
            kiosk, unit = rng.choice(kiosks)
            t = day0 + timedelta(minutes=rng.randrange(9 * 60))
            if t > now - timedelta(minutes=1) or (kiosk in silent and t > now - timedelta(hours=5)):
                continue
            m += 1
            base = 5 if unit.kind == "department" else 4
            level = max(1, min(5, base - rng.choices([0, 0, 1, 2, 3, 4], [5, 50, 30, 8, 4, 3])[0] + 1))
            level = min(level, 5)
            crit = {c: max(1, min(5, level + rng.choice([-1, 0, 0, 0, 1]))) for c in rng.sample(CRITERIA, 3)}
            ratings.append([
                f"r-{m:07d}", t, t + timedelta(seconds=2), "kiosk", "1.0", kiosk, unit.code, None,
                f"CB-{unit.code}-{rng.randrange(1, 5)}", None, None, level, 5, crit, None,
                "motcua.ratings", 0, m,
            ])
    # Working kiosks rated within the last hour and a half (the board shows the silent ones).
    for kiosk, unit in kiosks:
        if kiosk in silent:
            continue
        m += 1
        t = now - timedelta(minutes=rng.randrange(2, 90))
        ratings.append([f"r-{m:07d}", t, t + timedelta(seconds=2), "kiosk", "1.0", kiosk, unit.code, None,
                        f"CB-{unit.code}-1", None, None, 5, 5, {}, None, "motcua.ratings", 0, m])
    client.insert("ratings", ratings, column_names=RATING_COLS)

    # Dead letters, GX results, freshness / lag snapshots, alerts.
    rules = ["schema.required", "unit_code.in_reference", "time.not_future", "status.transition",
             "promised_at.after_received", "rating.level_range"]
    dl = []
    for i in range(240):
        t = now - timedelta(minutes=rng.randrange(days * 24 * 60))
        kind = rng.choice(["dossier", "dossier", "rating"])
        rule = rng.choices(rules, [4, 3, 1, 2, 2, 1])[0]
        dl.append([str(uuid.UUID(int=i + 1)), f"motcua.{kind}-events", i % 3, i, rng.choice(
            ["dvcqg-sync", "one-stop-unit-a", "kiosk-api", "file-import"]), kind, [rule], [f"{rule} failed"],
            "{}", 2, t, None, t])
    client.insert("dead_letters", dl, column_names=["dead_letter_id", "topic", "partition", "offset",
                                                    "source_system", "kind", "rules", "reasons", "raw",
                                                    "raw_size", "received_at", "redriven_at", "updated_at"])
    dq = []
    exps = [("dossier_events", "expect_column_values_to_not_be_null", "unit_code"),
            ("dossier_events", "expect_column_values_to_be_in_set", "status"),
            ("dossier_events", "expect_column_values_to_be_in_set", "channel"),
            ("ratings", "expect_column_values_to_be_between", "level"),
            ("ratings", "expect_column_values_to_not_be_null", "kiosk_id")]
    for b in range(60):
        t = now - timedelta(hours=b * 6, minutes=rng.randrange(60))
        for suite, exp, col in exps:
            elements = rng.randrange(500, 3000)
            bad = rng.choice([0] * 12 + [1, 3]) if col != "status" else rng.choice([0, 0, 2])
            dq.append([f"batch-{b:04d}-{suite}", suite, exp, col, bad == 0, 1 - bad / elements, bad, elements, t])
    client.insert("dq_results", dq, column_names=["batch_id", "suite", "expectation", "column", "success",
                                                  "success_share", "unexpected_count", "element_count",
                                                  "batch_time"])
    pm = []
    for k in range(180):
        t = now - timedelta(minutes=180 - k)
        for group, topic in (("motcua-pulse", "motcua.dossier-events"), ("motcua-pulse", "motcua.ratings")):
            for p in range(3):
                lag = max(0, int(rng.gauss(40, 25) + (400 if 60 < k < 75 else 0)))
                pm.append([t, "worker-1", group, topic, p, 10_000 * k, 10_000 * k + lag, lag,
                           int(abs(rng.gauss(800, 300)) + (20_000 if 60 < k < 75 else 0)),
                           round(abs(rng.gauss(180, 40)), 1)])
    client.insert("pipeline_metrics", pm, column_names=["ts", "worker", "consumer_group", "topic", "partition",
                                                        "committed_offset", "end_offset", "lag", "freshness_ms",
                                                        "events_per_s"])
    alerts = []
    for i, (kind, msg) in enumerate([
            ("on_time_below", "Tỷ lệ đúng hạn 60 phút qua dưới 80%"),
            ("satisfaction_below", "Tỷ lệ hài lòng 60 phút qua dưới 90%"),
            ("silent_kiosk", "Kiosk không gửi đánh giá hơn 120 phút"),
            ("overdue_soon", "Hồ sơ sắp đến hạn trả trong 24 giờ")] * 3):
        unit = rng.choice(kiosk_units)
        alerts.append([f"a-{i}", kind, unit.code, "", "", 0.7, 0.8, "60m", f"{unit.name}: {msg}",
                       now - timedelta(minutes=17 * i + 3)])
    client.insert("alerts", alerts, column_names=["alert_id", "kind", "unit_code", "kiosk_id", "dossier_code",
                                                  "value", "threshold", "window", "message", "raised_at"])
    # The boards read the refreshable aggregates (every board_refresh_seconds, 60): without a
    # refresh now they showed the seeded province only after their next one, and a board
    # opened before it was empty (seen once in a full suite run: every chart empty)
    refresh_board_aggregates(client)
    client.close()
    return {"dossiers": len(state), "ratings": len(ratings), "dead_letters": len(dl), "dq": len(dq),
            "metrics": len(pm), "alerts": len(alerts)}


if __name__ == "__main__":
    from pulse.config import Settings
    print(seed(Settings.from_env()))
