"""First light: each level's OpenAPI document, login, and a scoped list."""

from __future__ import annotations

from portal_harness import PASSWORD, Portal


async def test_openapi_per_level(portal: Portal) -> None:
    for level in ("platform", "brand", "client", "user"):
        r = await portal.client.get(f"/api/{level}/openapi.json")
        assert r.status_code == 200, r.text
        assert r.json()["info"]["title"] == f"Ivoz {level} API"
        docs = await portal.client.get(f"/api/{level}/docs")
        assert docs.status_code == 200


async def test_login_and_list(portal: Portal) -> None:
    r = await portal.client.post(
        "/api/brand/login",
        json={"username": "branda", "password": PASSWORD},
        headers={"Host": "portal.a.test"},
    )
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    r = await portal.client.get(
        "/api/brand/companies", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200, r.text
    assert [c["id"] for c in r.json()] == [portal.seed.a.company_id]
    assert r.headers["X-Total-Count"] == "1"


async def test_docs_point_at_their_own_document(portal: Portal) -> None:
    for level in ("platform", "brand", "client", "user"):
        html = (await portal.client.get(f"/api/{level}/docs")).text
        assert f"/api/{level}/openapi.json" in html
        document = (await portal.client.get(f"/api/{level}/openapi.json")).json()
        assert "HTTPBearer" in document["components"]["securitySchemes"]


async def test_restricted_client_administrator(portal: Portal) -> None:
    from ivoz.portal.tokens import Principal

    a = portal.seed.a
    from sqlalchemy import select

    from ivoz.domain import models as m

    async with portal.database.sessionmaker() as session:
        clerk = (
            await session.scalars(
                select(m.Administrator).where(m.Administrator.username == "clerka")
            )
        ).one()
    headers = portal.token(
        Principal("client", "admin", clerk.id, a.brand_id, a.company_id, None, "s")
    )
    r = await portal.client.get("/api/client/users", headers=headers)
    assert r.status_code == 200 and [u["id"] for u in r.json()] == [a.user_id]
    r = await portal.client.patch(f"/api/client/users/{a.user_id}", json={}, headers=headers)
    assert r.status_code == 403
    r = await portal.client.get("/api/client/terminals", headers=headers)
    assert r.status_code == 403
    who = (await portal.client.get("/api/client/whoami", headers=headers)).json()
    assert who["restricted"] is True and who["grants"] == ["User:read"]
