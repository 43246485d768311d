"""Services: one per process, shared by the roles; and how ``ivoz run`` hands it out."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ivoz import cli
from ivoz import services as services_module
from ivoz.config import Config
from ivoz.domain import models as m
from ivoz.domain.commands import create_demo
from ivoz.domain.events import RELOAD_ALL, MemoryEventBus, commit_and_announce
from ivoz.services import Services
from ivoz.state import MemoryRelayOwners
from ivoz.state.location import Binding, MemoryLocationStore
from support.tools import free_port


async def test_create_migrates_loads_and_subscribes(tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path, demo_secret="pw")
    services = await Services.create(config)  # a fresh SQLite file: migrated here
    try:
        assert isinstance(services.bus, MemoryEventBus)
        assert isinstance(services.location, MemoryLocationStore)
        assert isinstance(services.relay_owners, MemoryRelayOwners)
        assert services.directory.company_by_domain("acme.ivoz.test") is None

        await create_demo(services.database, config)
        await services.directory.reload()
        acme = services.directory.company_by_domain("acme.ivoz.test")
        assert acme is not None

        # A change announced on the process's bus reaches the directory.
        async with services.database.sessionmaker() as session:
            session.add(m.Company(brand_id=acme.brand_id, name="Beta", domain="beta.ivoz.test"))
            await commit_and_announce(session, services.bus)
        assert services.directory.company_by_domain("beta.ivoz.test") is not None

        await services.location.save(
            Binding(
                aor="alice@acme.ivoz.test",
                contact="sip:alice@127.0.0.1:5999",
                expires_at=2e9,
                company_id=acme.id,
            )
        )
        assert len(await services.location.by_company(acme.id, 1e9)) == 1
    finally:
        await services.close()
    await services.close()  # twice is harmless


async def test_closed_services_hear_no_more_events(tmp_path: Path) -> None:
    services = await Services.create(Config(data_dir=tmp_path))
    bus = services.bus
    generation = services.directory.generation
    await services.close()
    await bus.publish(RELOAD_ALL)
    assert services.directory.generation == generation


async def test_run_shares_one_services_between_roles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ivoz run`` makes one Services, passes it to roles that take it, closes it."""
    got: dict[str, Any] = {}
    started = asyncio.Event()

    async def new_style(config: Config, services: Services | None = None) -> None:
        got["proxy-users"] = services
        started.set()
        await asyncio.Event().wait()  # runs until cancelled

    async def old_style(config: Config) -> None:
        got["appserver"] = config
        await started.wait()  # then returns: the run ends

    async def relay(config: Config, services: Services | None = None) -> None:
        got["relay"] = services
        await asyncio.Event().wait()

    roles = {"proxy-users": new_style, "appserver": old_style, "relay": relay}
    monkeypatch.setattr(cli, "_load_role", roles.get)
    config = Config(data_dir=tmp_path, roles=("proxy-users", "appserver", "relay"))
    assert await cli._run(config, demo=False) == 0
    services = got["proxy-users"]
    assert isinstance(services, Services)
    assert got["relay"] is services and got["appserver"] is config
    assert services._closers == []  # closed when the run ended


async def test_relay_alone_needs_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    got: dict[str, Any] = {}

    async def relay(config: Config, services: Services | None = None) -> None:
        got["relay"] = services

    monkeypatch.setattr(cli, "_load_role", {"relay": relay}.get)
    assert await cli._run(Config(data_dir=tmp_path, roles=("relay",)), demo=False) == 0
    assert got == {"relay": None}
    assert not (tmp_path / "ivoz.sqlite3").exists()


async def test_unreachable_redis_fails_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services_module, "REDIS_START_TIMEOUT", 0.3)
    config = Config(data_dir=tmp_path, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(RuntimeError, match="no answer from Redis"):
        await Services.create(config, migrate=False)
