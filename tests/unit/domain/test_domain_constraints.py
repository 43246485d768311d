"""The database itself refuses duplicates and dangling rows (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ivoz.domain import models as m
from ivoz.domain.db import Database


async def _add(session: AsyncSession, obj: m.Base) -> Any:
    session.add(obj)
    await session.flush()
    return obj


async def _tenants(session: AsyncSession) -> tuple[m.Brand, m.Company, m.Company]:
    brand = await _add(session, m.Brand(name="A"))
    c1 = await _add(session, m.Company(brand_id=brand.id, name="C1", domain="c1.test"))
    c2 = await _add(session, m.Company(brand_id=brand.id, name="C2", domain="c2.test"))
    return brand, c1, c2


def _terminal(company: m.Company, username: str, name: str | None = None) -> m.Terminal:
    return m.Terminal(
        company_id=company.id,
        brand_id=company.brand_id,
        name=name or username,
        sip_username=username,
        sip_password="secret",
    )


async def _expect_integrity_error(session: AsyncSession, *objs: m.Base) -> None:
    with pytest.raises(IntegrityError):
        for obj in objs:
            session.add(obj)
            await session.flush()
    await session.rollback()


async def test_sip_username_unique_per_company_not_across(database: Database) -> None:
    async with database.sessionmaker() as session:
        _, c1, c2 = await _tenants(session)
        await _add(session, _terminal(c1, "alice"))
        await _add(session, _terminal(c2, "alice"))  # another domain: allowed
        await _expect_integrity_error(session, _terminal(c1, "alice", name="other"))


async def test_ddi_unique_per_brand(database: Database) -> None:
    async with database.sessionmaker() as session:
        brand, c1, _ = await _tenants(session)
        other = await _add(session, m.Brand(name="B"))
        await _add(session, m.Ddi(brand_id=brand.id, company_id=c1.id, ddi_e164="+34911000001"))
        await _add(session, m.Ddi(brand_id=other.id, ddi_e164="+34911000001"))
        await _expect_integrity_error(session, m.Ddi(brand_id=brand.id, ddi_e164="+34911000001"))


async def test_extension_unique_per_company(database: Database) -> None:
    async with database.sessionmaker() as session:
        brand, c1, c2 = await _tenants(session)
        await _add(session, m.Extension(company_id=c1.id, brand_id=brand.id, number="100"))
        await _add(session, m.Extension(company_id=c2.id, brand_id=brand.id, number="100"))
        await _expect_integrity_error(
            session, m.Extension(company_id=c1.id, brand_id=brand.id, number="100")
        )


async def test_user_email_unique_per_brand(database: Database) -> None:
    async with database.sessionmaker() as session:
        brand, c1, c2 = await _tenants(session)
        await _add(session, m.User(company_id=c1.id, brand_id=brand.id, name="a", email="a@x"))
        await _expect_integrity_error(
            session, m.User(company_id=c2.id, brand_id=brand.id, name="b", email="a@x")
        )


async def test_admin_username_unique_per_brand_and_on_platform(database: Database) -> None:
    async with database.sessionmaker() as session:
        brand, c1, _ = await _tenants(session)
        other = await _add(session, m.Brand(name="B"))

        def admin(username: str, level: str, brand_id: int | None, company_id: int | None = None):
            return m.Administrator(
                username=username,
                password_hash="x",
                level=level,
                brand_id=brand_id,
                company_id=company_id,
            )

        brand_id, other_id, c1_id = brand.id, other.id, c1.id  # rollbacks expire objects
        await _add(session, admin("root", "platform", None))
        await _add(session, admin("root", "brand", brand_id))  # brand namespace: allowed
        await _add(session, admin("root", "brand", other_id))
        await session.commit()
        await _expect_integrity_error(session, admin("root", "platform", None))
        await _expect_integrity_error(session, admin("root", "client", brand_id, c1_id))


async def test_company_domain_unique_on_platform(database: Database) -> None:
    async with database.sessionmaker() as session:
        brand, _, _ = await _tenants(session)
        other = await _add(session, m.Brand(name="B"))
        brand_id, other_id = brand.id, other.id
        await session.commit()
        await _expect_integrity_error(
            session, m.Company(brand_id=other_id, name="X", domain="c1.test")
        )
        # Non-vPBX clients have no domain: NULLs do not collide.
        await _add(session, m.Company(brand_id=brand_id, name="R1", type="retail"))
        await _add(session, m.Company(brand_id=brand_id, name="R2", type="retail"))


@pytest.mark.parametrize(
    "bad",
    [
        lambda b, c: m.Company(brand_id=b.id, name="Z", type="mainframe"),
        lambda b, c: m.Administrator(username="x", password_hash="x", level="brand"),
        lambda b, c: m.Administrator(
            username="x", password_hash="x", level="platform", brand_id=b.id
        ),
        lambda b, c: m.Extension(company_id=c.id, brand_id=b.id, number="1", route_type="moon"),
        lambda b, c: m.OutgoingRouting(brand_id=b.id, type="pattern"),
        lambda b, c: m.Friend(company_id=c.id, brand_id=b.id, name="f", auth_mode="ip"),
        lambda b, c: m.CarrierServer(carrier_id=None, brand_id=b.id, host="h", transport="sctp"),
        lambda b, c: m.Brand(name="neg", max_calls=-1),
    ],
    ids=[
        "company-type",
        "brand-admin-without-brand",
        "platform-admin-with-brand",
        "extension-route",
        "routing-without-pattern",
        "ip-friend-without-ip",
        "carrier-server-transport",
        "negative-max-calls",
    ],
)
async def test_check_constraints(database: Database, bad: Any) -> None:
    async with database.sessionmaker() as session:
        brand, c1, _ = await _tenants(session)
        await session.commit()
        await _expect_integrity_error(session, bad(brand, c1))


async def test_deleting_brand_cascades_to_its_subtree(database: Database) -> None:
    async with database.sessionmaker() as session:
        brand, c1, _ = await _tenants(session)
        terminal = await _add(session, _terminal(c1, "alice"))
        user = await _add(
            session,
            m.User(company_id=c1.id, brand_id=brand.id, name="a", terminal_id=terminal.id),
        )
        ext = await _add(
            session, m.Extension(company_id=c1.id, brand_id=brand.id, number="1", user_id=user.id)
        )
        user.extension_id = ext.id
        carrier = await _add(session, m.Carrier(brand_id=brand.id, name="K"))
        await _add(session, m.CarrierServer(carrier_id=carrier.id, brand_id=brand.id, host="h"))
        await session.commit()
        await session.execute(delete(m.Brand).where(m.Brand.id == brand.id))
        await session.commit()
        for model in (m.Company, m.Terminal, m.User, m.Extension, m.Carrier, m.CarrierServer):
            assert (await session.scalars(select(model))).all() == [], model


async def test_deleting_terminal_in_use_unsets_the_users_terminal(database: Database) -> None:
    async with database.sessionmaker() as session:
        brand, c1, _ = await _tenants(session)
        terminal = await _add(session, _terminal(c1, "alice"))
        user = await _add(
            session,
            m.User(company_id=c1.id, brand_id=brand.id, name="a", terminal_id=terminal.id),
        )
        await session.commit()
        await session.execute(delete(m.Terminal).where(m.Terminal.id == terminal.id))
        await session.commit()
        assert await session.scalar(select(m.User.terminal_id).where(m.User.id == user.id)) is None


async def test_media_relay_set_in_use_cannot_be_deleted(database: Database) -> None:
    async with database.sessionmaker() as session:
        relays = await _add(session, m.MediaRelaySet(name="s"))
        brand = await _add(session, m.Brand(name="A"))
        await _add(session, m.Company(brand_id=brand.id, name="C", media_relay_set_id=relays.id))
        await session.commit()
        with pytest.raises(IntegrityError):
            await session.execute(delete(m.MediaRelaySet).where(m.MediaRelaySet.id == relays.id))
            await session.commit()
        await session.rollback()


async def test_foreign_key_to_missing_row_is_refused(database: Database) -> None:
    async with database.sessionmaker() as session:
        await _expect_integrity_error(session, m.Company(brand_id=12345, name="orphan"))


async def test_brand_id_follows_the_company(database: Database) -> None:
    async with database.sessionmaker() as session:
        brand, c1, _ = await _tenants(session)
        other = await _add(session, m.Brand(name="B"))
        # A wrong (or forged) brand_id is corrected from the company on flush.
        terminal = await _add(
            session,
            m.Terminal(
                company_id=c1.id, brand_id=other.id, name="t", sip_username="t", sip_password="p"
            ),
        )
        assert terminal.brand_id == brand.id
        carrier = await _add(session, m.Carrier(brand_id=brand.id, name="K"))
        server = await _add(session, m.CarrierServer(carrier_id=carrier.id, brand_id=0, host="h"))
        assert server.brand_id == brand.id
        await session.commit()


@pytest.mark.parametrize(
    "make",
    [
        lambda b, c: m.Ddi(brand_id=b, company_id=c, ddi_e164="+34910000000"),
        lambda b, c: m.Terminal(
            company_id=c, brand_id=b, name="race", sip_username="race", sip_password="p"
        ),
        lambda b, c: m.Extension(company_id=c, brand_id=b, number="2000"),
    ],
    ids=["ddi", "sip-username", "extension"],
)
async def test_racing_creations_cannot_both_succeed(database: Database, make: Any) -> None:
    async with database.sessionmaker() as session:
        brand, c1, _ = await _tenants(session)
        ids = brand.id, c1.id
        await session.commit()

    async def create() -> bool:
        # Each contender on its own connection, as two API requests would be.
        async with database.sessionmaker() as session:
            session.add(make(*ids))
            try:
                await session.commit()
            except IntegrityError:
                return False
            return True

    outcomes = await asyncio.gather(*(create() for _ in range(4)))
    assert sorted(outcomes) == [False, False, False, True]
