"""Data rules: suites, per-event checker, GX agreement, dead letters, redrive core.

The breaking-example test is parametrised over the suite FILES: adding an expectation
without adding a breaking example to BREAKERS fails the test.
"""
from __future__ import annotations

import copy
import json
import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest

from expectations import suite_io
from expectations.checks import SUPPORTED, Checker
from expectations.deadletter import DeadLetter, dead_letter_id, source_system_of
from expectations.flatten import COLUMNS
from expectations.suite_io import SuiteError
from pulse.config import Settings
from schemas.contracts import CODE_PATTERN, CRITERIA, EVENT_ID_PATTERN

VN = timezone(timedelta(hours=7))
NOW = datetime(2026, 11, 2, 10, 0, tzinfo=VN)

REFERENCE = SimpleNamespace(
    units={"000.00.01.H27": object(), "000.00.02.H27": object(), "27001": object()},
    procedures={"1.001": SimpleNamespace(field_code="HT"), "1.002": SimpleNamespace(field_code="DD"),
                "2.003": SimpleNamespace(field_code="HT")},
    fields={"HT": object(), "DD": object()},
)
SETTINGS = Settings()


def t(hours_before_now: float) -> str:
    return (NOW - timedelta(hours=hours_before_now)).isoformat()


DOSSIER = {
    "contract_version": "1.0", "event_id": "evt-20261101-000001", "event_time": t(1),
    "source_system": "motcua-bn", "dossier_code": "H27.01-261101-0001", "procedure_code": "1.001",
    "procedure_field": "HT", "unit_code": "000.00.01.H27", "channel": 2, "status": 10, "handler": "cb01",
    "owner_type": 1, "submitted_at": t(50), "received_at": t(49), "promised_at": t(-24), "finished_at": t(5),
    "returned_at": t(1), "paid_online": 1, "has_digitised_components": True,
}
RATING = {
    "contract_version": "1.0", "rating_id": "rat-20261101-000001", "event_time": t(0.5), "source_system": "kioskvendor",
    "kiosk_id": "K-27001-01", "unit_code": "27001", "counter_id": "3", "officer_id": "cb01",
    "dossier_code": "H27.01-261101-0001", "procedure_code": "1.001", "level": 5, "scale": 5,
    "criteria": {c: 4 for c in CRITERIA}, "comment": "Nhanh",
}


def drop(key):
    return lambda d: d.pop(key)


def put(**kv):
    return lambda d: d.update(kv)


def criterion(name, level):
    return lambda d: d["criteria"].__setitem__(name, level)


BAD_CODE = "bad code!"
BREAKERS = {
    # dossier_events
    "dossier.event_id_present": drop("event_id"),
    "dossier.event_id_format": put(event_id="short"),
    "dossier.dossier_code_present": drop("dossier_code"),
    "dossier.dossier_code_format": put(dossier_code=BAD_CODE),
    "dossier.procedure_code_present": drop("procedure_code"),
    "dossier.procedure_code_format": put(procedure_code=BAD_CODE),
    "dossier.procedure_field_present": drop("procedure_field"),
    "dossier.procedure_field_format": put(procedure_field=BAD_CODE),
    "dossier.unit_code_present": drop("unit_code"),
    "dossier.unit_code_format": put(unit_code=BAD_CODE),
    "dossier.source_system_present": drop("source_system"),
    "dossier.event_time_present": drop("event_time"),
    "dossier.status_known": put(status=11),
    "dossier.channel_known": put(channel=4),
    "dossier.paid_online_known": put(paid_online=3),
    "dossier.received_after_submitted": put(received_at=t(51)),
    "dossier.promised_after_received": put(promised_at=t(60)),
    "dossier.finished_after_received": put(finished_at=t(49.5)),
    "dossier.returned_after_finished": put(returned_at=t(6)),
    "dossier.not_in_future": put(event_time=(NOW + timedelta(hours=1)).isoformat()),
    "dossier.unit_known": put(unit_code="000.00.99.H27"),
    "dossier.procedure_known": put(procedure_code="9.999"),
    "dossier.procedure_field_matches": put(procedure_field="DD"),
    # ratings
    "rating.rating_id_present": drop("rating_id"),
    "rating.rating_id_format": put(rating_id="has space 123"),
    "rating.kiosk_id_present": drop("kiosk_id"),
    "rating.kiosk_id_format": put(kiosk_id=BAD_CODE),
    "rating.unit_code_present": drop("unit_code"),
    "rating.unit_code_format": put(unit_code=BAD_CODE),
    "rating.dossier_code_format": put(dossier_code=BAD_CODE),
    "rating.procedure_code_format": put(procedure_code=BAD_CODE),
    "rating.event_time_present": drop("event_time"),
    "rating.level_present": drop("level"),
    "rating.level_known": put(level=6),
    "rating.scale_known": put(scale=4),
    "rating.three_level_mapped": put(scale=3, level=5),
    **{f"rating.criterion_{c}_level": criterion(c, 0) for c in CRITERIA},
    "rating.not_in_future": put(event_time=(NOW + timedelta(minutes=10)).isoformat()),
    "rating.unit_known": put(unit_code="99999"),
    "rating.procedure_known": put(procedure_code="9.999"),
}


def all_rules():
    return [(name, rule) for name in suite_io.SUITE_NAMES for rule in suite_io.rules_of(name)]


def encode(d: dict) -> bytes:
    return json.dumps(d, ensure_ascii=False).encode("utf-8")


def broken(rule: str) -> tuple[str, bytes]:
    base = DOSSIER if rule.startswith("dossier.") else RATING
    d = copy.deepcopy(base)
    BREAKERS[rule](d)
    return ("dossier" if base is DOSSIER else "rating"), encode(d)


@pytest.fixture(scope="module")
def checker() -> Checker:
    return Checker.from_suites(REFERENCE, SETTINGS)


@pytest.fixture(scope="module")
def gx_runner():
    from expectations.gx_batch import GXBatchRunner
    return GXBatchRunner(REFERENCE, SETTINGS)


def check(checker, kind, raw, now=NOW):
    return (checker.check_dossier if kind == "dossier" else checker.check_rating)(raw, now)


# --- suites --------------------------------------------------------------------------------

def test_base_events_pass(checker):
    for kind, d in (("dossier", DOSSIER), ("rating", RATING)):
        v = check(checker, kind, encode(d))
        assert v.ok, v.failures
        assert v.event is not None and v.row is not None


def test_suite_files_are_gx_suites_with_stable_rule_names():
    import great_expectations as gx
    gx.get_context(mode="ephemeral")
    for name in suite_io.SUITE_NAMES:
        d = suite_io.load_suite(name, REFERENCE, SETTINGS)
        suite = gx.ExpectationSuite(name=name, expectations=d["expectations"])
        assert len(suite.expectations) == len(d["expectations"])
        prefix = "dossier." if name == "dossier_events" else "rating."
        for e in d["expectations"]:
            assert e["type"] in SUPPORTED
            assert e["meta"]["rule"].startswith(prefix)
            cols = [e["kwargs"].get("column"), e["kwargs"].get("column_A"), e["kwargs"].get("column_B")]
            assert all(c in COLUMNS[name] for c in cols if c), f"{e['meta']['rule']} names a column the flattener lacks"


def test_dq_results_key_is_unique_per_suite():
    # ClickHouse dq_results dedupes on (batch_id, suite, expectation, column)
    for name in suite_io.SUITE_NAMES:
        keys = [(e["type"], e["kwargs"].get("column") or (e["kwargs"].get("column_A"), e["kwargs"].get("column_B")))
                for e in suite_io.load_suite_json(name)["expectations"]]
        assert len(keys) == len(set(keys)), name


def test_patterns_agree_with_contracts():
    for name in suite_io.SUITE_NAMES:
        for e in suite_io.load_suite_json(name)["expectations"]:
            if e["type"] == "expect_column_values_to_match_regex":
                expected = EVENT_ID_PATTERN if e["kwargs"]["column"] in ("event_id", "rating_id") else CODE_PATTERN
                assert e["kwargs"]["regex"] == expected, e["meta"]["rule"]


def test_placeholders_resolve_from_reference_and_settings():
    d = suite_io.load_suite("dossier_events", REFERENCE, SETTINGS.with_(future_tolerance_s=42.0))
    by_rule = {e["meta"]["rule"]: e["kwargs"] for e in d["expectations"]}
    assert by_rule["dossier.unit_known"]["value_set"] == sorted(REFERENCE.units)
    assert by_rule["dossier.procedure_field_matches"]["value_set"] == ["1.001|HT", "1.002|DD", "2.003|HT"]
    assert by_rule["dossier.not_in_future"]["max_value"] == 42.0
    raw = suite_io.load_suite_json("dossier_events")
    assert {"$ref": "reference.units"} in [e["kwargs"].get("value_set") for e in raw["expectations"]]
    with pytest.raises(SuiteError):
        suite_io.resolve({"x": {"$ref": "reference.nope"}}, suite_io.reference_value_sets(REFERENCE), SETTINGS)


def test_unsupported_expectation_type_is_an_error_at_load():
    suite = {"name": "x", "expectations": [{"type": "expect_column_kl_divergence_to_be_less_than",
                                            "kwargs": {"column": "a"}, "meta": {"rule": "x.y"}}]}
    good = suite_io.load_suite("ratings", REFERENCE, SETTINGS)
    with pytest.raises(SuiteError, match="not supported"):
        Checker(suite, good)
    suite["expectations"][0] = {"type": "expect_column_values_to_be_in_set",
                                "kwargs": {"column": "a", "value_set": [1], "mostly": 0.9}, "meta": {"rule": "x.y"}}
    with pytest.raises(SuiteError):
        Checker(suite, good)


def test_future_tolerance_comes_from_settings():
    ev = dict(DOSSIER, event_time=(NOW + timedelta(seconds=200)).isoformat())
    assert Checker.from_suites(REFERENCE, SETTINGS.with_(future_tolerance_s=300)).check_dossier(encode(ev), NOW).ok
    v = Checker.from_suites(REFERENCE, SETTINGS.with_(future_tolerance_s=100)).check_dossier(encode(ev), NOW)
    assert v.rules == ["dossier.not_in_future"]
    # promised_at lies in the future by nature
    assert Checker.from_suites(REFERENCE, SETTINGS).check_dossier(
        encode(dict(DOSSIER, promised_at=(NOW + timedelta(days=30)).isoformat())), NOW).ok
    # ingest_time, when the front door set it, is the reference
    ev = dict(DOSSIER, event_time=(NOW + timedelta(hours=2)).isoformat(), ingest_time=(NOW + timedelta(hours=2)).isoformat())
    assert Checker.from_suites(REFERENCE, SETTINGS).check_dossier(encode(ev), NOW).ok


# --- every expectation has a breaking example ------------------------------------------------

@pytest.mark.parametrize("suite_name,rule", all_rules(), ids=[r for _, r in all_rules()])
def test_every_expectation_has_an_event_that_breaks_it(checker, gx_runner, suite_name, rule):
    assert rule in BREAKERS, f"no breaking example for {rule}: add one to BREAKERS"
    kind, raw = broken(rule)
    v = check(checker, kind, raw)
    assert not v.ok
    assert rule in v.rules, f"{rule} not named; failures: {v.failures}"
    if v.event is not None:  # contract-valid: GX must name the same rule for this row
        assert rule in gx_runner.failing_rows([v.row], suite_name)[0]
        for r in gx_runner.validate_batch([v.row], suite_name):
            assert r.success == (r.rule not in v.rules), r
    else:
        assert v.failures[0].rule.startswith("contract."), v.failures


def test_no_stray_breakers():
    assert set(BREAKERS) <= {r for _, r in all_rules()}


# --- checker and GX agree, event by event -----------------------------------------------------

def _corpus(seed: int = 7, n: int = 400) -> list[tuple[str, bytes]]:
    rnd = random.Random(seed)
    units = sorted(REFERENCE.units) + ["000.00.77.H27"]
    procs = [("1.001", "HT"), ("1.002", "DD"), ("2.003", "HT"), ("1.001", "DD"), ("8.888", "HT")]
    out = []
    for i in range(n):
        if rnd.random() < 0.6:
            d = copy.deepcopy(DOSSIER)
            d["event_id"] = f"evt-corpus-{i:06d}"
            d["unit_code"] = rnd.choice(units)
            d["procedure_code"], d["procedure_field"] = rnd.choice(procs)
            d["status"] = rnd.randint(1, 10)
            d["channel"] = rnd.choice([1, 2, 3])
            base = rnd.uniform(45, 150)
            for k, off in (("submitted_at", 0), ("received_at", 1), ("promised_at", 30), ("finished_at", 30), ("returned_at", 40)):
                if rnd.random() < 0.25:
                    d.pop(k, None)
                else:
                    jitter = rnd.choice([0, 0, 0, rnd.uniform(-60, 60)])
                    d[k] = t(base - off + jitter)
            d["event_time"] = t(rnd.choice([1, 0.01, -0.01, -0.2, -3]))
            if rnd.random() < 0.2:
                d["ingest_time"] = t(rnd.choice([0, -1]))
            if rnd.random() < 0.1:
                d["supplements"] = [{"requested_at": t(rnd.choice([20, -1]))}]
            if rnd.random() < 0.05:
                d["status"] = 0  # contract failure
            out.append(("dossier", encode(d)))
        else:
            d = copy.deepcopy(RATING)
            d["rating_id"] = f"rat-corpus-{i:06d}"
            d["unit_code"] = rnd.choice(units[:3] + ["27999"])
            d["scale"] = rnd.choice([3, 5, 5])
            d["level"] = rnd.randint(1, 5)
            d["criteria"] = {c: rnd.randint(1, 5) for c in rnd.sample(CRITERIA, rnd.randint(0, 3))}
            if rnd.random() < 0.3:
                d.pop("procedure_code")
            elif rnd.random() < 0.2:
                d["procedure_code"] = "7.777"
            d["event_time"] = t(rnd.choice([1, 0, -0.05, -0.1, -2]))
            if rnd.random() < 0.05:
                d["level"] = "5"  # contract failure
            out.append(("rating", encode(d)))
    return out


def test_checker_and_gx_agree_event_by_event(checker, gx_runner):
    corpus = _corpus()
    verdicts = [(kind, check(checker, kind, raw)) for kind, raw in corpus]
    for kind, suite_name in (("dossier", "dossier_events"), ("rating", "ratings")):
        vs = [v for k, v in verdicts if k == kind]
        valid = [v for v in vs if v.event is not None]
        assert len(valid) < len(vs), "corpus should hold contract failures too"
        assert any(v.ok for v in valid) and any(not v.ok for v in valid), "corpus should mix passing and failing events"
        gx_failing = gx_runner.failing_rows([v.row for v in valid], suite_name)
        for v, gx_rules in zip(valid, gx_failing):
            assert set(v.rules) == gx_rules, (v.row, v.failures, gx_rules)
        # batch summary agrees with the per-event counts
        per_rule = {}
        for v in valid:
            for r in v.rules:
                per_rule[r] = per_rule.get(r, 0) + 1
        for r in gx_runner.validate_batch([v.row for v in valid], suite_name):
            assert r.unexpected_count == per_rule.get(r.rule, 0), r
            assert r.element_count == len(valid)
        for v in vs:
            if v.event is None:
                assert v.failures[0].rule.startswith("contract.")


# --- contract failures ----------------------------------------------------------------------

@pytest.mark.parametrize("raw,rule", [
    (b"\xff\xfe\x00garbage", "contract.invalid_utf8"),
    (b'{"event_id": ', "contract.invalid_json"),
    (b"[1, 2]", "contract.not_an_object"),
    (encode(dict(DOSSIER, colour="red")), "contract.unknown_field"),
    (encode({k: v for k, v in DOSSIER.items() if k != "status"}), "contract.missing_field"),
    (encode(dict(DOSSIER, status="10")), "contract.wrong_type"),
    (encode(dict(DOSSIER, handler="x" * 70_000)), "contract.oversize"),
])
def test_contract_failures_are_named(checker, raw, rule):
    v = checker.check_dossier(raw, NOW)
    assert not v.ok and v.event is None
    assert v.failures[0].rule == rule


def test_oversize_limit_is_configurable():
    small = Checker.from_suites(REFERENCE, SETTINGS, max_event_bytes=200)
    v = small.check_dossier(encode(DOSSIER), NOW)
    assert v.rules == ["contract.oversize"]


def test_contract_failure_also_names_data_rules(checker):
    v = checker.check_dossier(encode(dict(DOSSIER, status=11, unit_code="000.00.99.H27")), NOW)
    assert v.rules[0].startswith("contract.")
    assert {"dossier.status_known", "dossier.unit_known"} <= set(v.rules)


# --- dead letters ---------------------------------------------------------------------------

RAWS = [b"\xff\xfe\x80 not utf-8 \xc3\x28", b"", b'{"source_system": "sys-A", "x": \xff}',
        encode(DOSSIER), "Hồ sơ ❤".encode("utf-8"), bytes(range(256))]


@pytest.mark.parametrize("raw", RAWS)
def test_dead_letter_raw_bytes_round_trip(checker, raw):
    v = checker.check_dossier(raw + b"\x00", NOW)
    dl = DeadLetter.from_failures(topic="motcua.dossier-events", partition=3, offset=12345, raw=raw + b"\x00",
                                  failures=v.failures, received_at=NOW)
    back = DeadLetter.from_kafka_value(dl.to_kafka_value())
    assert back == dl
    assert back.raw == raw + b"\x00"
    row = dl.to_row()
    assert row["raw"] == raw + b"\x00" and row["raw_size"] == len(raw) + 1
    assert DeadLetter.from_row(row) == dl
    json.loads(dl.to_kafka_value().decode("utf-8"))  # the Kafka value itself is valid UTF-8 JSON


def test_dead_letter_fields():
    dl = DeadLetter.from_failures(topic="motcua.ratings", partition=0, offset=7, raw=b'{"source_system":"kv"',
                                  failures=[SimpleNamespace(rule="contract.invalid_json", message="eof")],
                                  received_at=NOW)
    assert dl.dead_letter_id == dead_letter_id("motcua.ratings", 0, 7) == "motcua.ratings:0:7"
    assert dl.kind == "rating" and dl.source_system == "kv"
    assert dl.rules == ("contract.invalid_json",) and dl.reasons == ("eof",)
    assert dl.updated_at == dl.received_at and dl.redriven_at is None
    later = dl.redriven(NOW + timedelta(hours=1))
    assert later.redriven_at == later.updated_at and later.dead_letter_id == dl.dead_letter_id
    assert source_system_of(b"\xff") == "unknown"
    assert source_system_of(encode(DOSSIER), "dossier") == "motcua-bn"
    from sinks.rows import DEAD_LETTER_COLUMNS
    assert list(dl.to_row()) == DEAD_LETTER_COLUMNS


def test_dq_result_rows_fit_the_table(gx_runner):
    from sinks.rows import DQ_RESULT_COLUMNS
    v = Checker.from_suites(REFERENCE, SETTINGS).check_rating(encode(RATING), NOW)
    res = gx_runner.validate_batch([v.row] * 3, "ratings", batch_id="b1")
    assert len(res) == len(suite_io.rules_of("ratings"))
    for r in res:
        row = r.to_row()
        assert set(DQ_RESULT_COLUMNS) <= set(row)
        assert r.success and r.success_share == 1.0 and r.element_count == 3 and r.batch_id == "b1"


# --- redrive core (fakes; the CLI against real components is in tests/integration) ----------

class FakeProducer:
    def __init__(self):
        self.sent = []

    def send(self, topic, value, key=None):
        self.sent.append((topic, value, key))
        return SimpleNamespace(get=lambda timeout=None: None)

    def flush(self):
        pass


class FakeClient:
    def __init__(self):
        self.inserted = []

    def insert(self, table, rows, column_names):
        self.inserted += [dict(zip(column_names, r)) for r in rows]


def test_redrive_republishes_original_bytes_once_fixed():
    from expectations.redrive import redrive
    unknown_unit = dict(DOSSIER, unit_code="000.00.55.H27")
    raws = [encode(unknown_unit).replace(b'"contract_version"', b'  "contract_version"'), encode(dict(DOSSIER, status=11)),
            b"\xff"]
    before = Checker.from_suites(REFERENCE, SETTINGS)
    letters = []
    for i, (raw, kind) in enumerate(zip(raws, ["dossier", "dossier", "unknown"])):
        v = before.check_dossier(raw, NOW)
        assert not v.ok
        letters.append(DeadLetter.from_failures(topic="p.dossier-events", partition=0, offset=i, raw=raw,
                                                failures=v.failures, received_at=NOW, kind=kind))
    fixed_ref = SimpleNamespace(units={**REFERENCE.units, "000.00.55.H27": object()},
                                procedures=REFERENCE.procedures, fields=REFERENCE.fields)
    after = Checker.from_suites(fixed_ref, SETTINGS)
    dry = redrive(letters, after, FakeProducer(), dry_run=True, now=NOW)
    assert (dry.scanned, dry.republished, dry.still_failing, dry.skipped) == (3, 1, 1, 1)
    prod, client = FakeProducer(), FakeClient()
    s = redrive(letters, after, prod, client=client, database="motcua", now=NOW)
    assert s.republished == 1 and s.still_failing_rules["dossier.status_known"] == 1
    assert prod.sent == [("p.dossier-events", raws[0], DOSSIER["dossier_code"].encode())]  # byte-exact
    assert len(client.inserted) == 1 and client.inserted[0]["redriven_at"] is not None
    assert client.inserted[0]["dead_letter_id"] == "p.dossier-events:0:0"


def test_fast_and_lenient_flatten_agree(checker):
    from expectations.flatten import flatten_dossier, flatten_rating
    for kind, raw in _corpus(seed=11, n=150):
        v = check(checker, kind, raw)
        if v.event is None:
            continue
        flat = flatten_dossier if kind == "dossier" else flatten_rating
        assert flat(v.event, NOW) == flat(v.event.model_dump(), NOW) == flat(json.loads(raw), NOW)


def test_tombstone_is_a_contract_failure(checker):
    v = checker.check_rating(None, NOW)
    assert v.rules == ["contract.invalid_json"]
    dl = DeadLetter.from_failures(topic="x.ratings", partition=0, offset=1, raw=None, failures=v.failures, received_at=NOW)
    assert dl.raw == b"" and DeadLetter.from_kafka_value(dl.to_kafka_value()) == dl


# --- the compiled fast path agrees with the reference interpretation ---------------------------
#
# ``Checker.check_*`` decode with pydantic's validator directly, flatten decoded models on a
# fast path and run one generated function per suite, falling back to the per-rule closures
# only when that function does not pass a row. The reference below is the checker as it was
# before: the codec's decode, the generic (Mapping) flatten over the event's fields and every
# rule's closure. Results must be identical: ok, event, failures (rule, message, column,
# order) and the row (keys in order, values, value types).

def _reference_verdict(checker, kind, raw, now):
    from expectations.checks import CONTRACT_PREFIX, Failure, Verdict, _lenient_object
    from expectations.flatten import flatten_dossier, flatten_rating
    from schemas.codec import decode_dossier, decode_rating
    from schemas.errors import ContractError
    decode, flatten, suite = ((decode_dossier, flatten_dossier, checker.dossier) if kind == "dossier"
                              else (decode_rating, flatten_rating, checker.rating))
    if raw is None:
        return Verdict(False, None, [Failure("contract.invalid_json", "null message value")])
    if len(raw) > checker.max_event_bytes:
        return Verdict(False, None, [Failure("contract.oversize", f"{len(raw)} bytes > {checker.max_event_bytes}")])
    try:
        event = decode(raw)
    except ContractError as e:
        failures = [Failure(CONTRACT_PREFIX + e.reason_code, e.message, e.field)]
        if e.reason_code != "oversize":
            obj = _lenient_object(raw)
            if obj is not None:
                try:
                    failures += suite.interpret(flatten(obj, now))
                except Exception:
                    pass
        return Verdict(False, None, failures)
    row = flatten(dict(event), now)  # the generic path, field by field
    failures = suite.interpret(row)
    return Verdict(not failures, event, failures, row)


def _assert_same_verdict(v, ref, raw):
    assert v.ok == ref.ok, raw
    assert type(v.event) is type(ref.event) and v.event == ref.event, raw
    assert v.failures == ref.failures, (raw, v.failures, ref.failures)
    if ref.row is None:
        assert v.row is None, raw
    else:
        assert list(v.row.items()) == list(ref.row.items()), raw
        assert [type(x) for x in v.row.values()] == [type(x) for x in ref.row.values()], raw
    assert v == ref, raw


_OFFSETS = ["+07:00", "Z", "+00:00", "-05:00", "+07", "+0700", "+14:00"]


def _retime(value, rnd):
    """The same instant (or one a few µs off) written with another offset, or a naive time."""
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    dt = dt + timedelta(microseconds=rnd.choice([0, 0, 1, -1, 999_999]))
    choice = rnd.choice(_OFFSETS + ["naive"])
    if choice == "naive":
        return dt.replace(tzinfo=None).isoformat()
    off = {"Z": 0, "+00:00": 0, "-05:00": -5, "+07": 7, "+0700": 7, "+07:00": 7, "+14:00": 14}[choice]
    s = dt.astimezone(timezone(timedelta(hours=off))).isoformat()
    return s[:-6] + choice if choice in ("Z", "+07", "+0700") else s


_ODD = [None, float("nan"), True, False, 0, 1, -1, 3, 11, 1.5, "", "x", "bad code!", "5", [1], {"a": 1},
        "2026-11-02T10:00:00", "2026-11-02T10:00:00+07:00", "not a time", 10**30]


def _parses(v) -> bool:
    try:
        return isinstance(v, str) and datetime.fromisoformat(v).tzinfo is not None
    except ValueError:
        return False


def _mutate(d, kind, rnd, units, procs):
    d = copy.deepcopy(d)
    for _ in range(rnd.choice([0, 1, 1, 2, 3])):
        times = [k for k, v in d.items() if (k.endswith("_at") or k.endswith("_time")) and _parses(v)]
        r = rnd.random()
        if r < 0.25 and times:  # shift a time: dates out of order, in the future, ...
            k = rnd.choice(times)
            dt = datetime.fromisoformat(d[k]) + timedelta(hours=rnd.choice([-100, -1, -0.0001, 0.01, 1, 48, 24 * 400]))
            d[k] = dt.isoformat()
        elif r < 0.4 and times:  # same instant, other offsets (or naive: a contract failure)
            k = rnd.choice(times)
            d[k] = _retime(d[k], rnd)
        elif r < 0.5:
            d["unit_code"] = rnd.choice(units + ["000.00.99.UNKNOWN", "bad unit!"])
        elif r < 0.55:
            d["procedure_code"] = rnd.choice(procs + ["9.999"])
        elif r < 0.6 and kind == "dossier":
            d["procedure_field"] = rnd.choice(["HT", "DD", "NNMT-DD", "XX"])
        elif r < 0.65 and "event_time" in times:
            ingest = datetime.fromisoformat(d["event_time"]) + timedelta(minutes=rnd.choice([-5, 1, 10]))
            d["ingest_time"] = ingest.isoformat()
        elif r < 0.7 and kind == "dossier" and "event_time" in times:
            # supplement rounds and a refusal, at times before and after everything else
            base = datetime.fromisoformat(d["event_time"])

            def near(base: datetime = base) -> str:
                return (base + timedelta(hours=rnd.choice([-30, -2, 0, 1e-9, 2, 300]))).isoformat()
            d["supplements"] = [{"requested_at": near(), **({"resumed_at": near()} if rnd.random() < 0.6 else {})}
                                for _ in range(rnd.choice([1, 1, 2]))]
            if rnd.random() < 0.3:
                d["refused_at"] = near()
        elif r < 0.75 and kind == "rating":
            d["scale"], d["level"] = rnd.choice([(3, 2), (3, 4), (3, 5), (3, 1), (5, 5), (4, 3)])
        elif r < 0.8 and kind == "rating":
            d["criteria"] = {c: rnd.choice([1, 3, 5, 0, 6]) for c in rnd.sample(CRITERIA, rnd.randint(0, 4))}
        elif r < 0.9:  # an odd value anywhere: contract failures, also leniently flattened
            d[rnd.choice(list(d))] = rnd.choice(_ODD)
        elif r < 0.95:
            d.pop(rnd.choice(list(d)))
        elif r < 0.97:
            d[rnd.choice(["colour", "fee_amount_vnd"])] = 1
        else:  # a newer minor's extra field: read without it (the general path)
            d["contract_version"], d["fee_amount_vnd"] = "1.3", 1
    return d


def _sim_corpus(n_variants: int = 3, seed: int = 3):
    from datetime import date
    from schemas.reference import load_reference
    from simulator.model import SimConfig, generate
    ref = load_reference()
    cfg = SimConfig(start=date(2026, 11, 2), days=5, scale=0.3)
    now = cfg.end + timedelta(days=1)
    rnd = random.Random(seed)
    units, procs = sorted(ref.units)[:20], sorted(ref.procedures)[:20]
    out = []
    for ev in generate(cfg):
        kind = "dossier" if ev.topic == "dossier-events" else "rating"
        out.append((kind, ev.value))
        d = json.loads(ev.value)
        for _ in range(n_variants if kind == "rating" else rnd.choice([0, 0, 1])):
            out.append((kind, encode(_mutate(d, kind, rnd, units, procs))))
    out += [(k, raw) for k in ("dossier", "rating") for raw in (None, b"", b"\xff\xfe", b"[1]", b"{", b"null", b"{}",
                                                                 b'{"a": NaN}', b" " * 70_000)]
    return ref, now, out


def test_fast_path_agrees_with_reference_interpretation():
    ref, now, corpus = _sim_corpus()
    checker = Checker.from_suites(ref, SETTINGS)
    assert checker.dossier.source and checker.rating.source  # the generated functions are in use
    stats = {"ok": 0, "data_rule": 0, "contract": 0}
    for kind, raw in corpus:
        for when in (now, now.astimezone(timezone.utc)):
            v = check(checker, kind, raw, when)
            _assert_same_verdict(v, _reference_verdict(checker, kind, raw, when), raw)
        stats["ok" if v.ok else "contract" if v.event is None else "data_rule"] += 1
    # the corpus exercises every outcome, in numbers
    assert min(stats.values()) > 200, stats
    assert sum(1 for _, raw in corpus if raw and b'"1.3"' in raw) > 20


def test_model_path_answers_as_the_row_path():
    """``passes_model`` (the suite's tests on a decoded event's fields) says what ``passes``
    says on the event's row, event by event: accepted events, data-rule failures of every
    kind (unknown unit, dates out of order, times ahead of ingest, ...)."""
    from expectations.flatten import flatten_dossier
    ref, now, corpus = _sim_corpus()
    checker = Checker.from_suites(ref, SETTINGS)
    model, passes = checker.dossier.passes_model, checker.dossier.passes
    assert model is not None and checker.rating.passes_model is None   # ratings: their rows only
    seen = {True: 0, False: 0}
    for kind, raw in corpus:
        if kind != "dossier" or not raw:
            continue
        v = check(checker, kind, raw, now)
        if v.event is None:
            continue
        for when in (now, now.astimezone(timezone.utc), now + timedelta(days=400)):
            want = passes(flatten_dossier(v.event, when))
            assert model(v.event.__dict__, when) == want, raw
            seen[want] += 1
    assert min(seen.values()) > 200, seen


def test_fast_path_agrees_on_the_hand_made_corpus():
    checker = Checker.from_suites(REFERENCE, SETTINGS)
    for kind, raw in _corpus(seed=5, n=400) + [broken(rule) for rule in BREAKERS]:
        _assert_same_verdict(check(checker, kind, raw), _reference_verdict(checker, kind, raw, NOW), raw)


class _Str(str):
    pass


_ODD_VALUES = [None, float("nan"), float("inf"), -float("inf"), True, False, 0, 1, 2, 3, 5, 10, -1, 1.0, 3.0, 2.5,
               "", "x", "27001", "000.00.01.H27", "1.001", "1.001|HT", "bad code!", "abc\n", "evt-20261101-000001\n",
               _Str("27001"), b"27001", [1], {"a": 1}, (1,), 10**30, -(10**30), 299.9, 300.0, 300.0000001,
               NOW, NOW.replace(tzinfo=None), NOW.astimezone(timezone.utc), NOW + timedelta(days=1),
               NOW - timedelta(days=100), NOW.isoformat(), Decimal("1"), Decimal("NaN")]


def _odd_rows(base: dict, rnd, n: int):
    cols = list(base)
    for _ in range(n):
        row = dict(base)
        for _ in range(rnd.choice([1, 1, 2, 3, 6])):
            col = rnd.choice(cols)
            if rnd.random() < 0.1:
                row.pop(col, None)
            else:
                row[col] = rnd.choice(_ODD_VALUES)
        yield row


def _outcome(fn, row):
    try:
        return "returned", fn(row)
    except Exception as e:
        return "raised", type(e)


def test_generated_suite_function_never_passes_what_the_closures_fail(checker):
    """Odd values where the rows' columns are: the fast function may decline (the closures then
    decide) but never pass a row with a failure, and failures() is always the closures' list."""
    rnd = random.Random(13)
    for kind, d, suite in (("dossier", DOSSIER, checker.dossier), ("rating", RATING, checker.rating)):
        base = check(checker, kind, encode(d)).row
        for row in _odd_rows(base, rnd, 3000):
            expected = _outcome(suite.interpret, row)  # (an odd value may also make a closure raise)
            assert _outcome(suite.failures, row) == expected, row
            passed = _outcome(suite.passes, row)
            assert passed != ("returned", True) or expected == ("returned", []), (row, expected)
        # not a plain dict: the .get() path
        from collections import OrderedDict, defaultdict
        assert suite.failures(OrderedDict(base)) == [] and suite.failures(defaultdict(lambda: 1, base)) == []
        assert suite.failures({}) == suite.interpret({})


def test_generated_function_covers_every_supported_shape():
    """Kwargs the shipped suites do not use yet (other ignore_row_if modes, strict bounds, a
    min only, pandas-string and IN row conditions, a value set holding 0/1) compile to the same
    verdicts too."""
    def exp(etype, rule, **kwargs):
        return {"type": etype, "kwargs": kwargs, "meta": {"rule": rule}}
    suite = {"name": "shapes", "expectations": [
        exp("expect_column_pair_values_a_to_be_greater_than_b", "s.both", column_A="a", column_B="b",
            ignore_row_if="both_values_are_missing"),
        exp("expect_column_pair_values_a_to_be_greater_than_b", "s.neither", column_A="b", column_B="c",
            or_equal=True, ignore_row_if="neither"),
        exp("expect_column_values_to_be_between", "s.strict", column="n", min_value=0, max_value=10,
            strict_min=True, strict_max=True),
        exp("expect_column_values_to_be_between", "s.min_only", column="m", min_value=-1.5),
        exp("expect_column_values_to_be_in_set", "s.flags", column="f", value_set=[0, 1, "x"],
            row_condition='k in ["on", "yes"]', condition_parser="pandas"),
        exp("expect_column_values_to_be_in_set", "s.many", column="k", value_set=["on", "yes", "off"]),
        exp("expect_column_values_to_match_regex", "s.code", column="k", regex="^o"),
        exp("expect_column_values_to_not_be_null", "s.b", column="b",
            row_condition={"type": "comparison", "column": {"name": "n"}, "operator": ">=", "parameter": 5}),
    ]}
    good = suite_io.load_suite("ratings", REFERENCE, SETTINGS)
    compiled = Checker(suite, good).dossier
    base = {"a": 2, "b": 1, "c": 1, "n": 5, "m": 0, "f": 1, "k": "on"}
    assert compiled.passes(base) and compiled.interpret(base) == []
    rnd = random.Random(17)
    values = [None, float("nan"), True, False, 0, 1, 2, 5, 10, 11, -2, -1.5, 1.5, "x", "on", "yes", "off", "o\n", [1]]
    for _ in range(4000):
        row = dict(base)
        for _ in range(rnd.choice([1, 2, 3])):
            row[rnd.choice(list(base))] = rnd.choice(values)
        expected = _outcome(compiled.interpret, row)
        assert _outcome(compiled.failures, row) == expected, row
        assert _outcome(compiled.passes, row) != ("returned", True) or expected == ("returned", []), row
