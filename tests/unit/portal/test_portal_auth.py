"""Login, throttling, refresh rotation, logout, expiry and impersonation."""

from __future__ import annotations

from typing import Any

from portal_harness import PASSWORD, Portal
from sqlalchemy import update

from ivoz.domain import models as m


async def login(
    portal: Portal, level: str, username: str, password: str = PASSWORD, **kw: Any
) -> Any:
    headers = kw.pop("headers", {})
    return await portal.client.post(
        f"/api/{level}/login",
        json={"username": username, "password": password, **kw},
        headers=headers,
    )


def bearer(r: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


async def test_each_level_logs_in(portal: Portal) -> None:
    a = portal.seed.a
    host = {"Host": a.portal_host}
    for level, username, kw in [
        ("platform", "root", {}),
        ("brand", "branda", {"headers": host}),
        ("client", "clienta", {"headers": host}),
        ("user", "alice@a.test", {"headers": host}),
    ]:
        r = await login(portal, level, username, **kw)
        assert r.status_code == 200, (level, r.text)
        assert r.json()["token_type"] == "bearer"
        who = await portal.client.get(f"/api/{level}/whoami", headers=bearer(r))
        assert who.status_code == 200 and who.json()["level"] == level
    # A brand-level token is no good on the platform API: never up.
    r = await login(portal, "brand", "branda", headers=host)
    assert (await portal.client.get("/api/platform/brands", headers=bearer(r))).status_code == 401


async def test_the_portal_host_decides_the_brand(portal: Portal) -> None:
    a, b = portal.seed.a, portal.seed.b
    # Brand A's administrator on brand B's portal: unknown there.
    r = await login(portal, "brand", "branda", headers={"Host": b.portal_host})
    assert r.status_code == 401
    # No portal for this host: the explicit brand decides, else the name must be unique.
    r = await login(portal, "brand", "branda", brand_id=a.brand_id)
    assert r.status_code == 200
    r = await login(portal, "brand", "branda", brand_id=b.brand_id)
    assert r.status_code == 401
    r = await login(portal, "brand", "branda")
    assert r.status_code == 200


async def test_wrong_password_and_disabled_accounts(portal: Portal) -> None:
    r = await login(portal, "platform", "root", "wrong password")
    assert r.status_code == 401 and r.json() == {"detail": "wrong username or password"}
    r = await login(portal, "platform", "nobody")
    assert r.status_code == 401 and r.json() == {"detail": "wrong username or password"}
    ok = await login(portal, "platform", "root")
    async with portal.database.sessionmaker() as session, session.begin():
        await session.execute(
            update(m.Administrator).where(m.Administrator.username == "root").values(active=False)
        )
    assert (await login(portal, "platform", "root")).status_code == 401
    # Tokens already issued stop working too.
    assert (await portal.client.get("/api/platform/brands", headers=bearer(ok))).status_code == 401


async def test_failed_logins_are_throttled_per_user_and_per_address(portal: Portal) -> None:
    for _ in range(5):
        assert (await login(portal, "platform", "root", "bad guess")).status_code == 401
    r = await login(portal, "platform", "root")  # even the right password now
    assert r.status_code == 429
    retry = int(r.headers["Retry-After"])
    assert 0 < retry <= 300
    portal.clock.advance(retry)
    assert (await login(portal, "platform", "root")).status_code == 200


async def test_one_address_spraying_many_names_is_throttled(portal: Portal) -> None:
    for i in range(5):
        assert (await login(portal, "platform", f"user{i}", "bad")).status_code == 401
    r = await login(portal, "platform", "root")
    assert r.status_code == 429 and "Retry-After" in r.headers


async def test_access_tokens_expire_and_refresh_rotates(portal: Portal) -> None:
    r = await login(portal, "platform", "root")
    tokens = r.json()
    portal.clock.advance(tokens["expires_in"] + 1)
    assert (await portal.client.get("/api/platform/brands", headers=bearer(r))).status_code == 401
    refreshed = await portal.client.post(
        "/api/platform/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 200
    assert (
        await portal.client.get("/api/platform/brands", headers=bearer(refreshed))
    ).status_code == 200
    # The used refresh token is spent.
    again = await portal.client.post(
        "/api/platform/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert again.status_code == 401
    # A refresh token is not an access token, and not for another level.
    assert (
        await portal.client.get(
            "/api/platform/brands",
            headers={"Authorization": f"Bearer {refreshed.json()['refresh_token']}"},
        )
    ).status_code == 401
    other = await portal.client.post(
        "/api/brand/refresh", json={"refresh_token": refreshed.json()["refresh_token"]}
    )
    assert other.status_code == 401


async def test_logout_revokes_the_session(portal: Portal) -> None:
    r = await login(portal, "platform", "root")
    tokens = r.json()
    out = await portal.client.post("/api/platform/logout", headers=bearer(r))
    assert out.status_code == 204
    assert (await portal.client.get("/api/platform/brands", headers=bearer(r))).status_code == 401
    again = await portal.client.post(
        "/api/platform/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert again.status_code == 401
    # Another login is a new session.
    assert (await login(portal, "platform", "root")).status_code == 200


async def test_impersonation_goes_down_only(portal: Portal) -> None:
    a = portal.seed.a
    root = bearer(await login(portal, "platform", "root"))
    r = await portal.client.post(
        "/api/platform/impersonate", json={"brand_id": a.brand_id}, headers=root
    )
    assert r.status_code == 200, r.text
    as_brand = bearer(r)
    who = (await portal.client.get("/api/brand/whoami", headers=as_brand)).json()
    assert who["brand_id"] == a.brand_id and who["impersonated_by"] == portal.seed.platform_admin_id
    companies = await portal.client.get("/api/brand/companies", headers=as_brand)
    assert [c["id"] for c in companies.json()] == [a.company_id]
    r = await portal.client.post(
        "/api/brand/impersonate", json={"company_id": a.company_id}, headers=as_brand
    )
    assert r.status_code == 200
    as_client = bearer(r)
    r = await portal.client.post(
        "/api/client/impersonate", json={"user_id": a.user_id}, headers=as_client
    )
    assert r.status_code == 200
    me = await portal.client.get("/api/user/me", headers=bearer(r))
    assert me.json()["id"] == a.user_id
    # Never up nor sideways: an impersonated brand token does not work on the platform API
    # or another level, and the user level has nothing below.
    assert (await portal.client.get("/api/platform/brands", headers=as_brand)).status_code == 401
    assert (await portal.client.get("/api/client/users", headers=as_brand)).status_code == 401
    assert (
        await portal.client.post("/api/user/impersonate", json={}, headers=bearer(r))
    ).status_code == 404
    # By administrator: the brand administrator's scope.
    r = await portal.client.post(
        "/api/platform/impersonate", json={"administrator_id": a.brand_admin_id}, headers=root
    )
    assert r.status_code == 200
    # Exactly one target.
    r = await portal.client.post(
        "/api/platform/impersonate", json={"brand_id": 1, "user_id": 1}, headers=root
    )
    assert r.status_code == 422


async def test_impersonation_needs_the_right(portal: Portal) -> None:
    a = portal.seed.a
    async with portal.database.sessionmaker() as session, session.begin():
        await session.execute(
            update(m.Administrator)
            .where(m.Administrator.id == a.brand_admin_id)
            .values(can_impersonate=False)
        )
    r = await portal.client.post(
        "/api/brand/impersonate", json={"company_id": a.company_id}, headers=portal.as_brand(a)
    )
    assert r.status_code == 403
    r = await portal.client.post(
        "/api/client/impersonate", json={"user_id": a.user_id}, headers=portal.as_user(a)
    )
    assert r.status_code == 401


async def test_user_changes_password(portal: Portal) -> None:
    a = portal.seed.a
    headers = portal.as_user(a)
    r = await portal.client.post(
        "/api/user/me/password",
        json={"current_password": "nope", "new_password": "a new long password"},
        headers=headers,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "current_password"
    r = await portal.client.post(
        "/api/user/me/password",
        json={"current_password": PASSWORD, "new_password": "a new long password"},
        headers=headers,
    )
    assert r.status_code == 204
    r = await login(
        portal, "user", "alice@a.test", "a new long password", headers={"Host": a.portal_host}
    )
    assert r.status_code == 200
