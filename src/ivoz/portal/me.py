"""The user level: a user reads and changes its own profile, nothing else."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from ivoz.domain import models
from ivoz.domain.security import hash_password, verify_password
from ivoz.portal import fields as f
from ivoz.portal.context import current_principal, unit_of_work
from ivoz.portal.crud import check_references, find
from ivoz.portal.errors import FieldError
from ivoz.portal.schemas import EntitySpec
from ivoz.portal.tokens import Principal

_SPEC = EntitySpec(path="me", model=models.User, entity="User")


class Profile(BaseModel):
    id: int
    name: str
    lastname: str
    email: str | None
    company_id: int
    brand_id: int
    extension_id: int | None
    terminal_id: int | None
    outgoing_ddi_id: int | None
    do_not_disturb: bool
    call_waiting_limit: int
    language_id: int | None
    timezone_id: int | None


class ProfileUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: f.Text | None = Field(default=None, min_length=1, max_length=100)
    lastname: f.Text | None = Field(default=None, max_length=100)
    do_not_disturb: bool | None = None
    call_waiting_limit: int | None = Field(default=None, ge=0, le=100)
    language_id: f.Id | None = None
    timezone_id: f.Id | None = None


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: f.Password


def _profile(user: Any) -> dict[str, Any]:
    return {name: getattr(user, name) for name in Profile.model_fields}


def build_router() -> APIRouter:
    router = APIRouter(prefix="/me", tags=["profile"])

    @router.get("", response_model=Profile, responses={401: {}})
    async def read_profile(
        request: Request, principal: Principal = Depends(current_principal)
    ) -> dict[str, Any]:
        """Your own profile."""
        async with unit_of_work(request, principal) as work:
            return _profile(await find(work, models.User, work.actor.user_id or 0))

    @router.patch("", response_model=Profile, responses={401: {}, 422: {}})
    async def update_profile(
        body: ProfileUpdate, request: Request, principal: Principal = Depends(current_principal)
    ) -> dict[str, Any]:
        """Change do-not-disturb, call waiting, name, language or timezone."""
        async with unit_of_work(request, principal) as work:
            user = await find(work, models.User, work.actor.user_id or 0)
            values = body.model_dump(exclude_unset=True)
            for name in ("name", "lastname", "do_not_disturb", "call_waiting_limit"):
                if name in values and values[name] is None:
                    raise FieldError(name, "may not be null")
            await check_references(work, _SPEC, dict(values))
            for name, value in values.items():
                setattr(user, name, value)
            return _profile(user)

    @router.post("/password", status_code=204, responses={401: {}, 422: {}})
    async def change_password(
        body: PasswordChange, request: Request, principal: Principal = Depends(current_principal)
    ) -> None:
        """Change your portal password (the current one is asked for)."""
        async with unit_of_work(request, principal) as work:
            user = await find(work, models.User, work.actor.user_id or 0)
            ok = user.password_hash is not None and await asyncio.to_thread(
                verify_password, user.password_hash, body.current_password
            )
            if not ok:
                raise FieldError("current_password", "does not match")
            user.password_hash = await asyncio.to_thread(hash_password, body.new_password)

    return router
