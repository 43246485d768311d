"""NAT traversal for the users proxy: where a registered phone really is, and keeping
its NAT binding open. Sans-IO: addresses and a clock value in, decisions and bytes out.

The approach is Kamailio's ``fix_nated_register``: the Contact a phone registers is
stored as sent, and beside it the address the REGISTER really came from
(``Binding.received``, ``transport:host:port``) and, over TCP/TLS/WS/WSS, the id of the
connection it came on (``Binding.connection_id``). :func:`behind_nat` says whether the
two disagree (the phone sits behind a NAT, or asked for ``rport``); :func:`destination`
then tells the proxy where a request for that binding goes:

1. over the registration's connection while it is alive (RFC 5626 5.3, RFC 7118: a
   WebSocket or NATed TCP phone is reachable only that way);
2. else, for a phone behind NAT, to the address the REGISTER came from (for a stream
   transport only when the Contact's host is not that source's host: otherwise only
   the source port was ephemeral, and the Contact's port is where the phone listens);
3. else to the Contact URI's host, port and transport (RFC 3263 reduced to what a
   literal address needs: no NAPTR or SRV lookups).

A binding with a Path (RFC 3327) is reached through the first Path element instead, the
Path values becoming the request's Route set.

:func:`fix_contact` rewrites a Contact URI to the packet's source (Kamailio's
``fix_nated_contact``) for the dialog-forming requests and responses the proxy relays,
so that in-dialog requests of the other side reach the phone too.

:class:`KeepAlive` schedules pings to UDP phones behind NAT: an OPTIONS request (or a
CRLFCRLF datagram, RFC 5626 4.4.1 style) every ``interval`` seconds per binding, until
the binding expires or is forgotten. The proxy calls :meth:`KeepAlive.due` when
:meth:`KeepAlive.next_deadline` comes and sends each returned :class:`Ping`, or runs
:func:`keepalive_loop`, the few lines of asyncio that do it.
"""

from __future__ import annotations

import asyncio
import heapq
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from ivoz.sip import Headers, NameAddr, Request, new_branch, new_call_id, new_tag
from ivoz.sip.errors import RemoteError
from ivoz.sip.uri import URI
from ivoz.state.location import Binding
from ivoz.transport.address import Address, Kind, Origin

log = logging.getLogger(__name__)

__all__ = [
    "KEEPALIVE_INTERVAL",
    "KeepAlive",
    "Ping",
    "Target",
    "behind_nat",
    "destination",
    "fix_contact",
    "keepalive_loop",
    "parse_received",
    "uri_address",
]

# seconds between two pings of one binding; UDP NAT mappings commonly last 30 s or more
# (RFC 4787 REQ-5 asks for at least 2 minutes, many home routers keep far less)
KEEPALIVE_INTERVAL = 30.0
# RFC 5626 4.4.1: a double CRLF is the keep-alive "ping" of stream transports; over UDP
# plain SIP parsers skip it (RFC 3261 7.5: empty lines before a message are ignored)
CRLF_PING = b"\r\n\r\n"

_TRANSPORTS = {"udp": Kind.UDP, "tcp": Kind.TCP, "tls": Kind.TLS, "ws": Kind.WS, "wss": Kind.WSS}


def _bare(host: str) -> str:
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _same_host(a: str, b: str) -> bool:
    a, b = _bare(a).lower(), _bare(b).lower()
    try:
        return ipaddress.ip_address(a) == ipaddress.ip_address(b)
    except ValueError:
        return a == b


def uri_address(uri: URI) -> Address:
    """Where a request to ``uri`` goes, for a literal host (RFC 3263 4.1, 4.2 minimal).

    Transport: the ``transport`` parameter, else TLS for sips, else UDP (RFC 3263 4.1
    without NAPTR/SRV); port: the URI's, else the transport's default (RFC 3263 4.2).
    """
    name = uri.transport
    kind = _TRANSPORTS.get(name) if name is not None else None
    if kind is None:
        kind = Kind.TLS if uri.is_secure else Kind.UDP
    elif uri.is_secure and kind is Kind.TCP:
        kind = Kind.TLS  # RFC 3261 26.2.2: sips over TCP means TLS
    maddr = uri.params.get("maddr")
    host = _bare(maddr if maddr else uri.host)
    return Address(kind, host, uri.port if uri.port is not None else kind.default_port)


def parse_received(text: str) -> Address:
    """``"udp:192.0.2.1:5060"`` (``str(Address)``, what ``Binding.received`` holds) back."""
    transport, sep, rest = text.partition(":")
    host, sep2, port = rest.rpartition(":")
    kind = Kind.from_via(transport)
    if not sep or not sep2 or kind is None or not port.isdigit() or not host:
        raise ValueError(f"not a transport:host:port address: {text!r}")
    return Address(kind, _bare(host), int(port))


def behind_nat(contact: URI, origin: Origin, rport: bool = False) -> bool:
    """Whether the phone that sent ``contact`` from ``origin`` must be reached at the source.

    True when the Via asked for ``rport`` (RFC 3581: the client knows it may be behind
    a NAT), or when the Contact's host or port is not the packet's source (private
    address behind a NAT, or a stream transport's ephemeral port). A Contact naming a
    host rather than an address is compared textually, hence counts as NATed: the
    address the request came from is known to work, a name may not resolve here.
    """
    if rport:
        return True
    source = origin.remote
    address = uri_address(contact)
    return not _same_host(address.host, source.host) or address.port != source.port


def fix_contact(contact: URI, origin: Origin) -> URI:
    """``contact`` with its host and port replaced by the packet's source.

    For the Contact of dialog-forming messages relayed from a phone behind NAT: the
    other side's in-dialog requests then reach the NAT's public mapping. The transport
    parameter is kept when it names the source's transport.
    """
    source = origin.remote
    host = f"[{source.host}]" if ":" in source.host else source.host
    fixed = replace(contact, host=host, port=source.port)
    params = {k: v for k, v in fixed.params.items() if k != "maddr"}
    if origin.transport is not Kind.UDP:
        params["transport"] = origin.transport.value.lower()
    return replace(fixed, params=params)


@dataclass(frozen=True, slots=True)
class Target:
    """Where to send a request for a binding.

    Send over ``connection`` when set (falling back to ``address`` when the send
    fails); ``route`` is the Route set to put on the request (RFC 3327 Path values).
    """

    address: Address
    connection: int | None = None
    route: tuple[str, ...] = ()


def destination(binding: Binding, alive: Callable[[int], bool] | None = None) -> Target:
    """Where a request for ``binding`` goes (see the module docstring for the order).

    ``alive(connection_id)`` says whether that connection is still open in this
    process (e.g. ``lambda c: layer.origin(c) is not None``). Connection ids are local
    to the proxy that received the REGISTER.
    """
    received: Address | None = None
    if binding.received:
        try:
            received = parse_received(binding.received)
        except ValueError:
            received = None
    if binding.path:
        # RFC 3327 5.3: the request to this contact is routed through the Path
        try:
            first = NameAddr.parse(binding.path[0]).uri
            return Target(uri_address(first), None, binding.path)
        except RemoteError:
            pass  # a stored Path that does not parse: fall back to the contact itself
    connection = binding.connection_id
    if connection is not None and alive is not None and alive(connection):
        # RFC 5626 5.3 / RFC 3261 18.2.2 by analogy: reuse the phone's own connection
        fallback = received or _contact_address(binding)
        if fallback is not None:
            return Target(fallback, connection)
    address = _contact_address(binding)
    # a stream phone whose Contact host is its source host is not behind a NAT (only
    # its source port was ephemeral): a new connection goes to its Contact's port
    if (
        binding.nat
        and received is not None
        and (
            received.transport is Kind.UDP
            or address is None
            or not _same_host(address.host, received.host)
        )
    ):
        return Target(received)
    if address is None:
        if received is None:
            raise ValueError(f"binding {binding.contact!r} has no usable address")
        return Target(received)
    return Target(address)


def _contact_address(binding: Binding) -> Address | None:
    try:
        return uri_address(URI.parse(binding.contact))
    except (RemoteError, ValueError):
        return None


# -- keep-alives -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ping:
    """One keep-alive to send now: ``data`` to ``destination`` (UDP)."""

    destination: Address
    data: bytes
    aor: str
    contact: str


@dataclass(slots=True)
class _Tracked:
    address: Address
    contact: str
    expires_at: float
    next_at: float


class KeepAlive:
    """Sans-IO keep-alive schedule for UDP bindings behind NAT.

    ``mode`` is ``"options"`` (an OPTIONS request the phone answers, refreshing the NAT
    mapping both ways; Kamailio nathelper's "sipping") or ``"crlf"`` (a CRLFCRLF
    datagram). ``sent_by`` is our UDP ``host:port`` for the OPTIONS Via and From.
    """

    def __init__(
        self,
        interval: float = KEEPALIVE_INTERVAL,
        *,
        mode: str = "options",
        sent_by: tuple[str, int] = ("127.0.0.1", 5060),
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        if mode not in ("options", "crlf"):
            raise ValueError(f"unknown keep-alive mode {mode!r}")
        self.interval = interval
        self.mode = mode
        self.sent_by = sent_by
        self._tracked: dict[tuple[str, str], _Tracked] = {}
        self._heap: list[tuple[float, str, str]] = []

    def __len__(self) -> int:
        return len(self._tracked)

    def track(self, binding: Binding, now: float) -> bool:
        """Ping ``binding`` from ``now + interval`` on if it is UDP behind NAT.

        A refreshed binding is rescheduled (its REGISTER just refreshed the NAT); a
        binding that needs no pings is forgotten. Returns whether it is tracked.
        """
        key = (binding.aor, binding.contact)
        address = None
        if binding.nat and binding.received and binding.expires_at > now:
            try:
                address = parse_received(binding.received)
            except ValueError:
                address = None
        if address is None or address.transport is not Kind.UDP:
            self._tracked.pop(key, None)
            return False
        entry = _Tracked(address, binding.contact, binding.expires_at, now + self.interval)
        self._tracked[key] = entry
        heapq.heappush(self._heap, (entry.next_at, *key))
        return True

    def forget(self, aor: str, contact: str) -> None:
        self._tracked.pop((aor, contact), None)

    def forget_aor(self, aor: str) -> None:
        for key in [k for k in self._tracked if k[0] == aor]:
            del self._tracked[key]

    def next_deadline(self) -> float | None:
        """When :meth:`due` has something to send next (None: nothing tracked)."""
        heap = self._heap
        while heap:
            at, aor, contact = heap[0]
            entry = self._tracked.get((aor, contact))
            if entry is not None and entry.next_at == at:
                return at
            heapq.heappop(heap)  # stale: forgotten or rescheduled
        return None

    def due(self, now: float) -> list[Ping]:
        """The pings due at ``now``; each binding is then rescheduled ``interval`` later."""
        pings: list[Ping] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, aor, contact = heapq.heappop(heap)
            key = (aor, contact)
            entry = self._tracked.get(key)
            if entry is None or entry.next_at != at:
                continue
            if entry.expires_at <= now:
                del self._tracked[key]  # the registration ran out: stop pinging
                continue
            pings.append(Ping(entry.address, self._payload(entry), aor, contact))
            # a late caller gets no burst: the next ping is one interval after this one
            entry.next_at = now + self.interval
            heapq.heappush(heap, (entry.next_at, aor, contact))
        return pings

    def _payload(self, entry: _Tracked) -> bytes:
        if self.mode == "crlf":
            return CRLF_PING
        host, port = self.sent_by
        hostport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        headers = Headers()
        # RFC 3261 8.1.1: the mandatory header fields of a request; rport (RFC 3581)
        # so that the answer comes back through the same NAT mapping
        headers.add("Via", f"SIP/2.0/UDP {hostport};branch={new_branch()};rport")
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<sip:keepalive@{hostport}>;tag={new_tag()}")
        headers.add("To", f"<{entry.contact}>")
        headers.add("Call-ID", new_call_id())
        headers.add("CSeq", "1 OPTIONS")
        return Request("OPTIONS", entry.contact, headers).to_bytes()


async def keepalive_loop(
    keepalive: KeepAlive,
    send: Callable[[bytes, Address], None],
    *,
    clock: Callable[[], float] = time.time,
    tick: float = 1.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    """Send the pings of ``keepalive`` as they fall due, until cancelled.

    ``send(data, address)`` is e.g. ``layer.send``; ``clock`` must be the registrar's
    (wall time). It wakes at the next deadline, at most ``tick`` seconds apart so that
    bindings tracked meanwhile are seen. A failing send is logged, never fatal.
    """
    while True:
        for ping in keepalive.due(clock()):
            try:
                send(ping.data, ping.destination)
            except Exception as exc:  # a dead socket must not stop the other pings
                log.debug("keep-alive to %s failed: %s", ping.destination, exc)
        deadline = keepalive.next_deadline()
        wait = tick if deadline is None else min(tick, max(0.0, deadline - clock()))
        await sleep(wait)
