"""Pydantic schemas built from the SQLAlchemy models, one set per entity and level.

Each column becomes a field whose type is chosen in this order: the entity's explicit
override, a rule on the column's name (``email``, ``*_colour``, ``port``, ``*_id``...),
then the column's SQL type (strings get the column's length as ``max_length``, integers
the 32-bit range). Ownership columns the caller's level fixes (``brand_id`` for brand
and client callers, ``company_id`` for client callers) are left out of the input
schemas: the server sets them.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from sqlalchemy import JSON, Column

from ivoz.portal import fields as f

HIDDEN = frozenset({"password_hash"})
# SIP and trunk credentials are secrets: accepted on create and update, never shown,
# exported, filtered or ordered on (a filter would be an oracle for guessing them).
WRITE_ONLY = frozenset({"sip_password", "auth_password"})


@dataclass(frozen=True)
class EntitySpec:
    """How one model is offered on one level's API."""

    # URL segment ("companies") and the name used for grants and events ("Company").
    path: str
    model: type[Any]
    entity: str
    can_create: bool = True
    can_update: bool = True
    can_delete: bool = True
    # Columns never shown or accepted.
    exclude: frozenset[str] = frozenset()
    # Columns shown but never written through the API.
    readonly: frozenset[str] = frozenset()
    # When set, only these columns may be written on update (others read-only).
    writable: frozenset[str] | None = None
    # Field name -> annotated type, overriding the name rules.
    types: dict[str, Any] = field(default_factory=dict)
    # Write-only input fields: name -> (column it is hashed into).
    passwords: dict[str, str] = field(default_factory=dict)
    # Values forced on create (after the caller's).
    fixed: dict[str, Any] = field(default_factory=dict)
    # Extra checks: async (work, values, row_or_None) -> None; raise FieldError.
    check: Any = None
    # Many-to-many links written as id lists: field -> (relationship attribute, model).
    relations: dict[str, tuple[str, Any]] = field(default_factory=dict)
    # Writes refused to restricted administrators whatever their grants (their own
    # rights and their colleagues' are not theirs to hand out).
    unrestricted_only: bool = False
    summary: str = ""


def columns(model: type[Any]) -> list[Column[Any]]:
    return list(model.__table__.columns)


def owner_fields(model: type[Any], level: str) -> frozenset[str]:
    names = {c.name for c in columns(model)}
    fixed: set[str] = set()
    if level in ("brand", "client", "user") and "brand_id" in names:
        fixed.add("brand_id")
    if level in ("client", "user") and "company_id" in names:
        fixed.add("company_id")
    if level == "user" and "user_id" in names:
        fixed.add("user_id")
    return frozenset(fixed)


def immutable_fields(model: type[Any]) -> frozenset[str]:
    """Ownership that a PATCH may not move: a row changes tenant only by being re-created
    (its children and references would otherwise straddle two tenants)."""
    from ivoz.domain import models as m

    names = {c.name for c in columns(model)}
    fixed = {"brand_id"} & names
    if model in m.COMPANY_OWNED:
        fixed |= {"company_id"}
    if model is m.CallForwardSetting:
        fixed |= {"user_id"}
    return frozenset(fixed)


def exposed(spec: EntitySpec) -> list[Column[Any]]:
    return [c for c in columns(spec.model) if c.name not in HIDDEN | spec.exclude]


def readable(spec: EntitySpec) -> list[Column[Any]]:
    """The exposed columns an API response shows (secrets are write-only)."""
    return [c for c in exposed(spec) if c.name not in WRITE_ONLY]


_HOST_NAMES = {
    "ng_host",
    "from_domain",
    "domain_users",
    "host",
    "hostname",
    "ip",
    "ip_address",
    "advertised_host",
    "advertised_ip",
    "proxy",
    "outbound_proxy",
    "domain",
    "sip_domain",
}
_CIDR_NAMES = {"cidr", "network", "allowed_cidrs", "cidrs", "allowed_addresses"}


def column_type(spec: EntitySpec, column: Column[Any]) -> Any:
    name = column.name
    if name in spec.types:
        return spec.types[name]
    if column.foreign_keys or name == "id":
        return f.Id
    if name == "email" or name.endswith("_email"):
        return f.Email
    if name in ("colour", "color") or name.endswith(("_colour", "_color")):
        return f.Colour
    if name == "url" or name.endswith("_url"):
        return f.Url
    if name == "port" or name.endswith("_port"):
        return f.Port
    if name in _HOST_NAMES:
        return f.Host
    if name in _CIDR_NAMES:
        return list[f.Cidr] if _is_json(column) else f.Cidr
    if name == "allowed_codecs":
        return list[f.Codec] if _is_json(column) else str
    if name in ("sip_username", "auth_username"):
        return f.SipUser
    if name in ("e164", "number_e164", "ddi_e164", "ddi"):
        return f.E164
    return _sql_type(column)


def _is_json(column: Column[Any]) -> bool:
    return isinstance(column.type, JSON)


def _python_type(column: Column[Any]) -> Any:
    try:
        return column.type.python_type
    except NotImplementedError:
        return Any


def _sql_type(column: Column[Any]) -> Any:
    sql_type = column.type
    if isinstance(sql_type, JSON):
        return list[Any]
    enums = getattr(sql_type, "enums", None)
    if enums:
        return Literal[tuple(enums)]
    python = _python_type(column)
    if python is bool:
        return bool
    if python is int:
        return f.Int32
    if python is str:
        length = getattr(sql_type, "length", None)
        if length:
            return _text(length)
        return _text(4000)
    if python is decimal.Decimal:
        return _decimal()
    if python is float:
        return float
    if python in (dt.datetime, dt.date, dt.time):
        return python
    if isinstance(python, type) and issubclass(python, enum.Enum):
        return python
    if python is list:
        return list[Any]
    if python is dict:
        return dict[str, Any]
    return Any


def _text(length: int) -> Any:
    return Annotated[f.Text, Field(max_length=length)]


def _decimal() -> Any:
    return Annotated[decimal.Decimal, Field(max_digits=18, decimal_places=6)]


def _read_type(spec: EntitySpec, column: Column[Any]) -> Any:
    """Output types: plain, so that a row stored before a rule tightened still reads."""
    if isinstance(column.type, JSON):
        return list[Any]
    python = _python_type(column)
    if python in (bool, int, str, float, decimal.Decimal, dt.datetime, dt.date, dt.time):
        return python
    return Any


def _has_default(column: Column[Any]) -> bool:
    return (
        column.default is not None
        or column.server_default is not None
        or column.nullable is True
        or column.primary_key
    )


_FORBID = ConfigDict(extra="forbid")


def build(spec: EntitySpec, level: str) -> tuple[type[BaseModel], type[BaseModel], type[BaseModel]]:
    """(create, update, read) schemas of ``spec`` as seen from ``level``."""
    prefix = f"{spec.entity}{level.capitalize()}"
    owned = owner_fields(spec.model, level)
    create_fields: dict[str, Any] = {}
    update_fields: dict[str, Any] = {}
    read_fields: dict[str, Any] = {}
    for column in exposed(spec):
        name = column.name
        kind = column_type(spec, column)
        if name not in WRITE_ONLY:
            plain = _read_type(spec, column)
            read_fields[name] = (plain | None if column.nullable else plain, ...)
        if column.primary_key or name in spec.readonly or name in owned:
            continue
        if column.nullable:
            create_fields[name] = (kind | None, None)
        elif _has_default(column):
            create_fields[name] = (kind, None)
        else:
            create_fields[name] = (kind, ...)
        if name in immutable_fields(spec.model):
            continue
        if spec.writable is None or name in spec.writable:
            update_fields[name] = (kind | None if column.nullable else kind, None)
    for secret, column_name in spec.passwords.items():
        hashed = spec.model.__table__.columns[column_name]
        create_fields[secret] = (f.Password, None) if hashed.nullable else (f.Password, ...)
        update_fields[secret] = (f.Password, None)
    for relation in spec.relations:
        ids = Annotated[list[f.Id], Field(max_length=1000)]
        create_fields[relation] = (ids, None)
        update_fields[relation] = (ids, None)
        read_fields[relation] = (list[int], ...)
    create = create_model(f"{prefix}Create", __config__=_FORBID, **create_fields)
    update = create_model(f"{prefix}Update", __config__=_FORBID, **update_fields)
    read = create_model(f"{prefix}", **read_fields)
    return create, update, read
