"""explain() names the same constraint and fields on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError

from ivoz.domain import models as m
from ivoz.domain.db import Database
from ivoz.domain.errors import Violation, explain


async def _violation(database: Database, *objs: m.Base) -> Violation:
    async with database.sessionmaker() as session:
        with pytest.raises(IntegrityError) as info:
            for obj in objs:
                session.add(obj)
                await session.flush()
        await session.rollback()
    return explain(info.value)


async def test_unique_violation_names_the_columns(database: Database) -> None:
    async with database.sessionmaker() as session, session.begin():
        brand = m.Brand(name="A")
        session.add(brand)
        await session.flush()
        company = m.Company(brand_id=brand.id, name="C")
        session.add(company)
        await session.flush()
        session.add(
            m.Terminal(
                company_id=company.id,
                brand_id=brand.id,
                name="t",
                sip_username="u",
                sip_password="p",
            )
        )
        ids = brand.id, company.id
    duplicate = m.Terminal(
        company_id=ids[1], brand_id=ids[0], name="t2", sip_username="u", sip_password="p"
    )
    assert await _violation(database, duplicate) == Violation(
        "unique",
        "terminals",
        ("company_id", "sip_username"),
        "uq_terminals_company_id_sip_username",
    )
    assert await _violation(database, m.Brand(name="A")) == Violation(
        "unique", "brands", ("name",), "uq_brands_name"
    )


async def test_check_and_foreign_key_violations(database: Database) -> None:
    check = await _violation(database, m.Brand(name="B", max_calls=-1))
    assert (check.kind, check.table, check.columns) == ("check", "brands", ("max_calls",))
    assert check.constraint == "ck_brands_max_calls"
    foreign = await _violation(database, m.Company(brand_id=999, name="orphan"))
    assert foreign.kind == "foreign_key"


async def test_platform_admin_username_partial_index(database: Database) -> None:
    def admin() -> m.Administrator:
        return m.Administrator(username="root", password_hash="x", level="platform")

    violation = await _violation(database, admin(), admin())
    assert violation.kind == "unique"
    assert violation.columns == ("username",)
