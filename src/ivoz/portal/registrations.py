"""Registration status: which terminals are registered, from where, until when.

Read-only, on the platform, brand and client levels: ``GET /registrations`` lists the
terminals the caller may see (``tenancy.scope_query`` on ``Terminal``, so another
tenant's terminals, and therefore their registrations, are simply not there), one row
per terminal with its live contacts from the location store (``LocationStore
.by_company``: the registrar's bindings, see ``ivoz.state.location``).

The terminals come from the database (one page of them); the bindings from the live
state, only for the clients on that page. A binding whose terminal is not on the page
is never shown. Without a location store (a portal started with no live state) every
terminal reads as unregistered.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel
from sqlalchemy import func, select

from ivoz.domain import models as m
from ivoz.domain.tenancy import scope_query
from ivoz.portal import listing
from ivoz.portal.context import current_principal, portal_state, unit_of_work
from ivoz.portal.crud import require
from ivoz.portal.fields import INT32_MAX
from ivoz.portal.schemas import EntitySpec
from ivoz.portal.tokens import Principal

# Reading registrations needs the right to read terminals (restricted administrators).
_SPEC = EntitySpec(path="registrations", model=m.Terminal, entity="Terminal")


class Contact(BaseModel):
    """One registered contact (RFC 3261 10.3 binding) of a terminal."""

    contact: str
    user_agent: str
    expires: int  # seconds left
    expires_at: float  # Unix time
    registered_at: float  # Unix time of the last refresh
    source: str | None  # "transport:host:port" the REGISTER came from
    transport: str
    q: float
    nat: bool
    instance: str | None  # RFC 5626 +sip.instance
    reg_id: int | None  # RFC 5626 reg-id
    path: list[str]  # RFC 3327 Path


class RegistrationStatus(BaseModel):
    """A terminal and its live contacts (none: not registered)."""

    id: int  # the terminal's id
    terminal_id: int
    terminal: str  # the terminal's name
    sip_username: str
    aor: str | None  # "user@domain" (None when the client has no SIP domain)
    company_id: int
    brand_id: int
    registered: bool
    contacts: list[Contact]


def _contact(binding: Any, now: float) -> dict[str, Any]:
    return {
        "contact": binding.contact,
        "user_agent": binding.user_agent,
        "expires": max(0, int(binding.expires_at - now)),
        "expires_at": binding.expires_at,
        "registered_at": binding.registered_at,
        "source": binding.received,
        "transport": binding.transport,
        "q": binding.q,
        "nat": binding.nat,
        "instance": binding.instance,
        "reg_id": binding.reg_id,
        "path": list(binding.path),
    }


def build_router() -> APIRouter:
    router = APIRouter(prefix="/registrations", tags=["registrations"])

    @router.get(
        "",
        response_model=list[RegistrationStatus],
        summary="List terminals with their registration status",
        responses={
            200: {"headers": {"X-Total-Count": {"schema": {"type": "integer"}}}},
            401: {"description": "not authenticated for this level"},
            403: {"description": "no read grant on Terminal"},
        },
    )
    async def list_(
        request: Request,
        response: Response,
        company_id: int | None = Query(None, ge=1, le=INT32_MAX),
        terminal_id: int | None = Query(None, ge=1, le=INT32_MAX),
        registered: bool | None = Query(None, description="only (un)registered terminals"),
        page: int = Query(1, ge=1, le=INT32_MAX),
        per_page: int = Query(listing.DEFAULT_PER_PAGE, ge=1, le=listing.MAX_PER_PAGE),
        principal: Principal = Depends(current_principal),
    ) -> list[dict[str, Any]]:
        state = portal_state(request)
        location = state.location
        async with unit_of_work(request, principal) as work:
            require(work, _SPEC, "read")
            columns: Any = select(
                m.Terminal.id,
                m.Terminal.name,
                m.Terminal.sip_username,
                m.Terminal.company_id,
                m.Terminal.brand_id,
                m.Company.domain,
            ).join(m.Company, m.Company.id == m.Terminal.company_id)
            stmt = scope_query(columns, m.Terminal, work.actor)
            if company_id is not None:
                stmt = stmt.where(m.Terminal.company_id == company_id)
            if terminal_id is not None:
                stmt = stmt.where(m.Terminal.id == terminal_id)
            stmt = stmt.order_by(m.Terminal.id)
            offset = (page - 1) * per_page
            if registered is None:
                count = select(func.count()).select_from(stmt.order_by(None).subquery())
                total = (await work.session.execute(count)).scalar_one()
                stmt = stmt.offset(offset).limit(per_page)
            terminals = (await work.session.execute(stmt)).all()

        now = state.clock()
        contacts: dict[int, list[dict[str, Any]]] = defaultdict(list)
        if location is not None:
            wanted = {t.id: t.company_id for t in terminals}
            for company in sorted(set(wanted.values())):
                for binding in await location.by_company(company, now):
                    # Only bindings of terminals on this page, of the same client.
                    if wanted.get(binding.terminal_id) == company:
                        contacts[binding.terminal_id].append(_contact(binding, now))
        rows = [
            {
                "id": t.id,
                "terminal_id": t.id,
                "terminal": t.name,
                "sip_username": t.sip_username,
                "aor": f"{t.sip_username}@{t.domain}" if t.domain else None,
                "company_id": t.company_id,
                "brand_id": t.brand_id,
                "registered": bool(contacts.get(t.id)),
                "contacts": contacts.get(t.id, []),
            }
            for t in terminals
        ]
        if registered is not None:
            rows = [r for r in rows if r["registered"] == registered]
            total = len(rows)
            rows = rows[offset : offset + per_page]
        response.headers["X-Total-Count"] = str(total)
        return rows

    return router
