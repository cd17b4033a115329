"""Why an event broke its contract, as a named reason.

Reason codes are stable strings: dead-letter records, metrics and the front door's
HTTP answers carry them, so rename one only with a MAJOR change of those outputs.
"""
from __future__ import annotations

# Bytes-level reasons (no JSON Schema equivalent: the schema sees parsed JSON).
INVALID_UTF8 = "invalid_utf8"
INVALID_JSON = "invalid_json"
OVERSIZE = "oversize"
# Shape reasons (the published JSON Schema fails the same events).
NOT_AN_OBJECT = "not_an_object"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
UNKNOWN_FIELD = "unknown_field"
BAD_PATTERN = "bad_pattern"
BAD_DATETIME = "bad_datetime"      # not RFC 3339, or without its UTC offset
BAD_LENGTH = "bad_length"          # string too short or too long
OUT_OF_RANGE = "out_of_range"      # number below/above its bounds
NOT_IN_SET = "not_in_set"          # value outside a code list (status, channel, level ...)
UNSUPPORTED_VERSION = "unsupported_version"
INVALID = "invalid"                # anything else (should not happen; kept so no error goes unnamed)

REASONS = (
    INVALID_UTF8, INVALID_JSON, OVERSIZE, NOT_AN_OBJECT, MISSING_FIELD, WRONG_TYPE,
    UNKNOWN_FIELD, BAD_PATTERN, BAD_DATETIME, BAD_LENGTH, OUT_OF_RANGE, NOT_IN_SET,
    UNSUPPORTED_VERSION, INVALID,
)


class ContractError(ValueError):
    """An event that does not satisfy its contract.

    ``field`` is a dotted path ("supplements.0.requested_at") or None for the whole event.
    """

    def __init__(self, reason_code: str, message: str, field: str | None = None):
        super().__init__(f"{reason_code}: {message}" + (f" (field {field})" if field else ""))
        self.reason_code = reason_code
        self.message = message
        self.field = field

    def as_dict(self) -> dict:
        return {"reason_code": self.reason_code, "message": self.message, "field": self.field}
