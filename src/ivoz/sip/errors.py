"""Errors of the SIP core: blame the right side.

`RemoteError` is raised for malformed input from the network and carries the status to
answer with (RFC 3261 21.4: 400 Bad Request, 416, 420, 483, 505, 513...). Its
``respondable`` flag is False when the message is so broken that no response can be
built from it (no usable Via, Call-ID, CSeq, From or To, or it is a response): the
transport drops such a message instead of answering. When it is True and the error came
out of `parse_message`, ``request`` holds what was parsed, so that the transport can
answer with ``make_response(exc.request, exc.status, exc.reason)``. `LocalError` is misuse by our own
code (setting a header value with a line break, building a value out of range).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .message import Request


class SIPError(Exception):
    """Base of every error the SIP core raises."""


class RemoteError(SIPError):
    """The peer sent something malformed: answer with ``status`` and ``reason``."""

    def __init__(
        self,
        status: int,
        reason: str,
        *,
        respondable: bool = True,
        request: Request | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.respondable = respondable
        # The request to answer (set by the parser when respondable), else None.
        self.request = request

    def __repr__(self) -> str:
        return f"RemoteError({self.status!r}, {self.reason!r}, respondable={self.respondable!r})"


class LocalError(SIPError):
    """Our own code misused the SIP core (a bug on this side, never the peer's)."""


def bad_request(reason: str) -> RemoteError:
    """A 400 Bad Request (RFC 3261 21.4.1) whose reason names the problem."""
    return RemoteError(400, reason)
