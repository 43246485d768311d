"""Fixtures for the portal tests: a seeded two-brand platform, the app, tokens, a fake clock.

Imported by tests/unit/portal/conftest.py (SQLite) and tests/integration/portal/conftest.py
(PostgreSQL); the ``db_kind`` fixture of each directory picks the database.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import functools
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from ivoz.config import Config
from ivoz.domain import models as m
from ivoz.domain.db import Database
from ivoz.domain.events import ConfigChanged, MemoryEventBus
from ivoz.domain.security import hash_password
from ivoz.portal.app import create_app
from ivoz.portal.tokens import LoginThrottle, Principal
from support.database import postgres_url
from support.tools import in_ci

PASSWORD = "correct horse battery"


@functools.cache
def password_hash() -> str:
    return hash_password(PASSWORD)


class FakeClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Tenant:
    """One brand's subtree, with the ids the tests need."""

    brand_id: int
    company_id: int
    brand_admin_id: int
    client_admin_id: int
    user_id: int
    terminal_id: int
    extension_id: int
    ddi_id: int
    carrier_id: int
    ddi_provider_id: int
    portal_host: str
    ids: dict[str, int] = field(default_factory=dict)


@dataclass
class Seed:
    platform_admin_id: int
    a: Tenant
    b: Tenant
    restricted_admin_id: int
    generic_rules_id: int


async def _tenant(session: Any, name: str, language_id: int) -> Tenant:
    brand = m.Brand(
        name=f"Brand {name}", domain_users=f"users.{name}.test", language_id=language_id
    )
    session.add(brand)
    await session.flush()
    company = m.Company(
        brand_id=brand.id, name=f"Client {name}", type="vpbx", domain=f"pbx.{name}.test"
    )
    session.add(company)
    await session.flush()
    common = {"brand_id": brand.id, "company_id": company.id}
    terminal = m.Terminal(
        **common, name=f"t-{name}", sip_username=f"alice{name}", sip_password="s3cret-pass"
    )
    spare = m.Terminal(
        **common, name=f"spare-{name}", sip_username=f"spare{name}", sip_password="x"
    )
    session.add_all([terminal, spare])
    await session.flush()
    user = m.User(
        **common,
        name=f"Alice {name}",
        email=f"alice@{name}.test",
        password_hash=password_hash(),
        terminal_id=terminal.id,
    )
    session.add(user)
    await session.flush()
    extension = m.Extension(**common, number="1001", route_type="user", user_id=user.id)
    session.add(extension)
    await session.flush()
    user.extension_id = extension.id
    carrier = m.Carrier(brand_id=brand.id, name=f"carrier-{name}")
    provider = m.DdiProvider(brand_id=brand.id, name=f"provider-{name}")
    pattern = m.RoutingPattern(brand_id=brand.id, name="Spain", prefix="+34")
    session.add_all([carrier, provider, pattern])
    await session.flush()
    ddi = m.Ddi(
        **common,
        ddi_e164=f"+3491100000{len(name)}",
        ddi_provider_id=provider.id,
        route_type="user",
        user_id=user.id,
    )
    server = m.CarrierServer(carrier_id=carrier.id, brand_id=brand.id, host=f"sip.{name}.test")
    address = m.DdiProviderAddress(ddi_provider_id=provider.id, brand_id=brand.id, ip="192.0.2.10")
    registration = m.DdiProviderRegistration(
        ddi_provider_id=provider.id, brand_id=brand.id, username="reg", domain="prov.test"
    )
    group = m.RoutingPatternGroup(brand_id=brand.id, name="Europe", patterns=[pattern])
    routing = m.OutgoingRouting(
        brand_id=brand.id, type="pattern", routing_pattern_id=pattern.id, carriers=[carrier]
    )
    rules = m.TransformationRuleSet(brand_id=brand.id, name=f"rules-{name}")
    friend = m.Friend(**common, name=f"friend-{name}", auth_mode="ip", ip="192.0.2.20")
    retail = m.RetailAccount(**common, name=f"retail{name}", sip_password="pw")
    residential = m.ResidentialDevice(**common, name=f"res{name}", sip_password="pw")
    portal = m.WebPortal(
        url=f"https://portal.{name}.test",
        level="brand",
        name=f"Portal {name}",
        colour="#112233",
        brand_id=brand.id,
    )
    brand_admin = m.Administrator(
        username=f"brand{name}",
        password_hash=password_hash(),
        level="brand",
        brand_id=brand.id,
        can_impersonate=True,
    )
    client_admin = m.Administrator(
        username=f"client{name}",
        password_hash=password_hash(),
        level="client",
        brand_id=brand.id,
        company_id=company.id,
        can_impersonate=True,
    )
    other_admin = m.Administrator(
        username=f"other{name}", password_hash=password_hash(), level="brand", brand_id=brand.id
    )
    clerk = m.Administrator(
        username=f"clerk{name}",
        password_hash=password_hash(),
        level="client",
        brand_id=brand.id,
        company_id=company.id,
        restricted=True,
        grants=[m.AdministratorGrant(entity="User", can_read=True)],
    )
    session.add_all(
        [
            other_admin,
            clerk,
            ddi,
            server,
            address,
            registration,
            group,
            routing,
            rules,
            friend,
            retail,
            residential,
            portal,
            brand_admin,
            client_admin,
        ]
    )
    await session.flush()
    user.outgoing_ddi_id = ddi.id
    forward = m.CallForwardSetting(**common, user_id=user.id, kind="busy", target="1001")
    session.add(forward)
    await session.flush()
    ids = {
        "companies": company.id,
        "administrators": other_admin.id,
        "web-portals": portal.id,
        "carriers": carrier.id,
        "carrier-servers": server.id,
        "ddi-providers": provider.id,
        "ddi-provider-addresses": address.id,
        "ddi-provider-registrations": registration.id,
        "routing-patterns": pattern.id,
        "routing-pattern-groups": group.id,
        "outgoing-routings": routing.id,
        "ddis": ddi.id,
        "transformation-rule-sets": rules.id,
        "users": user.id,
        "terminals": spare.id,
        "extensions": extension.id,
        "friends": friend.id,
        "retail-accounts": retail.id,
        "residential-devices": residential.id,
        "client-administrators": client_admin.id,
        "call-forward-settings": forward.id,
        "call-forwards": forward.id,
        "administrator-grants": clerk.grants[0].id,
    }
    return Tenant(
        brand_id=brand.id,
        company_id=company.id,
        brand_admin_id=brand_admin.id,
        client_admin_id=client_admin.id,
        user_id=user.id,
        terminal_id=terminal.id,
        extension_id=extension.id,
        ddi_id=ddi.id,
        carrier_id=carrier.id,
        ddi_provider_id=provider.id,
        portal_host=f"portal.{name}.test",
        ids=ids,
    )


async def seed_platform(database: Any) -> Seed:
    async with database.sessionmaker() as session, session.begin():
        language = (await session.scalars(select(m.Language).limit(1))).one()
        admin = m.Administrator(
            username="root", password_hash=password_hash(), level="platform", can_impersonate=True
        )
        session.add(admin)
        await session.flush()
        a = await _tenant(session, "a", language.id)
        b = await _tenant(session, "b", language.id)
        restricted = m.Administrator(
            username="limited",
            password_hash=password_hash(),
            level="brand",
            brand_id=a.brand_id,
            restricted=True,
            grants=[m.AdministratorGrant(entity="Carrier", can_read=True, can_write=False)],
        )
        generic = m.TransformationRuleSet(brand_id=None, name="generic")
        session.add_all([restricted, generic])
        await session.flush()
        return Seed(admin.id, a, b, restricted.id, generic.id)


@dataclass
class Portal:
    app: Any
    database: Any
    bus: MemoryEventBus
    clock: FakeClock
    seed: Seed
    client: httpx.AsyncClient
    events: list[ConfigChanged]

    def token(self, principal: Principal) -> dict[str, str]:
        pair = self.app.state.portal.tokens.issue(principal)
        return {"Authorization": f"Bearer {pair.access_token}"}

    def as_platform(self) -> dict[str, str]:
        return self.token(
            Principal("platform", "admin", self.seed.platform_admin_id, None, None, None, "s")
        )

    def as_brand(self, t: Tenant, admin_id: int | None = None) -> dict[str, str]:
        return self.token(
            Principal("brand", "admin", admin_id or t.brand_admin_id, t.brand_id, None, None, "s")
        )

    def as_client(self, t: Tenant) -> dict[str, str]:
        return self.token(
            Principal("client", "admin", t.client_admin_id, t.brand_id, t.company_id, None, "s")
        )

    def as_user(self, t: Tenant) -> dict[str, str]:
        return self.token(
            Principal("user", "user", t.user_id, t.brand_id, t.company_id, t.user_id, "s")
        )


@pytest.fixture
def db_kind() -> str:
    return "sqlite"


# SQLite: migrate and seed once per session into a template file, copy it per test.
_TEMPLATE: dict[str, Any] = {}


async def _sqlite_template(directory: Path) -> tuple[Path, Seed]:
    if "path" not in _TEMPLATE:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "portal-template.sqlite3"
        database = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await database.upgrade()
            _TEMPLATE["seed"] = await seed_platform(database)
        finally:
            await database.dispose()
        _TEMPLATE["path"] = path
    return _TEMPLATE["path"], _TEMPLATE["seed"]


@contextlib.asynccontextmanager
async def seeded_database(
    kind: str, tmp_path: Path, factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[Any, Seed]]:
    if kind == "sqlite":
        template, seed = await _sqlite_template(factory.getbasetemp() / "portal-template")
        path = tmp_path / "portal.sqlite3"
        shutil.copyfile(template, path)
        database = Database(f"sqlite+aiosqlite:///{path}")
        try:
            yield database, seed
        finally:
            await database.dispose()
        return
    if kind != "postgresql":
        raise ValueError(kind)
    template, seed = await _postgres_template()
    name = f"ivoz_portal_{uuid.uuid4().hex[:12]}"
    admin = await _pg_admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    finally:
        await admin.close()
    database = Database(str(make_url(postgres_url()).set(database=name)))
    try:
        yield database, seed
    finally:
        await database.dispose()
        admin = await _pg_admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def _pg_admin() -> Any:
    import asyncpg

    url = make_url(postgres_url())
    try:
        return await asyncpg.connect(
            host=url.host,
            port=url.port or 5432,
            user=url.username,
            password=url.password,
            database=url.database,
            timeout=10,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        message = f"no PostgreSQL server at {url.render_as_string()}: {exc}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


async def _postgres_template() -> tuple[str, Seed]:
    """A migrated, seeded database to copy per test (CREATE DATABASE ... TEMPLATE)."""
    if "pg" not in _TEMPLATE:
        name = f"ivoz_portal_template_{uuid.uuid4().hex[:8]}"
        admin = await _pg_admin()
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        atexit.register(_drop_template, name)
        database = Database(str(make_url(postgres_url()).set(database=name)))
        try:
            await database.upgrade()
            seed = await seed_platform(database)
        finally:
            await database.dispose()
        _TEMPLATE["pg"] = (name, seed)
    template: tuple[str, Seed] = _TEMPLATE["pg"]
    return template


def _drop_template(name: str) -> None:
    async def drop() -> None:
        admin = await _pg_admin()
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    with contextlib.suppress(BaseException):  # the server may be gone already
        asyncio.run(drop())


@pytest.fixture
async def portal(
    db_kind: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Portal]:
    async with seeded_database(db_kind, tmp_path, tmp_path_factory) as (database, seed):
        clock = FakeClock()
        bus = MemoryEventBus()
        events: list[ConfigChanged] = []
        bus.subscribe(events.append)
        config = dataclasses.replace(Config(), data_dir=tmp_path, api_secret="test-secret")
        app = create_app(config, database, bus, clock=clock, throttle=LoginThrottle(clock))
        transport = httpx.ASGITransport(app=app, client=("198.51.100.1", 4000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Portal(app, database, bus, clock, seed, client, events)
