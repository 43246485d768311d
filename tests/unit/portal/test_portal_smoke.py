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
