"""Publish the contracts as JSON Schema files: ``python -m schemas.publish``.

Writes ``schemas/dossier-status.v1.schema.json`` and ``schemas/kiosk-rating.v1.schema.json``
from the pydantic models. The files are committed; tests/test_contracts.py regenerates
them and fails when a model changed without republishing. One file per MAJOR: a MINOR
change rewrites the file in place (and bumps ``x-contract-version``).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from pydantic import BaseModel

from schemas.contracts import (DOSSIER_CONTRACT, DOSSIER_CONTRACT_VERSION, RATING_CONTRACT,
                               RATING_CONTRACT_VERSION, DossierEvent, KioskRating)

SCHEMA_DIR = Path(__file__).resolve().parent
ID_BASE = "urn:motcua-pulse:schema:"

# One example each; the tests also run them through both the schema and the model.
DOSSIER_EXAMPLE = {
    "contract_version": "1.0",
    "event_id": "000.05.50.H24:H24.05-261102-0007:4:20261102T091500",
    "event_time": "2026-11-02T09:15:00+07:00",
    "source_system": "motcua-bacninh",
    "dossier_code": "H24.05-261102-0007",
    "procedure_code": "1.001193",
    "procedure_field": "TP-HT",
    "unit_code": "000.05.50.H24",
    "channel": 2,
    "status": 4,
    "handler": "Nguyễn Thị Hà",
    "owner_type": 1,
    "submitted_at": "2026-11-02T07:48:12+07:00",
    "received_at": "2026-11-02T08:02:40+07:00",
    "promised_at": "2026-11-02T17:00:00+07:00",
    "supplements": [],
    "has_digitised_components": True,
    "electronic_result": True,
    "paid_online": 1,
    "vneid_authenticated": True,
}
RATING_EXAMPLE = {
    "contract_version": "1.0",
    "rating_id": "KIOSK-000.05.50.H24-1:20261102T093012:0001",
    "event_time": "2026-11-02T09:30:12+07:00",
    "source_system": "kiosk",
    "kiosk_id": "KIOSK-000.05.50.H24-1",
    "unit_code": "000.05.50.H24",
    "counter_id": "Quầy 2",
    "officer_id": "Nguyễn Thị Hà",
    "dossier_code": "H24.05-261102-0007",
    "procedure_code": "1.001193",
    "level": 5,
    "scale": 5,
    "criteria": {"officer": 5, "time": 4},
    "comment": "Cán bộ hướng dẫn tận tình",
}

# contract -> (model, version, example, title)
CONTRACT_FILES: dict[str, tuple[type[BaseModel], str, dict, str]] = {
    DOSSIER_CONTRACT: (DossierEvent, DOSSIER_CONTRACT_VERSION, DOSSIER_EXAMPLE,
                       "Dossier status event (TrangThaiHoSo change, DVCQG sync vocabulary)"),
    RATING_CONTRACT: (KioskRating, RATING_CONTRACT_VERSION, RATING_EXAMPLE,
                      "Kiosk satisfaction rating (đánh giá mức độ hài lòng tại quầy)"),
}


def schema_path(contract: str) -> Path:
    version = CONTRACT_FILES[contract][1]
    return SCHEMA_DIR / f"{contract}.v{version.split('.')[0]}.schema.json"


def build_schema(contract: str) -> dict:
    model, version, example, title = CONTRACT_FILES[contract]
    body = model.model_json_schema(mode="validation")
    major = version.split(".")[0]
    schema: dict = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{ID_BASE}{contract}:v{major}",
        "title": f"{title}, v{version}",
        "x-contract": contract,
        "x-contract-version": version,
    }
    body.pop("title", None)
    schema.update(body)
    schema["description"] = (
        (model.__doc__ or "").strip()
        + f" Contract {contract} v{version}. Field descriptions name the DVCQG sync field"
        " where one exists. Readers accept every 1.x minor; see schemas/COMPATIBILITY.md.")
    schema["examples"] = [example]
    return schema


def render(schema: dict) -> str:
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=False) + "\n"


def publish() -> list[Path]:
    written = []
    for contract in CONTRACT_FILES:
        path = schema_path(contract)
        path.write_text(render(build_schema(contract)), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    for path in publish():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
