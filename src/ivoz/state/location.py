"""The location service (RFC 3261 10): which contacts each address-of-record is bound to.

The registrar writes :class:`Binding` values; the proxy reads the live ones of an AOR to
fork a call to them; the portal lists a client's registrations. Every binding carries its
own absolute expiry (``expires_at``, seconds on the caller's clock), and reads take
``now``: an expired binding is never returned, whether or not it was purged yet.

Two implementations of :class:`LocationStore`:

- :class:`MemoryLocationStore`: dicts in this process. Expired bindings are dropped when
  their AOR is read, and by :meth:`MemoryLocationStore.purge` (clock injected).
- :class:`RedisLocationStore`: shared between proxies. Per AOR, a hash (contact ->
  JSON binding) and a sorted set (contact scored by ``expires_at``), both under the
  AOR's hash tag so that one Lua script updates them atomically (also on a cluster).
  Reads drop the members whose score is past ``now``; each key carries a TTL as long
  as its longest binding, so an AOR nobody reads again still disappears. A sorted set
  per company (AOR scored by its latest expiry) serves :meth:`by_company`. With Redis,
  ``expires_at`` and ``now`` must be wall-clock time (``time.time()``): several
  machines compare them.

A binding's identity inside its AOR is its ``contact`` text: the registrar decides which
stored contact a new one replaces (RFC 3261 10.3 URI comparison, RFC 5626 instance and
reg-id) and calls :meth:`LocationStore.remove` for it.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Binding", "LocationStore", "MemoryLocationStore", "RedisLocationStore"]


@dataclass(frozen=True, slots=True)
class Binding:
    """One registered contact of an AOR (RFC 3261 10.3) and how to reach it."""

    aor: str  # "user@domain", lower-case domain
    contact: str  # the Contact URI as the phone sent it
    expires_at: float  # absolute, seconds on the registrar's clock
    received: str | None = None  # "transport:host:port" the REGISTER came from
    connection_id: int | None = None  # the stream/WebSocket connection it came on
    path: tuple[str, ...] = ()  # RFC 3327 Path values, in order
    instance: str | None = None  # RFC 5626 +sip.instance (as sent, with its <> and quotes)
    reg_id: int | None = None  # RFC 5626 reg-id
    call_id: str = ""
    cseq: int = 0
    user_agent: str = ""
    q: float = 1.0
    transport: str = "UDP"  # the transport the REGISTER came over
    terminal_id: int = 0
    company_id: int = 0
    nat: bool = False  # the phone is behind NAT: reach it at `received`, ping it
    registered_at: float = 0.0  # when this binding was last refreshed (same clock)

    def expires_in(self, now: float) -> int:
        """Whole seconds left (never negative), as a 200 to REGISTER lists them."""
        return max(0, int(self.expires_at - now + 0.5))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> Binding:
        data = json.loads(text)
        data["path"] = tuple(data.get("path") or ())
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _ordered(bindings: Iterable[Binding]) -> list[Binding]:
    # Highest q first (RFC 3261 16.6 / 20.10), then the most recently refreshed.
    return sorted(bindings, key=lambda b: (-b.q, -b.registered_at, b.contact))


class LocationStore(Protocol):
    async def bindings(self, aor: str, now: float) -> list[Binding]:
        """The live bindings of ``aor`` (expiring after ``now``), best first."""
        ...

    async def save(self, binding: Binding) -> None:
        """Add or replace the binding with this (aor, contact)."""
        ...

    async def remove(self, aor: str, contact: str) -> None: ...

    async def remove_all(self, aor: str) -> None: ...

    async def by_company(self, company_id: int, now: float) -> list[Binding]:
        """Every live binding of the company's AORs (registration status)."""
        ...


class MemoryLocationStore:
    """In-process store; expired bindings vanish on read and on :meth:`purge`."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._aors: dict[str, dict[str, Binding]] = {}

    async def bindings(self, aor: str, now: float) -> list[Binding]:
        contacts = self._aors.get(aor)
        if not contacts:
            return []
        live = self._drop_expired(aor, contacts, now)
        return _ordered(live)

    async def save(self, binding: Binding) -> None:
        self._aors.setdefault(binding.aor, {})[binding.contact] = binding

    async def remove(self, aor: str, contact: str) -> None:
        contacts = self._aors.get(aor)
        if contacts is None:
            return
        contacts.pop(contact, None)
        if not contacts:
            del self._aors[aor]

    async def remove_all(self, aor: str) -> None:
        self._aors.pop(aor, None)

    async def by_company(self, company_id: int, now: float) -> list[Binding]:
        found: list[Binding] = []
        for aor, contacts in list(self._aors.items()):
            found.extend(
                b for b in self._drop_expired(aor, contacts, now) if b.company_id == company_id
            )
        return sorted(found, key=lambda b: (b.aor, -b.q, -b.registered_at, b.contact))

    def purge(self, now: float | None = None) -> int:
        """Drop every expired binding; how many went."""
        now = self.clock() if now is None else now
        before = len(self)
        for aor, contacts in list(self._aors.items()):
            self._drop_expired(aor, contacts, now)
        return before - len(self)

    def __len__(self) -> int:
        return sum(len(c) for c in self._aors.values())

    def _drop_expired(self, aor: str, contacts: dict[str, Binding], now: float) -> list[Binding]:
        live = []
        for contact, binding in list(contacts.items()):
            if binding.expires_at <= now:
                del contacts[contact]
            else:
                live.append(binding)
        if not contacts:
            self._aors.pop(aor, None)
        return live


# KEYS: contacts hash, expiry zset. ARGV: contact, binding JSON, expires_at, ttl (ms).
_SAVE = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local ttl = tonumber(ARGV[4])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
end
return 1
"""

# KEYS: contacts hash, expiry zset. ARGV: now. Drops the expired, returns the live JSON.
_READ = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
if #gone > 0 then
  redis.call('HDEL', KEYS[1], unpack(gone))
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[1])
end
local live = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')
if #live == 0 then
  return {}
end
return redis.call('HMGET', KEYS[1], unpack(live))
"""

# KEYS: company zset. ARGV: aor, expires_at, ttl (ms). GT keeps the latest expiry.
_INDEX = """
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
local ttl = tonumber(ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
"""


class RedisLocationStore:
    """Shared location service in Redis (redis-py asyncio client).

    ``clock`` (wall time) turns a binding's ``expires_at`` into the keys' TTL.
    """

    def __init__(
        self,
        redis: Any,
        prefix: str = "ivoz:location:",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.redis = redis  # a redis.asyncio.Redis
        self.prefix = prefix
        self.clock = clock
        self._save = redis.register_script(_SAVE)
        self._read = redis.register_script(_READ)
        self._index = redis.register_script(_INDEX)

    def _keys(self, aor: str) -> list[str]:
        # one hash tag per AOR: both keys live in the same cluster slot
        return [f"{self.prefix}{{{aor}}}:contacts", f"{self.prefix}{{{aor}}}:expiry"]

    def _company_key(self, company_id: int) -> str:
        return f"{self.prefix}company:{company_id}"

    def _ttl_ms(self, expires_at: float) -> int:
        return max(1, int((expires_at - self.clock()) * 1000) + 1000)

    async def bindings(self, aor: str, now: float) -> list[Binding]:
        raw = await self._read(keys=self._keys(aor), args=[repr(float(now))])
        return _ordered(Binding.from_json(item) for item in raw if item is not None)

    async def save(self, binding: Binding) -> None:
        ttl = self._ttl_ms(binding.expires_at)
        expires = repr(float(binding.expires_at))
        await self._save(
            keys=self._keys(binding.aor),
            args=[binding.contact, binding.to_json(), expires, ttl],
        )
        await self._index(
            keys=[self._company_key(binding.company_id)], args=[binding.aor, expires, ttl]
        )

    async def remove(self, aor: str, contact: str) -> None:
        contacts, expiry = self._keys(aor)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hdel(contacts, contact)
            pipe.zrem(expiry, contact)
            await pipe.execute()

    async def remove_all(self, aor: str) -> None:
        await self.redis.delete(*self._keys(aor))

    async def by_company(self, company_id: int, now: float) -> list[Binding]:
        key = self._company_key(company_id)
        await self.redis.zremrangebyscore(key, "-inf", repr(float(now)))
        aors = await self.redis.zrangebyscore(key, f"({float(now)!r}", "+inf")
        found: list[Binding] = []
        for raw in aors:
            aor = raw.decode() if isinstance(raw, bytes) else str(raw)
            found.extend(b for b in await self.bindings(aor, now) if b.company_id == company_id)
        return sorted(found, key=lambda b: (b.aor, -b.q, -b.registered_at, b.contact))
