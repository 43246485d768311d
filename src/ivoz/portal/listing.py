"""Lists: filters, ordering, pagination and CSV export, the same for every entity.

Query string grammar (documented in docs/api.md):

- ``field=value`` equality; ``field[op]=value`` with op one of ``ne lt lte gt gte
  contains startswith in isnull`` (``in`` takes a comma-separated list, ``isnull``
  takes true/false);
- ``order=name,-id``: comma-separated columns, ``-`` for descending; ``id`` is always
  the last tie-breaker so pages are stable;
- ``page`` (from 1) and ``per_page`` (1-500, default 50). The total count before
  pagination is in the ``X-Total-Count`` header, neighbours in ``Link``.

Values are converted with the column's Python type; a bad value or an unknown field is
a 422 naming it.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import enum
import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.sql.elements import ColumnElement

from ivoz.portal.errors import FieldError

MAX_PER_PAGE = 500
DEFAULT_PER_PAGE = 50
CSV_LIMIT = 100_000  # rows in one export
RESERVED = frozenset({"page", "per_page", "order"})
OPS = ("eq", "ne", "lt", "lte", "gt", "gte", "contains", "startswith", "in", "isnull")
_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[([a-z]+)\])?$")


@dataclass(frozen=True)
class Page:
    number: int
    size: int


def _convert(column: Any, field: str, raw: str) -> Any:
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        python_type = str
    try:
        if python_type is bool:
            lowered = raw.lower()
            if lowered in ("true", "1", "yes"):
                return True
            if lowered in ("false", "0", "no"):
                return False
            raise ValueError(raw)
        if python_type is int:
            value = int(raw)
            if not -(2**63) <= value < 2**63:
                raise ValueError(raw)
            return value
        if python_type is decimal.Decimal:
            return decimal.Decimal(raw)
        if python_type is float:
            return float(raw)
        if python_type is dt.datetime:
            return dt.datetime.fromisoformat(raw)
        if python_type is dt.date:
            return dt.date.fromisoformat(raw)
        if isinstance(python_type, type) and issubclass(python_type, enum.Enum):
            return python_type(raw)
        if python_type is str:
            if "\x00" in raw:
                raise ValueError(raw)
            return raw
    except (ValueError, ArithmeticError, decimal.InvalidOperation):
        raise FieldError(field, f"{raw!r} is not a valid value", location="query") from None
    raise FieldError(field, "cannot filter on this field", location="query")


def filter_clauses(
    model: type[Any], fields: Iterable[str], params: Sequence[tuple[str, str]]
) -> list[ColumnElement[bool]]:
    """WHERE clauses for the filters in ``params`` over the allowed ``fields``."""
    allowed = set(fields)
    table = model.__table__
    clauses: list[ColumnElement[bool]] = []
    for key, raw in params:
        if key in RESERVED:
            continue
        match = _KEY.match(key)
        if not match or match.group(1) not in allowed:
            raise FieldError(key, "unknown filter field", location="query")
        name, op = match.group(1), match.group(2) or "eq"
        if op not in OPS:
            raise FieldError(
                key, f"unknown operator; use one of {', '.join(OPS)}", location="query"
            )
        column = table.c[name]
        if op == "isnull":
            clauses.append(column.is_(None) if _convert_bool(key, raw) else column.is_not(None))
            continue
        if op == "in":
            values = [_convert(column, key, part) for part in raw.split(",") if part != ""]
            clauses.append(column.in_(values))
            continue
        if op in ("contains", "startswith"):
            if "\x00" in raw:
                raise FieldError(key, "invalid value", location="query")
            text = column if _is_string(column) else column.cast(_string_type())
            escaped = raw.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = f"%{escaped}%" if op == "contains" else f"{escaped}%"
            clauses.append(text.ilike(pattern, escape="\\"))
            continue
        value = _convert(column, key, raw)
        clauses.append(
            {
                "eq": lambda c, v: c == v,
                "ne": lambda c, v: c != v,
                "lt": lambda c, v: c < v,
                "lte": lambda c, v: c <= v,
                "gt": lambda c, v: c > v,
                "gte": lambda c, v: c >= v,
            }[op](column, value)
        )
    return clauses


def _convert_bool(key: str, raw: str) -> bool:
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise FieldError(key, "must be true or false", location="query")


def _is_string(column: Any) -> bool:
    try:
        return column.type.python_type is str
    except NotImplementedError:
        return False


def _string_type() -> Any:
    from sqlalchemy import String

    return String()


def order_clauses(model: type[Any], fields: Iterable[str], order: str | None) -> list[Any]:
    allowed = set(fields)
    table = model.__table__
    clauses: list[Any] = []
    seen: set[str] = set()
    for part in (order or "").split(","):
        part = part.strip()
        if not part:
            continue
        descending = part.startswith("-")
        name = part.lstrip("-+")
        if name not in allowed:
            raise FieldError("order", f"cannot order by {name!r}", location="query")
        if name in seen:
            continue
        seen.add(name)
        column = table.c[name]
        clauses.append(column.desc() if descending else column.asc())
    if "id" not in seen:
        clauses.append(table.c["id"].asc())
    return clauses


def count_of(stmt: Select[Any]) -> Select[Any]:
    return select(func.count()).select_from(stmt.order_by(None).subquery())


def link_header(base_url: str, query: Mapping[str, str], page: Page, total: int) -> str:
    from urllib.parse import urlencode

    links: list[str] = []
    last = max(1, (total + page.size - 1) // page.size)
    for rel, number in (
        ("first", 1),
        ("prev", page.number - 1),
        ("next", page.number + 1),
        ("last", last),
    ):
        if number < 1 or number > last or (rel in ("prev", "next") and number == page.number):
            continue
        params = {**query, "page": str(number), "per_page": str(page.size)}
        links.append(f'<{base_url}?{urlencode(params)}>; rel="{rel}"')
    return ", ".join(links)


def to_csv(fields: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(fields)
    for row in rows:
        writer.writerow([_csv_cell(row.get(f)) for f in fields])
    return out.getvalue()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return json.dumps(value)
    if isinstance(value, enum.Enum):
        return str(value.value)
    text = str(value)
    # CSV injection: a cell a spreadsheet would run as a formula gets a leading quote.
    if text[:1] in ("=", "+", "-", "@") and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
