"""One ``Database`` per process: the async engine, sessions and migrations.

SQLite (aiosqlite) is the default, PostgreSQL (asyncpg) is production. SQLite enforces
foreign keys only when asked on every connection, so ``PRAGMA foreign_keys=ON`` is set
by a connect hook; without it the ON DELETE rules of the models would be ignored.
Migrations are Alembic's, run programmatically on the engine's own connection.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """Alembic configuration for the packaged migrations (no alembic.ini needed)."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest migration revision shipped with this build."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # Write-ahead log: the roles' readers do not block the portal's writer (or the
    # reverse); a file database only (":memory:" has no WAL).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


class Database:
    """The configuration database of one process."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            database = parsed.database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            # Writers wait for a lock instead of failing at once ("database is locked").
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )

    async def upgrade(self, revision: str = "head") -> None:
        """Apply migrations up to ``revision`` (Alembic ``upgrade``)."""

        def run(connection: Connection) -> None:
            command.upgrade(alembic_config(connection), revision)

        await self.run_migration(run)

    async def run_migration(self, fn: Callable[[Connection], None]) -> None:
        """Run ``fn`` (Alembic work) on one connection, in one transaction.

        On SQLite, foreign keys are switched off meanwhile: a batch migration recreates
        a table (copy, DROP, rename), and with enforcement on, dropping the old
        ``brands`` would cascade-delete every company. Afterwards ``foreign_key_check``
        must find nothing, or the migration is rolled back.
        """
        if not self.is_sqlite:
            async with self.engine.begin() as conn:
                await conn.run_sync(fn)
            return
        async with self.engine.connect() as conn:
            # Outside a transaction (the PRAGMA is a no-op inside one).
            await conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            await conn.commit()
            try:
                async with conn.begin():
                    await conn.run_sync(fn)
                    broken = (await conn.exec_driver_sql("PRAGMA foreign_key_check")).all()
                    if broken:
                        raise RuntimeError(f"migration left dangling references: {broken[:5]}")
            finally:
                await conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                await conn.commit()

    async def current_revision(self) -> str | None:
        """The revision the database is at (None before the first migration)."""
        from alembic.migration import MigrationContext

        def run(connection: Connection) -> str | None:
            return MigrationContext.configure(connection).get_current_revision()

        async with self.engine.connect() as conn:
            return await conn.run_sync(run)

    async def dispose(self) -> None:
        await self.engine.dispose()
