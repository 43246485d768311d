"""The portal application: one FastAPI sub-application per level, plus the theme.

``/api/platform``, ``/api/brand``, ``/api/client`` and ``/api/user`` are mounted
sub-applications, each with its own OpenAPI document (``openapi.json``) and
interactive docs (``docs``). A token is good for the level it was issued on only.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from ivoz import __version__
from ivoz.config import Config
from ivoz.domain import models
from ivoz.domain.db import Database
from ivoz.domain.events import EventBus
from ivoz.portal import auth, crud, entities, errors, logos, me, registrations
from ivoz.portal.context import STATE_KEY, PortalState
from ivoz.portal.tokens import (
    LEVELS,
    Level,
    LoginThrottle,
    RedisFailures,
    RedisRevocations,
    RevocationStore,
    TokenService,
    load_or_create_secret,
)

DEFAULT_THEME = {"name": "Ivoz", "colour": "#2f6fb0", "logo": None, "level": None}

_DESCRIPTIONS = {
    "platform": "The platform operator: brands, infrastructure, reference data.",
    "brand": "A brand (operator): its clients, carriers, DDI providers, routing, numbers.",
    "client": "A client (company): its users, terminals, extensions, friends, accounts.",
    "user": "A user: its own profile.",
}


class Theme(BaseModel):
    name: str
    colour: str
    logo: str | None
    level: str | None


class _StateMiddleware:
    """Puts the portal's state into every request's scope, for the level apps to find."""

    def __init__(self, app: ASGIApp, state: PortalState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[STATE_KEY] = self.state
        await self.app(scope, receive, send)


@functools.cache
def build_level_app(level: Level) -> FastAPI:
    """The API of one level. Stateless (the state travels in the request scope), so it
    is built once per process: building ~300 routes takes a noticeable fraction of a
    second."""
    app = FastAPI(
        title=f"Ivoz {level} API",
        version=__version__,
        description=_DESCRIPTIONS[level] + " Authenticate with POST login (see docs/api.md).",
    )
    app.state.level = level
    errors.install(app)
    app.include_router(auth.build_router())
    if level in auth.NEXT_LEVEL:
        app.include_router(auth.build_impersonation_router(level))
    if level == "user":
        app.include_router(me.build_router())
    else:
        # Live registration status (docs/directory.md): platform, brand and client.
        app.include_router(registrations.build_router())
    for spec in entities.for_level(level):
        app.include_router(crud.build_router(spec, level))
    if level in ("platform", "brand"):
        app.include_router(logos.build_router(level))
    return app


def create_app(
    config: Config,
    database: Database,
    bus: EventBus,
    *,
    clock: Callable[[], float] = time.time,
    throttle: LoginThrottle | None = None,
    location: Any = None,
    redis: Any = None,
    revocations: RevocationStore | None = None,
) -> FastAPI:
    """The portal app. ``redis`` (a redis.asyncio client) shares token revocations and
    login throttling among several portal processes; without it they are in memory."""
    secret = config.api_secret or load_or_create_secret(config.data_dir)
    if revocations is None and redis is not None:
        revocations = RedisRevocations(redis, clock)
    failures = RedisFailures(redis) if redis is not None else None
    state = PortalState(
        config=config,
        database=database,
        bus=bus,
        tokens=TokenService(secret, clock, revocations=revocations),
        throttle=throttle or LoginThrottle(clock, store=failures),
        clock=clock,
        location=location,
    )
    app = FastAPI(title="Ivoz", version=__version__, docs_url=None, redoc_url=None)
    app.state.portal = state
    app.add_middleware(_StateMiddleware, state=state)
    errors.install(app)
    for level in LEVELS:
        app.mount(f"/api/{level}", build_level_app(level))

    @app.get("/my/theme", response_model=Theme)
    async def theme(request: Request) -> dict[str, Any]:
        """Name, colour and logo of the web portal whose URL has the request's host."""
        async with database.sessionmaker() as session:
            portal = await auth.portal_for_host(session, auth.request_host(request))
            if portal is None:
                return DEFAULT_THEME
            logo = portal.logo_path
            if logo is None and portal.logo is not None:
                logo = "/my/logo"
            return {
                "name": portal.name or DEFAULT_THEME["name"],
                "colour": portal.colour,
                "logo": logo,
                "level": portal.level,
            }

    @app.get("/my/logo", responses={200: {"content": {"image/*": {}}}, 404: {}})
    async def logo(request: Request) -> Response:
        """The logo image stored for the web portal of the request's host."""
        async with database.sessionmaker() as session:
            portal = await auth.portal_for_host(session, auth.request_host(request))
            if portal is None or portal.logo is None:
                raise errors.NotFound("no logo")
            return Response(
                portal.logo,
                media_type=portal.logo_mime or "application/octet-stream",
                headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=300"},
            )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    _ = models  # the models module must be imported before the routers are built
    return app
