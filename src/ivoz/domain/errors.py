"""What an IntegrityError means, in model terms, on SQLite and PostgreSQL alike.

The database enforces uniqueness, foreign keys and CHECKs; the API turns a violation
into a 409 (or 422) that names the offending fields. ``explain(exc)`` reads the
constraint from the driver (asyncpg reports its name; SQLite reports the columns or,
for CHECKs, the name) and finds it in the models' metadata, so the answer is the same
on both databases: ``Violation("unique", "terminals", ("company_id", "sip_username"),
"uq_terminals_company_id_sip_username")``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import CheckConstraint, ForeignKeyConstraint, Index, UniqueConstraint
from sqlalchemy.exc import IntegrityError

from ivoz.domain.models import Base

Kind = Literal["unique", "foreign_key", "check", "not_null", "unknown"]

# PostgreSQL SQLSTATE class 23 codes (PostgreSQL manual, appendix A).
_PG_KINDS: dict[str, Kind] = {
    "23505": "unique",
    "23503": "foreign_key",
    "23514": "check",
    "23502": "not_null",
}
_SQLITE = re.compile(r"(UNIQUE|CHECK|NOT NULL|FOREIGN KEY) constraint failed(?::\s*(.*))?")


@dataclass(frozen=True)
class Violation:
    kind: Kind
    table: str | None = None
    columns: tuple[str, ...] = ()
    constraint: str | None = None


def _by_name(name: str) -> tuple[str | None, tuple[str, ...]]:
    for table in Base.metadata.tables.values():
        for constraint in table.constraints:
            if constraint.name == name:
                if isinstance(constraint, CheckConstraint):
                    # CHECKs are named after the column they guard when it is one column.
                    prefix = f"ck_{table.name}_"
                    short = name.removeprefix(prefix)
                    cols = (short,) if short in table.c else ()
                    return table.name, cols
                columns = getattr(constraint, "columns", ())
                return table.name, tuple(c.name for c in columns)
        for index in table.indexes:
            if index.name == name:
                return table.name, tuple(c.name for c in index.columns if hasattr(c, "name"))
    return None, ()


def _unique_name(table: str, columns: tuple[str, ...]) -> str | None:
    found = Base.metadata.tables.get(table)
    if found is None:
        return None
    for constraint in found.constraints:
        if (
            isinstance(constraint, UniqueConstraint | ForeignKeyConstraint)
            and tuple(c.name for c in constraint.columns) == columns
        ):
            return str(constraint.name)
    for index in found.indexes:
        names = tuple(c.name for c in index.columns if hasattr(c, "name"))
        if isinstance(index, Index) and index.unique and names == columns:
            return str(index.name)
    if len(columns) == 1 and found.c[columns[0]].unique:
        return f"uq_{table}_{columns[0]}"
    return None


def explain(exc: IntegrityError) -> Violation:
    """The constraint an IntegrityError broke, with its table and columns when known."""
    orig = exc.orig
    cause = getattr(orig, "__cause__", None)
    sqlstate = getattr(cause, "sqlstate", None) or getattr(orig, "sqlstate", None)
    if sqlstate is not None:  # asyncpg
        kind = _PG_KINDS.get(str(sqlstate), "unknown")
        name = getattr(cause, "constraint_name", None)
        table = getattr(cause, "table_name", None)
        if kind == "not_null":
            column = getattr(cause, "column_name", None)
            return Violation(kind, table, (column,) if column else ())
        if name:
            found_table, columns = _by_name(name)
            return Violation(kind, table or found_table, columns, name)
        return Violation(kind, table)
    match = _SQLITE.search(str(orig))
    if match is None:
        return Violation("unknown")
    word, detail = match.group(1), (match.group(2) or "").strip()
    if word == "FOREIGN KEY":
        return Violation("foreign_key")
    if word == "CHECK":
        table, columns = _by_name(detail)
        return Violation("check", table, columns, detail or None)
    pairs = [part.strip().split(".", 1) for part in detail.split(",") if "." in part]
    table = pairs[0][0] if pairs else None
    columns = tuple(column for _, column in pairs)
    if word == "NOT NULL":
        return Violation("not_null", table, columns)
    return Violation("unique", table, columns, _unique_name(table, columns) if table else None)
