"""Contracts: published JSON Schema == models; valid examples pass both; each kind of
invalid example fails both for the same named reason; MINOR/MAJOR compatibility."""
from __future__ import annotations

import copy
import json

import pytest
from jsonschema import Draft202012Validator

from schemas import errors as R
from schemas.codec import decode_as, decode_dossier, decode_rating, encode
from schemas.contracts import DOSSIER_CONTRACT, RATING_CONTRACT, DossierEvent, KioskRating
from schemas.errors import ContractError
from schemas.publish import CONTRACT_FILES, DOSSIER_EXAMPLE, RATING_EXAMPLE, build_schema, render, schema_path

DECODERS = {DOSSIER_CONTRACT: decode_dossier, RATING_CONTRACT: decode_rating}
EXAMPLES = {DOSSIER_CONTRACT: DOSSIER_EXAMPLE, RATING_CONTRACT: RATING_EXAMPLE}


def published(contract: str) -> dict:
    return json.loads(schema_path(contract).read_text(encoding="utf-8"))


def schema_reasons(contract: str, instance) -> set[str]:
    """Reason codes for the JSON Schema's errors, classified like the codec's."""
    validator = Draft202012Validator(published(contract))
    reasons: set[str] = set()

    def walk(err):
        if err.context:  # anyOf (optional fields): the branch errors say what is wrong
            for sub in err.context:
                walk(sub)
            return
        kind, path = err.validator, list(err.absolute_path)
        if kind == "type" and err.validator_value == "null":
            return  # the "or null" branch of an optional field, not the defect
        if path and path[0] == "contract_version" and kind != "type":
            reasons.add(R.UNSUPPORTED_VERSION)
        elif kind == "required":
            reasons.add(R.MISSING_FIELD)
        elif kind == "additionalProperties":
            reasons.add(R.UNKNOWN_FIELD)
        elif kind == "type":
            reasons.add(R.NOT_AN_OBJECT if not path and err.validator_value == "object" else R.WRONG_TYPE)
        elif kind == "pattern":
            reasons.add(R.BAD_DATETIME if "date-time" in json.dumps(err.schema) else R.BAD_PATTERN)
        elif kind in ("minLength", "maxLength", "minItems", "maxItems"):
            reasons.add(R.BAD_LENGTH)
        elif kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            reasons.add(R.OUT_OF_RANGE)
        elif kind in ("enum", "const", "propertyNames"):
            reasons.add(R.NOT_IN_SET)
        else:
            reasons.add(f"unclassified:{kind}")

    for err in validator.iter_errors(instance):
        walk(err)
    return reasons


# --- published files -------------------------------------------------------------------

@pytest.mark.parametrize("contract", list(CONTRACT_FILES))
def test_published_schema_equals_models(contract):
    regenerated = render(build_schema(contract))
    assert schema_path(contract).read_text(encoding="utf-8") == regenerated, \
        "model changed: run `python -m schemas.publish` and commit the schema files"
    schema = published(contract)
    assert schema["$id"].endswith(f"{contract}:v1")
    assert schema["title"] and schema["examples"]
    Draft202012Validator.check_schema(schema)


def test_descriptions_carry_dvcqg_names():
    props = published(DOSSIER_CONTRACT)["properties"]
    for field, name in [("dossier_code", "MaHoSo"), ("procedure_code", "MaTTHC"), ("status", "TrangThaiHoSo"),
                        ("channel", "KenhThucHien"), ("promised_at", "NgayHenTra"), ("unit_code", "DonViXuLy"),
                        ("supplements", "DanhSachHoSoBoSung")]:
        assert name in props[field]["description"], field


# --- valid examples ------------------------------------------------------------------------

def valid_dossiers():
    base = DOSSIER_EXAMPLE
    yield base
    minimal = {k: base[k] for k in ("event_id", "event_time", "source_system", "dossier_code", "procedure_code",
                                    "procedure_field", "unit_code", "status")}
    yield minimal
    yield {**base, "status": 5, "supplements": [{"requested_at": "2026-11-03T10:00:00+07:00",
                                                 "old_promised_at": "2026-11-04T17:00:00+07:00"}]}
    yield {**base, "status": 9, "finished_at": "2026-11-02T15:00:00Z", "contract_version": "1.7"}
    yield {**base, "status": 3, "refused_at": "2026-11-02 08:05:00+0700", "channel": 3, "handler": None}


def valid_ratings():
    yield RATING_EXAMPLE
    yield {k: RATING_EXAMPLE[k] for k in ("rating_id", "event_time", "kiosk_id", "unit_code", "level")}
    yield {**RATING_EXAMPLE, "scale": 3, "level": 2, "criteria": {}}


@pytest.mark.parametrize("contract,instance",
                         [(DOSSIER_CONTRACT, x) for x in valid_dossiers()] + [(RATING_CONTRACT, x) for x in valid_ratings()])
def test_valid_examples_pass_schema_and_model(contract, instance):
    assert schema_reasons(contract, instance) == set()
    raw = json.dumps(instance, ensure_ascii=False).encode("utf-8")
    model = DECODERS[contract](raw)
    # round trip through the encoder gives the same model
    assert DECODERS[contract](encode(model)) == model


def test_encode_is_utf8_json_with_diacritics():
    event = decode_dossier(json.dumps(DOSSIER_EXAMPLE, ensure_ascii=False).encode())
    raw = encode(event)
    assert "Nguyễn Thị Hà".encode("utf-8") in raw
    assert json.loads(raw)["status"] == 4


# --- invalid examples ----------------------------------------------------------------------

def _set(doc: dict, path: str, value):
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    target = doc
    for p in parents:
        target = target[int(p)] if isinstance(target, list) else target[p]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return doc


_DELETE = object()
_WITH_SUPPLEMENT = {**DOSSIER_EXAMPLE, "supplements": [{"requested_at": "2026-11-03T10:00:00+07:00"}]}

INVALID = [
    # (contract, base, path, value, reason)
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "dossier_code", _DELETE, R.MISSING_FIELD),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "event_time", _DELETE, R.MISSING_FIELD),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "status", "4", R.WRONG_TYPE),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "has_digitised_components", 1, R.WRONG_TYPE),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "event_time", 1762048500, R.WRONG_TYPE),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "supplements", {"requested_at": "2026-11-03T10:00:00+07:00"}, R.WRONG_TYPE),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "status", 11, R.NOT_IN_SET),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "channel", 4, R.NOT_IN_SET),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "paid_online", 3, R.NOT_IN_SET),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "owner_type", 12, R.OUT_OF_RANGE),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "MaHoSo", "H24.05-261102-0007", R.UNKNOWN_FIELD),
    (DOSSIER_CONTRACT, _WITH_SUPPLEMENT, "supplements.0.reason", "thiếu giấy tờ", R.UNKNOWN_FIELD),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "unit_code", "000 05 50 H24", R.BAD_PATTERN),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "event_id", "short", R.BAD_PATTERN),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "event_time", "2026-11-02T09:15:00", R.BAD_DATETIME),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "promised_at", "2026-11-02T17:00:00", R.BAD_DATETIME),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "received_at", "02/11/2026 08:02", R.BAD_DATETIME),
    (DOSSIER_CONTRACT, _WITH_SUPPLEMENT, "supplements.0.requested_at", "2026-11-03T10:00:00", R.BAD_DATETIME),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "handler", "x" * 129, R.BAD_LENGTH),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "source_system", "", R.BAD_LENGTH),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "contract_version", "2.0", R.UNSUPPORTED_VERSION),
    (DOSSIER_CONTRACT, DOSSIER_EXAMPLE, "contract_version", "v1", R.UNSUPPORTED_VERSION),
    (RATING_CONTRACT, RATING_EXAMPLE, "kiosk_id", _DELETE, R.MISSING_FIELD),
    (RATING_CONTRACT, RATING_EXAMPLE, "level", "5", R.WRONG_TYPE),
    (RATING_CONTRACT, RATING_EXAMPLE, "level", 6, R.NOT_IN_SET),
    (RATING_CONTRACT, RATING_EXAMPLE, "scale", 4, R.NOT_IN_SET),
    (RATING_CONTRACT, RATING_EXAMPLE, "criteria", {"speed": 5}, R.NOT_IN_SET),
    (RATING_CONTRACT, RATING_EXAMPLE, "criteria", {"officer": 0}, R.NOT_IN_SET),
    (RATING_CONTRACT, RATING_EXAMPLE, "comment", "ý" * 1001, R.BAD_LENGTH),
    (RATING_CONTRACT, RATING_EXAMPLE, "event_time", "2026-11-02", R.BAD_DATETIME),
    (RATING_CONTRACT, RATING_EXAMPLE, "stars", 5, R.UNKNOWN_FIELD),
    (RATING_CONTRACT, RATING_EXAMPLE, "contract_version", "0.9", R.UNSUPPORTED_VERSION),
]


@pytest.mark.parametrize("contract,base,path,value,reason", INVALID,
                         ids=[f"{c}-{p}-{r}" for c, _, p, _, r in INVALID])
def test_invalid_examples_fail_both_with_the_named_reason(contract, base, path, value, reason):
    instance = _set(base, path, value)
    assert reason in schema_reasons(contract, instance)
    with pytest.raises(ContractError) as exc:
        DECODERS[contract](json.dumps(instance, ensure_ascii=False).encode("utf-8"))
    assert exc.value.reason_code == reason
    assert exc.value.reason_code in R.REASONS
    if reason not in (R.MISSING_FIELD,) and path.split(".")[0] != "MaHoSo":
        assert exc.value.field is not None and exc.value.field.startswith(path.split(".")[0])


@pytest.mark.parametrize("contract", list(CONTRACT_FILES))
def test_not_an_object_fails_both(contract):
    for instance in ([EXAMPLES[contract]], "event", 42, None):
        assert schema_reasons(contract, instance) == {R.NOT_AN_OBJECT} or R.WRONG_TYPE in schema_reasons(contract, instance)
        with pytest.raises(ContractError) as exc:
            DECODERS[contract](json.dumps(instance).encode())
        assert exc.value.reason_code == R.NOT_AN_OBJECT


@pytest.mark.parametrize("raw,reason", [
    (b"\xff\xfe{}", R.INVALID_UTF8),
    (b'{"handler": "Nguy\xe1\xbb"}', R.INVALID_UTF8),       # truncated multi-byte sequence
    (b'{"event_id": ', R.INVALID_JSON),
    (b"", R.INVALID_JSON),
    (b"{'status': 4}", R.INVALID_JSON),
    (b'{"comment": "' + b"a" * 70_000 + b'"}', R.OVERSIZE),
])
def test_bytes_level_reasons(raw, reason):
    # No JSON Schema counterpart: the schema only sees parsed JSON.
    for decode in DECODERS.values():
        with pytest.raises(ContractError) as exc:
            decode(raw)
        assert exc.value.reason_code == reason


# --- compatibility -------------------------------------------------------------------------

def _raw(doc: dict) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


class DossierEventV1_1(DossierEvent):
    """What a 1.1 reader looks like: one optional field added (a MINOR change)."""
    reader_version = "1.1"
    fee_amount_vnd: int | None = None


def test_newer_minor_producer_extra_fields_are_dropped_by_older_reader():
    doc = {**DOSSIER_EXAMPLE, "contract_version": "1.1", "fee_amount_vnd": 50000,
           "supplements": [{"requested_at": "2026-11-03T10:00:00+07:00", "reason_code": "BS01"}]}
    event = decode_dossier(_raw(doc))
    assert event.contract_version == "1.1"
    assert event.dossier_code == DOSSIER_EXAMPLE["dossier_code"]
    assert len(event.supplements) == 1
    assert "fee_amount_vnd" not in event.model_dump()


def test_newer_reader_keeps_its_new_field_and_reads_older_events():
    doc = {**DOSSIER_EXAMPLE, "contract_version": "1.1", "fee_amount_vnd": 50000}
    assert decode_as(DossierEventV1_1, _raw(doc)).fee_amount_vnd == 50000
    old = decode_as(DossierEventV1_1, _raw(DOSSIER_EXAMPLE))  # a 1.0 event
    assert old.fee_amount_vnd is None


def test_unknown_field_rejected_when_producer_is_not_newer():
    # same minor
    with pytest.raises(ContractError) as exc:
        decode_dossier(_raw({**DOSSIER_EXAMPLE, "fee_amount_vnd": 1}))
    assert exc.value.reason_code == R.UNKNOWN_FIELD and exc.value.field == "fee_amount_vnd"
    # older producer read by the newer reader: a field unknown to both is a bug, not a feature
    with pytest.raises(ContractError) as exc:
        decode_as(DossierEventV1_1, _raw({**DOSSIER_EXAMPLE, "contract_version": "1.0", "fee_amount_vnd": 1, "feeVnd": 2}))
    assert exc.value.reason_code == R.UNKNOWN_FIELD


def test_newer_minor_is_still_checked_on_known_fields():
    doc = {**DOSSIER_EXAMPLE, "contract_version": "1.4", "new_optional": True, "status": "9"}
    with pytest.raises(ContractError) as exc:
        decode_dossier(_raw(doc))
    assert exc.value.reason_code == R.WRONG_TYPE and exc.value.field == "status"


def test_other_major_rejected_even_with_known_fields_only():
    for version in ("2.0", "0.1", "2.5"):
        with pytest.raises(ContractError) as exc:
            decode_dossier(_raw({**DOSSIER_EXAMPLE, "contract_version": version}))
        assert exc.value.reason_code == R.UNSUPPORTED_VERSION
    with pytest.raises(ContractError) as exc:
        decode_rating(_raw({**RATING_EXAMPLE, "contract_version": "2.0", "stars": 5}))
    assert exc.value.reason_code in (R.UNSUPPORTED_VERSION, R.UNKNOWN_FIELD)


def test_missing_version_means_1_0():
    doc = dict(DOSSIER_EXAMPLE)
    del doc["contract_version"]
    assert decode_dossier(_raw(doc)).contract_version == "1.0"


def test_models_stay_lax_for_python_callers():
    # Python code (simulator, front door) builds models from plain values; the codec is strict.
    event = DossierEvent(**{**DOSSIER_EXAMPLE, "status": 4})
    assert isinstance(KioskRating(**RATING_EXAMPLE).level, int)
    assert event.status == 4
