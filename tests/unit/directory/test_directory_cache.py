"""The Directory: loaded in a few queries, read without queries, kept fresh by events.

Every test runs on SQLite and PostgreSQL (the ``demo_database`` fixture). Changes are
written the way the portal writes them: one transaction, then ``commit_and_announce``
publishes the ConfigChanged events on a MemoryEventBus that the Directory is attached to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession

from ivoz.directory import Directory
from ivoz.domain import models as m
from ivoz.domain.db import Database
from ivoz.domain.events import RELOAD_ALL, ConfigChanged, MemoryEventBus, commit_and_announce


@contextmanager
def count_queries(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def before(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", before)


@asynccontextmanager
async def change(db: Database, bus: MemoryEventBus) -> AsyncIterator[AsyncSession]:
    """A write like the portal's: commit, then announce what changed."""
    async with db.sessionmaker() as session:
        yield session
        await commit_and_announce(session, bus)


async def attached(db: Database) -> tuple[Directory, MemoryEventBus]:
    bus = MemoryEventBus()
    directory = await Directory.load(db)
    directory.attach(bus)
    return directory, bus


async def one(session: AsyncSession, model: Any, **where: Any) -> Any:
    stmt = select(model).where(*(getattr(model, k) == v for k, v in where.items()))
    return (await session.scalars(stmt)).one()


async def test_load_serves_the_demo_platform(demo_database: Database) -> None:
    with count_queries(demo_database) as queries:
        directory = await Directory.load(demo_database)
    assert len(queries) <= 8  # one per table, whatever the platform's size

    acme = directory.company_by_domain("ACME.ivoz.test")  # domains compare case-blind
    assert acme is not None and acme.name == "Acme" and acme.type == "vpbx"
    assert directory.company(acme.id) == acme
    assert acme.application_server_set_id is not None and acme.media_relay_set_id is not None

    alice_phone = directory.terminal(acme.id, "alice")
    assert alice_phone is not None and alice_phone.sip_password == "s3cret"
    assert alice_phone.allowed_codecs == ("PCMA", "PCMU", "opus")
    assert directory.terminal(acme.id, "ALICE") is None  # RFC 3261 19.1.4: user is exact
    assert directory.terminal_by_id(alice_phone.id) == alice_phone
    assert alice_phone.user_id is not None
    alice = directory.user(alice_phone.user_id)
    assert alice is not None and alice.name == "Alice" and alice.extension_number == "1001"
    assert alice.terminal_id == alice_phone.id and not alice.do_not_disturb

    ext = directory.extension(acme.id, "1002")
    assert ext is not None and ext.route_type == "user"
    bob = directory.user(ext.user_id or 0)
    assert bob is not None and bob.name == "Bob"
    assert directory.extension(acme.id, "1003") is None
    assert directory.forwards(alice.id) == []

    relays = directory.media_relays(acme.media_relay_set_id)
    assert [(r.host, r.port, r.weight) for r in relays] == [("127.0.0.1", 22222, 1)]
    assert directory.media_relays(None) == relays
    # The embedded application server of `ivoz run`, in the client's set.
    servers = directory.application_servers(acme.application_server_set_id)
    assert [(s.host, s.port, s.transport) for s in servers] == [("127.0.0.1", 5062, "udp")]
    assert directory.is_application_server("127.0.0.1")
    assert not directory.is_application_server("192.0.2.1")


async def test_lookups_never_query(demo_database: Database) -> None:
    directory = await Directory.load(demo_database)
    acme = directory.company_by_domain("acme.ivoz.test")
    assert acme is not None
    with count_queries(demo_database) as queries:
        for _ in range(200):
            terminal = directory.terminal(acme.id, "bob")
            assert terminal is not None and terminal.user_id is not None
            directory.user(terminal.user_id)
            directory.extension(acme.id, "1001")
            directory.forwards(terminal.user_id)
            directory.application_servers(acme.application_server_set_id)
            directory.media_relays(acme.media_relay_set_id)
            directory.is_application_server("192.0.2.1")
    assert queries == []


async def test_dnd_toggled_through_the_database_is_seen_after_the_event(
    demo_database: Database,
) -> None:
    directory, bus = await attached(demo_database)
    acme = directory.company_by_domain("acme.ivoz.test")
    assert acme is not None
    ext = directory.extension(acme.id, "1002")
    assert ext is not None and ext.user_id is not None
    assert directory.user(ext.user_id).do_not_disturb is False  # type: ignore[union-attr]

    async with change(demo_database, bus) as session:
        bob = await session.get(m.User, ext.user_id)
        assert bob is not None
        bob.do_not_disturb = True
        bob.call_waiting_limit = 2
    seen = directory.user(ext.user_id)
    assert seen is not None and seen.do_not_disturb and seen.call_waiting_limit == 2


async def test_an_event_rereads_only_its_row(demo_database: Database) -> None:
    directory, _bus = await attached(demo_database)
    acme = directory.company_by_domain("acme.ivoz.test")
    assert acme is not None
    terminal = directory.terminal(acme.id, "alice")
    assert terminal is not None
    with count_queries(demo_database) as queries:
        await directory.apply(ConfigChanged("Terminal", terminal.id, "updated", None, acme.id))
    assert len([q for q in queries if q.lstrip().upper().startswith("SELECT")]) == 1


async def test_terminal_renamed_and_password_changed(demo_database: Database) -> None:
    directory, bus = await attached(demo_database)
    acme = directory.company_by_domain("acme.ivoz.test")
    assert acme is not None
    before = directory.terminal(acme.id, "alice")
    assert before is not None
    async with change(demo_database, bus) as session:
        row = await session.get(m.Terminal, before.id)
        assert row is not None
        row.sip_username = "alice2"
        row.sip_password = "n3w"
    assert directory.terminal(acme.id, "alice") is None
    after = directory.terminal(acme.id, "alice2")
    assert after is not None and after.sip_password == "n3w" and after.user_id == before.user_id


async def test_deleting_a_terminal_unlinks_its_user(demo_database: Database) -> None:
    directory, bus = await attached(demo_database)
    acme = directory.company_by_domain("acme.ivoz.test")
    assert acme is not None
    terminal = directory.terminal(acme.id, "bob")
    assert terminal is not None and terminal.user_id is not None
    async with change(demo_database, bus) as session:
        await session.delete(await session.get(m.Terminal, terminal.id))
    assert directory.terminal(acme.id, "bob") is None
    assert directory.terminal_by_id(terminal.id) is None
    # ON DELETE SET NULL changed the user without an event of its own.
    bob = directory.user(terminal.user_id)
    assert bob is not None and bob.terminal_id is None


async def test_user_moved_to_another_terminal(demo_database: Database) -> None:
    directory, bus = await attached(demo_database)
    acme = directory.company_by_domain("acme.ivoz.test")
    assert acme is not None
    old = directory.terminal(acme.id, "alice")
    assert old is not None and old.user_id is not None
    async with change(demo_database, bus) as session:
        spare = m.Terminal(
            company_id=acme.id, brand_id=acme.brand_id, name="spare", sip_username="spare",
            sip_password="x",
        )  # fmt: skip
        session.add(spare)
        await session.flush()
        alice = await session.get(m.User, old.user_id)
        assert alice is not None
        alice.terminal_id = spare.id
    new = directory.terminal(acme.id, "spare")
    assert new is not None and new.user_id == old.user_id
    assert directory.terminal(acme.id, "alice").user_id is None  # type: ignore[union-attr]
    assert directory.user(old.user_id).terminal_id == new.id  # type: ignore[union-attr]


async def test_extension_renumbered_and_removed(demo_database: Database) -> None:
    directory, bus = await attached(demo_database)
    acme = directory.company_by_domain("acme.ivoz.test")
    assert acme is not None
    ext = directory.extension(acme.id, "1001")
    assert ext is not None and ext.user_id is not None
    async with change(demo_database, bus) as session:
        row = await session.get(m.Extension, ext.id)
        assert row is not None
        row.number = "2001"
    assert directory.extension(acme.id, "1001") is None
    assert directory.extension(acme.id, "2001") is not None
    assert directory.user(ext.user_id).extension_number == "2001"  # type: ignore[union-attr]

    async with change(demo_database, bus) as session:
        await session.delete(await session.get(m.Extension, ext.id))
    assert directory.extension(acme.id, "2001") is None
    alice = directory.user(ext.user_id)
    assert alice is not None and alice.extension_number is None and alice.extension_id is None


async def test_call_forwards_follow_their_rows(demo_database: Database) -> None:
    directory, bus = await attached(demo_database)
    acme = directory.company_by_domain("acme.ivoz.test")
    assert acme is not None
    bob_ext = directory.extension(acme.id, "1002")
    assert bob_ext is not None and bob_ext.user_id is not None
    bob_id = bob_ext.user_id
    async with change(demo_database, bus) as session:
        session.add_all(
            [
                m.CallForwardSetting(
                    user_id=bob_id, company_id=acme.id, kind="busy", target="1001"
                ),
                m.CallForwardSetting(
                    user_id=bob_id,
                    company_id=acme.id,
                    kind="noanswer",
                    target_type="number",
                    target="+34911234567",
                    no_answer_timeout=15,
                ),
            ]
        )
    forwards = directory.forwards(bob_id)
    assert [(f.kind, f.target_type, f.target, f.no_answer_timeout) for f in forwards] == [
        ("busy", "extension", "1001", 10),
        ("noanswer", "number", "+34911234567", 15),
    ]
    assert all(f.enabled and f.company_id == acme.id for f in forwards)

    async with change(demo_database, bus) as session:
        row = await session.get(m.CallForwardSetting, forwards[0].id)
        assert row is not None
        row.enabled = False
    assert [f.enabled for f in directory.forwards(bob_id)] == [False, True]

    async with change(demo_database, bus) as session:
        await session.delete(await session.get(m.CallForwardSetting, forwards[1].id))
    assert [f.id for f in directory.forwards(bob_id)] == [forwards[0].id]

    # Deleting the user takes its forwards with it (ON DELETE CASCADE).
    async with change(demo_database, bus) as session:
        await session.delete(await session.get(m.User, bob_id))
    assert directory.user(bob_id) is None and directory.forwards(bob_id) == []
    assert directory.extension(acme.id, "1002").user_id is None  # type: ignore[union-attr]
    assert directory.terminal(acme.id, "bob").user_id is None  # type: ignore[union-attr]


async def test_new_client_and_its_deletion(demo_database: Database) -> None:
    directory, bus = await attached(demo_database)
    acme = directory.company_by_domain("acme.ivoz.test")
    assert acme is not None
    async with change(demo_database, bus) as session:
        other = m.Company(brand_id=acme.brand_id, name="Other", domain="other.ivoz.test")
        session.add(other)
        await session.flush()
        session.add(
            m.Terminal(company_id=other.id, name="t", sip_username="alice", sip_password="o")
        )
    found = directory.company_by_domain("other.ivoz.test")
    assert found is not None
    # Same SIP username, another client: each realm has its own.
    other_alice = directory.terminal(found.id, "alice")
    assert other_alice is not None and other_alice.sip_password == "o"
    assert directory.terminal(acme.id, "alice").sip_password == "s3cret"  # type: ignore[union-attr]

    async with change(demo_database, bus) as session:
        row = await session.get(m.Company, found.id)
        assert row is not None
        row.domain = "renamed.ivoz.test"
    assert directory.company_by_domain("other.ivoz.test") is None
    assert directory.company_by_domain("renamed.ivoz.test") is not None

    async with change(demo_database, bus) as session:
        await session.delete(await session.get(m.Company, found.id))
    assert directory.company(found.id) is None
    assert directory.terminal_by_id(other_alice.id) is None
    assert directory.company_by_domain("acme.ivoz.test") == acme


async def test_brand_deletion_drops_its_clients(demo_database: Database) -> None:
    directory, bus = await attached(demo_database)
    acme = directory.company_by_domain("acme.ivoz.test")
    assert acme is not None
    alice = directory.terminal(acme.id, "alice")
    assert alice is not None
    async with change(demo_database, bus) as session:
        await session.delete(await session.get(m.Brand, acme.brand_id))
    assert directory.company(acme.id) is None
    assert directory.terminal_by_id(alice.id) is None
    assert directory.user(alice.user_id or 0) is None


async def test_infrastructure_changes(demo_database: Database) -> None:
    directory, bus = await attached(demo_database)
    acme = directory.company_by_domain("acme.ivoz.test")
    assert acme is not None and acme.application_server_set_id is not None
    async with change(demo_database, bus) as session:
        session.add_all(
            [
                m.ApplicationServer(
                    name="as1", ip="127.0.0.2", port=5062,
                    application_server_set_id=acme.application_server_set_id,
                ),
                m.ApplicationServer(name="as2", ip="127.0.0.3", port=5064),
            ]
        )  # fmt: skip
    servers = directory.application_servers(acme.application_server_set_id)
    assert [(s.host, s.port) for s in servers] == [("127.0.0.1", 5062), ("127.0.0.2", 5062)]
    assert len(directory.application_servers(None)) == 3
    assert directory.is_application_server("127.0.0.3")

    async with change(demo_database, bus) as session:
        relay = await one(session, m.MediaRelay, name="local")
        relay.weight = 5
        session.add(
            m.MediaRelay(
                media_relay_set_id=acme.media_relay_set_id, ng_host="127.0.0.4", ng_port=2223
            )
        )
    relays = directory.media_relays(acme.media_relay_set_id)
    assert [(r.host, r.weight) for r in relays] == [("127.0.0.1", 5), ("127.0.0.4", 1)]

    async with change(demo_database, bus) as session:
        await session.delete(await one(session, m.ApplicationServer, name="as2"))
    assert not directory.is_application_server("127.0.0.3")


async def test_reload_all_catches_up_with_unannounced_changes(demo_database: Database) -> None:
    directory, bus = await attached(demo_database)
    acme = directory.company_by_domain("acme.ivoz.test")
    assert acme is not None
    generation = directory.generation
    async with demo_database.sessionmaker() as session, session.begin():
        (await one(session, m.Terminal, sip_username="bob")).sip_password = "quiet"
    assert directory.terminal(acme.id, "bob").sip_password == "s3cret"  # type: ignore[union-attr]
    await bus.publish(RELOAD_ALL)
    assert directory.terminal(acme.id, "bob").sip_password == "quiet"  # type: ignore[union-attr]
    assert directory.generation > generation


async def test_detached_directory_ignores_events(demo_database: Database) -> None:
    directory, bus = await attached(demo_database)
    directory.detach()
    acme = directory.company_by_domain("acme.ivoz.test")
    assert acme is not None
    async with change(demo_database, bus) as session:
        (await one(session, m.Terminal, sip_username="bob")).sip_password = "later"
    assert directory.terminal(acme.id, "bob").sip_password == "s3cret"  # type: ignore[union-attr]


async def test_a_failed_reread_falls_back_to_a_full_load(
    demo_database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory, _bus = await attached(demo_database)
    acme = directory.company_by_domain("acme.ivoz.test")
    assert acme is not None
    calls: list[str] = []
    original = directory._apply_client_row

    async def broken(event: ConfigChanged) -> None:
        calls.append(event.entity)
        raise RuntimeError("boom")

    monkeypatch.setattr(directory, "_apply_client_row", broken)
    async with demo_database.sessionmaker() as session, session.begin():
        (await one(session, m.Terminal, sip_username="bob")).sip_password = "healed"
    await directory.apply(ConfigChanged("Terminal", 1, "updated", None, acme.id))
    assert calls == ["Terminal"]
    assert directory.terminal(acme.id, "bob").sip_password == "healed"  # type: ignore[union-attr]
    monkeypatch.setattr(directory, "_apply_client_row", original)
