"""Load the suite JSON files (the single source of the data rules) and resolve placeholders.

The files in ``expectations/suites/`` are Great Expectations 1.x ExpectationSuite JSON
(``{"name", "expectations": [{"type", "kwargs", "meta"}], "meta"}``). Values that depend
on deployment data are written as placeholders and filled in when a suite is loaded:

- ``{"$ref": "reference.units"}``            unit codes of the reference data
- ``{"$ref": "reference.procedures"}``       procedure codes
- ``{"$ref": "reference.fields"}``           procedure field codes
- ``{"$ref": "reference.procedure_fields"}`` ``"<procedure_code>|<field_code>"`` pairs
- ``{"$ref": "settings.<attribute>"}``       any attribute of ``pulse.config.Settings``

Both the per-event checker (``expectations.checks``) and the GX batch runner
(``expectations.gx_batch``) load suites through :func:`load_suite`, so they see the same
resolved rules.
"""
from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

SUITES_DIR = Path(__file__).resolve().parent / "suites"

DOSSIER_SUITE = "dossier_events"
RATING_SUITE = "ratings"
SUITE_NAMES = (DOSSIER_SUITE, RATING_SUITE)

PAIR_SEPARATOR = "|"


class SuiteError(ValueError):
    """A suite file is malformed, names an unknown placeholder or an unsupported expectation."""


def suite_path(name: str) -> Path:
    return SUITES_DIR / f"{name}.json"


def load_suite_json(name: str) -> dict:
    """The suite file as written (placeholders unresolved)."""
    path = suite_path(name)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise SuiteError(f"no suite file {path}") from e
    if d.get("name") != name:
        raise SuiteError(f"{path}: name is {d.get('name')!r}, expected {name!r}")
    rules = []
    for i, exp in enumerate(d.get("expectations", [])):
        rule = (exp.get("meta") or {}).get("rule")
        if not rule:
            raise SuiteError(f"{path}: expectation #{i} ({exp.get('type')}) has no meta.rule")
        rules.append(rule)
    dupes = {r for r in rules if rules.count(r) > 1}
    if dupes:
        raise SuiteError(f"{path}: duplicate rule names {sorted(dupes)}")
    return d


# --- reference data ---------------------------------------------------------------------

def _codes(collection: Any) -> list[str]:
    if collection is None:
        return []
    if isinstance(collection, Mapping):
        return sorted(str(k) for k in collection.keys())
    out = []
    for item in collection:
        if isinstance(item, str):
            out.append(item)
        else:
            out.append(str(_attr(item, "code", "unit_code", "procedure_code", "field_code")))
    return sorted(out)


def _attr(obj: Any, *names: str) -> Any:
    for n in names:
        if isinstance(obj, Mapping) and n in obj:
            return obj[n]
        if hasattr(obj, n):
            return getattr(obj, n)
    return None


def _procedure_field_pairs(procedures: Any) -> list[str]:
    items: Iterable[tuple[str, Any]]
    if isinstance(procedures, Mapping):
        items = procedures.items()
    else:
        items = ((str(_attr(p, "code", "procedure_code")), p) for p in procedures or ())
    pairs = []
    for code, proc in items:
        field_code = proc if isinstance(proc, str) else _attr(proc, "field_code", "field", "procedure_field", "linh_vuc")
        if field_code is None:
            raise SuiteError(f"reference procedure {code!r} has no field code")
        pairs.append(f"{code}{PAIR_SEPARATOR}{field_code}")
    return sorted(pairs)


def reference_value_sets(reference: Any) -> dict[str, list[str]]:
    """The value sets the suites may refer to, from ``schemas.reference.load_reference()``."""
    return {
        "units": _codes(_attr(reference, "units")),
        "procedures": _codes(_attr(reference, "procedures")),
        "fields": _codes(_attr(reference, "fields")),
        "procedure_fields": _procedure_field_pairs(_attr(reference, "procedures")),
    }


# --- resolution -------------------------------------------------------------------------

def resolve(obj: Any, ref_sets: Mapping[str, list], settings: Any) -> Any:
    """Deep copy of ``obj`` with every ``{"$ref": ...}`` replaced."""
    if isinstance(obj, dict):
        if set(obj) == {"$ref"}:
            target = obj["$ref"]
            scope, _, key = str(target).partition(".")
            if scope == "reference" and key in ref_sets:
                return list(ref_sets[key])
            if scope == "settings" and key and hasattr(settings, key):
                return getattr(settings, key)
            raise SuiteError(f"unknown placeholder {target!r}")
        return {k: resolve(v, ref_sets, settings) for k, v in obj.items()}
    if isinstance(obj, list):
        return [resolve(v, ref_sets, settings) for v in obj]
    return copy.deepcopy(obj)


def load_suite(name: str, reference: Any, settings: Any) -> dict:
    """The suite with placeholders resolved from reference data and settings."""
    return resolve(load_suite_json(name), reference_value_sets(reference), settings)


def rules_of(name: str) -> list[str]:
    return [e["meta"]["rule"] for e in load_suite_json(name)["expectations"]]
