"""The ``portal`` role: the REST API served by uvicorn on config.api_host:api_port.

Under ``ivoz run`` the role gets the process's shared ``Services``: the same database,
event bus (so a change made through the API reaches the proxies' caches at once) and
live location store as the other roles. Started alone it makes its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn

from ivoz.certificates import certificate_files
from ivoz.config import Config
from ivoz.portal.app import create_app
from ivoz.services import Services

log = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    # The ivoz command owns the signals: it cancels this role's task to stop it.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(config: Config, services: Services | None = None) -> None:
    own = services is None
    # Services.create migrates to head: a no-op after `ivoz run`'s prepare, and what
    # makes the role safe to start alone.
    shared = services if services is not None else await Services.create(config)
    try:
        app = create_app(
            config, shared.database, shared.bus, location=shared.location, redis=shared.redis
        )
        cert = key = None
        if config.api_tls:
            # HTTPS with the node's certificate: the SIP TLS/WSS listeners' one.
            files = certificate_files(
                config.data_dir, config.api_host, config.tls_cert, config.tls_key
            )
            cert, key = str(files.cert), str(files.key)
        server = _Server(
            uvicorn.Config(
                app,
                host=config.api_host,
                port=config.api_port,
                log_level="warning",
                lifespan="off",
                proxy_headers=False,
                ssl_certfile=cert,
                ssl_keyfile=key,
            )
        )
        # Our own listening socket: a port in use is an OSError here, where uvicorn
        # itself would call sys.exit() inside the task.
        family = socket.AF_INET6 if ":" in config.api_host else socket.AF_INET
        sock = socket.create_server((config.api_host, config.api_port), family=family)
        scheme = "https" if config.api_tls else "http"
        log.info("portal API on %s://%s:%d/api/", scheme, config.api_host, config.api_port)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="portal-uvicorn")
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            server.should_exit = True
            with contextlib.suppress(Exception):
                await task
            raise
    finally:
        if own:
            await shared.close()
