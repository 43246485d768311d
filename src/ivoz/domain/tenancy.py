"""Who may see which rows: the tenancy rule of every model, applied to every query.

Four levels act on the configuration: the platform (sees everything), a brand (its own
subtree: its clients and everything they own), a client (its company's rows) and a
user (itself and the few rows that are its own). ``scope_query`` adds the WHERE clause
that confines a ``select()`` to the actor's subtree; the API runs every read, update
and delete through it, so that another tenant's row is simply *not found*.

Each model has one rule in ``RULES``; a model without a rule is visible to the
platform only (fail closed). Restricted administrators additionally see only the
entities (model class names) they hold a grant for: ``(entity, "read")`` or
``(entity, "write")`` (write implies read).

Shared rows (reference data, infrastructure *sets* that brands assign to clients) are
readable by every level: they belong to no tenant. Whether a level may *write* them is
the API's decision (``can_write`` helps with grants).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from sqlalchemy import ColumnElement, Select, false, or_, select, true

from ivoz.domain import models as m

Level = Literal["platform", "brand", "client", "user"]
Access = Literal["read", "write"]
S = TypeVar("S", bound=Select[Any])


@dataclass(frozen=True)
class Actor:
    """Who acts: an administrator of some level, or a user (level "user")."""

    level: Level
    id: int
    brand_id: int | None = None
    company_id: int | None = None
    user_id: int | None = None
    restricted: bool = False
    grants: frozenset[tuple[str, str]] = frozenset()

    def __post_init__(self) -> None:
        # The owner columns a level needs: an actor missing them would see nothing
        # anyway, but building one is a programming error worth catching early.
        needed = {
            "platform": (),
            "brand": ("brand_id",),
            "client": ("brand_id", "company_id"),
            "user": ("brand_id", "company_id", "user_id"),
        }[self.level]
        missing = [name for name in needed if getattr(self, name) is None]
        if missing:
            raise ValueError(f"{self.level} actor needs {', '.join(missing)}")

    @classmethod
    def for_administrator(cls, admin: m.Administrator) -> Actor:
        grants: set[tuple[str, str]] = set()
        for grant in admin.grants:
            if grant.can_read:
                grants.add((grant.entity, "read"))
            if grant.can_write:
                grants.add((grant.entity, "write"))
        level: Level = admin.level  # type: ignore[assignment]
        return cls(
            level=level,
            id=admin.id,
            brand_id=admin.brand_id,
            company_id=admin.company_id,
            restricted=admin.restricted,
            grants=frozenset(grants),
        )

    @classmethod
    def for_user(cls, user: m.User) -> Actor:
        return cls(
            level="user",
            id=user.id,
            brand_id=user.brand_id,
            company_id=user.company_id,
            user_id=user.id,
        )


def can_read(actor: Actor, entity: str) -> bool:
    """Whether the actor's grants allow reading ``entity`` (always, when unrestricted)."""
    if not actor.restricted:
        return True
    return (entity, "read") in actor.grants or (entity, "write") in actor.grants


def can_write(actor: Actor, entity: str) -> bool:
    """Whether the actor's grants allow changing ``entity`` (always, when unrestricted)."""
    return not actor.restricted or (entity, "write") in actor.grants


Rule = Callable[[Actor], ColumnElement[bool]]


def _shared(_actor: Actor) -> ColumnElement[bool]:
    return true()


def _platform_only(actor: Actor) -> ColumnElement[bool]:
    return true() if actor.level == "platform" else false()


def _brand_private(model: Any) -> Rule:
    """Brand-owned rows no client or user sees (carriers, routing, DDI providers)."""

    def rule(actor: Actor) -> ColumnElement[bool]:
        if actor.level == "platform":
            return true()
        if actor.level == "brand":
            return model.brand_id == actor.brand_id  # type: ignore[no-any-return]
        return false()

    return rule


def _company_owned(model: Any, user_rule: Rule | None = None) -> Rule:
    """Client-owned rows: the brand sees its clients', a client its own."""

    def rule(actor: Actor) -> ColumnElement[bool]:
        if actor.level == "platform":
            return true()
        if actor.level == "brand":
            return model.brand_id == actor.brand_id  # type: ignore[no-any-return]
        if actor.level == "client":
            return model.company_id == actor.company_id  # type: ignore[no-any-return]
        if user_rule is None:
            return false()
        return user_rule(actor)

    return rule


def _brand(actor: Actor) -> ColumnElement[bool]:
    if actor.level == "platform":
        return true()
    return m.Brand.id == actor.brand_id


def _company(actor: Actor) -> ColumnElement[bool]:
    if actor.level == "platform":
        return true()
    if actor.level == "brand":
        return m.Company.brand_id == actor.brand_id
    return m.Company.id == actor.company_id


def _transformation_rule_set(actor: Actor) -> ColumnElement[bool]:
    # Generic sets (brand_id NULL) are shared; a brand's own sets are its subtree's.
    if actor.level == "platform":
        return true()
    return or_(
        m.TransformationRuleSet.brand_id.is_(None),
        m.TransformationRuleSet.brand_id == actor.brand_id,
    )


def _administrator_grant(actor: Actor) -> ColumnElement[bool]:
    if actor.level == "platform":
        return true()
    admins = select(m.Administrator.id)
    if actor.level == "brand":
        admins = admins.where(m.Administrator.brand_id == actor.brand_id)
    elif actor.level == "client":
        admins = admins.where(m.Administrator.company_id == actor.company_id)
    else:
        return false()
    return m.AdministratorGrant.administrator_id.in_(admins)


def _own_terminal(actor: Actor) -> ColumnElement[bool]:
    mine = select(m.User.terminal_id).where(m.User.id == actor.user_id)
    return m.Terminal.id.in_(mine)


def _own_extension(actor: Actor) -> ColumnElement[bool]:
    mine = select(m.User.extension_id).where(m.User.id == actor.user_id)
    return or_(m.Extension.user_id == actor.user_id, m.Extension.id.in_(mine))


def _own_ddi(actor: Actor) -> ColumnElement[bool]:
    mine = select(m.User.outgoing_ddi_id).where(m.User.id == actor.user_id)
    return or_(m.Ddi.user_id == actor.user_id, m.Ddi.id.in_(mine))


def _self_user(actor: Actor) -> ColumnElement[bool]:
    return m.User.id == actor.user_id


def _own_forward(actor: Actor) -> ColumnElement[bool]:
    return m.CallForwardSetting.user_id == actor.user_id


RULES: dict[type[m.Base], Rule] = {
    # reference data and assignable infrastructure sets
    m.Language: _shared,
    m.Timezone: _shared,
    m.Currency: _shared,
    m.Country: _shared,
    m.Feature: _shared,
    m.ApplicationServerSet: _shared,
    m.MediaRelaySet: _shared,
    # platform infrastructure
    m.ApplicationServer: _platform_only,
    m.MediaRelay: _platform_only,
    m.ProxyUsers: _platform_only,
    m.ProxyTrunks: _platform_only,
    # tenancy
    m.Brand: _brand,
    m.Company: _company,
    m.Administrator: _company_owned(m.Administrator),
    m.AdministratorGrant: _administrator_grant,
    m.WebPortal: _company_owned(m.WebPortal),
    # brand-private interconnection
    m.Carrier: _brand_private(m.Carrier),
    m.CarrierServer: _brand_private(m.CarrierServer),
    m.DdiProvider: _brand_private(m.DdiProvider),
    m.DdiProviderAddress: _brand_private(m.DdiProviderAddress),
    m.DdiProviderRegistration: _brand_private(m.DdiProviderRegistration),
    m.RoutingPattern: _brand_private(m.RoutingPattern),
    m.RoutingPatternGroup: _brand_private(m.RoutingPatternGroup),
    m.OutgoingRouting: _brand_private(m.OutgoingRouting),
    m.TransformationRuleSet: _transformation_rule_set,
    # endpoints and numbers
    m.Terminal: _company_owned(m.Terminal, _own_terminal),
    m.User: _company_owned(m.User, _self_user),
    m.Extension: _company_owned(m.Extension, _own_extension),
    m.CallForwardSetting: _company_owned(m.CallForwardSetting, _own_forward),
    m.Ddi: _company_owned(m.Ddi, _own_ddi),
    m.Friend: _company_owned(m.Friend),
    m.RetailAccount: _company_owned(m.RetailAccount),
    m.ResidentialDevice: _company_owned(m.ResidentialDevice),
}


def visible(model: type[m.Base], actor: Actor) -> ColumnElement[bool]:
    """The condition a row of ``model`` must meet for ``actor`` to see it."""
    if not can_read(actor, model.__name__):
        return false()
    rule = RULES.get(model)
    if rule is None:
        return _platform_only(actor)
    return rule(actor)


def scope_query(stmt: S, model: type[m.Base], actor: Actor) -> S:
    """``stmt`` confined to the rows of ``model`` that ``actor`` may see."""
    return stmt.where(visible(model, actor))
