"""The application server: a B2BUA running each client's PBX logic (issue 5).

``b2bua.B2BUA`` is the sans-IO call engine (SIP in through a ``SipPort``, SIP out
through the same port, call-control events out, a clock injected); ``routing.Router``
and the plugins in ``features/`` decide where a call goes; ``role.serve`` runs it on a
``ivoz.transport.node.SipNode``. See docs/application-server.md.
"""

from .events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallFailed,
    CallProgressed,
    LegId,
    RingingTimedOut,
)

__all__ = [
    "CallAnswered",
    "CallEnded",
    "CallEvent",
    "CallFailed",
    "CallProgressed",
    "LegId",
    "RingingTimedOut",
]
