"""Relay ownership live state: memory implementation with a fake clock; Redis when running."""

from __future__ import annotations

import socket
import uuid

import pytest

from ivoz.state import MemoryRelayOwners, RedisRelayOwners, RelayOwners


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_memory_owner_expires_per_key() -> None:
    clock = Clock()
    owners: RelayOwners = MemoryRelayOwners(clock)
    await owners.set("a", "127.0.0.1:2222", ttl=10)
    await owners.set("b", "127.0.0.1:3333", ttl=30)
    assert await owners.get("a") == "127.0.0.1:2222"
    clock.now = 11
    assert await owners.get("a") is None
    assert await owners.get("b") == "127.0.0.1:3333"
    await owners.set("b", "127.0.0.1:3333", ttl=30)  # refresh
    clock.now = 35
    assert await owners.get("b") == "127.0.0.1:3333"
    await owners.delete("b")
    assert await owners.get("b") is None
    await owners.delete("never")


def test_memory_purge() -> None:
    import asyncio

    clock = Clock()
    owners = MemoryRelayOwners(clock)
    for n in range(100):
        asyncio.run(owners.set(f"c{n}", "r", ttl=n + 1))
    clock.now = 50
    assert owners.purge() == 50
    assert len(owners) == 50


def _redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.mark.integration
@pytest.mark.skipif(not _redis_up(), reason="no Redis on 127.0.0.1:6379")
async def test_redis_owner() -> None:
    import redis.asyncio

    client = redis.asyncio.Redis(host="127.0.0.1", port=6379)
    try:
        owners: RelayOwners = RedisRelayOwners(client, prefix=f"ivoz-test:{uuid.uuid4()}:")
        await owners.set("call", "127.0.0.1:2222", ttl=5)
        assert await owners.get("call") == "127.0.0.1:2222"
        assert 0 < await client.pttl(f"{owners.prefix}call") <= 5000  # type: ignore[attr-defined]
        await owners.delete("call")
        assert await owners.get("call") is None
    finally:
        await client.aclose()
