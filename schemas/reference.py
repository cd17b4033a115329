"""Reference data: units, procedure fields, procedures (CSV files in schemas/reference/).

``load_reference()`` reads them once per process and checks their cross-references, so a
typo in a CSV fails at start-up rather than as a silently unknown unit in a board.
"""
from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, cast

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"

UnitKind = Literal["province", "department", "commune"]
Level = Literal["province", "commune"]
Online = Literal["full", "partial", "none"]


@dataclass(frozen=True)
class Unit:
    code: str                 # DonViXuLy
    name: str                 # Vietnamese name
    name_en: str
    kind: UnitKind
    parent_code: str | None
    former_district: str      # pre-July-2025 district, historical only; may be ""
    gso_code: str = ""        # GSO administrative code (communes, province)


@dataclass(frozen=True)
class ProcedureField:
    code: str                 # MaLinhVuc
    name: str
    name_en: str = ""
    department_code: str = ""  # department handling the field's province-level procedures


@dataclass(frozen=True)
class Procedure:
    code: str                 # MaTTHC
    name: str                 # TenTTHC
    field_code: str
    level: Level
    legal_working_days: float
    online: Online


@dataclass(frozen=True)
class Reference:
    units: dict[str, Unit]
    procedures: dict[str, Procedure]
    fields: dict[str, ProcedureField]

    @property
    def province(self) -> Unit:
        return next(u for u in self.units.values() if u.kind == "province")

    def units_of_kind(self, kind: UnitKind) -> list[Unit]:
        return [u for u in self.units.values() if u.kind == kind]

    def procedures_at(self, level: Level) -> list[Procedure]:
        return [p for p in self.procedures.values() if p.level == level]

    def department_for(self, procedure: Procedure) -> Unit:
        return self.units[self.fields[procedure.field_code].department_code]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return [{k: (v or "").strip() for k, v in row.items()} for row in csv.DictReader(f)]


def read_reference(directory: Path = REFERENCE_DIR) -> Reference:
    """Read and cross-check the CSV files of ``directory`` (no caching)."""
    units = {}
    for r in _rows(directory / "units.csv"):
        if r["kind"] not in ("province", "department", "commune"):
            raise ValueError(f"units.csv: unit {r['code']}: unknown kind {r['kind']!r}")
        units[r["code"]] = Unit(r["code"], r["name"], r["name_en"], cast(UnitKind, r["kind"]), r["parent_code"] or None,
                                r["former_district"], r.get("gso_code", ""))
    fields = {r["code"]: ProcedureField(r["code"], r["name"], r.get("name_en", ""), r.get("department_code", ""))
              for r in _rows(directory / "fields.csv")}
    procedures = {}
    for r in _rows(directory / "procedures.csv"):
        if r["level"] not in ("province", "commune") or r["online"] not in ("full", "partial", "none"):
            raise ValueError(f"procedures.csv: {r['code']}: bad level/online {r['level']!r}/{r['online']!r}")
        procedures[r["code"]] = Procedure(r["code"], r["name"], r["field_code"], cast(Level, r["level"]),
                                          float(r["legal_working_days"]), cast(Online, r["online"]))
    ref = Reference(units, procedures, fields)
    _check(ref)
    return ref


def _check(ref: Reference) -> None:
    problems = problems_of(ref)
    if problems:
        raise ValueError("reference data: " + "; ".join(problems))


def problems_of(ref: Reference) -> list[str]:
    """What is wrong with a whole catalogue (cross-references), one sentence per problem."""
    problems = []
    for u in ref.units.values():
        if u.parent_code and u.parent_code not in ref.units:
            problems.append(f"unit {u.code}: unknown parent {u.parent_code}")
    if sum(u.kind == "province" for u in ref.units.values()) != 1:
        problems.append("units.csv must hold exactly one province")
    for f in ref.fields.values():
        if f.department_code and ref.units.get(f.department_code, None) is None:
            problems.append(f"field {f.code}: unknown department {f.department_code}")
    for p in ref.procedures.values():
        if p.field_code not in ref.fields:
            problems.append(f"procedure {p.code}: unknown field {p.field_code}")
        if p.legal_working_days <= 0:
            problems.append(f"procedure {p.code}: legal_working_days must be > 0")
    return problems


# --- the catalogue as a document (ClickHouse ref_catalogue, the reference-catalogue topic) ---

def to_document(ref: Reference) -> dict:
    """The catalogue as plain JSON-able data; ``from_document`` reads it back."""
    return {"units": [asdict(u) for u in ref.units.values()],
            "fields": [asdict(f) for f in ref.fields.values()],
            "procedures": [asdict(p) for p in ref.procedures.values()]}


def from_document(doc: dict) -> Reference:
    """A Reference from ``to_document``'s data, cross-checked like the bundled CSV files."""
    units = {u["code"]: Unit(**u) for u in doc["units"]}
    fields = {f["code"]: ProcedureField(**f) for f in doc["fields"]}
    procedures = {p["code"]: Procedure(**{**p, "legal_working_days": float(p["legal_working_days"])})
                  for p in doc["procedures"]}
    ref = Reference(units, procedures, fields)
    _check(ref)
    return ref


@lru_cache(maxsize=1)
def load_reference() -> Reference:
    """The reference data shipped with the code, read once per process."""
    return read_reference(REFERENCE_DIR)
