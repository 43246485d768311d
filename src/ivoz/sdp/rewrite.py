"""Rewriting a description so that media flows through a relay.

The relay decides the addresses and ports; this module only edits lines: ``c=`` (session
and media level) to the relay's address, each relayed ``m=`` port to its relay port,
``a=rtcp`` to the relay's RTCP port, optionally ``o=`` and the ICE lines. Rejected
streams (port 0) and every line not named here are left exactly as they were.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from ivoz.sdp.model import Connection, Line, Media, Origin, SDPError, Session

# RFC 8839 5: the ICE attributes; "ICE=remove" strips all of them.
ICE_ATTRIBUTES = frozenset(
    {
        "candidate",
        "remote-candidates",
        "ice-ufrag",
        "ice-pwd",
        "ice-options",
        "ice-lite",
        "ice-mismatch",
        "ice-pacing",
        "end-of-candidates",
    }
)


@dataclass(frozen=True, slots=True)
class MediaEndpoint:
    """Where the relay receives one media line: its address, RTP and RTCP ports."""

    address: str
    rtp_port: int
    rtcp_port: int

    def __post_init__(self) -> None:
        for port in (self.rtp_port, self.rtcp_port):
            if not 0 < port <= 65535:
                raise ValueError(f"relay port out of range: {port}")


@dataclass(frozen=True, slots=True)
class RewriteOptions:
    """What to change besides the connection addresses and ports."""

    # ng "replace origin": o= carries the relay's address.
    replace_origin: bool = False
    # The o= session version to write (the relay bumps it when its output changes).
    session_version: int | None = None
    # ng "ICE": "remove".
    remove_ice: bool = False
    # ng "transport protocol": the proto to write into relayed m= lines.
    transport_protocol: str | None = None


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def rewrite(
    session: Session,
    endpoints: Sequence[MediaEndpoint | None],
    options: RewriteOptions = RewriteOptions(),
) -> Session:
    """A copy of `session` with media line i relayed through ``endpoints[i]``.

    ``endpoints[i] is None`` leaves media line i untouched (it is rejected or not
    relayed). Raises :class:`SDPError` when the counts do not match.
    """
    if len(endpoints) != len(session.media):
        raise SDPError(f"{len(endpoints)} relay endpoints for {len(session.media)} media lines")
    relayed = [e for e in endpoints if e is not None]
    relay_address = relayed[0].address if relayed else None

    session_lines: list[Line] = []
    for line in session.lines:
        if line.type == "o" and options.replace_origin and relay_address is not None:
            o = Origin.parse(line.value)
            origin = Origin(
                o.username,
                o.session_id,
                o.session_version,
                o.nettype,
                _addrtype(relay_address),
                relay_address,
            )
            line = Line("o", str(origin))
        if line.type == "o" and options.session_version is not None:
            o = Origin.parse(line.value)
            origin = Origin(
                o.username, o.session_id, options.session_version, o.nettype, o.addrtype, o.address
            )
            line = Line("o", str(origin))
        elif line.type == "c" and relay_address is not None:
            # RFC 8866 5.7: the session-level c= applies to every media line without one.
            conn = Connection.parse(line.value)
            line = Line("c", str(Connection(conn.nettype, _addrtype(relay_address), relay_address)))
        elif line.type == "a" and options.remove_ice and line.attribute_name in ICE_ATTRIBUTES:
            continue
        session_lines.append(line)
    has_session_connection = any(line.type == "c" for line in session_lines)

    media_out: list[Media] = []
    for media, endpoint in zip(session.media, endpoints, strict=True):
        if endpoint is None or media.rejected:
            # RFC 3264 6: a rejected stream keeps port 0 in every later description.
            media_out.append(media)
            continue
        media_out.append(_rewrite_media(media, endpoint, options, has_session_connection))
    return Session(tuple(session_lines), tuple(media_out), session.encoding)


def _rewrite_media(
    media: Media, endpoint: MediaEndpoint, options: RewriteOptions, session_connection: bool
) -> Media:
    lines: list[Line] = []
    saw_connection = False
    for line in media.lines:
        if line.type == "c":
            conn = Connection.parse(line.value)
            addrtype = _addrtype(endpoint.address)
            line = Line("c", str(Connection(conn.nettype, addrtype, endpoint.address)))
            saw_connection = True
        elif line.type == "a":
            name = line.attribute_name
            if name == "rtcp":
                continue  # rewritten below
            if options.remove_ice and name in ICE_ATTRIBUTES:
                continue
        lines.append(line)
    if not saw_connection and not session_connection:
        # RFC 8866 5.7: every media line needs a connection address from somewhere.
        conn = Connection("IN", _addrtype(endpoint.address), endpoint.address)
        lines.insert(_connection_position(lines), Line("c", str(conn)))
    # RFC 3605 2.1: a=rtcp names the RTCP port when it is not RTP+1. RFC 5761 5.1.3:
    # with rtcp-mux it may name the RTP port itself; the relay always writes it.
    rtcp_port = endpoint.rtp_port if media.rtcp_mux else endpoint.rtcp_port
    lines.append(Line("a", f"rtcp:{rtcp_port}"))
    proto = options.transport_protocol or media.proto
    return dataclasses.replace(media, port=endpoint.rtp_port, proto=proto, lines=tuple(lines))


def _connection_position(lines: list[Line]) -> int:
    # RFC 8866 5: media-level order is i=, c=, b=, k=, a=.
    for index, line in enumerate(lines):
        if line.type not in "i":
            return index
    return len(lines)
