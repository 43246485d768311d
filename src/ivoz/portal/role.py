"""The ``portal`` role: the REST API served by uvicorn on config.api_host:api_port."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import uvicorn

from ivoz.config import Config
from ivoz.domain.db import Database
from ivoz.domain.events import event_bus_for
from ivoz.portal.app import create_app

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    # The ivoz command owns the signals: it cancels this role's task to stop it.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(config: Config) -> None:
    database = Database(config.effective_database_url)
    bus = event_bus_for(config.redis_url)
    try:
        # `ivoz run` migrated already; running it again is a no-op at head and makes the
        # role safe to start alone.
        await database.upgrade()
        app = create_app(config, database, bus)
        server = _Server(
            uvicorn.Config(
                app,
                host=config.api_host,
                port=config.api_port,
                log_level="warning",
                lifespan="off",
                proxy_headers=False,
            )
        )
        log.info("portal API on http://%s:%d/api/", config.api_host, config.api_port)
        task = asyncio.create_task(server.serve(), name="portal-uvicorn")
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await task
            raise
    finally:
        with contextlib.suppress(Exception):
            await bus.close()
        await database.dispose()
