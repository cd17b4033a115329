"""Check that the row layouts the code writes (``sinks.rows.TABLE_COLUMNS``) match the tables.

The row builders hand the sink plain lists in column order and the sink names those
columns in its insert, so a table that lost, renamed or reordered a column (a migration
applied to one side and not the other, a hand-made ALTER) shows up only as a failed insert
deep in the stream, or as values landing in the wrong column of a copy made with
``CREATE TABLE ... AS``. ``check_layouts`` DESCRIBEs every sink table once, at start, and
names every difference at once::

    from sinks.layout import check_layouts
    check_layouts(client, "motcua")      # raises LayoutError, or returns the layouts checked

Allowed: a table column the code does not write if the table fills it itself (``DEFAULT``,
``MATERIALIZED``, ``ALIAS``, ``EPHEMERAL``: e.g. ``inserted_at DEFAULT now64(3)``). Errors:
a column the code writes that the table lacks; one it writes that the table computes
itself (``MATERIALIZED`` / ``ALIAS``: an insert cannot set it); a table column without a
default that the code does not write; the written columns in another order than the
table's. Types are not compared (the sink's encoder follows the table's types).
"""
from __future__ import annotations

from dataclasses import dataclass

from sinks.rows import TABLE_COLUMNS

_FILLED_BY_TABLE = {"DEFAULT", "MATERIALIZED", "ALIAS", "EPHEMERAL"}
_NOT_INSERTABLE = {"MATERIALIZED", "ALIAS"}


class LayoutError(RuntimeError):
    """The code's row layout of one or more sink tables does not match the table."""


@dataclass(frozen=True)
class TableColumn:
    name: str
    type: str
    default_kind: str      # '' | DEFAULT | MATERIALIZED | ALIAS | EPHEMERAL


def describe(client, database: str, table: str) -> list[TableColumn]:
    rows = client.query(f"DESCRIBE TABLE `{database}`.`{table}`").result_rows
    return [TableColumn(r[0], r[1], r[2] or "") for r in rows]


def layout_problems(table: str, written: list[str], columns: list[TableColumn]) -> list[str]:
    """What is wrong with writing ``written`` (in that order) to a table of ``columns``."""
    problems = []
    by_name = {c.name: c for c in columns}
    missing = [c for c in written if c not in by_name]
    if missing:
        problems.append(f"written by the code but not in the table: {missing}")
    computed = [c for c in written if c in by_name and by_name[c].default_kind in _NOT_INSERTABLE]
    if computed:
        problems.append(f"written by the code but computed by the table (MATERIALIZED/ALIAS): {computed}")
    unwritten = [c.name for c in columns if c.name not in written and c.default_kind not in _FILLED_BY_TABLE]
    if unwritten:
        problems.append(f"in the table without a DEFAULT but not written by the code: {unwritten}")
    in_table_order = [c.name for c in columns if c.name in written]
    in_code_order = [c for c in written if c in by_name]
    if in_table_order != in_code_order:
        first = next(i for i, (a, b) in enumerate(zip(in_code_order, in_table_order)) if a != b)
        problems.append(f"columns in another order: from position {first} the code writes "
                        f"{in_code_order[first:first + 4]}, the table has {in_table_order[first:first + 4]}")
    return problems


def check_layouts(client, database: str, layouts: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    """DESCRIBE each sink table in ``database`` and raise ``LayoutError`` naming each table
    whose columns do not match the row layout the code writes (``layouts``, default
    ``TABLE_COLUMNS``). A missing table is an error too. Returns the layouts checked."""
    layouts = TABLE_COLUMNS if layouts is None else layouts
    existing = {r[0] for r in client.query("SELECT name FROM system.tables WHERE database = {db:String}",
                                           parameters={"db": database}).result_rows}
    report = []
    for table, written in layouts.items():
        if table not in existing:
            report.append(f"{database}.{table}: no such table (run the migrations: python -m sinks.migrate)")
            continue
        for p in layout_problems(table, list(written), describe(client, database, table)):
            report.append(f"{database}.{table}: {p}")
    if report:
        raise LayoutError("row layouts (sinks/rows.py TABLE_COLUMNS) do not match the tables:\n  "
                          + "\n  ".join(report))
    return dict(layouts)
