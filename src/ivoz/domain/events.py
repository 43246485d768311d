"""Configuration change announcements to the running roles.

The proxies and application servers keep the configuration in caches and never query
the database per SIP message; they subscribe to ``ConfigChanged`` events and drop or
reload what changed. ``MemoryEventBus`` serves the embedded default (all roles in one
process); ``RedisEventBus`` carries the same events across processes over a Redis
pub/sub channel.

Writers announce only what was committed: ``commit_and_announce(session, bus)`` commits
and then publishes one event per row that the session inserted, updated or deleted
(recorded by flush hooks into ``session.info``), plus any extra events given. A
rollback discards the recorded changes, so nothing is announced for failed writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

Op = Literal["created", "updated", "deleted"]
Callback = Callable[["ConfigChanged"], Awaitable[None] | None]
CHANNEL = "ivoz:config"
_PENDING = "ivoz_pending_changes"


@dataclass(frozen=True)
class ConfigChanged:
    """One configuration row changed. ``entity`` is the model class name ("Terminal")."""

    entity: str
    id: int
    op: Op
    brand_id: int | None = None
    company_id: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ConfigChanged:
        data = json.loads(text)
        if data.get("op") not in ("created", "updated", "deleted"):
            raise ValueError(f"bad op in {data!r}")
        return cls(
            entity=str(data["entity"]),
            id=int(data["id"]),
            op=data["op"],
            brand_id=None if data.get("brand_id") is None else int(data["brand_id"]),
            company_id=None if data.get("company_id") is None else int(data["company_id"]),
        )

    @classmethod
    def for_row(cls, row: Any, op: Op) -> ConfigChanged:
        """The event for an ORM object: its class name, id and tenant columns."""
        brand_id = getattr(row, "brand_id", None)
        company_id = getattr(row, "company_id", None)
        if type(row).__name__ == "Brand":
            brand_id = row.id
        elif type(row).__name__ == "Company":
            company_id = row.id
        return cls(type(row).__name__, int(row.id), op, brand_id, company_id)


# Delivered after a gap in which events may have been lost: subscribers reload all.
RELOAD_ALL = ConfigChanged("*", 0, "updated")


class EventBus(Protocol):
    async def publish(self, event: ConfigChanged) -> None: ...

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        """Call ``callback`` for every event; returns the function that unsubscribes."""
        ...


async def _deliver(callbacks: Iterable[Callback], event: ConfigChanged) -> None:
    for callback in list(callbacks):
        try:
            result = callback(event)
            if inspect.isawaitable(result):
                await result
        except Exception:  # a faulty subscriber must not stop the others
            log.exception("config event subscriber failed on %s", event)


class MemoryEventBus:
    """In-process delivery: ``publish`` calls every subscriber before returning."""

    def __init__(self) -> None:
        self._callbacks: list[Callback] = []

    async def publish(self, event: ConfigChanged) -> None:
        await _deliver(self._callbacks, event)

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        self._callbacks.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    async def close(self) -> None:
        self._callbacks.clear()


class RedisEventBus:
    """Events over a Redis pub/sub channel, so every process's subscribers see them.

    Delivery is at most once (Redis pub/sub): events published while the connection was
    down are lost. So after a reconnection the bus delivers ``RELOAD_ALL`` (entity
    ``"*"``), on which a subscriber reloads its whole cache. Call ``start()`` (or
    subscribe from a running loop) to listen, ``close()`` to stop.
    """

    reconnect_delay = 0.5  # seconds; doubled per failed attempt up to max_reconnect_delay
    max_reconnect_delay = 30.0

    def __init__(self, url: str, channel: str = CHANNEL) -> None:
        import redis.asyncio as redis

        self.url = url
        self.channel = channel
        self._redis = redis.from_url(url)
        self._callbacks: list[Callback] = []
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def publish(self, event: ConfigChanged) -> None:
        await self._redis.publish(self.channel, event.to_json())

    def subscribe(self, callback: Callback) -> Callable[[], None]:
        self._callbacks.append(callback)
        with contextlib.suppress(RuntimeError):  # no running loop: start() later
            asyncio.get_running_loop()
            self._ensure_listening()

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return unsubscribe

    async def start(self) -> None:
        """Listen, and return once the subscription is active on the server."""
        self._ensure_listening()
        await self._ready.wait()

    def _ensure_listening(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name="ivoz-config-events")

    async def _listen(self) -> None:
        from redis.exceptions import RedisError

        delay = self.reconnect_delay
        lost = False
        while True:
            try:
                await self._listen_once(lost)
            except (RedisError, OSError) as exc:
                if self._ready.is_set():  # it had worked: start the back-off afresh
                    delay = self.reconnect_delay
                self._ready.clear()
                log.warning("config events: Redis connection lost (%s); retrying", exc)
                lost = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_reconnect_delay)

    async def _listen_once(self, after_loss: bool) -> None:
        pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            self._ready.set()
            if after_loss:
                # Whatever was published while we were away is lost: reload everything.
                await _deliver(self._callbacks, RELOAD_ALL)
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is None or message.get("type") != "message":
                    continue
                try:
                    event = ConfigChanged.from_json(message["data"])
                except (ValueError, KeyError, TypeError):
                    log.warning("ignoring malformed config event %r", message.get("data"))
                    continue
                await _deliver(self._callbacks, event)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        await self._redis.aclose()


def event_bus_for(redis_url: str | None) -> MemoryEventBus | RedisEventBus:
    """The bus a process should use: Redis when configured, memory otherwise."""
    return RedisEventBus(redis_url) if redis_url else MemoryEventBus()


# ------------------------------------------------------------------ announcing commits


@event.listens_for(Session, "after_flush")
def _record_changes(session: Session, _context: object) -> None:
    pending: list[tuple[Any, Op]] = session.info.setdefault(_PENDING, [])
    for obj in session.new:
        pending.append((obj, "created"))
    for obj in session.dirty:
        if session.is_modified(obj, include_collections=True):
            pending.append((obj, "updated"))
    for obj in session.deleted:
        # The id is captured now: a deleted object keeps its attributes after flush.
        pending.append((obj, "deleted"))


@event.listens_for(Session, "after_rollback")
@event.listens_for(Session, "after_commit")
def _forget_changes(session: Session) -> None:
    # Committed changes must be read before the commit (commit_and_announce does).
    session.info.pop(_PENDING, None)


def pending_changes(session: AsyncSession | Session) -> list[ConfigChanged]:
    """Events for the rows flushed in this session since its last commit or rollback."""
    sync = session.sync_session if isinstance(session, AsyncSession) else session
    seen: dict[tuple[str, int], ConfigChanged] = {}
    for obj, op in sync.info.get(_PENDING, []):
        if not hasattr(obj, "id") or obj.id is None:
            continue
        change = ConfigChanged.for_row(obj, op)
        key = (change.entity, change.id)
        previous = seen.get(key)
        if previous is not None and previous.op == "created" and op == "updated":
            continue  # created then updated in one transaction is a creation
        seen[key] = change
    return list(seen.values())


async def commit_and_announce(
    session: AsyncSession,
    bus: EventBus | None,
    events: Iterable[ConfigChanged] = (),
) -> list[ConfigChanged]:
    """Commit ``session``, then publish what it changed (and ``events``) on ``bus``.

    Nothing is published when the commit fails. Returns the published events.
    """
    await session.flush()
    changes = [*pending_changes(session), *events]
    await session.commit()
    if bus is not None:
        for change in changes:
            await bus.publish(change)
    return changes
