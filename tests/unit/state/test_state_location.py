"""MemoryLocationStore: per-contact expiry by the caller's clock, company index, order."""

from __future__ import annotations

from ivoz.state import Binding, LocationStore, MemoryLocationStore


def binding(contact: str, expires_at: float, **fields: object) -> Binding:
    values: dict[str, object] = {"aor": "alice@acme.ivoz.test", "company_id": 1}
    values.update(fields)
    return Binding(contact=contact, expires_at=expires_at, **values)  # type: ignore[arg-type]


async def test_per_contact_expiry() -> None:
    store: LocationStore = MemoryLocationStore()
    await store.save(binding("sip:a@10.0.0.1", 100.0))
    await store.save(binding("sip:a@10.0.0.2", 200.0))
    assert {b.contact for b in await store.bindings("alice@acme.ivoz.test", 50.0)} == {
        "sip:a@10.0.0.1",
        "sip:a@10.0.0.2",
    }
    live = await store.bindings("alice@acme.ivoz.test", 100.0)
    assert [b.contact for b in live] == ["sip:a@10.0.0.2"]
    assert await store.bindings("alice@acme.ivoz.test", 200.0) == []
    assert await store.bindings("nobody@acme.ivoz.test", 0.0) == []


async def test_save_replaces_same_contact_and_remove() -> None:
    store = MemoryLocationStore()
    await store.save(binding("sip:a@10.0.0.1", 100.0, cseq=1))
    await store.save(binding("sip:a@10.0.0.1", 300.0, cseq=2))
    (only,) = await store.bindings("alice@acme.ivoz.test", 0.0)
    assert (only.cseq, only.expires_at) == (2, 300.0)
    await store.save(binding("sip:a@10.0.0.2", 300.0))
    await store.remove("alice@acme.ivoz.test", "sip:a@10.0.0.1")
    await store.remove("alice@acme.ivoz.test", "sip:not-there@x")
    await store.remove("nobody@x", "sip:a@b")
    assert [b.contact for b in await store.bindings("alice@acme.ivoz.test", 0.0)] == [
        "sip:a@10.0.0.2"
    ]
    await store.remove_all("alice@acme.ivoz.test")
    assert await store.bindings("alice@acme.ivoz.test", 0.0) == []
    assert len(store) == 0


async def test_order_q_then_newest() -> None:
    store = MemoryLocationStore()
    await store.save(binding("sip:low@h", 500.0, q=0.5, registered_at=30.0))
    await store.save(binding("sip:old@h", 500.0, q=1.0, registered_at=10.0))
    await store.save(binding("sip:new@h", 500.0, q=1.0, registered_at=20.0))
    got = [b.contact for b in await store.bindings("alice@acme.ivoz.test", 0.0)]
    assert got == ["sip:new@h", "sip:old@h", "sip:low@h"]


async def test_by_company_and_purge() -> None:
    now = [0.0]
    store = MemoryLocationStore(clock=lambda: now[0])
    await store.save(binding("sip:a@h", 100.0))
    await store.save(binding("sip:b@h", 50.0, aor="bob@acme.ivoz.test"))
    await store.save(binding("sip:c@h", 100.0, aor="carol@other.test", company_id=2))
    assert [b.aor for b in await store.by_company(1, 10.0)] == [
        "alice@acme.ivoz.test",
        "bob@acme.ivoz.test",
    ]
    assert [b.aor for b in await store.by_company(1, 60.0)] == ["alice@acme.ivoz.test"]
    assert [b.aor for b in await store.by_company(2, 60.0)] == ["carol@other.test"]
    now[0] = 100.0
    assert store.purge() == 2
    assert len(store) == 0


def test_binding_json_round_trip_and_expires_in() -> None:
    b = binding(
        "sip:a@10.0.0.1:5062;transport=tcp",
        123.5,
        received="tcp:192.0.2.1:40000",
        connection_id=7,
        path=("<sip:edge.example;lr>",),
        instance='"<urn:uuid:00000000-0000-0000-0000-000000000001>"',
        reg_id=1,
        call_id="c@h",
        cseq=3,
        user_agent="baresip",
        q=0.7,
        transport="TCP",
        terminal_id=4,
        nat=True,
    )
    assert Binding.from_json(b.to_json()) == b
    assert b.expires_in(23.0) == 101
    assert b.expires_in(200.0) == 0
