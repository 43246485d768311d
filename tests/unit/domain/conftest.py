from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivoz.domain.db import Database
from support.database import DATABASE_KINDS, make_database


@pytest.fixture(params=DATABASE_KINDS)
async def database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    async with make_database(request.param, tmp_path) as db:
        yield db


@pytest.fixture
async def sqlite_database(tmp_path: Path) -> AsyncIterator[Database]:
    async with make_database("sqlite", tmp_path) as db:
        yield db
