"""The relay engine: calls, their media legs, and the packet forwarding between them.

A call has two sides, one per SIP dialog party (keyed by From/To tag). For every media
line each side owns a :class:`PortPair` on the relay: the ports *that side sends to*
and the relay sends to it from (symmetric RTP, RFC 4961). A packet that arrives on side
A's RTP port is sent out of side B's RTP port to B's address; RTCP likewise.

Where an endpoint really is comes from its packets, not its SDP (latching): the SDP
address is the first guess; the first packet from any source sets the address; after
that packets from other sources are dropped when ``strict source`` is set, or re-latch
when ``media handover`` is set, or are forwarded without re-latching otherwise.

Forwarding runs on the event loop without per-packet allocations beyond the datagram
itself: one reader callback per socket drains it until EAGAIN (bounded per wake-up),
sends each datagram with ``socket.sendto`` and updates counters once per batch.
Payload bytes are never touched, so every codec passes (the relay is codec-agnostic).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ivoz import sdp
from ivoz.media.ports import PortPair, PortPool, PortsExhausted

log = logging.getLogger(__name__)

MAX_DATAGRAM = 65535  # bytes: one UDP payload
BATCH = 128  # datagrams read per socket per wake-up before yielding to others
DEFAULT_TIMEOUT = 60.0  # seconds without media or signalling before a call is freed

Address = tuple[str, int]


class NgError(Exception):
    """A command the relay refuses; the reason goes back as ``error-reason``."""


class LoadLimit(NgError):
    """The relay is full (max sessions or no free ports)."""


@dataclass(frozen=True, slots=True)
class RelaySettings:
    host: str = "127.0.0.1"
    advertised_host: str | None = None
    port_min: int = 13000
    port_max: int = 19000
    max_sessions: int = 0  # 0: unlimited
    timeout: float = DEFAULT_TIMEOUT


@dataclass(frozen=True, slots=True)
class MediaFlags:
    """The ng flags that govern how a side's address is learnt and enforced."""

    symmetric: bool = True  # latch to the source of packets (default; "asymmetric" off)
    strict_source: bool = False
    media_handover: bool = False
    port_latching: bool = False  # latch once, never again


class Port:
    """One relay socket facing one endpoint, with that endpoint's address and counters."""

    __slots__ = (
        "advertised",
        "blocked",
        "bytes",
        "dropped",
        "errors",
        "fd",
        "flags",
        "kind",
        "last_packet",
        "latched",
        "number",
        "packets",
        "peer",
        "recvfrom",
        "remote",
        "sendto",
        "sock",
    )

    def __init__(self, sock: socket.socket, number: int, kind: str) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.number = number
        self.kind = kind  # "RTP" or "RTCP"
        self.recvfrom = sock.recvfrom
        self.sendto = sock.sendto
        self.peer: Port | None = None
        self.advertised: Address | None = None  # from SDP (or SIP source address)
        self.remote: Address | None = None  # where packets to this endpoint go
        self.latched = False
        self.flags = MediaFlags()
        self.blocked = False  # the endpoint's SDP says it does not send (RTP only)
        self.packets = 0
        self.bytes = 0
        self.errors = 0
        self.dropped = 0
        self.last_packet = 0.0  # monotonic clock, 0 = never

    def set_advertised(self, address: Address | None, flags: MediaFlags) -> None:
        self.flags = flags
        self.advertised = address
        if not self.latched or not flags.symmetric:
            self.remote = address

    def stats(self) -> dict[str, int]:
        return {"packets": self.packets, "bytes": self.bytes, "errors": self.errors}


@dataclass(slots=True)
class Leg:
    """One media line of one side: its port pair and what its SDP said."""

    index: int
    pair: PortPair
    rtp: Port
    rtcp: Port
    media_type: str = "audio"
    protocol: str = "RTP/AVP"
    direction: str = "sendrecv"
    rtcp_mux: bool = False


@dataclass(slots=True)
class Side:
    tag: str
    created: float
    legs: dict[int, Leg] = field(default_factory=dict)
    peer: Side | None = None
    last_output: bytes | None = None  # the SDP we last produced for this side's peer
    version: int | None = None


@dataclass(slots=True)
class Call:
    call_id: str
    created: float  # wall clock
    last_signal: float  # monotonic
    sides: dict[str, Side] = field(default_factory=dict)
    pending: Side | None = None  # the answerer before its tag is known


@dataclass(slots=True)
class Totals:
    managed: int = 0
    timed_out: int = 0
    deleted: int = 0
    rejected: int = 0
    packets: int = 0
    bytes: int = 0
    errors: int = 0


class Relay:
    """Owns the calls and the sockets; the ng server calls :meth:`offer` and friends."""

    def __init__(
        self,
        settings: RelaySettings,
        loop: asyncio.AbstractEventLoop,
        clock: Callable[[], float] | None = None,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.loop = loop
        self.clock = clock or loop.time
        self.wallclock = wallclock
        self.started = wallclock()
        self.pool = PortPool(settings.host, settings.port_min, settings.port_max)
        self.calls: dict[str, Call] = {}
        self.totals = Totals()

    @property
    def address(self) -> str:
        return self.settings.advertised_host or self.settings.host

    # ---- signalling -------------------------------------------------------------

    def offer(
        self,
        call_id: str,
        from_tag: str,
        body: bytes,
        *,
        to_tag: str | None = None,
        flags: MediaFlags = MediaFlags(),
        source: str | None = None,
        options: sdp.RewriteOptions = sdp.RewriteOptions(),
    ) -> bytes:
        """Anchor the offerer's media; returns the SDP for the answerer."""
        session = _parse(body)
        call = self.calls.get(call_id)
        if call is None:
            if self.settings.max_sessions and len(self.calls) >= self.settings.max_sessions:
                self.totals.rejected += 1
                raise LoadLimit("Parallel session limit reached")
            call = Call(call_id, self.wallclock(), self.clock())
            self.calls[call_id] = call
            self.totals.managed += 1
        call.last_signal = self.clock()
        offerer = call.sides.get(from_tag)
        if offerer is None:
            offerer = call.sides[from_tag] = Side(from_tag, self.wallclock())
        answerer = offerer.peer
        if answerer is None:
            if to_tag is not None and to_tag in call.sides:
                answerer = call.sides[to_tag]
            else:
                answerer = call.pending or Side(to_tag or "", self.wallclock())
                if to_tag:
                    call.sides[to_tag] = answerer
                else:
                    call.pending = answerer
            offerer.peer, answerer.peer = answerer, offerer
        try:
            return self._apply(offerer, answerer, session, flags, source, options, True)
        except PortsExhausted as exc:
            if not any(side.legs for side in call.sides.values()):
                self._free(call)
            raise LoadLimit(str(exc)) from None

    def answer(
        self,
        call_id: str,
        from_tag: str,
        to_tag: str,
        body: bytes,
        *,
        flags: MediaFlags = MediaFlags(),
        source: str | None = None,
        options: sdp.RewriteOptions = sdp.RewriteOptions(),
    ) -> bytes:
        """Anchor the answerer's media; returns the SDP for the offerer."""
        session = _parse(body)
        call = self.calls.get(call_id)
        if call is None:
            raise NgError("Unknown call-id")
        offerer = call.sides.get(from_tag)
        if offerer is None:
            # A re-INVITE answered the other way round: the tags swap places.
            offerer = call.sides.get(to_tag)
            if offerer is None or offerer.peer is None:
                raise NgError("Unknown call-id or from-tag")
            to_tag = offerer.peer.tag or from_tag
        answerer = offerer.peer
        if answerer is None:
            raise NgError("No offer for this from-tag")
        call.last_signal = self.clock()
        if answerer is call.pending or answerer.tag != to_tag:
            # The first answer names the answerer (a later fork's answer re-tags it).
            call.sides.pop(answerer.tag, None)
            answerer.tag = to_tag
            call.sides[to_tag] = answerer
            call.pending = None
        return self._apply(answerer, offerer, session, flags, source, options, False)

    def _apply(
        self,
        sender: Side,
        receiver: Side,
        session: sdp.Session,
        flags: MediaFlags,
        source: str | None,
        options: sdp.RewriteOptions,
        is_offer: bool,
    ) -> bytes:
        """Record `sender`'s SDP, pair the legs, and rewrite it for `receiver`."""
        endpoints: list[sdp.MediaEndpoint | None] = []
        for index, media in enumerate(session.media):
            if media.rejected:
                # RFC 3264 6: port 0 rejects the stream; free what it held.
                self._drop_leg(sender, index)
                if not is_offer:
                    self._drop_leg(receiver, index)
                endpoints.append(None)
                continue
            mine = self._leg(sender, index)
            theirs = self._leg(receiver, index)
            conn = session.media_connection(index)
            host = source if source is not None else (conn.host if conn else None)
            rtcp_port = media.rtcp_port or media.port + 1
            mine.rtcp_mux = media.rtcp_mux
            if mine.rtcp_mux:
                rtcp_port = media.port
            rtp_addr: Address | None = None
            rtcp_addr: Address | None = None
            # RFC 3264 8.4: 0.0.0.0 (old-style hold) names no address; latching decides.
            if host is not None and host not in ("0.0.0.0", "::"):
                rtp_addr, rtcp_addr = (host, media.port), (host, rtcp_port)
            mine.rtp.set_advertised(rtp_addr, flags)
            mine.rtcp.set_advertised(rtcp_addr, flags)
            mine.media_type = media.media
            mine.protocol = media.proto
            mine.direction = session.media_direction(index)
            # RFC 3264 6.1 / RFC 8866 6.7: a recvonly or inactive party sends no RTP;
            # the relay forwards none from it (RTCP still flows, RFC 3264 5.1).
            mine.rtp.blocked = mine.direction in ("recvonly", "inactive")
            mine.rtp.peer, theirs.rtp.peer = theirs.rtp, mine.rtp
            mine.rtcp.peer, theirs.rtcp.peer = theirs.rtcp, mine.rtcp
            endpoints.append(
                sdp.MediaEndpoint(self.address, theirs.pair.rtp_port, theirs.pair.rtcp_port)
            )
        for index in [i for i in sender.legs if i >= len(session.media)]:
            self._drop_leg(sender, index)
        if options.session_version is not None:
            options = dataclasses.replace(options, session_version=None)
        out = sdp.rewrite(session, endpoints, options)
        # RFC 3264 8: a changed description carries a higher o= version; an unchanged
        # one keeps it. The relay keeps its own counter per direction.
        body = out.serialise()
        version = own_version = out.origin.session_version
        if sender.version is not None:
            version = sender.version if body == sender.last_output else sender.version + 1
            version = max(version, own_version)
        sender.last_output, sender.version = body, version
        if version != own_version:
            out = sdp.rewrite(
                session, endpoints, dataclasses.replace(options, session_version=version)
            )
            body = out.serialise()
        return body

    def _leg(self, side: Side, index: int) -> Leg:
        leg = side.legs.get(index)
        if leg is None:
            pair = self.pool.allocate()
            rtp = Port(pair.rtp, pair.rtp_port, "RTP")
            rtcp = Port(pair.rtcp, pair.rtcp_port, "RTCP")
            self.loop.add_reader(rtp.fd, self._readable, rtp)
            self.loop.add_reader(rtcp.fd, self._readable, rtcp)
            leg = side.legs[index] = Leg(index, pair, rtp, rtcp)
        return leg

    def _drop_leg(self, side: Side, index: int) -> None:
        leg = side.legs.pop(index, None)
        if leg is None:
            return
        for port in (leg.rtp, leg.rtcp):
            self.loop.remove_reader(port.fd)
            self.totals.packets += port.packets
            self.totals.bytes += port.bytes
            self.totals.errors += port.errors
            if port.peer is not None and port.peer.peer is port:
                port.peer.peer = None
            port.peer = None
        self.pool.release(leg.pair)

    def delete(self, call_id: str) -> dict[str, Any]:
        call = self.calls.get(call_id)
        if call is None:
            raise NgError("Call-ID not found")
        report = self.query(call_id)
        self._free(call)
        self.totals.deleted += 1
        return report

    def _free(self, call: Call) -> None:
        sides = list(call.sides.values())
        if call.pending is not None:
            sides.append(call.pending)
        for side in sides:
            for index in list(side.legs):
                self._drop_leg(side, index)
            side.peer = None
        self.calls.pop(call.call_id, None)

    def close(self) -> None:
        for call in list(self.calls.values()):
            self._free(call)

    # ---- timers -----------------------------------------------------------------

    def expire(self, now: float | None = None) -> list[str]:
        """Free every call idle for longer than the timeout; returns their Call-IDs."""
        now = self.clock() if now is None else now
        limit = now - self.settings.timeout
        gone = [call.call_id for call in self.calls.values() if self._last_activity(call) < limit]
        for call_id in gone:
            log.info("call %s timed out", call_id)
            self._free(self.calls[call_id])
            self.totals.timed_out += 1
        return gone

    @staticmethod
    def _last_activity(call: Call) -> float:
        last = call.last_signal
        for side in call.sides.values():
            for leg in side.legs.values():
                last = max(last, leg.rtp.last_packet, leg.rtcp.last_packet)
        return last

    # ---- data path --------------------------------------------------------------

    def _readable(self, port: Port) -> None:
        recvfrom = port.recvfrom
        # Until latched, every source goes through _accept (which latches it).
        remote = port.remote if port.latched else None
        peer = port.peer
        packets = received = 0
        nbytes = errors = 0
        while received < BATCH:
            try:
                data, source = recvfrom(MAX_DATAGRAM)
            except BlockingIOError:
                break
            except OSError:
                errors += 1
                break
            received += 1
            if source != remote:
                if not self._accept(port, source):
                    continue
                remote = port.remote if port.latched else None
            if port.blocked or peer is None:
                port.dropped += 1
                continue
            destination = peer.remote
            if destination is None:
                errors += 1
                continue
            try:
                peer.sendto(data, destination)
            except OSError:
                errors += 1
                continue
            packets += 1
            nbytes += len(data)
        if received:
            port.packets += packets
            port.bytes += nbytes
            port.errors += errors
            port.last_packet = self.clock()

    @staticmethod
    def _accept(port: Port, source: Address) -> bool:
        """Latching (module docstring): may a packet from `source` pass, and re-latch?"""
        flags = port.flags
        if not flags.symmetric:
            if flags.strict_source and source != port.advertised:
                port.dropped += 1
                port.errors += 1
                return False
            return True
        if not port.latched:
            port.remote, port.latched = source, True
            return True
        if flags.media_handover and not flags.port_latching:
            port.remote = source
            return True
        if flags.strict_source:
            port.dropped += 1
            port.errors += 1
            return False
        return True

    # ---- reports ----------------------------------------------------------------

    def _wall(self, monotonic: float) -> int:
        if not monotonic:
            return 0
        return int(self.wallclock() - (self.clock() - monotonic))

    def query(self, call_id: str) -> dict[str, Any]:
        call = self.calls.get(call_id)
        if call is None:
            raise NgError("Unknown call-id")
        tags: dict[str, Any] = {}
        totals = {
            "RTP": {"packets": 0, "bytes": 0, "errors": 0},
            "RTCP": {"packets": 0, "bytes": 0, "errors": 0},
        }
        for side in call.sides.values():
            medias = []
            for index in sorted(side.legs):
                leg = side.legs[index]
                streams = []
                for port in (leg.rtp, leg.rtcp):
                    streams.append(self._stream_report(port))
                    for key, value in port.stats().items():
                        totals[port.kind][key] += value
                medias.append(
                    {
                        "index": index + 1,
                        "type": leg.media_type,
                        "protocol": leg.protocol,
                        "direction": leg.direction,
                        "streams": streams,
                        "flags": ["rtcp-mux"] if leg.rtcp_mux else [],
                    }
                )
            tags[side.tag] = {
                "tag": side.tag,
                "created": int(side.created),
                "in dialogue with": side.peer.tag if side.peer else "",
                "medias": medias,
            }
        return {
            "created": int(call.created),
            "last signal": self._wall(call.last_signal),
            "tags": tags,
            "totals": totals,
        }

    def _stream_report(self, port: Port) -> dict[str, Any]:
        flags = [port.kind]
        if port.latched:
            flags.append("confirmed")
        if port.flags.strict_source:
            flags.append("strict source")
        if port.flags.media_handover:
            flags.append("media handover")
        return {
            "local port": port.number,
            "local address": self.address,
            "family": "IPv6" if ":" in self.address else "IPv4",
            "endpoint": _endpoint(port.remote),
            "advertised endpoint": _endpoint(port.advertised),
            "last packet": self._wall(port.last_packet),
            "flags": flags,
            "stats": {**port.stats(), "dropped": port.dropped},
        }

    def statistics(self) -> dict[str, Any]:
        packets, nbytes, errors = self.totals.packets, self.totals.bytes, self.totals.errors
        for call in self.calls.values():
            for side in call.sides.values():
                for leg in side.legs.values():
                    for port in (leg.rtp, leg.rtcp):
                        packets += port.packets
                        nbytes += port.bytes
                        errors += port.errors
        return {
            "currentstatistics": {
                "sessionsown": len(self.calls),
                "sessionsforeign": 0,
                "sessionstotal": len(self.calls),
                "portsfree": self.pool.available,
            },
            "totalstatistics": {
                "uptime": str(int(self.wallclock() - self.started)),
                "managedsessions": self.totals.managed,
                "rejectedsessions": self.totals.rejected,
                "timeoutsessions": self.totals.timed_out,
                "regularterminatedsessions": self.totals.deleted,
                "relayedpackets": packets,
                "relayedbytes": nbytes,
                "relayedpacketerrors": errors,
            },
        }


def _endpoint(address: Address | None) -> dict[str, Any]:
    if address is None:
        return {}
    family = "IPv6" if ":" in address[0] else "IPv4"
    return {"family": family, "address": address[0], "port": address[1]}


def _parse(body: bytes) -> sdp.Session:
    try:
        return sdp.parse(body)
    except sdp.SDPError as exc:
        raise NgError(f"Failed to parse SDP: {exc}") from None
