"""What a request works with: the portal's shared state, the caller, one unit of work.

A route handler opens ``async with unit_of_work(request, principal) as work``: one
session, one transaction (``session.begin()``), the caller turned into a
``tenancy.Actor`` from its token and the current database rows, and a list of
``ConfigChanged`` events that are published only after the transaction committed.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ivoz.config import Config
from ivoz.domain import models
from ivoz.domain.db import Database
from ivoz.domain.events import ConfigChanged, EventBus, pending_changes
from ivoz.domain.tenancy import Actor
from ivoz.portal.errors import Unauthorized
from ivoz.portal.tokens import Level, LoginThrottle, Principal, TokenError, TokenService

log = logging.getLogger(__name__)


@dataclass
class PortalState:
    config: Config
    database: Database
    bus: EventBus
    tokens: TokenService
    throttle: LoginThrottle
    clock: Callable[[], float]
    # Live registrations (ivoz.state.location.LocationStore) for status routes; None
    # when the portal runs without live state.
    location: Any = None


STATE_KEY = "ivoz.portal"


def portal_state(request: Request) -> PortalState:
    state: PortalState = request.scope[STATE_KEY]
    return state


def level_of(request: Request) -> Level:
    level: Level = request.app.state.level
    return level


_bearer = HTTPBearer(auto_error=False, description="access token from POST login")


async def current_principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    try:
        return await portal_state(request).tokens.verify(
            credentials.credentials, "access", level_of(request)
        )
    except TokenError as exc:
        raise Unauthorized(str(exc)) from None


@dataclass
class Work:
    session: AsyncSession
    actor: Actor
    principal: Principal
    events: list[ConfigChanged] = field(default_factory=list)


async def load_actor(session: AsyncSession, principal: Principal) -> Actor:
    """The token's caller as it is now: gone or deactivated subjects are refused."""
    if principal.kind == "user":
        user = await session.get(models.User, principal.subject)
        if user is None or not user.active or principal.level != "user":
            raise Unauthorized("account disabled or removed")
        return Actor(
            level="user",
            id=user.id,
            brand_id=user.brand_id,
            company_id=user.company_id,
            user_id=user.id,
            restricted=False,
            grants=frozenset(),
        )
    admin = await session.get(models.Administrator, principal.subject)
    if admin is None or not admin.active:
        raise Unauthorized("account disabled or removed")
    grants = await load_grants(session, admin) if admin.restricted else frozenset()
    if principal.impersonator is None:
        if admin.level != principal.level:
            raise Unauthorized("account changed level")
        brand_id, company_id, user_id = admin.brand_id, admin.company_id, None
    else:
        if not admin.can_impersonate:
            raise Unauthorized("impersonation no longer allowed")
        brand_id, company_id, user_id = (
            principal.brand_id,
            principal.company_id,
            principal.user_id,
        )
        if user_id is not None and await session.get(models.User, user_id) is None:
            raise Unauthorized("impersonated user removed")
        if company_id is not None and await session.get(models.Company, company_id) is None:
            raise Unauthorized("impersonated client removed")
        if brand_id is not None and await session.get(models.Brand, brand_id) is None:
            raise Unauthorized("impersonated brand removed")
    return Actor(
        level=principal.level,
        id=admin.id,
        brand_id=brand_id,
        company_id=company_id,
        user_id=user_id,
        restricted=bool(admin.restricted),
        grants=grants,
    )


async def load_grants(session: AsyncSession, admin: Any) -> frozenset[tuple[str, str]]:
    rows = await session.scalars(
        select(models.AdministratorGrant).where(
            models.AdministratorGrant.administrator_id == admin.id
        )
    )
    grants: set[tuple[str, str]] = set()
    for grant in rows:
        if grant.can_read:
            grants.add((grant.entity, "read"))
        if grant.can_write:
            grants.add((grant.entity, "read"))
            grants.add((grant.entity, "write"))
    return frozenset(grants)


@asynccontextmanager
async def unit_of_work(request: Request, principal: Principal) -> AsyncIterator[Work]:
    state = portal_state(request)
    async with state.database.sessionmaker() as session, session.begin():
        work = Work(session, await load_actor(session, principal), principal)
        yield work
        # The rows this unit flushed (recorded by ivoz.domain.events' flush hooks).
        await session.flush()
        work.events.extend(pending_changes(session))
    # Committed: now the running roles may hear about it.
    for event in work.events:
        try:
            await state.bus.publish(event)
        except Exception:  # a lost announcement must not fail a committed change
            log.exception("could not publish %s", event)
