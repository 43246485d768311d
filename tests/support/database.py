"""Databases for tests: SQLite files and a real PostgreSQL server.

``postgres_url()`` is the server: IVOZ_TEST_POSTGRES_URL when set, otherwise a
throwaway cluster started once per test session from the Debian binaries
(``initdb``/``pg_ctl`` run as the ``postgres`` user when we are root, on a free port,
listening on 127.0.0.1 only, removed at exit); failing that, the server on
127.0.0.1:5432. Without any PostgreSQL a test skips, except under CI=true where it fails.

``database_url(kind, tmp_path)`` yields a fresh, empty database of ``kind`` ("sqlite"
or "postgresql"): a file in ``tmp_path``, or a uniquely named database created on the
server and dropped afterwards. ``make_database(kind, tmp_path)`` yields an
``ivoz.domain.db.Database`` on such a database, already migrated to head (a copy of a
template database migrated once per session, so that each test pays milliseconds).

Wire them in a test directory's conftest.py::

    @pytest.fixture(params=DATABASE_KINDS)
    async def database(request, tmp_path):
        async with make_database(request.param, tmp_path) as db:
            yield db
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from support.tools import free_port, in_ci

DATABASE_KINDS = ("sqlite", "postgresql")

_server: dict[str, Any] = {}


def _unavailable(message: str) -> None:
    if in_ci():
        pytest.fail(message)
    pytest.skip(message)


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return found[0] if found else shutil.which(name)


def _as_postgres(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def _start_cluster() -> str | None:
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        return None
    root = Path(tempfile.mkdtemp(prefix="ivoz-pg-"))
    data = root / "data"
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    port = free_port()
    try:
        subprocess.run(
            _as_postgres([initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c max_connections=200"
        )
        subprocess.run(
            _as_postgres(
                [pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
    except (subprocess.SubprocessError, OSError):
        shutil.rmtree(root, ignore_errors=True)
        return None

    def stop() -> None:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"


async def _reachable(url: str) -> bool:
    import asyncpg

    parsed = make_url(url)
    try:
        conn = await asyncpg.connect(
            host=parsed.host,
            port=parsed.port or 5432,
            user=parsed.username,
            password=parsed.password,
            database=parsed.database,
            timeout=5,
        )
    except (OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


def postgres_url() -> str:
    """URL of a PostgreSQL server whose ``postgres`` database the tests may use."""
    if "url" in _server:
        return str(_server["url"])
    url = os.environ.get("IVOZ_TEST_POSTGRES_URL") or _start_cluster()
    if url is None:
        url = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
    _server["url"] = url
    return url


async def _admin_connection() -> Any:
    import asyncpg

    url = postgres_url()
    if not await _reachable(url):
        _unavailable(f"no PostgreSQL server at {url}")
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=parsed.database,
    )


@contextlib.asynccontextmanager
async def database_url(
    kind: str, tmp_path: Path, *, template: str | None = None
) -> AsyncIterator[str]:
    """A fresh database of ``kind`` (a copy of ``template`` when given); dropped when done."""
    if kind == "sqlite":
        path = tmp_path / f"ivoz-{uuid.uuid4().hex[:8]}.sqlite3"
        if template is not None:
            shutil.copyfile(template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    if kind != "postgresql":
        raise ValueError(kind)
    name = f"ivoz_test_{uuid.uuid4().hex[:12]}"
    conn = await _admin_connection()
    try:
        suffix = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        await conn.close()
    try:
        yield str(make_url(postgres_url()).set(database=name))
    finally:
        conn = await _admin_connection()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


def _drop_templates() -> None:
    names = [t for k, t in _templates.items() if k == "postgresql"]
    if not names:
        return
    loop = asyncio.new_event_loop()

    async def drop() -> None:
        conn = await _admin_connection()
        try:
            for name in names:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    try:
        loop.run_until_complete(drop())
    except Exception:
        pass
    finally:
        loop.close()


_templates: dict[str, str] = {}


async def migrated_template(kind: str) -> str:
    """A database migrated to head, made once per session, to copy fresh databases from.

    Migrating takes a second or more; copying a migrated file (SQLite) or creating a
    database from a template (PostgreSQL) takes a few milliseconds.
    """
    from ivoz.domain.db import Database

    if kind in _templates:
        return _templates[kind]
    if kind == "sqlite":
        root = Path(tempfile.mkdtemp(prefix="ivoz-sqlite-template-"))
        atexit.register(shutil.rmtree, root, True)
        path = root / "template.sqlite3"
        db = Database(f"sqlite+aiosqlite:///{path}")
        try:
            await db.upgrade()
        finally:
            await db.dispose()
        _templates[kind] = str(path)
        return str(path)
    name = f"ivoz_template_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    conn = await _admin_connection()
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    if not _templates:
        atexit.register(_drop_templates)
    _templates[kind] = name
    db = Database(str(make_url(postgres_url()).set(database=name)))
    try:
        await db.upgrade()
    finally:
        await db.dispose()
    return name


@contextlib.asynccontextmanager
async def make_database(kind: str, tmp_path: Path, *, upgrade: bool = True) -> AsyncIterator[Any]:
    """An ``ivoz.domain.db.Database`` on a fresh database, migrated unless told not to."""
    from ivoz.domain.db import Database

    template = await migrated_template(kind) if upgrade else None
    async with database_url(kind, tmp_path, template=template) as url:
        db = Database(url)
        try:
            yield db
        finally:
            await db.dispose()
