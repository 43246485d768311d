"""The CLI verbs of the configuration database: ``db upgrade``, ``admin create``, ``demo``.

``ivoz.cli`` calls these; ``prepare`` runs before ``ivoz run`` serves the portal (and
with ``--demo``): it migrates the database and, on first start, sets up the demo
platform. The demo is idempotent: every object is looked up by its natural key and
created only when missing, so running it twice changes nothing (and never prints a
password it did not just set).
"""

from __future__ import annotations

import getpass
import logging
import secrets
import sys
from dataclasses import dataclass, field
from typing import Any, TextIO, TypeVar

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from ivoz.config import Config
from ivoz.domain import models as m
from ivoz.domain.db import Database
from ivoz.domain.security import hash_password

T = TypeVar("T", bound=m.Base)

DEMO_BRAND = "Demo"
DEMO_COMPANY = "Acme"
DEMO_DOMAIN = "acme.ivoz.test"
DEMO_USERS = (("alice", "Alice", "1001"), ("bob", "Bob", "1002"))

# Alembic announces each of its plugins at INFO; the migrations it runs stay visible.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


async def db_upgrade(config: Config) -> None:
    """``ivoz db upgrade``: apply every pending migration."""
    db = Database(config.effective_database_url)
    try:
        await db.upgrade()
        print(f"database at revision {await db.current_revision()}: {_safe_url(db.url)}")
    finally:
        await db.dispose()


async def admin_create(config: Config, username: str, password: str | None, email: str) -> None:
    """``ivoz admin create``: a platform administrator (prompts for the password)."""
    if password is None:
        password = getpass.getpass(f"password for {username}: ")
        if password != getpass.getpass("again: "):
            raise SystemExit("ivoz: passwords differ")
    if not password:
        raise SystemExit("ivoz: empty password")
    db = Database(config.effective_database_url)
    try:
        await db.upgrade()
        async with db.sessionmaker() as session, session.begin():
            existing = await session.scalar(
                select(m.Administrator).where(
                    m.Administrator.username == username, m.Administrator.brand_id.is_(None)
                )
            )
            if existing is not None:
                raise SystemExit(f"ivoz: platform administrator {username!r} already exists")
            session.add(
                m.Administrator(
                    username=username,
                    password_hash=hash_password(password),
                    email=email,
                    level="platform",
                    can_impersonate=True,
                )
            )
        print(f"platform administrator {username!r} created")
    finally:
        await db.dispose()


async def demo(config: Config) -> None:
    """``ivoz demo``: create (or complete) the demo platform and say how to use it."""
    db = Database(config.effective_database_url)
    try:
        await db.upgrade()
        report = await create_demo(db, config)
        report.print(config)
    finally:
        await db.dispose()


async def prepare(config: Config, *, demo: bool) -> None:
    """Before ``ivoz run``: migrate, and on first start with ``demo`` create the demo."""
    db = Database(config.effective_database_url)
    try:
        await db.upgrade()
        if not demo:
            return
        async with db.sessionmaker() as session:
            brands = await session.scalar(select(func.count()).select_from(m.Brand))
        if brands:
            return
        report = await create_demo(db, config)
        report.print(config)
    finally:
        await db.dispose()


# --------------------------------------------------------------------------- the demo


@dataclass
class DemoReport:
    """What ``create_demo`` made; passwords only of accounts it created just now."""

    created: list[str] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=dict)  # "admin demo" -> password

    def print(self, config: Config, out: TextIO | None = None) -> None:
        out = out or sys.stdout
        base = f"http://{config.api_host}:{config.api_port}"
        if not self.created:
            print("demo platform already present; nothing created.", file=out)
        else:
            print(f"demo platform: created {', '.join(self.created)}", file=out)
        if self.passwords:
            shown = "(IVOZ_DEMO_SECRET)" if config.demo_secret else "(random, shown once)"
            print(f"credentials {shown}:", file=out)
            for who, password in self.passwords.items():
                print(f"  {who}: {password}", file=out)
        print(
            f"log in: platform on {base} as admin; brand Demo on {_portal_url(config, 'localhost')}"
            f" as demo; client Acme on {_portal_url(config, 'acme.localhost')} as acme;"
            f" API docs on {base}/api/platform/docs",
            file=out,
        )
        print(
            f"register a phone: user alice (or bob), domain {DEMO_DOMAIN}, password as above,"
            f" proxy {config.sip_host}:{config.sip_udp_port} (UDP/TCP),"
            f" e.g. baresip account <sip:alice@{DEMO_DOMAIN}>;"
            f'outbound="sip:{config.sip_host}:{config.sip_udp_port}";auth_pass=...',
            file=out,
        )


def _portal_url(config: Config, host: str) -> str:
    return f"http://{host}:{config.api_port}"


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class _Builder:
    """Get-or-create by natural key, recording what was created."""

    def __init__(self, session: AsyncSession, report: DemoReport, secret: str | None) -> None:
        self.session = session
        self.report = report
        self.secret = secret

    def password(self, who: str) -> str:
        password = self.secret or secrets.token_urlsafe(12)
        self.report.passwords[who] = password
        return password

    async def get_or_create(
        self, model: type[T], label: str, key: dict[str, Any], **values: Any
    ) -> tuple[T, bool]:
        conditions = [
            getattr(model, name).is_(None) if value is None else getattr(model, name) == value
            for name, value in key.items()
        ]
        found = await self.session.scalar(select(model).where(*conditions))
        if found is not None:
            return found, False
        obj = model(**key, **values)
        self.session.add(obj)
        await self.session.flush()
        self.report.created.append(label)
        return obj, True

    async def reference(self, model: type[T], column: str, value: str) -> T | None:
        result: T | None = await self.session.scalar(
            select(model).where(getattr(model, column) == value)
        )
        return result


async def create_demo(db: Database, config: Config) -> DemoReport:
    """Create whatever of the demo platform is missing, in one transaction."""
    report = DemoReport()
    async with db.sessionmaker() as session, session.begin():
        b = _Builder(session, report, config.demo_secret)
        english = await b.reference(m.Language, "iden", "en")
        madrid = await b.reference(m.Timezone, "tz", "Europe/Madrid")
        euro = await b.reference(m.Currency, "iden", "EUR")
        spain = await b.reference(m.Country, "code", "ES")
        features = list((await session.scalars(select(m.Feature))).all())
        locale = {
            "language_id": english.id if english else None,
            "timezone_id": madrid.id if madrid else None,
            "currency_id": euro.id if euro else None,
            "country_id": spain.id if spain else None,
        }

        # Infrastructure: where calls go and where media is anchored.
        app_set, _ = await b.get_or_create(
            m.ApplicationServerSet,
            "application server set",
            {"name": "default"},
            description="demo application servers",
        )
        relay_set, _ = await b.get_or_create(
            m.MediaRelaySet, "media relay set", {"name": "default"}, description="demo relays"
        )
        await b.get_or_create(
            m.MediaRelay,
            "media relay",
            {"ng_host": config.ng_host, "ng_port": config.ng_port},
            media_relay_set_id=relay_set.id,
            name="local",
            weight=1,
        )
        # The embedded application server (``ivoz run``), where the proxy sends calls.
        await b.get_or_create(
            m.ApplicationServer,
            "application server",
            {"ip": config.appserver_host},
            name="local",
            port=config.appserver_port,
            application_server_set_id=app_set.id,
        )
        await b.get_or_create(
            m.ProxyUsers,
            "users proxy",
            {"name": "users"},
            ip=config.sip_host,
            advertised_ip=config.sip_advertised_host,
        )

        brand, _ = await b.get_or_create(
            m.Brand,
            "brand Demo",
            {"name": DEMO_BRAND},
            domain_users="users.ivoz.test",
            features=list(features),
            **locale,
        )
        company, _ = await b.get_or_create(
            m.Company,
            "client Acme",
            {"brand_id": brand.id, "name": DEMO_COMPANY},
            type="vpbx",
            domain=DEMO_DOMAIN,
            media_relay_set_id=relay_set.id,
            application_server_set_id=app_set.id,
            features=list(features),
            **locale,
        )

        # One portal per level; the Host of a request picks the brand and the theme.
        portals = (
            ("platform", "127.0.0.1", None, None, "Ivoz"),
            ("brand", "localhost", brand.id, None, "Demo"),
            ("client", "acme.localhost", brand.id, company.id, "Acme"),
            ("user", "users.localhost", brand.id, None, "Demo users"),
        )
        for level, host, brand_id, company_id, name in portals:
            await b.get_or_create(
                m.WebPortal,
                f"{level} portal",
                {"url": _portal_url(config, host)},
                level=level,
                brand_id=brand_id,
                company_id=company_id,
                name=name,
            )

        admins = (
            ("admin", "platform", None, None),
            ("demo", "brand", brand.id, None),
            ("acme", "client", brand.id, company.id),
        )
        for username, level, brand_id, company_id in admins:
            found = await session.scalar(
                select(m.Administrator).where(
                    m.Administrator.username == username,
                    m.Administrator.brand_id.is_(None)
                    if brand_id is None
                    else m.Administrator.brand_id == brand_id,
                )
            )
            if found is None:
                session.add(
                    m.Administrator(
                        username=username,
                        password_hash=hash_password(b.password(f"administrator {username}")),
                        email=f"{username}@ivoz.test",
                        name=username.capitalize(),
                        level=level,
                        brand_id=brand_id,
                        company_id=company_id,
                        can_impersonate=True,
                    )
                )
                await session.flush()
                report.created.append(f"{level} administrator {username}")

        for sip_username, name, number in DEMO_USERS:
            terminal, created = await b.get_or_create(
                m.Terminal,
                f"terminal {sip_username}",
                {"company_id": company.id, "sip_username": sip_username},
                brand_id=brand.id,
                name=f"{sip_username}-phone",
                sip_password="",
                allowed_codecs=["PCMA", "PCMU", "opus"],
            )
            if created:
                terminal.sip_password = b.password(f"SIP {sip_username}@{DEMO_DOMAIN}")
            user, created = await b.get_or_create(
                m.User,
                f"user {name}",
                {"brand_id": brand.id, "email": f"{sip_username}@{DEMO_DOMAIN}"},
                company_id=company.id,
                name=name,
                terminal_id=terminal.id,
                language_id=locale["language_id"],
                timezone_id=locale["timezone_id"],
            )
            if created:
                user.password_hash = hash_password(
                    b.password(f"user portal {sip_username}@{DEMO_DOMAIN}")
                )
            extension, _ = await b.get_or_create(
                m.Extension,
                f"extension {number}",
                {"company_id": company.id, "number": number},
                brand_id=brand.id,
                route_type="user",
                user_id=user.id,
            )
            # Re-link what a partial demo (a deleted terminal or extension) left unset.
            if user.terminal_id is None:
                user.terminal_id = terminal.id
            if user.extension_id is None:
                user.extension_id = extension.id
    return report
