"""Which media relay owns call X: the memory the ng client keeps so that ``answer`` and
``delete`` reach the relay that took the ``offer``.

Entries expire on their own (a per-key time to live, refreshed on every command of the
call), so a proxy that never sends ``delete`` cannot leave stale entries behind. The
memory implementation takes a clock so that tests need no sleeping; the Redis one uses
``SET key value PX ttl``, Redis's own per-key expiry.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol


class RelayOwners(Protocol):
    async def get(self, call_id: str) -> str | None:
        """The relay (its ng address, ``host:port``) that owns `call_id`, if known."""
        ...

    async def set(self, call_id: str, relay: str, ttl: float) -> None:
        """Record (or refresh) the owner for `ttl` seconds."""
        ...

    async def delete(self, call_id: str) -> None: ...


class MemoryRelayOwners:
    """In-process implementation; expired entries are dropped lazily and on ``purge``."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._owners: dict[str, tuple[str, float]] = {}

    async def get(self, call_id: str) -> str | None:
        entry = self._owners.get(call_id)
        if entry is None:
            return None
        if entry[1] <= self.clock():
            del self._owners[call_id]
            return None
        return entry[0]

    async def set(self, call_id: str, relay: str, ttl: float) -> None:
        self._owners[call_id] = (relay, self.clock() + ttl)

    async def delete(self, call_id: str) -> None:
        self._owners.pop(call_id, None)

    def purge(self) -> int:
        now = self.clock()
        gone = [key for key, (_, expires) in self._owners.items() if expires <= now]
        for key in gone:
            del self._owners[key]
        return len(gone)

    def __len__(self) -> int:
        return len(self._owners)


class RedisRelayOwners:
    """Shared between proxies: one Redis key per call with its own expiry."""

    def __init__(self, redis: Any, prefix: str = "ivoz:relay-owner:") -> None:
        self.redis = redis  # a redis.asyncio.Redis
        self.prefix = prefix

    async def get(self, call_id: str) -> str | None:
        value = await self.redis.get(self.prefix + call_id)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)

    async def set(self, call_id: str, relay: str, ttl: float) -> None:
        await self.redis.set(self.prefix + call_id, relay, px=max(1, int(ttl * 1000)))

    async def delete(self, call_id: str) -> None:
        await self.redis.delete(self.prefix + call_id)
