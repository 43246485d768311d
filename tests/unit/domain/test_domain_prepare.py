"""``prepare`` (run by ``ivoz run``): migrate always, create the demo only on first start."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from ivoz.config import Config
from ivoz.domain import models as m
from ivoz.domain.commands import create_demo, prepare
from ivoz.domain.db import Database


async def _brands(config: Config) -> int:
    db = Database(config.effective_database_url)
    try:
        async with db.sessionmaker() as session:
            return int(await session.scalar(select(func.count()).select_from(m.Brand)) or 0)
    finally:
        await db.dispose()


async def test_prepare_without_demo_only_migrates(tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path)
    await prepare(config, demo=False)
    assert await _brands(config) == 0


async def test_prepare_creates_the_demo_on_first_start_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = Config(data_dir=tmp_path, demo_secret="s3cret", api_port=8123)
    await prepare(config, demo=True)
    out = capsys.readouterr().out
    assert "register a phone" in out and "acme.ivoz.test" in out and "8123" in out
    await prepare(config, demo=True)
    assert capsys.readouterr().out == ""  # nothing to say: the platform exists
    assert await _brands(config) == 1


async def test_demo_completes_a_partial_platform(database: Database) -> None:
    config = Config(demo_secret="x")
    first = await create_demo(database, config)
    async with database.sessionmaker() as session, session.begin():
        bob = await session.scalar(select(m.Terminal).where(m.Terminal.sip_username == "bob"))
        assert bob is not None
        await session.delete(bob)
    second = await create_demo(database, config)
    assert second.created == ["terminal bob"]
    assert list(second.passwords) == ["SIP bob@acme.ivoz.test"]
    assert len(first.created) > len(second.created)
    async with database.sessionmaker() as session:
        bob_user = await session.scalar(select(m.User).where(m.User.name == "Bob"))
        new_bob = await session.scalar(select(m.Terminal).where(m.Terminal.sip_username == "bob"))
        assert bob_user is not None and new_bob is not None
        # Deleting the terminal unset the user's (SET NULL); the demo links the new one.
        assert bob_user.terminal_id == new_bob.id
