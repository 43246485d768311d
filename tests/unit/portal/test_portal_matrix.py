"""The rights matrix: every route of every level, called by an actor of each level and by
the same level of a foreign tenant (brand B, its client, its user).

Expected: a token of another level is 401 on every authenticated route; a foreign
tenant reads 404 for every object of tenant A, never sees A's rows in lists or CSV
exports, gets 404 on A's objects for PATCH and DELETE, and 422 when a create names A's
objects; after all refused writes the database is unchanged.
"""

from __future__ import annotations

from typing import Any

from portal_harness import Portal, Tenant
from portal_samples import FOREIGN, payloads
from sqlalchemy import select
from starlette.routing import Mount

from ivoz.domain import models as m

LEVELS = ("platform", "brand", "client", "user")
PUBLIC = {"/login", "/refresh", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
SHARED = {
    "languages",
    "timezones",
    "currencies",
    "countries",
    "features",
    "application-server-sets",
    "media-relay-sets",
}


def level_routes(portal: Portal, level: str) -> list[tuple[str, str]]:
    """Every (method, path) of the level's OpenAPI document, less the public ones."""
    mount = next(r for r in portal.app.routes if isinstance(r, Mount) and r.path == f"/api/{level}")
    document = mount.app.openapi()
    found = []
    for path, operations in document["paths"].items():
        for method in operations:
            if path not in PUBLIC:
                found.append((method.upper(), path))
    return found


def target_id(level: str, path: str, t: Tenant, portal: Portal) -> int:
    entity = path.split("/")[1]
    if level == "client" and entity == "administrators":
        return t.ids["client-administrators"]
    if entity in SHARED:
        return 1
    if level == "platform" and entity == "brands":
        return t.brand_id
    if entity in t.ids:
        return t.ids[entity]
    return 1


async def snapshot(portal: Portal) -> dict[str, list[tuple[Any, ...]]]:
    tables = {}
    async with portal.database.engine.connect() as conn:
        for table in m.Base.metadata.sorted_tables:
            rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
            tables[table.name] = [tuple(r) for r in rows]
    return tables


def actors(portal: Portal) -> dict[str, tuple[str, dict[str, str]]]:
    a, b = portal.seed.a, portal.seed.b
    return {
        "platform": ("platform", portal.as_platform()),
        "brand A": ("brand", portal.as_brand(a)),
        "client A": ("client", portal.as_client(a)),
        "user A": ("user", portal.as_user(a)),
        "brand B": ("brand", portal.as_brand(b)),
        "client B": ("client", portal.as_client(b)),
        "user B": ("user", portal.as_user(b)),
    }


async def test_wrong_level_tokens_are_refused_everywhere(portal: Portal) -> None:
    a = portal.seed.a
    before = await snapshot(portal)
    for level in LEVELS:
        for method, path in level_routes(portal, level):
            url = f"/api/{level}" + path.replace("{id}", str(target_id(level, path, a, portal)))
            for name, (actor_level, headers) in actors(portal).items():
                if actor_level == level:
                    continue
                r = await portal.client.request(method, url, headers=headers, json={})
                assert r.status_code == 401, (name, method, url, r.status_code, r.text)
            r = await portal.client.request(method, url, json={})
            assert r.status_code == 401, ("anonymous", method, url, r.status_code)
    assert await snapshot(portal) == before
    assert sum(len(level_routes(portal, lv)) for lv in LEVELS) > 200


async def test_foreign_tenant_reads_and_writes_nothing(portal: Portal) -> None:
    a, b = portal.seed.a, portal.seed.b
    foreign = {
        "brand": portal.as_brand(b),
        "client": portal.as_client(b),
        "user": portal.as_user(b),
    }
    owner = {"brand": portal.as_brand(a), "client": portal.as_client(a), "user": portal.as_user(a)}
    before = await snapshot(portal)
    checked = 0
    for level in ("brand", "client", "user"):
        samples = payloads(level, portal.seed, b, n=7)
        for method, path in level_routes(portal, level):
            entity = path.split("/")[1] if path.count("/") else ""
            if entity in SHARED or entity in (
                "login",
                "refresh",
                "logout",
                "whoami",
                "impersonate",
                "me",
            ):
                continue
            a_id = target_id(level, path, a, portal)
            url = f"/api/{level}" + path.replace("{id}", str(a_id))
            if "{id}" in path:
                # The object exists: its owner reads it.
                owner_url = f"/api/{level}/{entity}/{a_id}"
                r = await portal.client.get(owner_url, headers=owner[level])
                assert r.status_code == 200, (level, path, r.text)
                r = await portal.client.request(method, url, headers=foreign[level], json={})
                assert r.status_code == 404, (level, method, path, r.status_code, r.text)
                checked += 1
            elif method == "GET":
                r = await portal.client.get(url, headers=foreign[level], params={"per_page": 500})
                assert r.status_code == 200, (level, path, r.text)
                if path.endswith("export.csv"):
                    rows = r.text.splitlines()[1:]
                    ids = {int(line.split(",", 1)[0]) for line in rows}
                else:
                    ids = {row["id"] for row in r.json()}
                    assert r.headers["X-Total-Count"] == str(len(ids))
                    for row in r.json():
                        assert row.get("brand_id") != a.brand_id, (level, path, row)
                assert a_id not in ids or a.ids.get(entity) is None, (level, path, ids)
                checked += 1
            elif method == "POST" and (level, entity) in FOREIGN:
                for field, key in FOREIGN[(level, entity)].items():
                    body = dict(samples[entity])
                    body[field] = [a.ids[key]] if field.endswith("_ids") else a.ids[key]
                    r = await portal.client.post(url, headers=foreign[level], json=body)
                    assert r.status_code == 422, (level, path, field, r.status_code, r.text)
                    assert r.json()["errors"][0]["field"] == field
                    checked += 1
    # Foreign client routing A's DDI, by PATCH with ids of its own: still 404.
    r = await portal.client.patch(
        f"/api/client/ddis/{a.ddi_id}", headers=foreign["client"], json={"user_id": b.user_id}
    )
    assert r.status_code == 404
    # The user level: each user sees only itself.
    r = await portal.client.get("/api/user/me", headers=foreign["user"])
    assert r.json()["id"] == b.user_id
    r = await portal.client.patch(
        "/api/user/me", headers=foreign["user"], json={"language_id": 1, "do_not_disturb": False}
    )
    assert r.status_code == 200 and r.json()["id"] == b.user_id
    assert checked > 100
    after = await snapshot(portal)
    after["users"] = before["users"]  # the PATCH of B's own profile above changed nothing of A
    assert after == before


async def test_foreign_impersonation_is_not_found(portal: Portal) -> None:
    a, b = portal.seed.a, portal.seed.b
    r = await portal.client.post(
        "/api/brand/impersonate", headers=portal.as_brand(b), json={"company_id": a.company_id}
    )
    assert r.status_code == 404
    r = await portal.client.post(
        "/api/client/impersonate", headers=portal.as_client(b), json={"user_id": a.user_id}
    )
    assert r.status_code == 404
    r = await portal.client.post(
        "/api/brand/impersonate",
        headers=portal.as_brand(b),
        json={"administrator_id": a.client_admin_id},
    )
    assert r.status_code == 404
