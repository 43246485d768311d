"""The migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from ivoz.domain import models as m
from ivoz.domain import reference
from ivoz.domain.db import alembic_config, head_revision
from support.database import DATABASE_KINDS, make_database


def _diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, m.Base.metadata))


@pytest.mark.parametrize("kind", DATABASE_KINDS)
async def test_migrated_schema_matches_the_models(kind: str, tmp_path: Path) -> None:
    async with make_database(kind, tmp_path, upgrade=False) as db:
        await db.upgrade()
        assert await db.current_revision() == head_revision()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []


@pytest.mark.parametrize("kind", DATABASE_KINDS)
async def test_downgrade_to_base_and_up_again(kind: str, tmp_path: Path) -> None:
    async with make_database(kind, tmp_path, upgrade=False) as db:
        await db.upgrade()

        def down(connection: Connection) -> list[str]:
            command.downgrade(alembic_config(connection), "base")
            return inspect(connection).get_table_names()

        async with db.engine.begin() as conn:
            assert await conn.run_sync(down) == ["alembic_version"]
        await db.upgrade()
        async with db.engine.connect() as conn:
            assert await conn.run_sync(_diff) == []


async def test_reference_data_is_seeded(database: Any) -> None:
    async with database.sessionmaker() as session:
        codes = set((await session.scalars(select(m.Country.code))).all())
        assert {c for c, _, _ in reference.COUNTRIES} <= codes
        spain = await session.scalar(select(m.Country).where(m.Country.code == "ES"))
        assert spain is not None and spain.calling_code == "34"
        assert {"EUR", "USD", "GBP"} <= set((await session.scalars(select(m.Currency.iden))).all())
        assert {"en", "es"} <= set((await session.scalars(select(m.Language.iden))).all())
        assert "Europe/Madrid" in set((await session.scalars(select(m.Timezone.tz))).all())
        assert "queues" in set((await session.scalars(select(m.Feature.iden))).all())


async def test_upgrade_is_idempotent(sqlite_database: Any) -> None:
    await sqlite_database.upgrade()
    assert await sqlite_database.current_revision() == head_revision()


@pytest.mark.parametrize("kind", DATABASE_KINDS)
async def test_upgrade_keeps_existing_rows(kind: str, tmp_path: Path) -> None:
    async with make_database(kind, tmp_path, upgrade=False) as db:
        await db.upgrade("0002")
        async with db.engine.begin() as conn:
            await conn.exec_driver_sql(
                "INSERT INTO brands (name, max_calls, recordings_limit_mb, recordings_limit_email) VALUES ('Old', 0, 0, '')"
            )
        await db.upgrade()
        async with db.sessionmaker() as session:
            brand = await session.scalar(select(m.Brand))
            assert brand is not None and brand.name == "Old" and brand.proxy_trunks == []


async def test_sqlite_batch_migration_does_not_cascade(sqlite_database: Any) -> None:
    # A future migration that recreates `brands` (SQLite batch mode: copy, DROP, rename)
    # must not cascade the DROP to the companies.
    async with sqlite_database.sessionmaker() as session, session.begin():
        brand = m.Brand(name="B")
        session.add(brand)
        await session.flush()
        session.add(m.Company(brand_id=brand.id, name="C"))

    def recreate_brands(connection: Connection) -> None:
        from alembic.operations import Operations

        ops = Operations(MigrationContext.configure(connection))
        with ops.batch_alter_table("brands", recreate="always") as batch:
            batch.alter_column("recordings_limit_email", existing_type=sa.String(190))

    await sqlite_database.run_migration(recreate_brands)
    async with sqlite_database.sessionmaker() as session:
        assert [c.name for c in (await session.scalars(select(m.Company))).all()] == ["C"]
        # Enforcement is back on afterwards.
        session.add(m.Company(brand_id=999, name="orphan"))
        with pytest.raises(IntegrityError):
            await session.flush()


def _check_names(connection: Connection) -> dict[str, set[str]]:
    inspector = inspect(connection)
    return {
        table: {c["name"] for c in inspector.get_check_constraints(table) if c.get("name")}
        for table in inspector.get_table_names()
        if table != "alembic_version"
    }


@pytest.mark.parametrize("kind", DATABASE_KINDS)
async def test_check_constraints_and_partial_index_exist(kind: str, tmp_path: Path) -> None:
    # compare_metadata does not compare CHECK constraints: compare their names here.
    want: dict[str, set[str]] = {}
    for table in m.Base.metadata.sorted_tables:
        want[table.name] = {
            str(c.name) for c in table.constraints if isinstance(c, sa.CheckConstraint)
        }
    async with make_database(kind, tmp_path) as db, db.engine.connect() as conn:
        assert await conn.run_sync(_check_names) == want

        def partial(connection: Connection) -> list[Any]:
            return [
                i
                for i in inspect(connection).get_indexes("administrators")
                if i["name"] == "uq_administrators_platform_username"
            ]

        (index,) = await conn.run_sync(partial)
        assert index["unique"]
