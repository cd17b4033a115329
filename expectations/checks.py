"""The fast per-event path: the suite JSON files interpreted in plain Python.

Great Expectations costs tens of milliseconds per validation, so the worker does not run
it per event. ``Checker`` reads the SAME suite files (``expectations/suites/*.json``,
placeholders resolved from reference data and settings by ``suite_io.load_suite``) and
evaluates each expectation on one flattened row. Only the expectation types and kwargs
listed in ``SUPPORTED`` are understood; anything else in a suite is an error when the
checker is built, so a rule can never be silently skipped on the hot path.
``tests/test_expectations.py`` checks that checker and GX agree event by event.

Verdicts
- Contract failures (bytes, JSON, shape) come from ``schemas.codec`` as rule
  ``contract.<reason_code>`` (``contract.invalid_utf8``, ``contract.invalid_json``,
  ``contract.oversize``, ``contract.missing_field``, ``contract.unknown_field``,
  ``contract.wrong_type`` ...). When the payload is still a JSON object, the data rules are
  also evaluated on it (leniently flattened), so a dead letter names e.g. both
  ``contract.not_in_set`` and ``dossier.status_known``.
- Data-rule failures carry the expectation's ``meta.rule`` (``dossier.unit_known`` ...).
- ``ok`` is True only with no failure; ``event`` is the decoded model whenever the
  contract held (also when a data rule failed), ``row`` the flattened row (for GX).

Speed (the worker checks every event): for a payload that decodes, ``check_*`` call
pydantic's validator directly, flatten the model on its fast path and evaluate the suite
with ONE function generated from the compiled rules (``CompiledSuite.passes``, see "the fast
path" below), which only says whether every rule passes; the per-rule closures
(``CompiledSuite.interpret``) name the failures when it does not. A dossier event is
first tested on its own fields (``passes_model``, the same tests): when it passes, its
row is built only if ``Verdict.row`` is read (the worker's GX micro-batch takes a sample). Anything else (tombstone,
oversize, contract failure, a newer minor) goes through the general path. Same verdicts
either way (``tests/test_expectations.py`` compares them with the reference interpretation);
``bench/bench_validation.py`` measures both.

Lifecycle (decision): an illegal status transition (``rules.lifecycle``) is a FLAG (an
``illegal_transition`` alert), not a rejection. The event is a fact the unit system
recorded; transitions look illegal when a system skips steps or events arrive out of
order, and ``rules.lifecycle.fold`` already decides what such an event does to the state.
The fold flags it (``DossierFacts.illegal_event_ids``); the worker alerts a transition still
there after a grace period (streams.transitions); it does not dead-letter the event.
"""
from __future__ import annotations

import ast
import json
import operator
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from schemas.codec import decode_dossier, decode_rating, json_validator
from schemas.contracts import MAX_EVENT_BYTES, DossierEvent, KioskRating
from schemas.errors import INVALID_JSON, OVERSIZE, ContractError

from .flatten import (DOSSIER_MODEL_COLUMNS, DOSSIER_MODEL_NAMES, _flatten_dossier_model, flatten_dossier,
                      flatten_rating)
from .suite_io import DOSSIER_SUITE, PAIR_SEPARATOR, RATING_SUITE, SuiteError, load_suite

CONTRACT_PREFIX = "contract."

# expectation type -> kwargs the checker understands (beyond "column"/"column_A"/"column_B")
_COMMON = {"row_condition", "condition_parser", "mostly", "result_format", "catch_exceptions", "meta"}
SUPPORTED: dict[str, set[str]] = {
    "expect_column_values_to_not_be_null": {"column"},
    "expect_column_values_to_match_regex": {"column", "regex"},
    "expect_column_values_to_be_in_set": {"column", "value_set"},
    "expect_column_values_to_be_between": {"column", "min_value", "max_value", "strict_min", "strict_max"},
    "expect_column_pair_values_a_to_be_greater_than_b": {"column_A", "column_B", "or_equal", "ignore_row_if"},
}


@dataclass(frozen=True)
class Failure:
    rule: str
    message: str
    column: str | None = None

    @property
    def is_contract(self) -> bool:
        return self.rule.startswith(CONTRACT_PREFIX)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    event: Any | None                      # DossierEvent / KioskRating when the contract held
    failures: list[Failure] = field(default_factory=list)
    row: dict | None = None                # flattened row (contract-valid events only)

    @property
    def rules(self) -> list[str]:
        return [f.rule for f in self.failures]

    @property
    def reasons(self) -> list[str]:
        return [f.message for f in self.failures]

    @property
    def contract_ok(self) -> bool:
        return self.event is not None


def _missing(v: Any) -> bool:
    return v is None or (type(v) is float and v != v)


def _short(v: Any, limit: int = 80) -> str:
    s = repr(v.isoformat() if isinstance(v, datetime) else v)
    return s if len(s) <= limit else s[: limit - 3] + "..."


# --- row conditions (the subset of GX's pandas parser the suites use) -------------------

_COND = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(==|!=|>=|<=|>|<|not in|in)\s*(.+?)\s*$")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b,
    "in": lambda a, b: a in b, "not in": lambda a, b: a not in b,
}


def _parse_row_condition(kwargs: dict) -> tuple[str, str, Any] | None:
    """GX row conditions: a ComparisonCondition (serialised ``{"type": "comparison", "column":
    {"name": ...}, "operator": ..., "parameter": ...}``) or, deprecated in GX 1.9, a pandas
    query string ``"<column> <op> <literal>"``. Anything else is an error at load.
    Returns ``(column, operator, value)`` (operator a key of ``_OPS``), None without a condition."""
    cond = kwargs.get("row_condition")
    if cond is None:
        return None
    if isinstance(cond, dict) and cond.get("type") == "comparison":
        col = (cond.get("column") or {}).get("name")
        operator_: Any = cond.get("operator")
        op = {"IN": "in", "NOT_IN": "not in"}.get(operator_, operator_)
        value: Any = cond.get("parameter")
        if not col or op not in _OPS:
            raise SuiteError(f"unsupported row_condition {cond!r}")
    else:
        if isinstance(cond, dict):  # GX's serialised pass-through string
            if cond.get("type") != "pass_through":
                raise SuiteError(f"unsupported row_condition {cond!r} (supported: one comparison)")
            cond = cond["pass_through_filter"]
        if kwargs.get("condition_parser") not in (None, "pandas"):
            raise SuiteError(f"unsupported condition_parser {kwargs.get('condition_parser')!r}")
        m = _COND.match(str(cond))
        if not m:
            raise SuiteError(f"unsupported row_condition {cond!r} (supported: <column> <op> <literal>)")
        col, op, lit = m.groups()
        try:
            value = ast.literal_eval(lit)
        except (ValueError, SyntaxError) as e:
            raise SuiteError(f"row_condition {cond!r}: literal {lit!r} not understood") from e
    if op in ("in", "not in"):
        value = set(value)
    return col, op, value


def _row_condition(parsed: tuple[str, str, Any] | None) -> Callable[[dict], bool] | None:
    if parsed is None:
        return None
    col, op, value = parsed
    fn = _OPS[op]

    def applies(row: dict) -> bool:
        v = row.get(col)
        if _missing(v):
            return False  # DataFrame.query: NaN compares False
        try:
            return bool(fn(v, value))
        except TypeError:
            return False
    return applies


# --- compiled expectations ---------------------------------------------------------------

@dataclass(frozen=True)
class CompiledRule:
    rule: str
    type: str
    column: str | None
    check: Callable[[dict], str | None]     # row -> failure message or None
    # What the code generator needs: normalised kwargs (see _compile) and the parsed row condition.
    spec: dict = field(default_factory=dict, compare=False, repr=False)


def _compile(exp: dict) -> CompiledRule:
    etype, kw, meta = exp.get("type"), dict(exp.get("kwargs") or {}), exp.get("meta") or {}
    rule = meta.get("rule")
    if not isinstance(rule, str) or not rule:  # as suite_io.load_suite_json requires: failures name their rule
        raise SuiteError(f"expectation {etype!r} has no meta.rule")
    if etype not in SUPPORTED:
        raise SuiteError(f"rule {rule}: expectation type {etype!r} is not supported by the per-event checker "
                         f"(supported: {sorted(SUPPORTED)})")
    unknown = set(kw) - SUPPORTED[etype] - _COMMON
    if unknown:
        raise SuiteError(f"rule {rule}: unsupported kwargs {sorted(unknown)} for {etype}")
    if kw.get("mostly", 1) != 1:
        raise SuiteError(f"rule {rule}: 'mostly' < 1 has no per-event meaning")
    condition = _parse_row_condition(kw)
    applies = _row_condition(condition)
    spec: dict[str, Any] = {"condition": condition}

    if etype == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = kw["column_A"], kw["column_B"]
        or_equal = bool(kw.get("or_equal"))
        ignore = kw.get("ignore_row_if", "both_values_are_missing")
        if ignore not in ("both_values_are_missing", "either_value_is_missing", "neither"):
            raise SuiteError(f"rule {rule}: ignore_row_if {ignore!r}")
        rel = ">=" if or_equal else ">"
        spec.update(a=a, b=b, or_equal=or_equal, ignore=ignore)

        def check(row: dict) -> str | None:
            va: Any = row.get(a)
            vb: Any = row.get(b)
            ma, mb = _missing(va), _missing(vb)
            if (ignore == "either_value_is_missing" and (ma or mb)) or (ignore == "both_values_are_missing" and ma and mb):
                return None
            try:
                good = (not ma and not mb) and (va >= vb if or_equal else va > vb)
            except TypeError:
                good = False
            return None if good else f"{a}={_short(va)} is not {rel} {b}={_short(vb)}"
        column = f"{a},{b}"
    else:
        col = kw["column"]
        column = col
        spec["column"] = col
        if etype == "expect_column_values_to_not_be_null":
            def check(row: dict) -> str | None:
                return f"{col} is missing" if _missing(row.get(col)) else None
        elif etype == "expect_column_values_to_match_regex":
            rx = re.compile(kw["regex"])
            spec["regex"] = rx

            def check(row: dict) -> str | None:
                v = row.get(col)
                if _missing(v):
                    return None
                if isinstance(v, str) and rx.search(v):
                    return None
                return f"{col}={_short(v)} does not match {kw['regex']}"
        elif etype == "expect_column_values_to_be_in_set":
            vs = kw["value_set"]
            if not isinstance(vs, (list, tuple, set, frozenset)):
                raise SuiteError(f"rule {rule}: value_set must be a list (placeholder unresolved?)")
            values = frozenset(vs)
            try:
                ordered = sorted(values)
            except TypeError:
                ordered = sorted(values, key=str)
            shown = ordered if len(values) <= 12 else f"{len(values)} known values"
            spec["values"] = values

            def check(row: dict) -> str | None:
                v = row.get(col)
                if _missing(v):
                    return None
                try:
                    if type(v) is not bool and v in values:
                        return None
                except TypeError:  # unhashable (a JSON list/object where a code belongs)
                    pass
                return f"{col}={_short(v)} not in {shown}"
        else:  # expect_column_values_to_be_between
            lo, hi = kw.get("min_value"), kw.get("max_value")
            smin, smax = bool(kw.get("strict_min")), bool(kw.get("strict_max"))
            if lo is None and hi is None:
                raise SuiteError(f"rule {rule}: between needs min_value or max_value")
            for bound in (lo, hi):
                if bound is not None and not isinstance(bound, (int, float)):
                    raise SuiteError(f"rule {rule}: bound {bound!r} is not a number (placeholder unresolved?)")
            spec.update(lo=lo, hi=hi, strict_min=smin, strict_max=smax)

            def check(row: dict) -> str | None:
                v = row.get(col)
                if _missing(v):
                    return None
                try:
                    if type(v) is bool or not isinstance(v, (int, float)):
                        raise TypeError
                    if lo is not None and (v <= lo if smin else v < lo):
                        return f"{col}={_short(v)} below {'>' if smin else '>='} {lo}"
                    if hi is not None and (v >= hi if smax else v > hi):
                        return f"{col}={_short(v)} above {'<' if smax else '<='} {hi}"
                    return None
                except TypeError:
                    return f"{col}={_short(v)} is not a number"

    if applies is not None:
        inner = check

        def check_if_applies(row: dict, _inner=inner) -> str | None:
            return _inner(row) if applies(row) else None
        return CompiledRule(rule=rule, type=etype, column=column, check=check_if_applies, spec=spec)
    return CompiledRule(rule=rule, type=etype, column=column, check=check, spec=spec)


# --- the fast path: one generated function per suite ------------------------------------------
#
# ``CompiledSuite.passes(row)`` is ONE Python function generated from the same compiled rules
# (``CompiledSuite.source`` shows it): the row's columns are read into locals in one go,
# each rule is an inline boolean test with its constants (compiled regex, value sets,
# bounds) bound as globals, and the first test that does not hold returns False. It is an
# accelerator, not a second interpretation of the suite: it must only answer True when the interpreter
# (``CompiledSuite.interpret``, the per-rule closures above) finds no failure; it MAY answer
# False (or raise) on rows the interpreter passes (a NaN where a value is optional, a str
# subclass, values of odd types ...), which merely sends the row to the interpreter. So
# failures are always the interpreter's, and a passing row costs one call.
# ``tests/test_expectations.py`` checks both against each other on many rows.

class _CodeGen:
    def __init__(self) -> None:
        self.consts: dict[str, Any] = {}
        self.columns: dict[Any, str] = {}   # column -> local variable

    def var(self, column: Any) -> str:
        if column not in self.columns:
            self.columns[column] = f"v{len(self.columns)}"
        return self.columns[column]

    def const(self, value: Any, hint: str) -> str:
        name = f"_{hint}{len(self.consts)}"
        self.consts[name] = value
        return name

    def literal(self, column: Any) -> str:
        return repr(column) if type(column) is str else self.const(column, "col")


def _missing_expr(v: str) -> str:
    return f"({v} is None or (type({v}) is float and {v} != {v}))"


def _pass_expr(r: CompiledRule, g: _CodeGen, regex_known: dict) -> str:
    """A Python expression over the row's locals that is truthy only if ``r.check`` passes."""
    spec = r.spec
    if r.type == "expect_column_pair_values_a_to_be_greater_than_b":
        a, b = g.var(spec["a"]), g.var(spec["b"])
        cmp = f"{a} {'>=' if spec['or_equal'] else '>'} {b}"
        if spec["ignore"] == "either_value_is_missing":
            # a NaN operand (missing: the interpreter passes) compares False -> interpreter
            expr = f"({a} is None or {b} is None or {cmp})"
        else:
            good = f"(not {_missing_expr(a)} and not {_missing_expr(b)} and {cmp})"
            if spec["ignore"] == "both_values_are_missing":
                expr = f"(({_missing_expr(a)} and {_missing_expr(b)}) or {good})"
            else:
                expr = good
    else:
        v = g.var(spec["column"])
        if r.type == "expect_column_values_to_not_be_null":
            expr = f"({v} is not None and (type({v}) is not float or {v} == {v}))"
        elif r.type == "expect_column_values_to_match_regex":
            search = g.const(spec["regex"].search, "search")
            known = regex_known.get(r.rule)
            if known:  # strings of the suite's value sets that match: a set lookup, not a regex run
                test = f"({v} in {g.const(known, 'matching')} or {search}({v}) is not None)"
            else:
                test = f"{search}({v}) is not None"
            expr = f"({v} is None or (type({v}) is str and {test}))"
        elif r.type == "expect_column_values_to_be_in_set":
            values = spec["values"]
            expr = f"{v} in {g.const(values, 'values')}"
            if True in values or False in values:  # otherwise a bool is never `in` them
                expr += f" and type({v}) is not bool"
            expr = f"({v} is None or ({expr}))"
        else:  # expect_column_values_to_be_between
            tests = [f"(type({v}) is int or type({v}) is float)"]
            if spec["lo"] is not None:
                tests.append(f"{v} {'>' if spec['strict_min'] else '>='} {g.const(spec['lo'], 'lo')}")
            if spec["hi"] is not None:
                tests.append(f"{v} {'<' if spec['strict_max'] else '<='} {g.const(spec['hi'], 'hi')}")
            expr = f"({v} is None or ({' and '.join(tests)}))"
    if spec.get("condition") is not None:
        # The rule applies only where the condition holds; evaluating it anyway where the
        # condition cannot be decided is merely conservative.
        col, op, value = spec["condition"]
        c = g.var(col)
        expr = f"({c} is None or not ({c} {op} {g.const(value, 'param')}) or {expr})"
    return expr


def _generate(rules: list[CompiledRule], name: str, model: dict[str, str | None] | None = None,
              model_names: dict[str, Any] | None = None) -> tuple[Callable[[dict], bool], str, Callable | None]:
    g = _CodeGen()
    # Per regex rule: strings known from the suite's value sets that the regex accepts, so
    # the common case is one set lookup instead of a regex run. Candidates: the value sets of
    # the same column (e.g. every known unit code) or, for a column without one, the parts
    # of "<a>|<b>" pair values (e.g. the field codes of procedure_and_field). Which strings
    # are candidates only matters for speed: each one is checked with the regex here.
    same_column: dict[Any, set] = {}
    parts: set = set()
    for r in rules:
        if r.type == "expect_column_values_to_be_in_set":
            strs = [s for s in r.spec["values"] if type(s) is str]
            same_column.setdefault(r.spec["column"], set()).update(strs)
            parts.update(p for s in strs if PAIR_SEPARATOR in s for p in s.split(PAIR_SEPARATOR))
    regex_known = {r.rule: frozenset(s for s in same_column.get(r.spec["column"]) or parts if r.spec["regex"].search(s))
                   for r in rules if r.type == "expect_column_values_to_match_regex"}
    exprs = [_pass_expr(r, g, regex_known) for r in rules]
    cols = list(g.columns.items())
    lines = ["def passes(row):"]
    if cols:
        pick = g.const(operator.itemgetter(*(c for c, _ in cols)), "pick")
        names = ", ".join(v for _, v in cols) + ("," if len(cols) == 1 else "")
        lines += ["    try:",
                  "        if type(row) is not dict:",  # a Mapping or dict subclass: .get() as the interpreter does
                  "            raise KeyError",
                  f"        {names} = {pick}(row)" if len(cols) > 1 else f"        {names} = {pick}(row),",
                  "    except KeyError:",
                  "        get = row.get"]
        lines += [f"        {v} = get({g.literal(c)})" for c, v in cols]
    checks = [f"    if not {e}:\n        return False" for e in exprs] + ["    return True"]
    source = "\n".join(lines + checks) + "\n"
    namespace = dict(g.consts)
    exec(compile(source, f"<suite {name}>", "exec"), namespace)
    passes = namespace["passes"]

    passes_model = None
    if model is not None and all(type(c) is str and c in model for c, _ in cols):
        # The same tests over a decoded event's fields ``d``: each column's value as the row
        # would hold it (``model``: the field as it is, or an expression over d and now).
        direct = [(c, v) for c, v in cols if model[c] is None]
        mlines = ["def passes_model(d, now):"]
        if direct:
            mpick = g.const(operator.itemgetter(*(c for c, _ in direct)), "mpick")
            mnames = ", ".join(v for _, v in direct) + ("," if len(direct) == 1 else "")
            mlines.append(f"    {mnames} = {mpick}(d)" if len(direct) > 1 else f"    {mnames} = {mpick}(d),")
        mlines += [f"    {v} = {model[c]}" for c, v in cols if model[c] is not None]
        model_source = "\n".join(mlines + checks) + "\n"
        namespace = {**g.consts, **(model_names or {})}
        exec(compile(model_source, f"<suite {name}, model path>", "exec"), namespace)
        passes_model = namespace["passes_model"]
        source += "\n" + model_source
    return passes, source, passes_model


def _declines(row: dict) -> bool:
    return False


class CompiledSuite:
    """A suite's rules, compiled. ``model``/``model_names``: how its columns come out of a
    decoded event's fields (e.g. flatten.DOSSIER_MODEL_COLUMNS), for ``passes_model(d, now)``,
    the generated tests run on the event's ``__dict__`` without building its row; None when
    not given or when the suite names a column the model does not know. Like ``passes``
    it only answers True when the row would pass every rule."""

    def __init__(self, suite: dict, model: dict[str, str | None] | None = None,
                 model_names: dict[str, Any] | None = None):
        self.name = suite["name"]
        self.rules = [_compile(e) for e in suite.get("expectations", [])]
        self.passes: Callable[[dict], bool]
        self.source: str | None        # the generated function's code; None: every row to the closures
        self.passes_model: Callable | None
        try:
            self.passes, self.source, self.passes_model = _generate(self.rules, str(self.name), model, model_names)
        except Exception:  # e.g. a column name that is not hashable: every row to the closures
            self.passes, self.source, self.passes_model = _declines, None, None

    def interpret(self, row: dict) -> list[Failure]:
        """Every rule's closure on the row: the reference interpretation of the suite."""
        out = []
        for r in self.rules:
            msg = r.check(row)
            if msg is not None:
                out.append(Failure(r.rule, msg, r.column))
        return out

    def failures(self, row: dict) -> list[Failure]:
        try:
            if self.passes(row):
                return []
        except Exception:  # an odd value: the interpreter decides (and names the failures)
            pass
        return self.interpret(row)


def _now(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


_new = object.__new__


def _verdict(event: Any, row: dict, suite: CompiledSuite) -> Verdict:
    """``Verdict(not failures, event, failures, row)`` for a contract-valid event, with the
    suite's failures on the row; built without the frozen dataclass's per-field
    ``object.__setattr__`` calls (the same instance dict, in field order)."""
    try:
        ok = suite.passes(row)
    except Exception:
        ok = False
    failures = [] if ok else suite.interpret(row)
    v = _new(Verdict)
    d = v.__dict__
    d["ok"] = not failures
    d["event"] = event
    d["failures"] = failures
    d["row"] = row
    return v


class _PassingVerdict(Verdict):
    """A Verdict of an event that passed every rule on the model path: its row (for GX,
    which takes a sample of them) is flattened when first read."""

    @property
    def row(self) -> dict:
        d = self.__dict__
        row = d.get("_row")
        if row is None:
            row = d["_row"] = d["_flatten"](self.event, d["_now"])
        return row

    def __eq__(self, other: object) -> bool:   # equal to the Verdict with the same fields
        if not isinstance(other, Verdict):
            return NotImplemented
        return (self.ok, self.event, self.failures, self.row) == (other.ok, other.event, other.failures, other.row)

    __hash__ = Verdict.__hash__


def _passing(event: Any, now: datetime, flatten: Callable) -> Verdict:
    v = _new(_PassingVerdict)
    d = v.__dict__
    d["ok"] = True
    d["event"] = event
    d["failures"] = []
    d["_flatten"] = flatten
    d["_now"] = now
    return v


def _lenient_object(raw: bytes) -> dict | None:
    try:
        obj = json.loads(bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return obj if isinstance(obj, dict) else None


class Checker:
    """Per-event validation with the suites' rules. Build once; thread-safe (no mutable state)."""

    def __init__(self, dossier_suite: dict, rating_suite: dict, max_event_bytes: int = MAX_EVENT_BYTES):
        self.dossier = CompiledSuite(dossier_suite, DOSSIER_MODEL_COLUMNS, DOSSIER_MODEL_NAMES)
        self.rating = CompiledSuite(rating_suite)
        self.max_event_bytes = int(max_event_bytes)
        self._validate_dossier = json_validator(DossierEvent)
        self._validate_rating = json_validator(KioskRating)

    @classmethod
    def from_suites(cls, reference: Any, settings: Any, max_event_bytes: int | None = None) -> "Checker":
        """Load both suite files, resolve placeholders, compile. Unsupported types -> SuiteError.

        ``max_event_bytes``: payloads above it fail ``contract.oversize``; default
        ``settings.max_event_bytes`` if the Settings have it, else schemas.contracts'
        MAX_EVENT_BYTES (which the codec enforces anyway, so larger values do not help).
        """
        if max_event_bytes is None:
            max_event_bytes = getattr(settings, "max_event_bytes", MAX_EVENT_BYTES)
        return cls(load_suite(DOSSIER_SUITE, reference, settings),
                   load_suite(RATING_SUITE, reference, settings), max_event_bytes)

    # --- public API ---
    def check_dossier(self, raw: bytes, now: datetime | None = None) -> Verdict:
        return self._check_fast(raw, now, self._validate_dossier, _flatten_dossier_model,
                                decode_dossier, flatten_dossier, self.dossier, DossierEvent)

    def check_rating(self, raw: bytes, now: datetime | None = None) -> Verdict:
        return self._check_fast(raw, now, self._validate_rating, flatten_rating,
                                decode_rating, flatten_rating, self.rating, KioskRating)

    def _check_fast(self, raw, now, validate, flatten_model, decode, flatten, suite: CompiledSuite,
                    model: type) -> Verdict:
        if now is None or now.tzinfo is None:
            now = _now(now)
        # Fast path (the common case): the payload decodes as is. Anything else (tombstone,
        # oversize, contract failure, a newer minor's extra fields) takes the general path
        # from the start, which decodes again and names the failures.
        if raw is not None:
            n = len(raw)
            if n <= self.max_event_bytes and n <= MAX_EVENT_BYTES:
                try:
                    event = validate(raw, strict=True)
                except Exception:
                    pass
                else:
                    # The suite's tests on the event's own fields, without its row: a passing
                    # event (nearly all) has its row built only if GX samples it. Otherwise
                    # the row and the per-rule interpretation name the failures.
                    passes_model = suite.passes_model
                    if passes_model is not None and type(event) is model:
                        try:
                            if passes_model(event.__dict__, now):
                                return _passing(event, now, flatten_model)
                        except Exception:
                            pass
                    return _verdict(event, flatten_model(event, now), suite)
        return self._check(raw, now, decode, flatten, suite)

    def check_dossier_row(self, row: dict) -> list[Failure]:
        return self.dossier.failures(row)

    def check_rating_row(self, row: dict) -> list[Failure]:
        return self.rating.failures(row)

    # --- internals ---
    def _check(self, raw, now, decode, flatten, suite: CompiledSuite) -> Verdict:
        if raw is None:  # a Kafka tombstone (null value)
            return Verdict(False, None, [Failure(CONTRACT_PREFIX + INVALID_JSON, "null message value")])
        if len(raw) > self.max_event_bytes:
            return Verdict(False, None, [Failure(CONTRACT_PREFIX + OVERSIZE, f"{len(raw)} bytes > {self.max_event_bytes}")])
        try:
            event = decode(raw)
        except ContractError as e:
            failures = [Failure(CONTRACT_PREFIX + e.reason_code, e.message, e.field)]
            if e.reason_code != OVERSIZE:
                obj = _lenient_object(raw)
                if obj is not None:
                    try:
                        failures += suite.failures(flatten(obj, now))
                    except Exception:  # best effort only: the contract failure is the verdict
                        pass
            return Verdict(False, None, failures)
        row = flatten(event, now)
        failures = suite.failures(row)
        return Verdict(not failures, event, failures, row)
