"""scope_query never shows an actor another tenant's rows, for every model and level.

One "world" per database kind: two brands, two clients each, two users per client and
a row of every model in every tenant. For each model and each actor (platform, a
brand, a client, a user, their counterparts in the other brand, a restricted brand
administrator) the scoped query must return exactly the rows the ownership rules
allow, and in particular not one row of another brand or company.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ivoz.domain import models as m
from ivoz.domain.db import Database
from ivoz.domain.tenancy import RULES, Actor, can_read, can_write, scope_query
from support.database import DATABASE_KINDS, database_url, migrated_template

SHARED = {
    m.Language,
    m.Timezone,
    m.Currency,
    m.Country,
    m.Feature,
    m.ApplicationServerSet,
    m.MediaRelaySet,
}
PLATFORM_ONLY = {m.ApplicationServer, m.MediaRelay, m.ProxyUsers, m.ProxyTrunks}
BRAND_PRIVATE = {
    m.Carrier,
    m.CarrierServer,
    m.DdiProvider,
    m.DdiProviderAddress,
    m.DdiProviderRegistration,
    m.RoutingPattern,
    m.RoutingPatternGroup,
    m.OutgoingRouting,
}
MODELS = sorted(RULES, key=lambda model: model.__name__)


@dataclass
class World:
    url: str
    actors: dict[str, Actor] = field(default_factory=dict)
    users: dict[int, tuple[int | None, int | None, int | None]] = field(default_factory=dict)
    admins: dict[int, tuple[int | None, int | None]] = field(default_factory=dict)


async def _add(session: AsyncSession, obj: Any) -> Any:
    session.add(obj)
    await session.flush()
    return obj


async def _populate(url: str) -> World:
    world = World(url)
    db = Database(url)
    async with db.sessionmaker() as s, s.begin():
        aset = await _add(s, m.ApplicationServerSet(name="as"))
        await _add(
            s, m.ApplicationServer(name="as1", ip="127.0.0.10", application_server_set_id=aset.id)
        )
        rset = await _add(s, m.MediaRelaySet(name="rs"))
        await _add(s, m.MediaRelay(media_relay_set_id=rset.id, ng_host="127.0.0.1", ng_port=2222))
        await _add(s, m.ProxyUsers(name="pu", ip="127.0.0.1"))
        await _add(s, m.ProxyTrunks(name="pt", ip="127.0.0.2"))
        await _add(s, m.TransformationRuleSet(name="generic"))
        root = await _add(s, m.Administrator(username="root", password_hash="x", level="platform"))
        world.actors["platform"] = Actor("platform", root.id)
        for bn in ("A", "B"):
            brand = await _add(s, m.Brand(name=bn, domain_users=f"{bn}.users"))
            b = brand.id
            badmin = await _add(
                s, m.Administrator(username="op", password_hash="x", level="brand", brand_id=b)
            )
            await _add(
                s,
                m.AdministratorGrant(administrator_id=badmin.id, entity="Terminal", can_write=True),
            )
            world.actors[f"brand {bn}"] = Actor("brand", badmin.id, brand_id=b)
            world.actors[f"restricted brand {bn}"] = Actor(
                "brand",
                badmin.id,
                brand_id=b,
                restricted=True,
                grants=frozenset({("Terminal", "write"), ("User", "read")}),
            )
            world.admins[badmin.id] = (b, None)
            await _add(s, m.WebPortal(url=f"http://{bn}", level="brand", brand_id=b))
            await _add(s, m.TransformationRuleSet(brand_id=b, name="trs"))
            carrier = await _add(s, m.Carrier(brand_id=b, name="k"))
            await _add(s, m.CarrierServer(carrier_id=carrier.id, brand_id=b, host="h"))
            provider = await _add(s, m.DdiProvider(brand_id=b, name="p"))
            await _add(
                s, m.DdiProviderAddress(ddi_provider_id=provider.id, brand_id=b, ip="192.0.2.1")
            )
            await _add(
                s,
                m.DdiProviderRegistration(
                    ddi_provider_id=provider.id, brand_id=b, username="u", domain="d"
                ),
            )
            pattern = await _add(s, m.RoutingPattern(brand_id=b, name="es", prefix="+34"))
            group = await _add(s, m.RoutingPatternGroup(brand_id=b, name="g", patterns=[pattern]))
            await _add(
                s,
                m.OutgoingRouting(
                    brand_id=b, type="group", routing_pattern_group_id=group.id, carriers=[carrier]
                ),
            )
            for cn in ("1", "2"):
                company = await _add(
                    s,
                    m.Company(
                        brand_id=b, name=cn, domain=f"{bn}{cn}.test", media_relay_set_id=rset.id
                    ),
                )
                c = company.id
                cadmin = await _add(
                    s,
                    m.Administrator(
                        username=f"c{cn}",
                        password_hash="x",
                        level="client",
                        brand_id=b,
                        company_id=c,
                    ),
                )
                await _add(s, m.AdministratorGrant(administrator_id=cadmin.id, entity="User"))
                world.admins[cadmin.id] = (b, c)
                world.actors[f"client {bn}{cn}"] = Actor(
                    "client", cadmin.id, brand_id=b, company_id=c
                )
                await _add(
                    s, m.WebPortal(url=f"http://{bn}{cn}", level="client", brand_id=b, company_id=c)
                )
                await _add(
                    s,
                    m.OutgoingRouting(
                        brand_id=b, company_id=c, type="pattern", routing_pattern_id=pattern.id
                    ),
                )
                friend = await _add(
                    s, m.Friend(company_id=c, brand_id=b, name="f", patterns=["^9"])
                )
                retail = await _add(
                    s, m.RetailAccount(company_id=c, brand_id=b, name=f"r{cn}", sip_password="p")
                )
                await _add(
                    s,
                    m.ResidentialDevice(company_id=c, brand_id=b, name=f"d{cn}", sip_password="p"),
                )
                await _add(
                    s,
                    m.Ddi(
                        brand_id=b,
                        company_id=c,
                        ddi_e164=f"+3491{cn}0",
                        route_type="retail",
                        retail_account_id=retail.id,
                    ),
                )
                await _add(
                    s,
                    m.Extension(
                        company_id=c,
                        brand_id=b,
                        number="999",
                        route_type="friend",
                        friend_id=friend.id,
                    ),
                )
                for un in ("a", "b"):
                    terminal = await _add(
                        s,
                        m.Terminal(
                            company_id=c, brand_id=b, name=un, sip_username=un, sip_password="p"
                        ),
                    )
                    user = await _add(
                        s,
                        m.User(
                            company_id=c,
                            brand_id=b,
                            name=un,
                            email=f"{un}{cn}@x",
                            terminal_id=terminal.id,
                        ),
                    )
                    ext = await _add(
                        s, m.Extension(company_id=c, brand_id=b, number=f"10{un}", user_id=user.id)
                    )
                    ddi = await _add(
                        s,
                        m.Ddi(
                            brand_id=b,
                            company_id=c,
                            ddi_e164=f"+3492{cn}{un}",
                            route_type="user",
                            user_id=user.id,
                        ),
                    )
                    user.extension_id = ext.id
                    user.outgoing_ddi_id = ddi.id
                    s.add(
                        m.CallForwardSetting(user_id=user.id, company_id=c, kind="busy", target="1")
                    )
                    await s.flush()
                    world.users[user.id] = (terminal.id, ext.id, ddi.id)
                    world.actors[f"user {bn}{cn}{un}"] = Actor(
                        "user", user.id, brand_id=b, company_id=c, user_id=user.id
                    )
        # An unassigned DDI and an all-clients routing of the brand: brand-only rows.
        brand_a = world.actors["brand A"].brand_id
        await _add(s, m.Ddi(brand_id=brand_a, ddi_e164="+34999"))
    await db.dispose()
    return world


def _run(coro: Any) -> Any:
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    kind = request.param
    template = _run(migrated_template(kind))
    manager = database_url(kind, tmp_path_factory.mktemp("tenancy"), template=template)
    url = _run(manager.__aenter__())
    try:
        yield _run(_populate(url))
    finally:
        _run(manager.__aexit__(None, None, None))


def expected(model: type[m.Base], row: Any, actor: Actor, world: World) -> bool:
    """The ownership rules, restated independently of ivoz.domain.tenancy."""
    if actor.restricted and not can_read(actor, model.__name__):
        return False
    if actor.level == "platform" or model in SHARED:
        return True
    if model in PLATFORM_ONLY:
        return False
    if model is m.Brand:
        return bool(row.id == actor.brand_id)
    if model is m.TransformationRuleSet:
        return row.brand_id in (None, actor.brand_id)
    if model is m.AdministratorGrant:
        brand_id, company_id = world.admins.get(row.administrator_id, (None, None))
        if actor.level == "brand":
            return brand_id == actor.brand_id
        return actor.level == "client" and company_id == actor.company_id
    if model in BRAND_PRIVATE:
        return actor.level == "brand" and row.brand_id == actor.brand_id
    if model is m.Company:
        if actor.level == "brand":
            return bool(row.brand_id == actor.brand_id)
        return bool(row.id == actor.company_id)
    # Client-owned rows.
    if actor.level == "brand":
        return bool(row.brand_id == actor.brand_id)
    if actor.level == "client":
        return bool(row.company_id == actor.company_id)
    terminal_id, extension_id, ddi_id = world.users[actor.user_id or 0]
    if model is m.User:
        return bool(row.id == actor.user_id)
    if model is m.Terminal:
        return bool(row.id == terminal_id)
    if model is m.Extension:
        return row.user_id == actor.user_id or row.id == extension_id
    if model is m.Ddi:
        return row.user_id == actor.user_id or row.id == ddi_id
    if model is m.CallForwardSetting:
        return bool(row.user_id == actor.user_id)
    return False


ACTORS = [
    "platform",
    "brand A",
    "brand B",
    "restricted brand A",
    "client A1",
    "client B2",
    "user A1a",
    "user B2b",
]


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
async def test_scope_query_returns_exactly_the_actors_subtree(
    world: World, model: type[m.Base]
) -> None:
    db = Database(world.url)
    try:
        async with db.sessionmaker() as session:
            rows = (await session.scalars(select(model))).all()
            assert rows, f"the world has no {model.__name__}"
            for name in ACTORS:
                actor = world.actors[name]
                seen = {
                    row.id
                    for row in (
                        await session.scalars(scope_query(select(model), model, actor))
                    ).all()
                }
                want = {row.id for row in rows if expected(model, row, actor, world)}
                assert seen == want, (name, model.__name__)
                # Whatever the rules say, never another brand's or company's row:
                for row in rows:
                    if row.id not in seen or actor.level == "platform":
                        continue
                    row_brand = row.id if model is m.Brand else getattr(row, "brand_id", None)
                    assert row_brand in (None, actor.brand_id), (name, model.__name__, row.id)
                    row_company = row.id if model is m.Company else getattr(row, "company_id", None)
                    if actor.level in ("client", "user") and row_company is not None:
                        assert row_company == actor.company_id, (name, model.__name__, row.id)
    finally:
        await db.dispose()


def test_every_mapped_model_has_a_tenancy_rule() -> None:
    mapped = {mapper.class_ for mapper in m.Base.registry.mappers}
    assert mapped == set(RULES)


def test_restricted_grants() -> None:
    actor = Actor(
        "brand",
        1,
        brand_id=1,
        restricted=True,
        grants=frozenset({("Terminal", "write"), ("User", "read")}),
    )
    assert can_read(actor, "Terminal") and can_write(actor, "Terminal")
    assert can_read(actor, "User") and not can_write(actor, "User")
    assert not can_read(actor, "Carrier") and not can_write(actor, "Carrier")
    free = Actor("brand", 1, brand_id=1)
    assert can_read(free, "Carrier") and can_write(free, "Carrier")


def test_actor_needs_its_owner_columns() -> None:
    with pytest.raises(ValueError, match="brand_id"):
        Actor("brand", 1)
    with pytest.raises(ValueError, match="company_id"):
        Actor("client", 1, brand_id=1)


async def test_actor_from_administrator_and_user() -> None:
    admin = m.Administrator(
        id=7,
        username="x",
        password_hash="x",
        level="client",
        brand_id=1,
        company_id=2,
        restricted=True,
    )
    admin.grants = [m.AdministratorGrant(entity="Terminal", can_read=True, can_write=False)]
    actor = Actor.for_administrator(admin)
    assert (actor.level, actor.brand_id, actor.company_id, actor.restricted) == (
        "client",
        1,
        2,
        True,
    )
    assert actor.grants == frozenset({("Terminal", "read")})
    user = m.User(id=9, company_id=2, brand_id=1, name="u")
    assert Actor.for_user(user) == Actor("user", 9, brand_id=1, company_id=2, user_id=9)
