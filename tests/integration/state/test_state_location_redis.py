"""RedisLocationStore against a real Redis server: per-binding expiry, key TTL, index, and
the registrar of two proxies sharing it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis.asyncio

from ivoz.proxy.registrar import Registrar
from ivoz.sip import Request, parse_message
from ivoz.sip.auth import challenges
from ivoz.sip.digest import answer_challenge
from ivoz.state import Binding, LocationStore, RedisLocationStore
from ivoz.transport import Address, Kind, Origin
from support.redis import redis_url

pytestmark = pytest.mark.integration

NOW = 1_800_000_000.0  # a fixed wall-clock "now" well in the future of any key


@pytest.fixture
async def client() -> AsyncIterator[redis.asyncio.Redis]:
    c = redis.asyncio.Redis.from_url(redis_url())
    try:
        yield c
    finally:
        keys = [k async for k in c.scan_iter(match="ivoz-test:*")]
        if keys:
            await c.delete(*keys)
        await c.aclose()


def store_for(client: redis.asyncio.Redis, clock: float = NOW) -> RedisLocationStore:
    return RedisLocationStore(client, prefix=f"ivoz-test:{uuid.uuid4()}:", clock=lambda: clock)


def binding(contact: str, expires_at: float, **fields: object) -> Binding:
    values: dict[str, object] = {"aor": "alice@acme.ivoz.test", "company_id": 1}
    values.update(fields)
    return Binding(contact=contact, expires_at=expires_at, **values)  # type: ignore[arg-type]


async def test_redis_per_binding_expiry(client: redis.asyncio.Redis) -> None:
    store: LocationStore = store_for(client)
    first = binding("sip:a@10.0.0.1", NOW + 60, received="udp:192.0.2.1:4000", nat=True)
    await store.save(first)
    await store.save(binding("sip:a@10.0.0.2;transport=tcp", NOW + 3600, connection_id=3))
    live = await store.bindings("alice@acme.ivoz.test", NOW)
    assert {b.contact for b in live} == {"sip:a@10.0.0.1", "sip:a@10.0.0.2;transport=tcp"}
    assert first in live  # every field survives the round trip
    later = await store.bindings("alice@acme.ivoz.test", NOW + 60)
    assert [b.contact for b in later] == ["sip:a@10.0.0.2;transport=tcp"]
    # the expired member was dropped from both structures, not just filtered
    assert isinstance(store, RedisLocationStore)
    contacts_key, expiry_key = store._keys("alice@acme.ivoz.test")
    assert await client.hlen(contacts_key) == 1  # type: ignore[misc]
    assert await client.zcard(expiry_key) == 1
    # the keys carry a TTL as long as the longest binding (plus a second of slack)
    ttl = await client.pttl(contacts_key)
    assert 3_600_000 <= ttl <= 3_601_000


async def test_redis_replace_remove_and_remove_all(client: redis.asyncio.Redis) -> None:
    store = store_for(client)
    await store.save(binding("sip:a@h", NOW + 100, cseq=1))
    await store.save(binding("sip:a@h", NOW + 200, cseq=2))
    (only,) = await store.bindings("alice@acme.ivoz.test", NOW)
    assert only.cseq == 2 and only.expires_at == NOW + 200
    await store.save(binding("sip:b@h", NOW + 200))
    await store.remove("alice@acme.ivoz.test", "sip:a@h")
    assert [b.contact for b in await store.bindings("alice@acme.ivoz.test", NOW)] == ["sip:b@h"]
    await store.remove_all("alice@acme.ivoz.test")
    assert await store.bindings("alice@acme.ivoz.test", NOW) == []


async def test_redis_by_company(client: redis.asyncio.Redis) -> None:
    store = store_for(client)
    await store.save(binding("sip:a@h", NOW + 100))
    await store.save(binding("sip:b@h", NOW + 50, aor="bob@acme.ivoz.test"))
    await store.save(binding("sip:c@h", NOW + 100, aor="carol@other.test", company_id=2))
    assert [b.aor for b in await store.by_company(1, NOW)] == [
        "alice@acme.ivoz.test",
        "bob@acme.ivoz.test",
    ]
    assert [b.aor for b in await store.by_company(1, NOW + 60)] == ["alice@acme.ivoz.test"]
    assert [b.contact for b in await store.by_company(2, NOW)] == ["sip:c@h"]
    assert await store.by_company(3, NOW) == []


async def test_redis_shared_between_two_stores(client: redis.asyncio.Redis) -> None:
    one = store_for(client)
    two = RedisLocationStore(client, prefix=one.prefix, clock=lambda: NOW)
    await one.save(binding("sip:a@h", NOW + 100))
    assert [b.contact for b in await two.bindings("alice@acme.ivoz.test", NOW)] == ["sip:a@h"]


class _Directory:
    """The two lookups the registrar makes, for one client and one terminal."""

    @dataclass(frozen=True)
    class Company:
        id: int = 1
        domain: str = "acme.ivoz.test"

    @dataclass(frozen=True)
    class Terminal:
        id: int = 11
        company_id: int = 1
        sip_username: str = "alice"
        sip_password: str = "alice-secret"

    def company_by_domain(self, domain: str) -> Company | None:
        return self.Company() if domain == "acme.ivoz.test" else None

    def terminal(self, company_id: int, sip_username: str) -> Terminal | None:
        return self.Terminal() if (company_id, sip_username) == (1, "alice") else None


def _register(cseq: int, contact: str, authorization: str | None = None) -> Request:
    lines = [
        "REGISTER sip:acme.ivoz.test SIP/2.0",
        f"Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK-{cseq};rport",
        "From: <sip:alice@acme.ivoz.test>;tag=a",
        "To: <sip:alice@acme.ivoz.test>",
        "Call-ID: redis-reg",
        f"CSeq: {cseq} REGISTER",
        f"Contact: {contact}",
        *([f"Authorization: {authorization}"] if authorization else []),
        "Content-Length: 0",
        "",
        "",
    ]
    request = parse_message("\r\n".join(lines).encode())
    assert isinstance(request, Request)
    return request


async def test_registrar_over_redis(client: redis.asyncio.Redis) -> None:
    # two proxies share the store: one registers, the other sees the binding and removes it
    store = store_for(client)
    other = RedisLocationStore(client, prefix=store.prefix, clock=lambda: NOW)
    registrar = Registrar(store, _Directory(), b"secret", clock=lambda: NOW)
    origin = Origin(
        Kind.UDP, Address(Kind.UDP, "203.0.113.7", 40000), Address(Kind.UDP, "127.0.0.1", 5060)
    )
    contact = "<sip:alice@10.0.0.5:5060>"
    challenge = await registrar.handle(_register(1, contact), origin, NOW)
    assert challenge.status == 401
    (offered,) = challenges(challenge)
    credentials = answer_challenge(
        offered,
        method="REGISTER",
        uri="sip:acme.ivoz.test",
        username="alice",
        password="alice-secret",
    )
    ok = await registrar.handle(_register(2, contact, str(credentials)), origin, NOW)
    assert ok.status == 200
    (binding,) = await other.bindings("alice@acme.ivoz.test", NOW + 1)
    assert (binding.nat, binding.received, binding.company_id) == (
        True,
        "udp:203.0.113.7:40000",
        1,
    )
    assert [b.contact for b in await other.by_company(1, NOW)] == ["sip:alice@10.0.0.5:5060"]
    second = Registrar(other, _Directory(), b"secret", clock=lambda: NOW)
    bye = await second.handle(
        _register(3, contact + ";expires=0", str(credentials)), origin, NOW + 1
    )
    assert bye.status == 200 and bye.headers.get_all("Contact") == []
    assert await store.bindings("alice@acme.ivoz.test", NOW + 1) == []
