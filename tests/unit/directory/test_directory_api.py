"""Changes made through the REST API reach a Directory on the same bus (SQLite, PostgreSQL).

This is the embedded default: the portal and the SIP roles share one MemoryEventBus, so
when the API's response arrives the directory already holds the change.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx
from sqlalchemy import select

from ivoz.config import Config
from ivoz.directory import Directory
from ivoz.domain import models as m
from ivoz.domain.db import Database
from ivoz.domain.events import MemoryEventBus
from ivoz.portal.app import create_app
from ivoz.portal.tokens import Principal


async def test_api_changes_reach_the_directory(demo_database: Database, tmp_path: Path) -> None:
    bus = MemoryEventBus()
    directory = await Directory.load(demo_database)
    directory.attach(bus)
    config = dataclasses.replace(Config(), data_dir=tmp_path, api_secret="x" * 32)
    app = create_app(config, demo_database, bus)
    async with demo_database.sessionmaker() as session:
        admin = (
            await session.scalars(select(m.Administrator).where(m.Administrator.username == "acme"))
        ).one()
    acme = directory.company_by_domain("acme.ivoz.test")
    assert acme is not None
    alice_ext = directory.extension(acme.id, "1001")
    assert alice_ext is not None and alice_ext.user_id is not None
    alice_id = alice_ext.user_id
    tokens = app.state.portal.tokens

    def bearer(principal: Principal) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens.issue(principal).access_token}"}

    as_alice = bearer(Principal("user", "user", alice_id, acme.brand_id, acme.id, alice_id, "s"))
    as_acme = bearer(Principal("client", "admin", admin.id, acme.brand_id, acme.id, None, "s"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        # A user turns do-not-disturb on for itself.
        r = await client.patch("/api/user/me", headers=as_alice, json={"do_not_disturb": True})
        assert r.status_code == 200, r.text
        assert directory.user(alice_id).do_not_disturb  # type: ignore[union-attr]

        # The client gives Alice a forward on no answer to Bob's extension.
        r = await client.post(
            "/api/client/call-forward-settings",
            headers=as_acme,
            json={
                "user_id": alice_id,
                "kind": "noanswer",
                "target": "1002",
                "no_answer_timeout": 7,
            },
        )
        assert r.status_code == 201, r.text
        (forward,) = directory.forwards(alice_id)
        assert (forward.kind, forward.target, forward.no_answer_timeout) == ("noanswer", "1002", 7)

        # The user changes it, then removes it, through its own route.
        r = await client.patch(
            f"/api/user/call-forwards/{forward.id}", headers=as_alice, json={"enabled": False}
        )
        assert r.status_code == 200, r.text
        assert directory.forwards(alice_id)[0].enabled is False
        r = await client.delete(f"/api/user/call-forwards/{forward.id}", headers=as_alice)
        assert r.status_code == 204, r.text
        assert directory.forwards(alice_id) == []

        # The client renames Bob's terminal's SIP user name.
        bob = directory.terminal(acme.id, "bob")
        assert bob is not None
        r = await client.patch(
            f"/api/client/terminals/{bob.id}", headers=as_acme, json={"sip_username": "robert"}
        )
        assert r.status_code == 200, r.text
        assert directory.terminal(acme.id, "bob") is None
        assert directory.terminal(acme.id, "robert") is not None
