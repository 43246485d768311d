"""``ivoz db upgrade``, ``ivoz demo`` and ``ivoz admin create`` as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from ivoz.domain import models as m
from ivoz.domain.db import Database, head_revision
from ivoz.domain.security import verify_password
from support.database import database_url

SECRET = "correct horse battery"


def ivoz(*args: str, secret: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IVOZ_")}
    if secret is not None:
        env["IVOZ_DEMO_SECRET"] = secret
    return subprocess.run(
        [sys.executable, "-m", "ivoz", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


async def _counts(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        async with db.sessionmaker() as session:
            return {
                model.__name__: int(
                    await session.scalar(select(func.count()).select_from(model)) or 0
                )
                for model in (
                    m.Brand,
                    m.Company,
                    m.Administrator,
                    m.User,
                    m.Terminal,
                    m.Extension,
                    m.WebPortal,
                    m.MediaRelay,
                    m.MediaRelaySet,
                    m.ApplicationServerSet,
                )
            }
    finally:
        await db.dispose()


async def test_db_upgrade_creates_the_sqlite_database(tmp_path: Path) -> None:
    result = ivoz("--data-dir", str(tmp_path / "var"), "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert f"revision {head_revision()}" in result.stdout
    assert (tmp_path / "var" / "ivoz.sqlite3").exists()


async def test_demo_is_complete_and_idempotent(tmp_path: Path) -> None:
    data = tmp_path / "var"
    first = ivoz("--data-dir", str(data), "demo", secret=SECRET)
    assert first.returncode == 0, first.stderr
    assert "acme.ivoz.test" in first.stdout and SECRET in first.stdout
    url = f"sqlite+aiosqlite:///{(data / 'ivoz.sqlite3').resolve()}"
    counts = await _counts(url)
    assert counts == {
        "Brand": 1,
        "Company": 1,
        "Administrator": 3,
        "User": 2,
        "Terminal": 2,
        "Extension": 2,
        "WebPortal": 4,
        "MediaRelay": 1,
        "MediaRelaySet": 1,
        "ApplicationServerSet": 1,
    }
    second = ivoz("--data-dir", str(data), "demo", secret=SECRET)
    assert second.returncode == 0, second.stderr
    assert "already present" in second.stdout
    assert await _counts(url) == counts

    db = Database(url)
    try:
        async with db.sessionmaker() as session:
            company = await session.scalar(select(m.Company))
            assert company is not None
            assert (company.name, company.type, company.domain) == (
                "Acme",
                "vpbx",
                "acme.ivoz.test",
            )
            admins = {a.username: a for a in (await session.scalars(select(m.Administrator))).all()}
            assert {name: a.level for name, a in admins.items()} == {
                "admin": "platform",
                "demo": "brand",
                "acme": "client",
            }
            assert all(verify_password(a.password_hash, SECRET) for a in admins.values())
            rows = await session.execute(
                select(
                    m.User.name,
                    m.Extension.number,
                    m.Terminal.sip_username,
                    m.Terminal.sip_password,
                )
                .join(m.Extension, m.User.extension_id == m.Extension.id)
                .join(m.Terminal, m.User.terminal_id == m.Terminal.id)
                .order_by(m.Extension.number)
            )
            assert [tuple(r) for r in rows] == [
                ("Alice", "1001", "alice", SECRET),
                ("Bob", "1002", "bob", SECRET),
            ]
            relay = await session.scalar(select(m.MediaRelay))
            assert relay is not None and (relay.ng_host, relay.ng_port) == ("127.0.0.1", 22222)
            urls = set((await session.scalars(select(m.WebPortal.url))).all())
            assert "http://127.0.0.1:8000" in urls
    finally:
        await db.dispose()


async def test_demo_without_secret_prints_random_passwords_once(tmp_path: Path) -> None:
    data = str(tmp_path / "var")
    result = ivoz("--data-dir", data, "demo")
    assert result.returncode == 0, result.stderr
    lines = [
        line for line in result.stdout.splitlines() if line.startswith("  administrator admin:")
    ]
    password = lines[0].split(": ", 1)[1]
    assert len(password) >= 12
    url = f"sqlite+aiosqlite:///{(tmp_path / 'var' / 'ivoz.sqlite3').resolve()}"
    db = Database(url)
    try:
        async with db.sessionmaker() as session:
            admin = await session.scalar(
                select(m.Administrator).where(m.Administrator.username == "admin")
            )
            assert admin is not None and verify_password(admin.password_hash, password)
    finally:
        await db.dispose()
    again = ivoz("--data-dir", data, "demo")
    assert password not in again.stdout


async def test_admin_create(tmp_path: Path) -> None:
    data = str(tmp_path / "var")
    created = ivoz(
        "--data-dir", data, "admin", "create", "root", "--password", "pw1", "--email", "r@x"
    )
    assert created.returncode == 0, created.stderr
    duplicate = ivoz("--data-dir", data, "admin", "create", "root", "--password", "pw2")
    assert duplicate.returncode != 0
    assert "already exists" in duplicate.stderr
    db = Database(f"sqlite+aiosqlite:///{(tmp_path / 'var' / 'ivoz.sqlite3').resolve()}")
    try:
        async with db.sessionmaker() as session:
            admin = await session.scalar(select(m.Administrator))
            assert admin is not None
            assert (admin.username, admin.level, admin.email) == ("root", "platform", "r@x")
            assert verify_password(admin.password_hash, "pw1")
    finally:
        await db.dispose()


@pytest.mark.integration
async def test_demo_on_postgresql(tmp_path: Path) -> None:
    async with database_url("postgresql", tmp_path) as url:
        for _ in range(2):
            result = ivoz("--database-url", url, "demo", secret=SECRET)
            assert result.returncode == 0, result.stderr
        counts = await _counts(url)
        assert (counts["Brand"], counts["User"], counts["Administrator"]) == (1, 2, 3)


def test_admin_create_prompts_for_the_password(tmp_path: Path) -> None:
    data = str(tmp_path / "var")
    argv = [sys.executable, "-m", "ivoz", "--data-dir", data, "admin", "create", "ops"]

    def run(stdin: str) -> subprocess.CompletedProcess[str]:
        # A new session has no controlling terminal: getpass falls back to stdin.
        return subprocess.run(
            argv,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            start_new_session=True,
            check=False,
        )

    differ = run("one\ntwo\n")
    assert differ.returncode != 0 and "passwords differ" in differ.stderr
    same = run("s3cret\ns3cret\n")
    assert same.returncode == 0, same.stderr
    assert "'ops' created" in same.stdout
