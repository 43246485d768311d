"""Two portal processes sharing Redis: a logout or a login throttle on one holds on the
other (the apps here are two instances over one database, as two processes would be)."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from portal_harness import PASSWORD, FakeClock, seeded_database

from ivoz.config import Config
from ivoz.domain.events import MemoryEventBus
from ivoz.portal.app import create_app
from ivoz.portal.tokens import LoginThrottle, RedisFailures, RedisRevocations
from support.redis import redis_url

pytestmark = pytest.mark.integration


@pytest.fixture
async def two_portals(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[list[httpx.AsyncClient]]:
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_url())
    # Keys of this test only: another test run may share the server.
    prefix = f"ivoz-test-{uuid.uuid4().hex[:8]}:"
    clock = FakeClock()
    async with seeded_database("sqlite", tmp_path, tmp_path_factory) as (database, _seed):
        config = dataclasses.replace(Config(), data_dir=tmp_path, api_secret="shared" * 8)
        clients = []
        for _ in range(2):
            throttle = LoginThrottle(clock, store=RedisFailures(client, prefix=prefix))
            app = create_app(
                config,
                database,
                MemoryEventBus(),
                clock=clock,
                throttle=throttle,
                revocations=RedisRevocations(client, clock, prefix=prefix),
            )
            transport = httpx.ASGITransport(app=app, client=("198.51.100.7", 4000))
            clients.append(httpx.AsyncClient(transport=transport, base_url="http://testserver"))
        try:
            yield clients
        finally:
            for c in clients:
                await c.aclose()
            keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()


async def _login(client: httpx.AsyncClient, password: str = PASSWORD) -> Any:
    return await client.post("/api/platform/login", json={"username": "root", "password": password})


async def test_logout_on_one_portal_holds_on_the_other(
    two_portals: list[httpx.AsyncClient],
) -> None:
    one, two = two_portals
    r = await _login(one)
    tokens = r.json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert (await two.get("/api/platform/brands", headers=headers)).status_code == 200
    assert (await one.post("/api/platform/logout", headers=headers)).status_code == 204
    assert (await two.get("/api/platform/brands", headers=headers)).status_code == 401
    r = await two.post("/api/platform/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 401


async def test_a_refresh_token_is_spent_on_every_portal(
    two_portals: list[httpx.AsyncClient],
) -> None:
    one, two = two_portals
    refresh = (await _login(one)).json()["refresh_token"]
    assert (
        await one.post("/api/platform/refresh", json={"refresh_token": refresh})
    ).status_code == 200
    assert (
        await two.post("/api/platform/refresh", json={"refresh_token": refresh})
    ).status_code == 401


async def test_throttling_is_shared(two_portals: list[httpx.AsyncClient]) -> None:
    one, two = two_portals
    for i in range(5):
        client = one if i % 2 else two
        assert (await _login(client, "wrong")).status_code == 401
    r = await _login(one)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) > 0
    assert (await _login(two)).status_code == 429
