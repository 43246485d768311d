"""Login, refresh, logout, impersonation and "who am I", the same routes on every level.

Which brand's usernames a brand, client or user login looks in is decided by the
request's Host: the brand of the WebPortal whose URL has that host name. When no
portal matches, the request may name the brand (``brand_id``); without either, the
username must be unique at that level across brands. Platform administrators are not
in any brand.

Failed logins are counted per username and per source address (``LoginThrottle``);
past the limit the answer is 429 with Retry-After, checked before the password so a
guesser learns nothing more.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ivoz.domain import models
from ivoz.domain.security import hash_password, verify_password
from ivoz.domain.tenancy import scope_query
from ivoz.portal.context import (
    current_principal,
    level_of,
    load_actor,
    portal_state,
    unit_of_work,
)
from ivoz.portal.errors import Forbidden, NotFound, TooManyRequests, Unauthorized
from ivoz.portal.fields import Id
from ivoz.portal.tokens import Level, Principal, TokenError

# A hash to verify against when the username is unknown, so both cases cost the same.
_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = hash_password("not a password of anyone")
    return _DUMMY_HASH


class LoginRequest(BaseModel):
    username: str = Field(
        min_length=1, max_length=254, description="administrator username, or e-mail for users"
    )
    password: str = Field(min_length=1, max_length=1024)
    brand_id: Id | None = Field(
        default=None, description="brand to log in to when the Host matches no web portal"
    )


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class LogoutRequest(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=4096)


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="access token lifetime, seconds")


class WhoAmI(BaseModel):
    level: str
    id: int
    brand_id: int | None
    company_id: int | None
    user_id: int | None
    restricted: bool
    impersonated_by: int | None
    grants: list[str]


class ImpersonateRequest(BaseModel):
    brand_id: Id | None = None
    company_id: Id | None = None
    user_id: Id | None = None
    administrator_id: Id | None = Field(
        default=None, description="an administrator of the level below: act in its scope"
    )

    @model_validator(mode="after")
    def _one_target(self) -> ImpersonateRequest:
        given = [k for k, v in self.model_dump().items() if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of brand_id, company_id, user_id, administrator_id")
        return self


NEXT_LEVEL: dict[Level, Level] = {"platform": "brand", "brand": "client", "client": "user"}


def _hostname(authority: str) -> str:
    try:
        return (urlsplit(authority).hostname or "").lower()
    except ValueError:  # "[::1" and other unparsable authorities match nothing
        return ""


def request_host(request: Request) -> str:
    return _hostname("//" + request.headers.get("host", ""))


async def portal_for_host(session: AsyncSession, host: str) -> Any | None:
    """The WebPortal whose URL's host name is ``host`` (None when none matches)."""
    if not host:
        return None
    for portal in await session.scalars(select(models.WebPortal)):
        if _hostname(str(portal.url)) == host:
            return portal
    return None


async def _candidates(
    session: AsyncSession, level: Level, username: str, brand_id: int | None
) -> list[Any]:
    if level == "user":
        stmt: Any = select(models.User).where(models.User.email == username)
        if brand_id is not None:
            stmt = stmt.where(models.User.brand_id == brand_id)
    else:
        admin = models.Administrator
        stmt = select(admin).where(admin.username == username, admin.level == level)
        if level != "platform" and brand_id is not None:
            stmt = stmt.where(admin.brand_id == brand_id)
    return list(await session.scalars(stmt.limit(2)))


def _principal_for(level: Level, row: Any, session_id: str) -> Principal:
    if level == "user":
        return Principal("user", "user", row.id, row.brand_id, row.company_id, row.id, session_id)
    return Principal(level, "admin", row.id, row.brand_id, row.company_id, None, session_id)


def build_router() -> APIRouter:
    router = APIRouter(tags=["auth"])

    @router.post("/login", response_model=TokenResponse, responses={401: {}, 429: {}})
    async def login(body: LoginRequest, request: Request) -> dict[str, Any]:
        """Exchange a username and password for an access and a refresh token."""
        state = portal_state(request)
        level = level_of(request)
        address = request.client.host if request.client else "unknown"
        async with state.database.sessionmaker() as session:
            brand_id = body.brand_id
            if level != "platform":
                portal = await portal_for_host(session, request_host(request))
                if portal is not None and portal.brand_id is not None:
                    brand_id = portal.brand_id
            user_key = f"{level}:{brand_id or '*'}:{body.username.lower()}"
            keys = (user_key, f"addr:{address}")
            wait = await state.throttle.retry_after(*keys)
            if wait:
                raise TooManyRequests(wait)
            found = await _candidates(session, level, body.username, brand_id)
            row = found[0] if len(found) == 1 else None
            hashed = row.password_hash if row is not None and row.password_hash else _dummy_hash()
            ok = await asyncio.to_thread(verify_password, hashed, body.password)
            if not ok or row is None or not row.active:
                await state.throttle.failed(*keys)
                raise Unauthorized("wrong username or password")
        await state.throttle.succeeded(user_key)
        pair = state.tokens.issue(_principal_for(level, row, state.tokens.new_session()))
        return pair.as_dict()

    @router.post("/refresh", response_model=TokenResponse, responses={401: {}})
    async def refresh(body: RefreshRequest, request: Request) -> dict[str, Any]:
        """Use a refresh token once: it is revoked and a new pair is returned."""
        state = portal_state(request)
        level = level_of(request)
        try:
            principal = await state.tokens.verify(body.refresh_token, "refresh", level)
        except TokenError as exc:
            raise Unauthorized(str(exc)) from None
        async with state.database.sessionmaker() as session:
            await load_actor(session, principal)
        try:
            return (await state.tokens.rotate(body.refresh_token, level)).as_dict()
        except TokenError as exc:
            raise Unauthorized(str(exc)) from None

    @router.post("/logout", status_code=204, responses={401: {}})
    async def logout(
        request: Request,
        body: LogoutRequest | None = None,
        principal: Principal = Depends(current_principal),
    ) -> Response:
        """Revoke the session: its access and refresh tokens stop working."""
        state = portal_state(request)
        auth = request.headers.get("authorization", "")
        await state.tokens.revoke_session(auth.split(" ", 1)[1])
        return Response(status_code=204)

    @router.get("/whoami", response_model=WhoAmI, responses={401: {}})
    async def whoami(
        request: Request, principal: Principal = Depends(current_principal)
    ) -> dict[str, Any]:
        """The caller's scope as the API sees it."""
        async with unit_of_work(request, principal) as work:
            actor = work.actor
        return {
            "level": actor.level,
            "id": actor.id,
            "brand_id": actor.brand_id,
            "company_id": actor.company_id,
            "user_id": actor.user_id,
            "restricted": actor.restricted,
            "impersonated_by": principal.impersonator,
            "grants": sorted(f"{e}:{r}" for e, r in actor.grants),
        }

    return router


def build_impersonation_router(level: Level) -> APIRouter:
    """POST /impersonate: tokens for the level below, in a scope the caller owns."""
    router = APIRouter(tags=["auth"])
    below = NEXT_LEVEL[level]

    @router.post(
        "/impersonate",
        response_model=TokenResponse,
        responses={401: {}, 403: {}, 404: {}},
        description=f"Tokens for the {below} level inside your own scope, for administrators"
        " allowed to impersonate.",
    )
    async def impersonate(
        body: ImpersonateRequest,
        request: Request,
        principal: Principal = Depends(current_principal),
    ) -> dict[str, Any]:
        state = portal_state(request)
        if principal.kind != "admin":
            raise Forbidden("only administrators impersonate")
        async with unit_of_work(request, principal) as work:
            admin = await work.session.get(models.Administrator, principal.subject)
            if admin is None or not admin.can_impersonate:
                raise Forbidden("this administrator may not impersonate")
            actor, session = work.actor, work.session
            brand_id: int | None = None
            company_id: int | None = None
            user_id: int | None = None
            if body.administrator_id is not None:
                stmt = scope_query(
                    select(models.Administrator).where(
                        models.Administrator.id == body.administrator_id,
                        models.Administrator.level == below,
                    ),
                    models.Administrator,
                    actor,
                )
                target = (await session.scalars(stmt)).first()
                if target is None:
                    raise NotFound("no such administrator")
                brand_id, company_id = target.brand_id, target.company_id
            elif below == "brand" and body.brand_id is not None:
                brand = await _visible(session, actor, models.Brand, body.brand_id, "no such brand")
                brand_id = brand.id
            elif below == "client" and body.company_id is not None:
                company = await _visible(
                    session, actor, models.Company, body.company_id, "no such client"
                )
                brand_id, company_id = company.brand_id, company.id
            elif below == "user" and body.user_id is not None:
                user = await _visible(session, actor, models.User, body.user_id, "no such user")
                brand_id, company_id, user_id = user.brand_id, user.company_id, user.id
            else:
                raise NotFound(f"give a target of the {below} level")
        pair = state.tokens.issue(
            Principal(
                below,
                "admin",
                principal.subject,
                brand_id,
                company_id,
                user_id,
                state.tokens.new_session(),
                impersonator=principal.subject,
            )
        )
        return pair.as_dict()

    return router


async def _visible(session: AsyncSession, actor: Any, model: Any, id_: int, missing: str) -> Any:
    """The row of ``model`` with ``id_`` if ``actor`` may see it, else 404 (``missing``)."""
    stmt = scope_query(select(model).where(model.id == id_), model, actor)
    row = (await session.scalars(stmt)).first()
    if row is None:
        raise NotFound(missing)
    return row
