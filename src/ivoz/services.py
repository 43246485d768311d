"""What the roles of one process share: database, event bus, directory and live state.

``ivoz run`` makes one ``Services`` per process and hands it to every role it starts
(``serve(config, services)``); a role started on its own (``services=None``) makes its
own. On the embedded default everything is in memory (``MemoryEventBus``, memory
location and relay-owner stores), so the roles of one process see the same
registrations and the same configuration events. With ``config.redis_url`` the bus and
the live state are in Redis, shared by every process of the platform.

``create`` migrates the database to head (a no-op when ``ivoz run`` already did, and
what makes a role safe to start alone), loads the ``Directory`` and subscribes it to the
bus; ``close`` undoes all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from ivoz.config import Config
from ivoz.directory import Directory
from ivoz.domain.db import Database
from ivoz.domain.events import EventBus, MemoryEventBus, RedisEventBus
from ivoz.state import MemoryRelayOwners, RedisRelayOwners, RelayOwners
from ivoz.state.location import LocationStore, MemoryLocationStore, RedisLocationStore

log = logging.getLogger(__name__)

REDIS_START_TIMEOUT = 30.0  # seconds to wait for the configuration event subscription


@dataclass
class Services:
    """One per process, shared by every role running in it."""

    config: Config
    database: Database
    bus: EventBus
    directory: Directory
    location: LocationStore
    relay_owners: RelayOwners
    # The redis.asyncio client of the live state (None on the memory default).
    redis: Any = None
    _closers: list[Any] = field(default_factory=list, repr=False)

    @classmethod
    async def create(cls, config: Config, *, migrate: bool = True) -> Services:
        """Connect, migrate (unless told not to), load the directory, subscribe it."""
        database = Database(config.effective_database_url)
        closers: list[Any] = [database.dispose]
        try:
            if migrate:
                await database.upgrade()
            bus: EventBus
            location: LocationStore
            relay_owners: RelayOwners
            redis: Any = None
            if config.redis_url:
                import redis.asyncio as aioredis

                redis_bus = RedisEventBus(config.redis_url)
                closers.append(redis_bus.close)
                # Listening before the load: a change made meanwhile is not missed.
                try:
                    await asyncio.wait_for(redis_bus.start(), REDIS_START_TIMEOUT)
                except TimeoutError:
                    raise RuntimeError(
                        f"services: no answer from Redis at {_safe_url(config.redis_url)}"
                    ) from None
                bus = redis_bus
                redis = aioredis.from_url(config.redis_url)
                closers.append(redis.aclose)
                location = RedisLocationStore(redis)
                relay_owners = RedisRelayOwners(redis)
            else:
                memory_bus = MemoryEventBus()
                closers.append(memory_bus.close)
                bus = memory_bus
                location = MemoryLocationStore()
                relay_owners = MemoryRelayOwners()
            directory = Directory(database)
            directory.attach(bus)
            closers.append(directory.detach)
            await directory.reload()
        except BaseException:
            await _close_all(closers)
            raise
        log.info(
            "services: %s, %s live state, %d clients in the directory",
            _safe_url(database.url),
            "Redis" if config.redis_url else "in-memory",
            len(directory.companies()),
        )
        return cls(
            config=config,
            database=database,
            bus=bus,
            directory=directory,
            location=location,
            relay_owners=relay_owners,
            redis=redis,
            _closers=closers,
        )

    async def close(self) -> None:
        """Unsubscribe, disconnect and dispose, newest first; safe to call twice."""
        closers, self._closers = self._closers, []
        await _close_all(closers)


async def _close_all(closers: list[Any]) -> None:
    for close in reversed(closers):
        with contextlib.suppress(Exception):
            result = close()
            if hasattr(result, "__await__"):
                await result


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
