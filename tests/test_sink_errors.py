"""How ClickHouseSink classifies a failed insert (sinks.writer.classify).

The exceptions are built by clickhouse-connect's own error builder from the status, the
X-ClickHouse-Exception-Code header and the body a ClickHouse server sends, so they are the
very exceptions the sink meets (not hand-made look-alikes). The code tables are checked
against the ClickHouse engine itself (chDB's errorCodeToName), so a wrong number in them
fails here.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from clickhouse_connect.driver._backend.httpcommon import build_http_error
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError, ProgrammingError

from sinks import writer
from sinks.writer import (FATAL, REFUSED, REFUSED_CODES, TRANSIENT, TRANSIENT_CODES, RowEncodingError, classify,
                          error_code, is_transient, refusal_message)

URL = "http://127.0.0.1:8123"


def server_error(code: int, name: str, text: str, status: int = 500, retried: bool = False) -> DatabaseError:
    """What clickhouse-connect raises for a ClickHouse HTTP error answer."""
    body = f"Code: {code}. DB::Exception: {text}. ({name}) (version 26.9.2.1)\n"
    return build_http_error(status, str(code), body, True, URL, retried)


CONSTRAINT = ("Constraint `level_in_scale` for table motcua.ratings (3f18) is violated at row 1. "
              "Expression: ((level >= 1) AND (level <= scale)). Column values: level = 7, scale = 5")


@pytest.mark.parametrize("code,name,text,status,expected", [
    # the data is wrong: refused rows, to be isolated
    (469, "VIOLATED_CONSTRAINT", CONSTRAINT, 500, REFUSED),
    (27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED", "Cannot parse input: expected '\"' before: 'zz'", 400, REFUSED),
    (6, "CANNOT_PARSE_TEXT", "Cannot parse text", 400, REFUSED),
    (41, "CANNOT_PARSE_DATETIME", "Cannot parse datetime", 400, REFUSED),
    (53, "TYPE_MISMATCH", "Type mismatch", 400, REFUSED),
    (321, "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE", "Value out of range", 400, REFUSED),
    (43, "ILLEGAL_TYPE_OF_ARGUMENT", "Illegal type", 500, REFUSED),
    (131, "TOO_LARGE_STRING_SIZE", "String too long for FixedString(2)", 500, REFUSED),
    (70, "CANNOT_CONVERT_TYPE", "Cannot convert", 500, REFUSED),
    (691, "UNKNOWN_ELEMENT_OF_ENUM", "Unknown element 'x' for enum", 500, REFUSED),
    (395, "FUNCTION_THROW_IF_VALUE_IS_NON_ZERO", "Value passed to 'throwIf' function is non-zero", 500, REFUSED),
    # the server cannot take it now: retried, never dead-lettered
    (252, "TOO_MANY_PARTS", "Too many parts (300)", 500, TRANSIENT),
    (241, "MEMORY_LIMIT_EXCEEDED", "Memory limit exceeded", 500, TRANSIENT),
    (159, "TIMEOUT_EXCEEDED", "Timeout exceeded", 500, TRANSIENT),
    (210, "NETWORK_ERROR", "Server is shutting down", 500, TRANSIENT),
    (202, "TOO_MANY_SIMULTANEOUS_QUERIES", "Too many simultaneous queries", 500, TRANSIENT),
    (745, "SERVER_OVERLOADED", "Server overloaded", 500, TRANSIENT),
    # the deployment is wrong: not split (every row would be 'refused'), retried then SinkError
    (16, "NO_SUCH_COLUMN_IN_TABLE", "No such column comment in table motcua.ratings", 400, FATAL),
    (60, "UNKNOWN_TABLE", "Table motcua.ratings does not exist", 404, FATAL),
    (81, "UNKNOWN_DATABASE", "Database motcua does not exist", 404, FATAL),
    (497, "ACCESS_DENIED", "default: Not enough privileges", 403, FATAL),
    (62, "SYNTAX_ERROR", "Syntax error", 400, FATAL),
    (33, "CANNOT_READ_ALL_DATA", "Cannot read all data", 500, FATAL),
])
def test_server_errors_are_classified_by_their_code(code, name, text, status, expected):
    exc = server_error(code, name, text, status)
    assert type(exc) is DatabaseError
    assert error_code(exc) == code
    assert classify(exc) == expected
    assert is_transient(exc) == (expected == TRANSIENT)


def test_the_code_is_read_from_the_message_when_the_exception_has_none():
    # an older client, or an error re-raised without the structured code
    exc = DatabaseError("HTTP driver received HTTP status 500, server response: Code: 469. DB::Exception: x. "
                        "(VIOLATED_CONSTRAINT)")
    assert exc.code is None and error_code(exc) == 469 and classify(exc) == REFUSED


def test_failures_without_a_clickhouse_answer_are_transient():
    assert classify(ConnectionRefusedError(111, "Connection refused")) == TRANSIENT
    assert classify(ConnectionResetError(104, "Connection reset by peer")) == TRANSIENT
    assert classify(TimeoutError("timed out")) == TRANSIENT
    assert classify(OperationalError("Error HTTPConnectionPool: Max retries exceeded")) == TRANSIENT
    # 503 from a proxy or a restarting server: clickhouse-connect raises it as OperationalError
    assert classify(build_http_error(503, None, "Service Unavailable", True, URL, True)) == TRANSIENT
    # a 502 with no ClickHouse code (a proxy's page): no code, not the data's fault
    assert classify(build_http_error(502, None, "<html>Bad Gateway</html>", True, URL, False)) == TRANSIENT


def test_client_side_errors():
    # a value the sink cannot encode for its column: a refused row, like a server refusal
    assert classify(RowEncodingError("DataError: Unable to create native array for column `level`")) == REFUSED
    # the client refusing the insert itself (not one row): the deployment's problem
    assert classify(ProgrammingError("Unrecognized column comment in table ratings")) == FATAL
    assert classify(DataError("Failed to write column")) == FATAL
    assert classify(TypeError("unsupported operand")) == FATAL
    assert classify(RuntimeError("something else")) == FATAL


def test_refusal_message_is_the_servers_own_text():
    exc = server_error(469, "VIOLATED_CONSTRAINT", CONSTRAINT)
    assert "for url" in str(exc) and "version 26.9" in str(exc)       # clickhouse-connect's wrapping
    assert refusal_message(exc) == f"Code: 469. DB::Exception: {CONSTRAINT}. (VIOLATED_CONSTRAINT)"
    assert refusal_message(RowEncodingError("DataError: x")) == "RowEncodingError: DataError: x"


def _table(name: str) -> dict[int, str]:
    """{code: name} as written in the comments of a code table in sinks/writer.py."""
    src = Path(writer.__file__).read_text()
    body = re.search(rf"^{name} = {{\n(.*?)^}}", src, re.S | re.M).group(1)
    return {int(c): n for c, n in re.findall(r"^\s+(\d+),\s+# ([A-Z0-9_]+)", body, re.M)}


def test_code_tables_match_the_clickhouse_engine():
    chdb = pytest.importorskip("chdb")
    transient, refused = _table("TRANSIENT_CODES"), _table("REFUSED_CODES")
    assert set(transient) == TRANSIENT_CODES and set(refused) == REFUSED_CODES   # every entry commented
    assert not TRANSIENT_CODES & REFUSED_CODES
    codes = sorted({**transient, **refused})
    out = chdb.query(f"SELECT number, errorCodeToName(number) FROM numbers({max(codes) + 1}) "
                     f"WHERE number IN ({', '.join(map(str, codes))})", "TSV").bytes().decode()
    engine = {int(c): n for c, n in (line.split("\t") for line in out.splitlines())}
    assert {**transient, **refused} == engine
