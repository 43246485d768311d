"""RFC 4475 torture messages through the users proxy (SipNode) and the stream framer."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_transport_endpoint import Endpoint

from ivoz.config import Config
from ivoz.sip import Response, parse_message
from ivoz.sip.framing import FramingFailed, MessageFramed, StreamFramer
from ivoz.transport import Address, Kind, Origin
from support.tools import RFC4475, require_path


def torture_files() -> list[Path]:
    return sorted(RFC4475.glob("*.dat")) if RFC4475.exists() else []


def origin(kind: Kind) -> Origin:
    connection = None if kind is Kind.UDP else 1
    return Origin(
        kind, Address(kind, "192.0.2.9", 4000), Address(kind, "127.0.0.1", 5060), connection
    )


def statuses(data: bytes, kind: Kind = Kind.UDP) -> list[int]:
    out = []
    for reply in Endpoint(Config()).receive(data, origin(kind), 0.0):
        response = parse_message(reply.data)
        assert isinstance(response, Response)
        out.append(response.status)
    return out


@pytest.mark.parametrize("path", torture_files(), ids=lambda p: p.stem)
def test_every_torture_message_is_answered_or_dropped_cleanly(path: Path) -> None:
    data = path.read_bytes()
    assert len(statuses(data)) <= 1
    # The same bytes on a stream: framed (or refused) first, then handled.
    framer = StreamFramer()
    for event in framer.feed(data):
        if isinstance(event, MessageFramed):
            assert len(statuses(event.data, Kind.TCP)) <= 1
        elif isinstance(event, FramingFailed):
            assert event.status in (400, 513)


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("badvers", 505),  # RFC 4475 3.1.2.16
        ("ncl", 400),  # 3.1.2.3 negative Content-Length
        ("clerr", 400),  # 3.1.2.2 Content-Length larger than the datagram
        ("lwsstart", 400),  # 3.1.2.9
        ("mismatch01", 400),  # 3.1.2.17 CSeq method mismatch
        ("intmeth", 501),  # 3.1.1.3: valid, but an unknown method
        ("inv2543", 403),  # 3.1.1.13: valid RFC 2543 INVITE from a domain we do not serve
        ("unreason", 0),  # 3.1.1.11: a response (odd reason phrase): never answered
    ],
)
def test_expected_answers(name: str, status: int) -> None:
    path = require_path(RFC4475 / f"{name}.dat", f"RFC 4475 message {name}")
    data = path.read_bytes()
    if data.startswith(b"SIP/2.0"):
        assert statuses(data) == []  # responses are never answered
        return
    assert statuses(data) == [status]
