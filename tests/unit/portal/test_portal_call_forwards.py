"""Call forward settings through the API: validation, and who may set whose."""

from __future__ import annotations

from portal_harness import Portal


async def test_client_sets_its_users_forwards_with_valid_targets(portal: Portal) -> None:
    a = portal.seed.a
    headers = portal.as_client(a)
    url = "/api/client/call-forward-settings"
    good = {"user_id": a.user_id, "kind": "busy", "target": "1002"}
    r = await portal.client.post(url, headers=headers, json=good)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["company_id"] == a.company_id and created["brand_id"] == a.brand_id
    assert (created["target_type"], created["no_answer_timeout"], created["enabled"]) == (
        "extension",
        10,
        True,
    )
    for field, bad in (
        ("kind", "sometimes"),
        ("target_type", "voicemail"),
        ("target", "abc"),
        ("no_answer_timeout", 0),
        ("no_answer_timeout", 301),
    ):
        r = await portal.client.post(url, headers=headers, json={**good, field: bad})
        assert r.status_code == 422, (field, bad, r.text)
        assert r.json()["errors"][0]["field"] == field, r.text
    number = {**good, "kind": "unregistered", "target_type": "number", "target": "+34911000222"}
    r = await portal.client.post(url, headers=headers, json=number)
    assert r.status_code == 201, r.text


async def test_forwards_stay_within_their_client(portal: Portal) -> None:
    a, b = portal.seed.a, portal.seed.b
    r = await portal.client.post(
        "/api/client/call-forward-settings",
        headers=portal.as_client(b),
        json={"user_id": a.user_id, "kind": "busy", "target": "1002"},
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "user_id"
    r = await portal.client.get("/api/client/call-forward-settings", headers=portal.as_client(b))
    assert a.ids["call-forward-settings"] not in {row["id"] for row in r.json()}


async def test_a_user_manages_only_its_own_forwards(portal: Portal) -> None:
    a, b = portal.seed.a, portal.seed.b
    url = "/api/user/call-forwards"
    r = await portal.client.post(
        url, headers=portal.as_user(a), json={"kind": "unconditional", "target": "1002"}
    )
    assert r.status_code == 201, r.text
    assert r.json()["user_id"] == a.user_id
    # user_id is not the user's to choose.
    r = await portal.client.post(
        url,
        headers=portal.as_user(a),
        json={"kind": "busy", "target": "1002", "user_id": b.user_id},
    )
    assert r.status_code == 422
    rows = (await portal.client.get(url, headers=portal.as_user(b))).json()
    assert rows and {row["user_id"] for row in rows} == {b.user_id}
