"""Each level manages what it owns: create, read, change, list, export and delete every
entity it may touch, with the change announced on the event bus after commit."""

from __future__ import annotations

import csv
import io

import pytest
from portal_harness import Portal
from portal_samples import payloads

DELETE_LAST = ("companies", "brands")


@pytest.mark.parametrize("level", ["platform", "brand", "client", "user"])
async def test_level_manages_its_entities(portal: Portal, level: str) -> None:
    a = portal.seed.a
    headers = {
        "platform": portal.as_platform,
        "brand": lambda: portal.as_brand(a),
        "client": lambda: portal.as_client(a),
        "user": lambda: portal.as_user(a),
    }[level]()
    base = f"/api/{level}"
    created: list[tuple[str, int]] = []
    for path, body in payloads(level, portal.seed, a, n=1).items():
        portal.events.clear()
        r = await portal.client.post(f"{base}/{path}", json=body, headers=headers)
        assert r.status_code == 201, (path, r.text)
        row = r.json()
        assert "password" not in row and "password_hash" not in row
        # SIP and trunk credentials are write-only: accepted, never shown.
        assert not {"sip_password", "auth_password"} & set(row), (path, row)
        for key, value in body.items():
            if key in ("password", "sip_password", "auth_password"):
                continue
            if not isinstance(value, list):
                assert str(row[key]).lower() == str(value).lower(), (path, key, row)
        assert [(e.entity, e.op) for e in portal.events if e.id == row["id"]][:1] == [
            (e.entity, "created") for e in portal.events[:1]
        ]
        assert portal.events, path
        r = await portal.client.get(f"{base}/{path}/{row['id']}", headers=headers)
        assert r.status_code == 200 and r.json() == row
        r = await portal.client.patch(f"{base}/{path}/{row['id']}", json={}, headers=headers)
        assert r.status_code == 200, (path, r.text)
        r = await portal.client.get(f"{base}/{path}", params={"id": row["id"]}, headers=headers)
        assert [x["id"] for x in r.json()] == [row["id"]]
        r = await portal.client.get(
            f"{base}/{path}/export.csv", params={"id": row["id"]}, headers=headers
        )
        assert r.headers["content-type"].startswith("text/csv")
        assert [int(x["id"]) for x in csv.DictReader(io.StringIO(r.text))] == [row["id"]]
        created.append((path, row["id"]))
    for path, id_ in sorted(created, key=lambda c: c[0] in DELETE_LAST):
        portal.events.clear()
        r = await portal.client.delete(f"{base}/{path}/{id_}", headers=headers)
        assert r.status_code == 204, (path, r.text)
        assert any(e.op == "deleted" and e.id == id_ for e in portal.events), path
        r = await portal.client.get(f"{base}/{path}/{id_}", headers=headers)
        assert r.status_code == 404


async def test_client_routes_its_ddis_but_cannot_add_or_renumber(portal: Portal) -> None:
    a = portal.seed.a
    headers = portal.as_client(a)
    r = await portal.client.patch(
        f"/api/client/ddis/{a.ddi_id}",
        json={"route_type": "friend", "friend_id": a.ids["friends"]},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["friend_id"] == a.ids["friends"]
    r = await portal.client.patch(
        f"/api/client/ddis/{a.ddi_id}", json={"ddi_e164": "+34000000001"}, headers=headers
    )
    assert r.status_code == 422
    r = await portal.client.post("/api/client/ddis", json={"ddi_e164": "+3491"}, headers=headers)
    assert r.status_code == 405


async def test_user_reads_and_changes_its_profile(portal: Portal) -> None:
    a = portal.seed.a
    headers = portal.as_user(a)
    r = await portal.client.get("/api/user/me", headers=headers)
    assert r.status_code == 200 and r.json()["id"] == a.user_id
    r = await portal.client.patch(
        "/api/user/me", json={"do_not_disturb": True, "call_waiting_limit": 2}, headers=headers
    )
    assert r.status_code == 200
    assert r.json()["do_not_disturb"] is True and r.json()["call_waiting_limit"] == 2
    assert any(e.entity == "User" and e.op == "updated" for e in portal.events)
    r = await portal.client.patch("/api/user/me", json={"company_id": 99}, headers=headers)
    assert r.status_code == 422


async def test_brand_cannot_create_platform_administrators(portal: Portal) -> None:
    r = await portal.client.post(
        "/api/brand/administrators",
        json={"username": "evil", "password": "longenough1", "level": "platform"},
        headers=portal.as_brand(portal.seed.a),
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "level"


async def test_restricted_administrator_sees_only_its_grants(portal: Portal) -> None:
    a = portal.seed.a
    headers = portal.as_brand(a, admin_id=portal.seed.restricted_admin_id)
    r = await portal.client.get("/api/brand/carriers", headers=headers)
    assert r.status_code == 200 and [c["id"] for c in r.json()] == [a.carrier_id]
    r = await portal.client.post("/api/brand/carriers", json={"name": "x"}, headers=headers)
    assert r.status_code == 403
    r = await portal.client.delete(f"/api/brand/carriers/{a.carrier_id}", headers=headers)
    assert r.status_code == 403
    r = await portal.client.get("/api/brand/companies", headers=headers)
    assert r.status_code == 403
    r = await portal.client.get(f"/api/brand/companies/{a.company_id}", headers=headers)
    assert r.status_code == 403


async def test_user_manages_only_its_call_forwards(portal: Portal) -> None:
    a, b = portal.seed.a, portal.seed.b
    headers = portal.as_user(a)
    r = await portal.client.post(
        "/api/user/call-forwards",
        json={"kind": "busy", "target_type": "extension", "target": "+3491"},
        headers=headers,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "target"
    r = await portal.client.post(
        "/api/user/call-forwards",
        json={"kind": "noanswer", "target_type": "number", "target": "+34911000222"},
        headers=headers,
    )
    assert r.status_code == 201
    assert (r.json()["user_id"], r.json()["company_id"]) == (a.user_id, a.company_id)
    # A user_id in the payload is not accepted: the owner is the caller.
    r = await portal.client.post(
        "/api/user/call-forwards",
        json={"kind": "busy", "target": "1001", "user_id": b.user_id},
        headers=headers,
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "user_id"
    r = await portal.client.get("/api/user/call-forwards", headers=headers)
    assert {f["user_id"] for f in r.json()} == {a.user_id}


async def test_shared_rows_are_read_only_below_their_owner(portal: Portal) -> None:
    generic = portal.seed.generic_rules_id
    brand = portal.as_brand(portal.seed.a)
    r = await portal.client.get(f"/api/brand/transformation-rule-sets/{generic}", headers=brand)
    assert r.status_code == 200
    r = await portal.client.patch(
        f"/api/brand/transformation-rule-sets/{generic}", json={"name": "mine"}, headers=brand
    )
    assert r.status_code == 404
    r = await portal.client.delete(f"/api/brand/transformation-rule-sets/{generic}", headers=brand)
    assert r.status_code == 404
    # A brand may still use it.
    r = await portal.client.post(
        "/api/brand/carriers",
        json={"name": "uses generic", "transformation_rule_set_id": generic},
        headers=brand,
    )
    assert r.status_code == 201


async def test_restricted_administrators_hand_out_no_rights(portal: Portal) -> None:
    a = portal.seed.a
    async with portal.database.sessionmaker() as session, session.begin():
        from ivoz.domain import models as m

        session.add_all(
            [
                m.AdministratorGrant(
                    administrator_id=portal.seed.restricted_admin_id,
                    entity=entity,
                    can_read=True,
                    can_write=True,
                )
                for entity in ("Administrator", "AdministratorGrant")
            ]
        )
    headers = portal.as_brand(a, admin_id=portal.seed.restricted_admin_id)
    r = await portal.client.get("/api/brand/administrators", headers=headers)
    assert r.status_code == 200
    r = await portal.client.patch(
        f"/api/brand/administrators/{portal.seed.restricted_admin_id}",
        json={"restricted": False},
        headers=headers,
    )
    assert r.status_code == 403
    r = await portal.client.post(
        "/api/brand/administrator-grants",
        json={"administrator_id": portal.seed.restricted_admin_id, "entity": "Company"},
        headers=headers,
    )
    assert r.status_code == 403


async def test_brand_gives_clients_only_its_own_features(portal: Portal) -> None:
    a = portal.seed.a
    platform = portal.as_platform()
    r = await portal.client.patch(
        f"/api/platform/brands/{a.brand_id}", json={"feature_ids": [1, 2]}, headers=platform
    )
    assert r.status_code == 200 and r.json()["feature_ids"] == [1, 2]
    brand = portal.as_brand(a)
    r = await portal.client.patch(
        f"/api/brand/companies/{a.company_id}", json={"feature_ids": [2]}, headers=brand
    )
    assert r.status_code == 200 and r.json()["feature_ids"] == [2]
    r = await portal.client.patch(
        f"/api/brand/companies/{a.company_id}", json={"feature_ids": [2, 3]}, headers=brand
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "feature_ids"


async def test_rows_do_not_change_tenant(portal: Portal) -> None:
    a = portal.seed.a
    r = await portal.client.patch(
        f"/api/platform/companies/{a.company_id}",
        json={"brand_id": portal.seed.b.brand_id},
        headers=portal.as_platform(),
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "brand_id"
    r = await portal.client.patch(
        f"/api/brand/ddis/{a.ddi_id}",
        json={"company_id": None, "user_id": None, "route_type": None},
        headers=portal.as_brand(a),
    )
    assert r.status_code == 200 and r.json()["company_id"] is None  # a DDI is reassignable


async def test_a_clients_rows_point_only_within_the_client(portal: Portal) -> None:
    a = portal.seed.a
    brand = portal.as_brand(a)
    other = await portal.client.post(
        "/api/brand/companies", json={"name": "Other client", "type": "vpbx"}, headers=brand
    )
    assert other.status_code == 201
    # A's DDI routed to A's user: fine; moved to the other client with the user kept: no.
    r = await portal.client.patch(
        f"/api/brand/ddis/{a.ddi_id}", json={"company_id": other.json()["id"]}, headers=brand
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "user_id"
    r = await portal.client.patch(
        f"/api/brand/ddis/{a.ddi_id}",
        json={"company_id": other.json()["id"], "user_id": None, "route_type": None},
        headers=brand,
    )
    assert r.status_code == 200
    r = await portal.client.patch(
        f"/api/brand/ddis/{a.ddi_id}", json={"user_id": a.user_id}, headers=brand
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "user_id"


async def test_sip_credentials_are_write_only(portal: Portal) -> None:
    """A terminal's SIP password is set through the API but never read, listed, exported,
    filtered or ordered on; the proxies still get it from the database."""
    a = portal.seed.a
    headers = portal.as_client(a)
    body = payloads("client", portal.seed, a, n=7)["terminals"]
    r = await portal.client.post("/api/client/terminals", json=body, headers=headers)
    assert r.status_code == 201, r.text
    id_ = r.json()["id"]
    for response in (
        r,
        await portal.client.get(f"/api/client/terminals/{id_}", headers=headers),
        await portal.client.get("/api/client/terminals", headers=headers),
        await portal.client.get("/api/client/terminals/export.csv", headers=headers),
    ):
        assert response.status_code == 200 or response.status_code == 201
        assert "sip_password" not in response.text
        assert body["sip_password"] not in response.text
    probe = {"sip_password": body["sip_password"]}
    r = await portal.client.get("/api/client/terminals", params=probe, headers=headers)
    assert r.status_code == 422, r.text
    r = await portal.client.get(
        "/api/client/terminals", params={"order": "sip_password"}, headers=headers
    )
    assert r.status_code == 422, r.text
    r = await portal.client.patch(
        f"/api/client/terminals/{id_}", json={"sip_password": "Changed-2-secret"}, headers=headers
    )
    assert r.status_code == 200 and "Changed-2-secret" not in r.text
