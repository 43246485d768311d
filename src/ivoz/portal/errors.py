"""API errors and the one place where exceptions become HTTP answers (STYLE.md 11).

Every error body is ``{"detail": "<sentence>"}``; validation errors add ``errors``, a
list of ``{"field": "number", "location": "body", "message": "..."}``, one per bad
field. Unique and foreign-key violations are 409 Conflict (naming the fields when the
constraint is known, ``ivoz.domain.errors.explain``); CHECK and NOT NULL violations,
and values the database refuses for their type or size, are 422.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ivoz.domain.errors import explain

log = logging.getLogger(__name__)


class ApiError(Exception):
    status = 400

    def __init__(self, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class NotFound(ApiError):
    """No such object in the caller's scope: also for objects of another tenant."""

    status = 404

    def __init__(self, detail: str = "not found") -> None:
        super().__init__(detail)


class Unauthorized(ApiError):
    status = 401

    def __init__(self, detail: str = "not authenticated") -> None:
        super().__init__(detail, {"WWW-Authenticate": "Bearer"})


class Forbidden(ApiError):
    """The caller may not use this endpoint at all (restricted administrator)."""

    status = 403


class Conflict(ApiError):
    status = 409


class TooManyRequests(ApiError):
    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed logins; retry later", {"Retry-After": str(retry_after)})


class FieldError(ApiError):
    """One bad field: answered 422 naming it."""

    status = 422

    def __init__(self, field: str, message: str, location: str = "body") -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.location = location


def _field_of(loc: tuple[Any, ...] | list[Any]) -> tuple[str, str]:
    parts = [str(p) for p in loc]
    location = parts[0] if parts else "body"
    rest = [p for p in parts[1:] if not p.startswith("function-")]
    return ".".join(rest) or location, location


def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        field, location = _field_of(error.get("loc", ()))
        if error.get("type") == "json_invalid":
            field = "body"  # the location is a character offset, not a field
        message = str(error.get("msg", "invalid"))
        message = message.removeprefix("Value error, ")
        errors.append({"field": field, "location": location, "message": message})
    fields = ", ".join(dict.fromkeys(e["field"] for e in errors))
    return JSONResponse({"detail": f"invalid request: {fields}", "errors": errors}, status_code=422)


def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    body: dict[str, Any] = {"detail": exc.detail}
    if isinstance(exc, FieldError):
        body["errors"] = [{"field": exc.field, "location": exc.location, "message": exc.message}]
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def _integrity(request: Request, exc: Exception) -> JSONResponse:
    # Unique, foreign-key and check constraints: a racing pair cannot both succeed.
    assert isinstance(exc, IntegrityError)
    violation = explain(exc)
    fields = [c for c in violation.columns if c not in ("brand_id", "company_id")] or list(
        violation.columns
    )
    errors = [{"field": f, "location": "body", "message": violation.kind} for f in fields]
    if violation.kind == "unique":
        what = ", ".join(fields) or "unique values"
        detail = f"conflict: another object has the same {what}"
        status = 409
    elif violation.kind == "foreign_key":
        detail = "conflict: the object is referenced by others or refers to a missing one"
        status = 409
    elif violation.kind in ("check", "not_null"):
        detail = f"invalid combination of values: {', '.join(fields) or violation.constraint}"
        status = 422
    else:
        detail = "conflict: the change breaks a database constraint"
        status = 409
    body: dict[str, Any] = {"detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status)


def _dbapi(request: Request, exc: Exception) -> JSONResponse:
    # A value the database will not store (out of range, too long): the client's fault.
    log.info("database refused a value: %s", exc)
    return JSONResponse({"detail": "invalid value: the database refused it"}, status_code=422)


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        {"detail": exc.detail}, status_code=exc.status_code, headers=getattr(exc, "headers", None)
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(IntegrityError, _integrity)
    app.add_exception_handler(DBAPIError, _dbapi)
    app.add_exception_handler(StarletteHTTPException, _http)
