"""``SipPort``: the part of :class:`ivoz.transport.node.SipNode` the SIP engines call.

The proxy engine (``ivoz.proxy.core.Proxy``) and the application server's B2BUA
(``ivoz.appserver.b2bua.B2BUA``) act only through it; unit tests give recording fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from ivoz.sip import Request, Response
from ivoz.transport.address import Address

__all__ = ["SipPort"]


class SipPort(Protocol):
    """The part of :class:`ivoz.transport.node.SipNode` the engines use."""

    def respond(self, transaction: Any, response: Response) -> None: ...

    def send_request(
        self,
        request: Request,
        destination: Address | int,
        on_response: Callable[[Response], None],
        on_failure: Callable[[int], None] | None = None,
    ) -> Any: ...

    def send_stateless(self, message: Request | Response, destination: Address | int) -> None: ...

    def cancel(self, transaction: Any) -> None: ...

    def local_via(self, transport: str) -> tuple[str, int]: ...
