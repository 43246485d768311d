"""Change announcements: the memory bus, and publishing only what was committed."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.exc import IntegrityError

from ivoz.domain import models as m
from ivoz.domain.db import Database
from ivoz.domain.events import (
    RELOAD_ALL,
    ConfigChanged,
    MemoryEventBus,
    RedisEventBus,
    commit_and_announce,
    event_bus_for,
)


async def test_memory_bus_delivers_to_sync_and_async_subscribers() -> None:
    bus = MemoryEventBus()
    got: list[tuple[str, ConfigChanged]] = []

    def sync(event: ConfigChanged) -> None:
        got.append(("sync", event))

    async def coro(event: ConfigChanged) -> None:
        got.append(("async", event))

    bus.subscribe(sync)
    unsubscribe = bus.subscribe(coro)
    event = ConfigChanged("Terminal", 1, "created", 2, 3)
    await bus.publish(event)
    unsubscribe()
    await bus.publish(event)
    assert got == [("sync", event), ("async", event), ("sync", event)]


async def test_a_failing_subscriber_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = MemoryEventBus()
    got: list[ConfigChanged] = []

    def broken(event: ConfigChanged) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    bus.subscribe(got.append)
    await bus.publish(ConfigChanged("Brand", 1, "updated"))
    assert len(got) == 1
    assert "subscriber failed" in caplog.text


def test_json_round_trip_and_validation() -> None:
    event = ConfigChanged("Ddi", 5, "deleted", 1, None)
    assert ConfigChanged.from_json(event.to_json()) == event
    with pytest.raises(ValueError):
        ConfigChanged.from_json('{"entity": "Ddi", "id": 1, "op": "exploded"}')


def test_bus_choice_follows_configuration() -> None:
    assert isinstance(event_bus_for(None), MemoryEventBus)


async def test_commit_and_announce_publishes_committed_changes(database: Database) -> None:
    bus = MemoryEventBus()
    got: list[ConfigChanged] = []
    bus.subscribe(got.append)
    async with database.sessionmaker() as session:
        brand = m.Brand(name="A")
        session.add(brand)
        await session.flush()
        company = m.Company(brand_id=brand.id, name="C", domain="c.test")
        session.add(company)
        await session.flush()
        company.max_calls = 3  # created then updated in one transaction: one "created"
        published = await commit_and_announce(session, bus)
        assert published == got
        assert set(got) == {
            ConfigChanged("Brand", brand.id, "created", brand.id, None),
            ConfigChanged("Company", company.id, "created", brand.id, company.id),
        }
        got.clear()

        terminal = m.Terminal(
            company_id=company.id, brand_id=brand.id, name="t", sip_username="t", sip_password="p"
        )
        session.add(terminal)
        company.max_calls = 5
        extra = ConfigChanged("Routing", 0, "updated", brand.id, None)
        await commit_and_announce(session, bus, [extra])
        assert set(got) == {
            ConfigChanged("Terminal", terminal.id, "created", brand.id, company.id),
            ConfigChanged("Company", company.id, "updated", brand.id, company.id),
            extra,
        }
        got.clear()

        await session.delete(terminal)
        await commit_and_announce(session, bus)
        assert got == [ConfigChanged("Terminal", terminal.id, "deleted", brand.id, company.id)]


async def test_nothing_is_announced_when_the_commit_fails(database: Database) -> None:
    bus = MemoryEventBus()
    got: list[ConfigChanged] = []
    bus.subscribe(got.append)
    async with database.sessionmaker() as session:
        session.add(m.Brand(name="A"))
        await commit_and_announce(session, bus)
        got.clear()
        session.add(m.Brand(name="B"))
        await session.flush()
        session.add(m.Brand(name="A"))  # duplicate name
        with pytest.raises(IntegrityError):
            await commit_and_announce(session, bus)
        await session.rollback()
        assert got == []
        # The failed transaction's flushed "B" is not announced by the next commit either.
        session.add(m.Brand(name="C"))
        await commit_and_announce(session, bus)
        assert [event.op for event in got] == ["created"] and len(got) == 1


class _FakePubSub:
    def __init__(self, fail: bool, messages: list[dict[str, object]]) -> None:
        self.fail = fail
        self.messages = messages

    async def subscribe(self, channel: str) -> None:
        pass

    async def get_message(self, timeout: float) -> dict[str, object] | None:
        if self.fail:
            from redis.exceptions import ConnectionError as RedisConnectionError

            raise RedisConnectionError("gone")
        if self.messages:
            return self.messages.pop(0)
        await asyncio.sleep(0.01)
        return None

    async def aclose(self) -> None:
        pass


class _FakeRedis:
    def __init__(self, message: dict[str, object]) -> None:
        self.calls = 0
        self.message = message

    def pubsub(self, ignore_subscribe_messages: bool) -> _FakePubSub:
        self.calls += 1
        return _FakePubSub(fail=self.calls == 1, messages=[self.message])

    async def aclose(self) -> None:
        pass


async def test_redis_bus_reconnects_and_asks_subscribers_to_reload() -> None:
    event = ConfigChanged("Terminal", 4, "updated", 1, 2)
    bus = RedisEventBus("redis://127.0.0.1:9/0")
    bus._redis = _FakeRedis({"type": "message", "data": event.to_json()})
    bus.reconnect_delay = 0.0
    got: list[ConfigChanged] = []
    bus.subscribe(got.append)
    try:
        await asyncio.wait_for(bus.start(), 10)
        while len(got) < 2:
            await asyncio.sleep(0.01)
        assert got == [RELOAD_ALL, event]
    finally:
        await bus.close()
