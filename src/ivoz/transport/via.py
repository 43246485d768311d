"""Sans-IO server-side Via rules: ``received``/``rport`` and where responses go.

On receipt of a request, :func:`stamp_via` fills in the topmost Via as RFC 3261 18.2.1
and RFC 3581 section 4 ask; :func:`response_destination` tells where a response to a
request goes (RFC 3261 18.2.2, RFC 3581 section 4): over the request's connection for
stream transports, else to the address in the topmost Via.
"""

from __future__ import annotations

from dataclasses import dataclass

from ivoz.sip.headers import Headers
from ivoz.sip.values import Via
from ivoz.transport.address import Address, Kind, Origin


@dataclass(frozen=True, slots=True)
class ResponseDestination:
    """Where to send a response: the connection when still open, else the address."""

    connection: int | None
    address: Address


def _bare(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _received(host: str) -> str:
    # RFC 3261 25.1 writes IPv6 in received bare; RFC 5118 4.5 notes that parsers meet
    # both forms. We write the bracketed reference, which ivoz.sip's parser accepts.
    return f"[{host}]" if ":" in host else host


def stamped(via: Via, origin: Origin) -> Via | None:
    """The topmost Via with ``received``/``rport`` set, or None when nothing changes.

    Raises :class:`ivoz.sip.RemoteError` (400) for a malformed ``rport`` value.
    """
    source = origin.remote
    params: dict[str, str | None] = {}
    if via.rport is True:
        # RFC 3581 4: a bare rport gets the source port, and received MUST then be
        # added even when the sent-by host already equals the source address.
        params["rport"] = str(source.port)
        params["received"] = _received(source.host)
    elif _bare(via.host).lower() != source.host.lower():
        # RFC 3261 18.2.1: add received when sent-by's host differs from the source
        # (a name is never equal to the packet's source address).
        params["received"] = _received(source.host)
    if not params:
        return None
    return via.with_params(**params)


def stamp_via(headers: Headers, via: Via, origin: Origin) -> Via:
    """Rewrite the topmost Via of ``headers`` (``via``, already parsed) in place."""
    new = stamped(via, origin)
    if new is None:
        return via
    headers.remove_first("Via")
    headers.add("Via", str(new), first=True)
    return new


def response_destination(via: Via, origin: Origin) -> ResponseDestination:
    """Where a response to a request that arrived from ``origin`` goes.

    ``via`` is the response's topmost Via (the request's, as stamped by stamp_via).
    """
    kind = origin.transport
    if kind.reliable:
        # RFC 3261 18.2.2: over the connection the request came on; if it is gone, a
        # new connection to ``received`` (else sent-by host) and sent-by's port.
        if kind in (Kind.WS, Kind.WSS):
            # RFC 7118 5: only the WebSocket connection leads back to a WS client.
            return ResponseDestination(origin.connection, origin.remote)
        host = _bare(via.received or via.host)
        port = via.port if via.port is not None else kind.default_port
        return ResponseDestination(origin.connection, Address(kind, host, port))
    maddr = via.params.get("maddr")
    if maddr:
        # RFC 3261 18.2.2: maddr sends to that address, sent-by port or 5060.
        return ResponseDestination(None, Address(kind, _bare(maddr), via.port or 5060))
    rport = via.rport
    if isinstance(rport, int) and not isinstance(rport, bool):
        # RFC 3581 4: to the received address and the rport port (the packet's source).
        host = _bare(via.received) if via.received else origin.remote.host
        return ResponseDestination(None, Address(kind, host, rport))
    # RFC 3261 18.2.2: to ``received`` (else sent-by host) at sent-by's port or 5060.
    host = _bare(via.received or via.host)
    return ResponseDestination(None, Address(kind, host, via.port or kind.default_port))


def alias_address(via: Via, origin: Origin) -> Address | None:
    """RFC 5923 5: a Via ``alias`` asks to reuse this connection for its sent-by."""
    if "alias" not in via.params or origin.connection is None:
        return None
    if origin.transport not in (Kind.TCP, Kind.TLS):
        return None
    return Address(origin.transport, origin.remote.host, via.port or origin.transport.default_port)
