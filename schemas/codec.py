"""Bytes <-> contract models, for the hot path (one call per event).

``decode_*`` runs pydantic's Rust JSON parser and validator in strict mode
(``model_validate_json(raw, strict=True)``): one pass, no intermediate dict in Python.
Only when validation fails do we spend time turning pydantic's error into a named
``ContractError`` reason.
"""
from __future__ import annotations

import json

from pydantic import BaseModel, ValidationError

from schemas import errors as R
from schemas.contracts import MAX_EVENT_BYTES, DossierEvent, KioskRating, strip_unknown
from schemas.errors import ContractError

# pydantic error types -> reason codes
_TYPE_REASONS = {
    "missing": R.MISSING_FIELD,
    "extra_forbidden": R.UNKNOWN_FIELD,
    "string_pattern_mismatch": R.BAD_PATTERN,
    "string_too_short": R.BAD_LENGTH,
    "string_too_long": R.BAD_LENGTH,
    "too_short": R.BAD_LENGTH,
    "too_long": R.BAD_LENGTH,
    "greater_than": R.OUT_OF_RANGE,
    "greater_than_equal": R.OUT_OF_RANGE,
    "less_than": R.OUT_OF_RANGE,
    "less_than_equal": R.OUT_OF_RANGE,
    "enum": R.NOT_IN_SET,
    "literal_error": R.NOT_IN_SET,
    "timezone_aware": R.BAD_DATETIME,
    "datetime_parsing": R.BAD_DATETIME,
    "datetime_from_date_parsing": R.BAD_DATETIME,
    "datetime_object_invalid": R.BAD_DATETIME,
    "json_invalid": R.INVALID_JSON,
}


def _field_path(loc: tuple) -> str | None:
    return ".".join(str(x) for x in loc) if loc else None


def _to_contract_error(exc: ValidationError, raw: bytes) -> ContractError:
    err = exc.errors(include_url=False, include_context=False)[0]
    etype, loc = err["type"], tuple(err["loc"])
    field = _field_path(loc)
    if etype == "json_invalid":
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as ue:
            return ContractError(R.INVALID_UTF8, f"not UTF-8 at byte {ue.start}")
        return ContractError(R.INVALID_JSON, err["msg"])
    if not loc and etype in ("model_type", "model_attributes_type", "dict_type"):
        return ContractError(R.NOT_AN_OBJECT, "the event must be a JSON object")
    if loc and loc[0] == "contract_version" and etype != "string_type":
        return ContractError(R.UNSUPPORTED_VERSION, f"{err['msg']}", field)
    reason = _TYPE_REASONS.get(etype)
    if reason == R.NOT_IN_SET and loc[-1] != "[key]" and type(err.get("input")) is not int:
        # Every code list here (status, channel, level, scale, paid_online) is integers:
        # "4" or true is a wrong type, not an unknown code (as the JSON Schema's "type" says).
        reason = R.WRONG_TYPE
    if reason is None:
        # *_type / *_parsing: a value of the wrong JSON type (e.g. "5" for 5, 1 for true).
        reason = R.WRONG_TYPE if (etype.endswith("_type") or etype.endswith("_parsing")) else R.INVALID
    return ContractError(reason, err["msg"], field)


def json_validator(model: type[BaseModel]):
    """The model's pydantic JSON validator, ``validate(raw, strict=True) -> model``: what
    ``model_validate_json(raw, strict=True)`` calls, without its per-call Python overhead.

    For the hot path. When it returns, ``decode_as`` returns an equal model for the same
    bytes (if they are within ``MAX_EVENT_BYTES``); when it raises, the caller should call
    ``decode_as`` for the outcome (a ``ContractError``, or a newer minor's event read
    without its extra fields)."""
    return model.__pydantic_validator__.validate_json


def decode_as(model: type[BaseModel], raw: bytes | bytearray):
    """Decode with any contract model (also a reader of another MINOR, as the tests do).
    Not a memoryview: pydantic's JSON validator rejects one as a wrong input type."""
    if len(raw) > MAX_EVENT_BYTES:
        raise ContractError(R.OVERSIZE, f"{len(raw)} bytes > {MAX_EVENT_BYTES}")
    try:
        return model.__pydantic_validator__.validate_json(raw, strict=True)  # = model_validate_json(raw, strict=True)
    except ValidationError as exc:
        if exc.errors(include_url=False)[0]["type"] == "extra_forbidden":
            newer = _read_newer_minor(model, raw)
            if newer is not None:
                return newer
        raise _to_contract_error(exc, bytes(raw)) from None


def _read_newer_minor(model, raw):
    """Slow path, only for events with unknown fields: a newer MINOR's optional fields are
    dropped and the rest validated again; same or older minor -> None (reject them)."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    if type(data) is not dict or not model.is_newer_minor(data.get("contract_version")):
        return None
    # Re-serialised so the strict JSON-mode rules (datetimes from strings) still apply.
    stripped = json.dumps(strip_unknown(model, data), ensure_ascii=False).encode("utf-8")
    try:
        return model.model_validate_json(stripped, strict=True)
    except ValidationError as exc:
        raise _to_contract_error(exc, stripped) from None


def decode_dossier(raw: bytes) -> DossierEvent:
    """Bytes of one dossier-status event -> DossierEvent, or ContractError."""
    return decode_as(DossierEvent, raw)


def decode_rating(raw: bytes) -> KioskRating:
    """Bytes of one kiosk-rating event -> KioskRating, or ContractError."""
    return decode_as(KioskRating, raw)


def encode(model: BaseModel) -> bytes:
    """Model -> compact UTF-8 JSON (absent optional values left out)."""
    return model.model_dump_json(exclude_none=True).encode("utf-8")
