"""Schemathesis on PostgreSQL: its stricter types (int4 range, no NUL in text) make no 5xx."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from portal_harness import seed_platform
from test_portal_schemathesis import test_no_server_errors

from ivoz.config import Config
from ivoz.domain.db import Database
from ivoz.domain.events import MemoryEventBus
from ivoz.portal.app import create_app
from ivoz.portal.tokens import Principal
from support.database import database_url

pytestmark = pytest.mark.integration
__all__ = ["test_no_server_errors"]


async def _prepare(url: str) -> Any:
    database = Database(url)
    try:
        await database.upgrade()
        return await seed_platform(database)
    finally:
        await database.dispose()


@pytest.fixture
def asgi(tmp_path: Path) -> Iterator[Any]:
    # The database's lifetime runs in a loop of its own: asyncio.run would finalise the
    # context manager (and drop the database) as soon as it returned.
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=120)

    manager = database_url("postgresql", tmp_path)
    url = run(manager.__aenter__())
    try:
        seed = run(_prepare(url))
        config = dataclasses.replace(Config(), data_dir=tmp_path, api_secret="schemathesis")
        app = create_app(config, Database(url), MemoryEventBus())
        tokens = app.state.portal.tokens
        tokens.access_ttl = 3600
        a = seed.a
        principals = {
            "platform": Principal(
                "platform", "admin", seed.platform_admin_id, None, None, None, "s"
            ),
            "brand": Principal("brand", "admin", a.brand_admin_id, a.brand_id, None, None, "s"),
            "client": Principal(
                "client", "admin", a.client_admin_id, a.brand_id, a.company_id, None, "s"
            ),
            "user": Principal("user", "user", a.user_id, a.brand_id, a.company_id, a.user_id, "s"),
        }
        auth = {
            level: {"Authorization": f"Bearer {tokens.issue(p).access_token}"}
            for level, p in principals.items()
        }
        # Fewer examples than on SQLite: here the point is PostgreSQL's stricter types.
        yield app, auth, seed, 2
    finally:
        # DROP DATABASE ... WITH (FORCE) also ends the app's pooled connections.
        run(manager.__aexit__(None, None, None))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
