from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivoz.config import Config
from ivoz.domain.commands import create_demo
from ivoz.domain.db import Database
from support.database import DATABASE_KINDS, make_database


@pytest.fixture(params=DATABASE_KINDS)
async def demo_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database of each kind holding the demo platform (Acme, alice, bob)."""
    async with make_database(request.param, tmp_path) as db:
        await create_demo(db, Config(data_dir=tmp_path, demo_secret="s3cret"))
        yield db
