"""Web portal logos: upload (PUT raw image bytes) and removal, for platform and brand.

Only raster images whose first bytes match their declared type are stored (PNG, JPEG,
GIF, WebP; at most 256 KiB). SVG is refused: served from the portal's own origin at
/my/logo, an SVG could carry script. The theme (``GET /my/theme``) then names
``/my/logo`` as the logo.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Request, Response

from ivoz.domain import models
from ivoz.portal.context import current_principal, unit_of_work
from ivoz.portal.crud import find, require
from ivoz.portal.errors import ApiError, FieldError
from ivoz.portal.fields import INT32_MAX
from ivoz.portal.schemas import EntitySpec
from ivoz.portal.tokens import Principal

MAX_LOGO = 256 * 1024  # bytes
# Declared type -> the signatures its first bytes may start with.
SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
_SPEC = EntitySpec(path="web-portals", model=models.WebPortal, entity="WebPortal")


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


def build_router(level: str) -> APIRouter:
    router = APIRouter(prefix="/web-portals", tags=["web-portals"])
    errors: dict[int | str, dict[str, Any]] = {s: {} for s in (401, 403, 404, 413, 415, 422)}

    @router.put(
        "/{id}/logo",
        status_code=204,
        summary="Upload the portal's logo",
        responses=errors,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    t: {"schema": {"type": "string", "format": "binary"}} for t in SIGNATURES
                },
            }
        },
    )
    async def upload(
        request: Request,
        id: int = Path(ge=1, le=INT32_MAX),
        principal: Principal = Depends(current_principal),
    ) -> Response:
        async with unit_of_work(request, principal) as work:
            require(work, _SPEC, "write")
            # The portal first: another tenant's id is a 404 whatever the body.
            portal = await find(work, models.WebPortal, id, write_level=level)
            mime = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if mime not in SIGNATURES:
                raise UnsupportedMediaType(f"send one of {', '.join(SIGNATURES)}")
            body = b""
            async for chunk in request.stream():  # stop reading past the limit
                body += chunk
                if len(body) > MAX_LOGO:
                    raise PayloadTooLarge(f"a logo is at most {MAX_LOGO} bytes")
            if not body.startswith(SIGNATURES[mime]) or (
                mime == "image/webp" and body[8:12] != b"WEBP"
            ):
                raise FieldError("body", f"not a {mime} image")
            portal.logo, portal.logo_mime, portal.logo_path = body, mime, None
        return Response(status_code=204)

    @router.delete(
        "/{id}/logo",
        status_code=204,
        summary="Remove the portal's logo",
        responses=errors,
    )
    async def remove(
        request: Request,
        id: int = Path(ge=1, le=INT32_MAX),
        principal: Principal = Depends(current_principal),
    ) -> Response:
        async with unit_of_work(request, principal) as work:
            require(work, _SPEC, "write")
            portal = await find(work, models.WebPortal, id, write_level=level)
            portal.logo = portal.logo_mime = None
        return Response(status_code=204)

    return router
