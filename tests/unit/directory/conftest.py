"""A demo platform database per test, copied from one made once per session and kind.

Making the demo hashes seven passwords (argon2): seconds on a busy machine. Copying a
template file (SQLite) or creating a database from a template (PostgreSQL) takes
milliseconds.
"""

from __future__ import annotations

import asyncio
import atexit
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from ivoz.config import Config
from ivoz.domain.commands import create_demo
from ivoz.domain.db import Database
from support.database import DATABASE_KINDS, database_url, migrated_template, postgres_url

DEMO_SECRET = "s3cret"
_templates: dict[str, str] = {}


async def _demo_template(kind: str) -> str:
    if kind in _templates:
        return _templates[kind]
    migrated = await migrated_template(kind)
    if kind == "sqlite":
        root = Path(tempfile.mkdtemp(prefix="ivoz-directory-"))
        atexit.register(shutil.rmtree, root, True)
        name = str(root / "demo.sqlite3")
        shutil.copyfile(migrated, name)
        url = f"sqlite+aiosqlite:///{name}"
    else:
        name = f"ivoz_directory_{uuid.uuid4().hex[:10]}"
        await _postgres(f'CREATE DATABASE "{name}" TEMPLATE "{migrated}"')
        atexit.register(
            lambda: asyncio.run(_postgres(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        )
        url = str(make_url(postgres_url()).set(database=name))
    db = Database(url)
    try:
        await create_demo(db, Config(data_dir=Path(tempfile.gettempdir()), demo_secret=DEMO_SECRET))
    finally:
        await db.dispose()
    _templates[kind] = name
    return name


async def _postgres(statement: str) -> None:
    import asyncpg

    server = make_url(postgres_url())
    conn = await asyncpg.connect(
        host=server.host,
        port=server.port or 5432,
        user=server.username,
        password=server.password,
        database=server.database,
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(params=DATABASE_KINDS)
async def demo_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated database of each kind holding the demo platform (Acme, alice, bob)."""
    template = await _demo_template(request.param)
    async with database_url(request.param, tmp_path, template=template) as url:
        db = Database(url)
        try:
            yield db
        finally:
            await db.dispose()
