"""The ``appserver`` role: the B2BUA on a SIP node, listening for the users proxy.

``serve`` listens on ``config.appserver_host:appserver_port`` (UDP and TCP) with a
``ivoz.transport.node.SipNode`` and runs :class:`ivoz.appserver.b2bua.B2BUA` on it,
routing with ``services.directory``. B-legs go to the users proxy at
``config.appserver_proxy`` ("host:port"), by default ``sip_host:sip_udp_port`` (the
embedded default). Only that host, 127.0.0.1 and ::1 may send requests here (the rest
get 403).

:class:`AppServer` is the thin asyncio shell: it passes the node's requests to the
B2BUA and keeps one loop timer armed at the B2BUA's next deadline.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ivoz.appserver.b2bua import B2BUA
from ivoz.appserver.ports import DirectoryReader, SipPort
from ivoz.appserver.routing import Router
from ivoz.config import Config
from ivoz.sip import Request
from ivoz.transport import Address, Kind, Origin

if TYPE_CHECKING:
    from ivoz.directory import Directory
    from ivoz.services import Services
    from ivoz.transport.node import SipNode

    def _conforms(node: SipNode, directory: Directory) -> tuple[SipPort, DirectoryReader]:
        """mypy checks that the real node and directory fit the B2BUA's interfaces."""
        return node, directory


log = logging.getLogger(__name__)

_ANY = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def proxy_address(config: Config) -> Address:
    """Where B-legs go: ``appserver_proxy`` ("host:port", "[v6]:port") when set, else
    the users proxy's UDP listener of this configuration."""
    if config.appserver_proxy:
        host, sep, port = config.appserver_proxy.rpartition(":")
        if not sep or not port.isdigit() or not host:
            raise ValueError(f"IVOZ_APPSERVER_PROXY: {config.appserver_proxy!r} is not host:port")
        host = host.strip("[]")
        return Address(Kind.UDP, _ANY.get(host, host), int(port))
    host = _ANY.get(config.sip_host, config.sip_host)
    return Address(Kind.UDP, host, config.sip_udp_port)


def trusted_hosts(config: Config) -> set[str]:
    """Who may send requests to the application server: the proxy and loopback."""
    hosts = {"127.0.0.1", "::1", proxy_address(config).host}
    if config.sip_advertised_host:
        hosts.add(config.sip_advertised_host)
    return hosts


class AppServer:
    """The asyncio shell around the B2BUA: the node's ``RequestHandler`` and one timer."""

    def __init__(self, config: Config, directory: DirectoryReader, *, node_factory: Any = None):
        self.config = config
        self.loop = asyncio.get_running_loop()
        if node_factory is None:
            from ivoz.transport.layer import ConnectionLimits
            from ivoz.transport.node import SipNode

            limits = ConnectionLimits(
                config.sip_max_connections,
                config.sip_max_connections_per_ip,
                config.sip_handshake_timeout,
            )
            self.node = SipNode(self, limits=limits)
        else:
            self.node = node_factory(self)
        self.b2bua = B2BUA(
            self.node,
            directory,
            proxy=proxy_address(config),
            trusted_hosts=trusted_hosts(config),
            clock=self.loop.time,
            router=Router(),
        )
        self.b2bua.timer_changed = self._rearm
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None

    # RequestHandler
    def request_received(self, request: Request, origin: Origin, transaction: Any) -> None:
        try:
            self.b2bua.request_received(request, origin, transaction)
        except Exception:
            log.exception("application server failed on %s", request)
        self._rearm()

    def cancelled(self, transaction: Any) -> None:
        try:
            self.b2bua.cancelled(transaction)
        except Exception:
            log.exception("application server failed on a CANCEL")
        self._rearm()

    # the timer
    def _rearm(self) -> None:
        deadline = self.b2bua.next_timer()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = None if deadline is None else self.loop.call_at(deadline, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        self.b2bua.on_timer(self.loop.time())
        self._rearm()

    async def listen(self) -> None:
        host, port = self.config.appserver_host, self.config.appserver_port
        for kind in (Kind.UDP, Kind.TCP):
            await self.node.listen(kind, host, port)
            log.info("application server: SIP %s on %s:%d", kind.value, host, port)

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        close = getattr(self.node, "close", None)
        if close is not None:
            result = close()
            if hasattr(result, "__await__"):
                await result


async def serve(config: Config, services: Services | None = None) -> None:
    """Run the application server until cancelled."""
    own = services is None
    if services is None:
        from ivoz.services import Services

        services = await Services.create(config)
    server = AppServer(config, services.directory)
    try:
        await server.listen()
        log.info("application server: B-legs go to the proxy at %s", proxy_address(config))
        await asyncio.Event().wait()
    finally:
        await server.close()
        if own:
            await services.close()
