"""Registration status through the API: each level sees its own tenants' registrations only."""

from __future__ import annotations

from typing import Any

from portal_harness import Portal, Tenant

from ivoz.state.location import Binding, MemoryLocationStore

ROUTE = "/registrations"


def _binding(portal: Portal, t: Tenant, contact: str, **extra: Any) -> Binding:
    values: dict[str, Any] = {
        "aor": f"term-{t.terminal_id}@example.test",
        "contact": contact,
        "expires_at": portal.clock() + 600,
        "registered_at": portal.clock() - 10,
        "received": "udp:192.0.2.10:5099",
        "user_agent": "baresip 3",
        "transport": "UDP",
        "terminal_id": t.terminal_id,
        "company_id": t.company_id,
        "nat": True,
    }
    values.update(extra)
    return Binding(**values)


async def _registered(portal: Portal) -> MemoryLocationStore:
    a, b = portal.seed.a, portal.seed.b
    store = MemoryLocationStore(portal.clock)
    portal.app.state.portal.location = store
    await store.save(_binding(portal, a, "sip:a@192.168.1.10:5060"))
    await store.save(_binding(portal, a, "sip:a@10.0.0.2:5060;transport=tcp", transport="TCP"))
    await store.save(_binding(portal, b, "sip:b@192.168.1.20:5060", user_agent="linphone"))
    # A binding claiming client A's company for B's terminal is never shown to A.
    await store.save(_binding(portal, b, "sip:forged@192.0.2.99", company_id=a.company_id))
    return store


def _contacts(rows: list[dict[str, Any]]) -> set[str]:
    return {c["contact"] for row in rows for c in row["contacts"]}


async def _get(portal: Portal, level: str, headers: dict[str, str], **params: Any) -> Any:
    r = await portal.client.get(f"/api/{level}{ROUTE}", headers=headers, params=params)
    assert r.status_code == 200, r.text
    assert r.headers["X-Total-Count"] == str(len(r.json())) or "per_page" in params
    return r.json()


async def test_client_sees_its_terminals_contacts(portal: Portal) -> None:
    await _registered(portal)
    a = portal.seed.a
    rows = await _get(portal, "client", portal.as_client(a))
    assert a.terminal_id in {row["terminal_id"] for row in rows}
    assert {row["company_id"] for row in rows} == {a.company_id}
    # Terminals without bindings are listed too, as unregistered.
    (row,) = [row for row in rows if row["registered"]]
    assert row["terminal_id"] == a.terminal_id
    assert row["registered"] is True and row["company_id"] == a.company_id
    assert row["brand_id"] == a.brand_id and row["id"] == a.terminal_id
    assert _contacts(rows) == {"sip:a@192.168.1.10:5060", "sip:a@10.0.0.2:5060;transport=tcp"}
    first = next(c for c in row["contacts"] if c["transport"] == "UDP")
    assert first["user_agent"] == "baresip 3"
    assert first["source"] == "udp:192.0.2.10:5099"
    assert first["expires"] == 600 and first["nat"] is True


async def test_other_tenants_registrations_are_invisible(portal: Portal) -> None:
    await _registered(portal)
    a, b = portal.seed.a, portal.seed.b
    for level, headers in (
        ("client", portal.as_client(b)),
        ("brand", portal.as_brand(b)),
    ):
        rows = await _get(portal, level, headers)
        assert a.terminal_id not in {row["terminal_id"] for row in rows}
        assert _contacts(rows) == {"sip:b@192.168.1.20:5060"}
        assert {row["brand_id"] for row in rows} == {b.brand_id}
        # Naming A's client or terminal explicitly finds nothing either.
        assert await _get(portal, level, headers, company_id=a.company_id) == []
        assert await _get(portal, level, headers, terminal_id=a.terminal_id) == []
    # And A never sees the binding that claims A's client for B's terminal.
    for level, headers in (("client", portal.as_client(a)), ("brand", portal.as_brand(a))):
        assert "sip:forged@192.0.2.99" not in _contacts(await _get(portal, level, headers))


async def test_platform_sees_every_client(portal: Portal) -> None:
    await _registered(portal)
    a, b = portal.seed.a, portal.seed.b
    rows = await _get(portal, "platform", portal.as_platform(), per_page=500)
    assert {a.terminal_id, b.terminal_id} <= {row["terminal_id"] for row in rows}
    assert {"sip:a@192.168.1.10:5060", "sip:b@192.168.1.20:5060"} <= _contacts(rows)
    assert "sip:forged@192.0.2.99" not in _contacts(rows)
    only_b = await _get(portal, "platform", portal.as_platform(), company_id=b.company_id)
    assert {row["company_id"] for row in only_b} == {b.company_id}


async def test_expired_and_unregistered(portal: Portal) -> None:
    await _registered(portal)
    a = portal.seed.a
    headers = portal.as_client(a)
    everything = await _get(portal, "client", headers)
    registered = await _get(portal, "client", headers, registered="true")
    assert [row["terminal_id"] for row in registered] == [a.terminal_id]
    unregistered = await _get(portal, "client", headers, registered="false")
    assert a.terminal_id not in {row["terminal_id"] for row in unregistered}
    assert len(registered) + len(unregistered) == len(everything)
    portal.clock.advance(601)  # every binding has expired
    rows = await _get(portal, "client", headers)
    assert not any(row["registered"] for row in rows) and _contacts(rows) == set()
    assert await _get(portal, "client", headers, registered="true") == []


async def test_without_live_state_every_terminal_is_unregistered(portal: Portal) -> None:
    portal.app.state.portal.location = None
    rows = await _get(portal, "client", portal.as_client(portal.seed.a))
    assert rows and all(row["registered"] is False for row in rows)


async def test_restricted_administrator_needs_a_terminal_grant(portal: Portal) -> None:
    await _registered(portal)
    headers = portal.as_brand(portal.seed.a, portal.seed.restricted_admin_id)
    r = await portal.client.get(f"/api/brand{ROUTE}", headers=headers)
    assert r.status_code == 403


async def test_user_level_has_no_registration_route(portal: Portal) -> None:
    r = await portal.client.get(f"/api/user{ROUTE}", headers=portal.as_user(portal.seed.a))
    assert r.status_code == 404
