from sqlalchemy import select

from ivoz.domain import models as m
from ivoz.domain.db import Database


async def test_upgrade_then_insert_brand_and_company(database: Database) -> None:
    async with database.sessionmaker() as session:
        brand = m.Brand(name="B")
        session.add(brand)
        await session.flush()
        company = m.Company(brand_id=brand.id, name="C", domain="c.test")
        session.add(company)
        await session.flush()
        terminal = m.Terminal(
            company_id=company.id, brand_id=0, name="t", sip_username="t", sip_password="p"
        )
        session.add(terminal)
        await session.commit()
    async with database.sessionmaker() as session:
        t = (await session.execute(select(m.Terminal))).scalar_one()
        assert t.brand_id == brand.id
        assert t.allowed_codecs == ["PCMA", "PCMU"]
