"""Relay ownership live state: memory implementation with a fake clock; Redis when running."""

from __future__ import annotations

from ivoz.state import MemoryRelayOwners, RelayOwners


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
