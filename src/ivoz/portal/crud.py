"""The generic CRUD router: list (filter, order, page, CSV), create, read, update, delete.

Every query goes through ``tenancy.scope_query`` with the caller's Actor, so an object
outside the caller's subtree is simply not found (404, never 403: its existence does
not leak). Foreign keys in a payload must point at objects the caller can see, or the
field is refused (422). Ownership columns are set from the caller, never from the
payload. Restricted administrators need a grant (entity, read|write) per endpoint.
"""

# No `from __future__ import annotations`: FastAPI reads the locally built schemas.

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import PlainTextResponse
from sqlalchemy import select

from ivoz.domain import models
from ivoz.domain.security import hash_password
from ivoz.domain.tenancy import scope_query
from ivoz.portal import listing, schemas
from ivoz.portal.context import Work, current_principal, unit_of_work
from ivoz.portal.errors import FieldError, Forbidden, NotFound
from ivoz.portal.fields import INT32_MAX
from ivoz.portal.schemas import EntitySpec
from ivoz.portal.tokens import Principal

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "not authenticated"},
    403: {"description": "restricted administrator without this grant"},
    404: {"description": "no such object in your scope"},
    409: {"description": "conflict with existing data"},
    422: {"description": "invalid field"},
}


def _model_for_table(table_name: str) -> type[Any] | None:
    for mapper in models.Base.registry.mappers:
        if getattr(mapper.local_table, "name", None) == table_name:
            cls: type[Any] = mapper.class_
            return cls
    return None


def require(work: Work, spec: EntitySpec, right: str) -> None:
    actor = work.actor
    if actor.restricted and (spec.entity, right) not in actor.grants:
        raise Forbidden(f"no {right} grant on {spec.entity}")
    if actor.restricted and right == "write" and spec.unrestricted_only:
        raise Forbidden(f"restricted administrators do not change {spec.entity}")


async def find(work: Work, model: type[Any], id_: int, write_level: str | None = None) -> Any:
    """The row ``id_`` if the caller sees it; for a write (``write_level`` given), also
    only if the caller owns it: shared rows (a platform's generic transformation rule
    set seen by a brand) are read-only below their owner."""
    stmt = scope_query(select(model).where(model.id == id_), model, work.actor)
    row = (await work.session.scalars(stmt)).first()
    if row is not None and write_level is not None:
        for name in schemas.owner_fields(model, write_level):
            if getattr(row, name) != getattr(work.actor, name):
                row = None
                break
    if row is None:
        raise NotFound(f"no such {model.__name__} {id_}")
    return row


async def check_references(work: Work, spec: EntitySpec, values: dict[str, Any]) -> None:
    """Each foreign key must name an object the caller can see (else 422 on the field)."""
    for column in schemas.columns(spec.model):
        value = values.get(column.name)
        if value is None or not column.foreign_keys:
            continue
        fk = next(iter(column.foreign_keys))
        target = _model_for_table(fk.column.table.name)
        if target is None:
            continue
        stmt = scope_query(
            select(target).where(target.id == value),
            target,
            work.actor,
        )
        row = (await work.session.scalars(stmt)).first()
        if row is None:
            raise FieldError(column.name, f"no such {target.__name__} {value}")
        # Rows of a client carry its brand too: keep the pair consistent.
        if column.name == "company_id" and "brand_id" in {
            c.name for c in schemas.columns(spec.model)
        }:
            if values.get("brand_id") not in (None, row.brand_id):
                raise FieldError("company_id", "the client belongs to another brand")
            values["brand_id"] = row.brand_id


async def check_same_client(work: Work, spec: EntitySpec, row: Any) -> None:
    """A client's row points only at objects of the same client (a brand must not route
    client X's DDI to client Y's user, though it sees both)."""
    if not hasattr(row, "company_id") or spec.model is models.Company:
        return
    for column in schemas.columns(spec.model):
        value = getattr(row, column.key, None)
        if value is None or not column.foreign_keys or column.name == "company_id":
            continue
        target = _model_for_table(next(iter(column.foreign_keys)).column.table.name)
        if target is None or target is models.Company or not hasattr(target, "company_id"):
            continue
        other = await work.session.get(target, value)
        if other is None:
            continue
        if row.company_id is None or other.company_id != row.company_id:
            raise FieldError(column.name, f"the {target.__name__} belongs to another client")


def row_dict(spec: EntitySpec, row: Any) -> dict[str, Any]:
    data = {c.name: getattr(row, c.key, None) for c in schemas.readable(spec)}
    for name, (attribute, _model) in spec.relations.items():
        data[name] = sorted(item.id for item in getattr(row, attribute))
    return data


async def _relations(work: Work, spec: EntitySpec, values: dict[str, Any]) -> dict[str, list[Any]]:
    """Pop the id lists of many-to-many links and load their (visible) targets."""
    linked: dict[str, list[Any]] = {}
    for name, (attribute, target) in spec.relations.items():
        ids = values.pop(name, None)
        if ids is None:
            continue
        wanted = set(ids)
        stmt = scope_query(select(target).where(target.id.in_(wanted)), target, work.actor)
        rows = list(await work.session.scalars(stmt))
        missing = wanted - {r.id for r in rows}
        if missing:
            raise FieldError(name, f"no such {target.__name__}: {sorted(missing)}")
        linked[attribute] = rows
    return linked


async def _apply_passwords(spec: EntitySpec, values: dict[str, Any]) -> None:
    for name, column in spec.passwords.items():
        plain = values.pop(name, None)
        if plain is not None:
            # argon2 is deliberately slow: keep it off the event loop.
            values[column] = await asyncio.to_thread(hash_password, plain)


def _force_owner(work: Work, spec: EntitySpec, values: dict[str, Any], level: str) -> None:
    actor = work.actor
    for name in schemas.owner_fields(spec.model, level):
        values[name] = getattr(actor, name)


async def _visible(work: Work, spec: EntitySpec, row: Any) -> None:
    """After a write, the row must still be in the caller's scope."""
    await work.session.flush()
    stmt = scope_query(
        select(spec.model.id).where(spec.model.id == row.id),
        spec.model,
        work.actor,
    )
    if (await work.session.execute(stmt)).first() is None:
        raise FieldError("body", "the object would leave your scope")


def build_router(spec: EntitySpec, level: str) -> APIRouter:
    create_schema, update_schema, read_schema = schemas.build(spec, level)
    model = spec.model
    shown = [c.name for c in schemas.readable(spec)]
    filter_params = [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
        for name in shown
    ]
    router = APIRouter(prefix=f"/{spec.path}", tags=[spec.path], responses=_ERRORS)
    label = spec.summary or spec.entity

    async def _select(request: Request, work: Work, order: str | None) -> Any:
        params = [(k, v) for k, v in request.query_params.multi_items()]
        stmt = scope_query(select(model), model, work.actor)
        for clause in listing.filter_clauses(model, shown, params):
            stmt = stmt.where(clause)
        return stmt, listing.order_clauses(model, shown, order)

    @router.get(
        "",
        response_model=list[read_schema],  # type: ignore[valid-type]
        summary=f"List {label}",
        openapi_extra={"parameters": filter_params},
        responses={
            200: {
                "content": {"text/csv": {}},
                "headers": {"X-Total-Count": {"schema": {"type": "integer"}}},
            }
        },
    )
    async def list_(
        request: Request,
        response: Response,
        page: int = Query(1, ge=1, le=INT32_MAX),
        per_page: int = Query(listing.DEFAULT_PER_PAGE, ge=1, le=listing.MAX_PER_PAGE),
        order: str | None = Query(None, max_length=500, description="e.g. name,-id"),
        principal: Principal = Depends(current_principal),
    ) -> Any:
        if "text/csv" in request.headers.get("accept", ""):
            return await export(request, order, principal)
        async with unit_of_work(request, principal) as work:
            require(work, spec, "read")
            stmt, ordering = await _select(request, work, order)
            total = (await work.session.execute(listing.count_of(stmt))).scalar_one()
            offset = (page - 1) * per_page
            rows = list(
                await work.session.scalars(stmt.order_by(*ordering).offset(offset).limit(per_page))
            )
            result = [row_dict(spec, r) for r in rows]
        response.headers["X-Total-Count"] = str(total)
        query = {k: v for k, v in request.query_params.items() if k not in ("page", "per_page")}
        link = listing.link_header(
            str(request.url.replace(query="")), query, listing.Page(page, per_page), total
        )
        if link:
            response.headers["Link"] = link
        return result

    @router.get(
        "/export.csv",
        summary=f"Export {label} as CSV",
        response_class=PlainTextResponse,
        openapi_extra={"parameters": filter_params},
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def export(
        request: Request,
        order: str | None = Query(None, max_length=500),
        principal: Principal = Depends(current_principal),
    ) -> Response:
        async with unit_of_work(request, principal) as work:
            require(work, spec, "read")
            stmt, ordering = await _select(request, work, order)
            rows = await work.session.scalars(stmt.order_by(*ordering).limit(listing.CSV_LIMIT))
            body = listing.to_csv(shown, (row_dict(spec, r) for r in rows))
        return Response(
            body,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{spec.path}.csv"'},
        )

    @router.get("/{id}", response_model=read_schema, summary=f"Read one {label}")
    async def read(
        request: Request,
        id: int = Path(ge=1, le=INT32_MAX),
        principal: Principal = Depends(current_principal),
    ) -> Any:
        async with unit_of_work(request, principal) as work:
            require(work, spec, "read")
            return row_dict(spec, await find(work, model, id))

    if spec.can_create:

        @router.post("", response_model=read_schema, status_code=201, summary=f"Create {label}")
        async def create(
            request: Request,
            body: create_schema,  # type: ignore[valid-type]
            principal: Principal = Depends(current_principal),
        ) -> Any:
            async with unit_of_work(request, principal) as work:
                require(work, spec, "write")
                values = body.model_dump(exclude_unset=True)  # type: ignore[attr-defined]
                values = {k: v for k, v in values.items() if v is not None or _nullable(model, k)}
                await _apply_passwords(spec, values)
                _force_owner(work, spec, values, level)
                values.update(spec.fixed)
                linked = await _relations(work, spec, values)
                for attribute, _target in spec.relations.values():
                    linked.setdefault(attribute, [])  # loaded, not lazily fetched later
                await check_references(work, spec, values)
                if spec.check is not None:
                    await spec.check(work, values, None)
                row = model(**values, **linked)
                await check_same_client(work, spec, row)
                work.session.add(row)
                await _visible(work, spec, row)
                return row_dict(spec, row)

    if spec.can_update:

        @router.patch("/{id}", response_model=read_schema, summary=f"Change {label}")
        async def update(
            request: Request,
            body: update_schema,  # type: ignore[valid-type]
            id: int = Path(ge=1, le=INT32_MAX),
            principal: Principal = Depends(current_principal),
        ) -> Any:
            async with unit_of_work(request, principal) as work:
                require(work, spec, "write")
                row = await find(work, model, id, write_level=level)
                values = body.model_dump(exclude_unset=True)  # type: ignore[attr-defined]
                for name, value in list(values.items()):
                    if value is None and not _nullable(model, name) and name not in spec.passwords:
                        raise FieldError(name, "may not be null")
                await _apply_passwords(spec, values)
                values.update(await _relations(work, spec, values))
                refs = dict(values)
                if "company_id" in refs and _has_column(model, "brand_id"):
                    refs["brand_id"] = None  # follows the client
                await check_references(work, spec, refs)
                if refs.get("brand_id") is not None:
                    values["brand_id"] = refs["brand_id"]
                if spec.check is not None:
                    await spec.check(work, values, row)
                for name, value in values.items():
                    setattr(row, name, value)
                await check_same_client(work, spec, row)
                await _visible(work, spec, row)
                return row_dict(spec, row)

    if spec.can_delete:

        @router.delete("/{id}", status_code=204, summary=f"Delete {label}")
        async def delete(
            request: Request,
            id: int = Path(ge=1, le=INT32_MAX),
            principal: Principal = Depends(current_principal),
        ) -> Response:
            async with unit_of_work(request, principal) as work:
                require(work, spec, "write")
                row = await find(work, model, id, write_level=level)
                await work.session.delete(row)
                await work.session.flush()
            return Response(status_code=204)

    return router


def _has_column(model: type[Any], name: str) -> bool:
    return name in model.__table__.columns


def _nullable(model: type[Any], name: str) -> bool:
    column = model.__table__.columns.get(name)
    return bool(column is not None and column.nullable)
