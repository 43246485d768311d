"""The ``relay`` role: the ng control socket and the RTP relay engine.

Configuration: ``ng_host``/``ng_port`` (control), ``rtp_host``, ``rtp_port_min``,
``rtp_port_max`` (media), ``relay_max_sessions`` (0 = unlimited; beyond it offers get
``load limit``). ``IVOZ_RELAY_TIMEOUT`` (seconds, default 60) frees calls whose media
and signalling have been silent that long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import TYPE_CHECKING

from ivoz.config import Config
from ivoz.media.ng import NgCommands, NgProtocol, NgServer
from ivoz.media.relay import DEFAULT_TIMEOUT, Relay, RelaySettings

if TYPE_CHECKING:
    from ivoz.services import Services

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 1.0  # seconds between idle-call sweeps


def settings_from_config(config: Config) -> RelaySettings:
    timeout = float(os.environ.get("IVOZ_RELAY_TIMEOUT", DEFAULT_TIMEOUT))
    return RelaySettings(
        host=config.rtp_host,
        port_min=config.rtp_port_min,
        port_max=config.rtp_port_max,
        max_sessions=config.relay_max_sessions,
        timeout=timeout,
    )


async def serve(config: Config, services: Services | None = None) -> None:
    """Run the relay until cancelled. It needs no shared services (no database, no
    live state): ``services`` is accepted so that ``ivoz run`` can start every role
    alike, and is not used."""
    del services
    loop = asyncio.get_running_loop()
    relay = Relay(settings_from_config(config), loop)
    server = NgServer(NgCommands(relay).handle)
    transport, _ = await loop.create_datagram_endpoint(
        lambda: NgProtocol(server, loop.time), local_addr=(config.ng_host, config.ng_port)
    )
    log.info(
        "relay: ng on %s:%d, RTP %s:%d-%d",
        config.ng_host,
        config.ng_port,
        config.rtp_host,
        config.rtp_port_min,
        config.rtp_port_max,
    )
    try:
        while True:
            await asyncio.sleep(min(SWEEP_INTERVAL, relay.settings.timeout / 4))
            relay.expire()
    finally:
        transport.close()
        with contextlib.suppress(Exception):
            relay.close()
