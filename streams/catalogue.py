"""The reference catalogue a running worker validates and judges with, reloaded without a restart.

At start the worker takes the newest imported catalogue in ClickHouse (``ref_catalogue``,
written by ``pulse reference import``), else the bundled set (schemas/reference). Then
every ``reference_poll_interval_s`` it asks ClickHouse for the newest version (one
``max(version)`` over a table of a few rows); a newer one is read (one row: the whole
catalogue as a JSON document, so never half a version), and a new checker and dossier
logic are built off the event loop and swapped in between batches: the batches prepared
after it use the new codes (streams.dossiers takes ``rt.checker`` once per batch).

Why poll ClickHouse rather than consume the compacted reference-catalogue topic: every
worker needs the whole catalogue, which Faust's group consumer would split between them (a
second, group-less Kafka client per worker to run and watch); the worker already depends on
ClickHouse (migrations, read-back), and the boards join the same ref_* tables, so worker and
boards go by one store. The topic is for consumers outside the pipeline.
"""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("motcua.streams.catalogue")


def initial(settings) -> tuple[int, Any]:
    """(version, Reference) in force at start: imported (ClickHouse) or bundled (version 0)."""
    from sinks.client import get_client
    from sinks.reference import current_reference
    client = get_client(settings)
    try:
        return current_reference(client)
    finally:
        client.close()


def newer(settings, version: int, calendar=None) -> tuple[int, Any, Any, Any] | None:
    """(version, reference, checker, logic) of a catalogue newer than ``version``, or None.
    Blocking (ClickHouse, compiling the suites): run it in a thread."""
    from expectations.checks import Checker
    from sinks.client import get_client
    from sinks.reference import catalogue_version, read_catalogue
    from streams.core import DossierLogic
    client = get_client(settings)
    try:
        if catalogue_version(client) <= version:
            return None
        found = read_catalogue(client, newer_than=version)
    finally:
        client.close()
    if found is None:
        return None
    v, ref = found
    return v, ref, Checker.from_suites(ref, settings), DossierLogic.from_settings(settings, calendar=calendar, reference=ref)


def swap(rt, found: tuple[int, Any, Any, Any]) -> None:
    """Put a newer catalogue in force (on the event loop, between batches)."""
    version, ref, checker, logic = found
    rt.reference, rt.checker, rt.logic = ref, checker, logic
    rt.catalogue_version = version
    log.info("pulse: reference catalogue version %d in force (%s: %d units, %d procedures, %d fields)",
             version, ref.province.name, len(ref.units), len(ref.procedures), len(ref.fields))
