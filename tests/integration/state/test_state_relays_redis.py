"""Relay ownership in a real Redis server: per-key expiry survives across processes."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio

from ivoz.state import RedisRelayOwners, RelayOwners
from support.redis import redis_url

pytestmark = pytest.mark.integration


async def test_redis_owner() -> None:
    client = redis.asyncio.Redis.from_url(redis_url())
    try:
        owners: RelayOwners = RedisRelayOwners(client, prefix=f"ivoz-test:{uuid.uuid4()}:")
        await owners.set("call", "127.0.0.1:2222", ttl=5)
        assert await owners.get("call") == "127.0.0.1:2222"
        assert 0 < await client.pttl(f"{owners.prefix}call") <= 5000  # type: ignore[attr-defined]
        await owners.delete("call")
        assert await owners.get("call") is None
    finally:
        await client.aclose()
