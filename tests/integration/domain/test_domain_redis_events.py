"""RedisEventBus against the real Redis on 127.0.0.1:6379 (IVOZ_TEST_REDIS_URL to override)."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from ivoz.domain.events import ConfigChanged, RedisEventBus, event_bus_for
from support.tools import in_ci

pytestmark = pytest.mark.integration

REDIS_URL = os.environ.get("IVOZ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def _require_redis() -> None:
    import redis.asyncio as redis

    client = redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, redis.RedisError) as exc:
        message = f"no Redis at {REDIS_URL}: {exc}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    finally:
        await client.aclose()


async def _wait_for(predicate: object, timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not predicate():  # type: ignore[operator]
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def test_events_cross_between_two_buses() -> None:
    await _require_redis()
    channel = f"ivoz:test:{uuid.uuid4().hex}"
    publisher = RedisEventBus(REDIS_URL, channel)
    subscriber = RedisEventBus(REDIS_URL, channel)
    got: list[ConfigChanged] = []
    got_async: list[ConfigChanged] = []

    async def on_event(event: ConfigChanged) -> None:
        got_async.append(event)

    try:
        subscriber.subscribe(got.append)
        subscriber.subscribe(on_event)
        await subscriber.start()
        events = [
            ConfigChanged("Terminal", 1, "created", 1, 2),
            ConfigChanged("Brand", 1, "deleted", 1, None),
        ]
        for event in events:
            await publisher.publish(event)
        await _wait_for(lambda: len(got) == 2 and len(got_async) == 2)
        assert got == events == got_async
    finally:
        await publisher.close()
        await subscriber.close()


async def test_malformed_messages_are_ignored() -> None:
    await _require_redis()
    import redis.asyncio as redis

    channel = f"ivoz:test:{uuid.uuid4().hex}"
    bus = RedisEventBus(REDIS_URL, channel)
    raw = redis.from_url(REDIS_URL)
    got: list[ConfigChanged] = []
    try:
        bus.subscribe(got.append)
        await bus.start()
        await raw.publish(channel, b"not json")
        await raw.publish(channel, b'{"entity": "X"}')
        good = ConfigChanged("User", 3, "updated", 1, 1)
        await bus.publish(good)
        await _wait_for(lambda: got == [good])
    finally:
        await raw.aclose()
        await bus.close()


def test_bus_choice_uses_redis_when_configured() -> None:
    assert isinstance(event_bus_for(REDIS_URL), RedisEventBus)
