"""422 naming the field, 409 on conflicts, and the list machinery (filters, order, pages)."""

from __future__ import annotations

from typing import Any

import pytest
from portal_harness import Portal


def fields_of(r: Any) -> list[str]:
    return [e["field"] for e in r.json()["errors"]]


@pytest.mark.parametrize(
    ("level", "path", "body", "field"),
    [
        ("brand", "ddis", {"ddi_e164": "0034911"}, "ddi_e164"),
        ("brand", "ddis", {"ddi_e164": "+0349"}, "ddi_e164"),
        ("brand", "routing-patterns", {"name": "x", "prefix": "34"}, "prefix"),
        ("brand", "carrier-servers", {"carrier_id": 1, "host": "bad host!"}, "host"),
        ("brand", "carrier-servers", {"carrier_id": 1, "host": "a.test", "port": 70000}, "port"),
        ("brand", "companies", {"name": "x", "allowed_cidrs": ["10.0.0.0/33"]}, "allowed_cidrs.0"),
        ("brand", "companies", {"name": "x", "type": "mainframe"}, "type"),
        ("brand", "companies", {"name": "x", "domain": "-bad-.test"}, "domain"),
        (
            "brand",
            "web-portals",
            {"url": "https://x.test", "level": "brand", "colour": "red"},
            "colour",
        ),
        ("brand", "web-portals", {"url": "ftp://x.test", "level": "brand"}, "url"),
        (
            "client",
            "terminals",
            {"name": "t", "sip_username": "a b", "sip_password": "p"},
            "sip_username",
        ),
        (
            "client",
            "terminals",
            {
                "name": "t",
                "sip_username": "ab",
                "sip_password": "p",
                "allowed_codecs": ["PCMA", "AMR"],
            },
            "allowed_codecs.1",
        ),
        ("client", "extensions", {"number": "1"}, "number"),
        ("client", "extensions", {"number": "12345678901"}, "number"),
        ("client", "extensions", {"number": "10a"}, "number"),
        ("client", "users", {"name": "u", "email": "not-an-email"}, "email"),
        ("client", "users", {"name": "u", "password": "short"}, "password"),
        ("client", "users", {"name": "u\x00"}, "name"),
        ("client", "users", {"name": "u", "unknown": 1}, "unknown"),
        ("client", "friends", {"name": "f", "patterns": ["("]}, "patterns.0"),
        (
            "client",
            "terminals",
            {"name": "t", "sip_username": "ab", "sip_password": "p", "mac": "zz"},
            "mac",
        ),
    ],
)
async def test_invalid_fields_are_named(
    portal: Portal, level: str, path: str, body: dict[str, Any], field: str
) -> None:
    a = portal.seed.a
    headers = portal.as_brand(a) if level == "brand" else portal.as_client(a)
    r = await portal.client.post(f"/api/{level}/{path}", json=body, headers=headers)
    assert r.status_code == 422, r.text
    assert field in fields_of(r), r.json()
    assert field in r.json()["detail"]


async def test_missing_required_field(portal: Portal) -> None:
    r = await portal.client.post(
        "/api/client/terminals", json={"name": "t"}, headers=portal.as_client(portal.seed.a)
    )
    assert r.status_code == 422
    assert set(fields_of(r)) == {"sip_username", "sip_password"}


async def test_conflicts_are_409(portal: Portal) -> None:
    a, b = portal.seed.a, portal.seed.b
    client = portal.as_client(a)
    # Unique extension per client.
    r = await portal.client.post("/api/client/extensions", json={"number": "1001"}, headers=client)
    assert r.status_code == 409, r.text
    # Unique SIP username per client (another client may reuse it).
    r = await portal.client.post(
        "/api/client/terminals",
        json={"name": "dup", "sip_username": "alicea", "sip_password": "x"},
        headers=client,
    )
    assert r.status_code == 409
    r = await portal.client.post(
        "/api/client/terminals",
        json={"name": "dup", "sip_username": "alicea", "sip_password": "x"},
        headers=portal.as_client(b),
    )
    assert r.status_code == 201
    # Unique DDI per brand.
    r = await portal.client.get(f"/api/brand/ddis/{a.ddi_id}", headers=portal.as_brand(a))
    r = await portal.client.post(
        "/api/brand/ddis", json={"ddi_e164": r.json()["ddi_e164"]}, headers=portal.as_brand(a)
    )
    assert r.status_code == 409
    # A media relay set in use by a client cannot go.
    platform = portal.as_platform()
    s = await portal.client.post(
        "/api/platform/media-relay-sets", json={"name": "used"}, headers=platform
    )
    r = await portal.client.patch(
        f"/api/platform/companies/{a.company_id}",
        json={"media_relay_set_id": s.json()["id"]},
        headers=platform,
    )
    assert r.status_code == 200
    r = await portal.client.delete(
        f"/api/platform/media-relay-sets/{s.json()['id']}", headers=platform
    )
    assert r.status_code == 409


async def test_reference_to_missing_object_is_422(portal: Portal) -> None:
    r = await portal.client.post(
        "/api/client/users",
        json={"name": "u", "terminal_id": 999999},
        headers=portal.as_client(portal.seed.a),
    )
    assert r.status_code == 422 and fields_of(r) == ["terminal_id"]


async def test_filters_order_pages(portal: Portal) -> None:
    headers = portal.as_client(portal.seed.a)
    for i in range(7):
        r = await portal.client.post(
            "/api/client/terminals",
            json={
                "name": f"phone-{i}",
                "sip_username": f"p{i}",
                "sip_password": "x",
                "srtp": i % 2 == 0,
            },
            headers=headers,
        )
        assert r.status_code == 201
    r = await portal.client.get(
        "/api/client/terminals",
        params={"name[startswith]": "phone", "order": "-name", "per_page": 3, "page": 2},
        headers=headers,
    )
    assert r.status_code == 200
    assert [t["name"] for t in r.json()] == ["phone-3", "phone-2", "phone-1"]
    assert r.headers["X-Total-Count"] == "7"
    assert 'rel="next"' in r.headers["Link"] and 'rel="prev"' in r.headers["Link"]
    r = await portal.client.get(
        "/api/client/terminals", params={"srtp": "true", "name[contains]": "phone"}, headers=headers
    )
    assert sorted(t["name"] for t in r.json()) == ["phone-0", "phone-2", "phone-4", "phone-6"]
    r = await portal.client.get(
        "/api/client/terminals", params={"name[in]": "phone-1,phone-5"}, headers=headers
    )
    assert sorted(t["name"] for t in r.json()) == ["phone-1", "phone-5"]
    r = await portal.client.get(
        "/api/client/terminals", params={"mac[isnull]": "false"}, headers=headers
    )
    assert r.json() == []
    r = await portal.client.get(
        "/api/client/terminals", params={"name[contains]": "%"}, headers=headers
    )
    assert r.json() == []
    for bad, field in [
        ({"nosuch": "1"}, "nosuch"),
        ({"id[gt]": "x"}, "id[gt]"),
        ({"name[like]": "x"}, "name[like]"),
        ({"order": "password_hash"}, "order"),
        ({"per_page": "0"}, "per_page"),
    ]:
        r = await portal.client.get("/api/client/terminals", params=bad, headers=headers)
        assert r.status_code == 422, (bad, r.text)
        assert field in fields_of(r)
    r = await portal.client.get(
        "/api/client/terminals", params={"order": "name"}, headers={**headers, "Accept": "text/csv"}
    )
    assert r.headers["content-type"].startswith("text/csv")
    lines = r.text.splitlines()
    assert lines[0].startswith("id,") and len(lines) == 1 + 9


async def test_theme_follows_the_host(portal: Portal) -> None:
    r = await portal.client.get("/my/theme", headers={"Host": "portal.a.test"})
    assert r.json() == {"name": "Portal a", "colour": "#112233", "logo": None, "level": "brand"}
    r = await portal.client.get("/my/theme", headers={"Host": "elsewhere.test:8000"})
    assert r.json()["name"] == "Ivoz"
    for host in ("[::1", "a b", ""):
        r = await portal.client.get("/my/theme", headers={"Host": host})
        assert r.status_code == 200 and r.json()["name"] == "Ivoz"
        r = await portal.client.post(
            "/api/brand/login", json={"username": "x", "password": "y"}, headers={"Host": host}
        )
        assert r.status_code == 401


async def test_conflict_names_the_fields(portal: Portal) -> None:
    r = await portal.client.post(
        "/api/client/terminals",
        json={"name": "other", "sip_username": "alicea", "sip_password": "x"},
        headers=portal.as_client(portal.seed.a),
    )
    assert r.status_code == 409
    assert [e["field"] for e in r.json()["errors"]] == ["sip_username"]
    assert "sip_username" in r.json()["detail"]


async def test_a_body_that_is_not_json(portal: Portal) -> None:
    r = await portal.client.post(
        "/api/platform/login", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422 and fields_of(r) == ["body"]


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


async def test_logo_upload_and_theme(portal: Portal) -> None:
    a = portal.seed.a
    portal_id = a.ids["web-portals"]
    brand = portal.as_brand(a)
    url = f"/api/brand/web-portals/{portal_id}/logo"
    r = await portal.client.put(url, content=PNG, headers={**brand, "Content-Type": "image/png"})
    assert r.status_code == 204, r.text
    theme = (await portal.client.get("/my/theme", headers={"Host": a.portal_host})).json()
    assert theme["logo"] == "/my/logo"
    r = await portal.client.get("/my/logo", headers={"Host": a.portal_host})
    assert r.content == PNG and r.headers["content-type"] == "image/png"
    assert r.headers["x-content-type-options"] == "nosniff"
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    r = await portal.client.put(
        url, content=svg, headers={**brand, "Content-Type": "image/svg+xml"}
    )
    assert r.status_code == 415
    r = await portal.client.put(
        url, content=b"GIF89a", headers={**brand, "Content-Type": "image/png"}
    )
    assert r.status_code == 422
    r = await portal.client.put(
        url, content=PNG + b"\x00" * 300_000, headers={**brand, "Content-Type": "image/png"}
    )
    assert r.status_code == 413
    # Another brand's portal: not found.
    foreign = portal.as_brand(portal.seed.b)
    r = await portal.client.put(url, content=PNG, headers={**foreign, "Content-Type": "image/png"})
    assert r.status_code == 404
    r = await portal.client.delete(url, headers=foreign)
    assert r.status_code == 404
    r = await portal.client.delete(url, headers=brand)
    assert r.status_code == 204
    r = await portal.client.get("/my/logo", headers={"Host": a.portal_host})
    assert r.status_code == 404


async def test_racing_duplicates_one_wins(portal: Portal) -> None:
    import asyncio

    headers = portal.as_client(portal.seed.a)
    responses = await asyncio.gather(
        *(
            portal.client.post("/api/client/extensions", json={"number": "4242"}, headers=headers)
            for _ in range(4)
        )
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409]
