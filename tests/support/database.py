"""Databases for tests: SQLite files and a real PostgreSQL server.

``postgres_url()`` is the server: IVOZ_TEST_POSTGRES_URL when set, otherwise a
throwaway cluster started once per test session from the Debian binaries
(``initdb``/``pg_ctl`` run as the ``postgres`` user when we are root, on a free port,
listening on 127.0.0.1 only, removed at exit); failing that, the server on
127.0.0.1:5432. Without any PostgreSQL a test skips, except under CI=true where it fails.

``database_url(kind, tmp_path)`` yields a fresh, empty database of ``kind`` ("sqlite"
or "postgresql"): a file in ``tmp_path``, or a uniquely named database created on the
server and dropped afterwards. ``make_database(kind, tmp_path)`` yields an
``ivoz.domain.db.Database`` on such a database, already migrated to head.

Wire them in a test directory's conftest.py::

    @pytest.fixture(params=DATABASE_KINDS)
    async def database(request, tmp_path):
        async with make_database(request.param, tmp_path) as db:
            yield db
"""

from __future__ import annotations

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
async def database_url(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of ``kind``; dropped (PostgreSQL) when done."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / f'ivoz-{uuid.uuid4().hex[:8]}.sqlite3'}"
        return
    if kind != "postgresql":
        raise ValueError(kind)
    name = f"ivoz_test_{uuid.uuid4().hex[:12]}"
    conn = await _admin_connection()
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
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


@contextlib.asynccontextmanager
async def make_database(kind: str, tmp_path: Path, *, upgrade: bool = True) -> AsyncIterator[Any]:
    """An ``ivoz.domain.db.Database`` on a fresh database, migrated unless told not to."""
    from ivoz.domain.db import Database

    async with database_url(kind, tmp_path) as url:
        db = Database(url)
        try:
            if upgrade:
                await db.upgrade()
            yield db
        finally:
            await db.dispose()
