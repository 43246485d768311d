"""Call-control events: what happened to a call leg, as past-tense facts.

The B2BUA emits them; PBX features (routing now, CDRs, queues, hunt groups later)
consume them instead of reading SIP (STYLE.md rule 9). A leg is named by a ``LegId``:
the call's id and ``"a"`` for the caller's leg, ``"b1"``, ``"b2"``... for the legs the
application server places, in order (a forwarded call gets a new B-leg).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LegId:
    call: str  # the call's id (the A-leg's Call-ID)
    name: str  # "a", "b1", "b2"...

    @property
    def is_a(self) -> bool:
        return self.name == "a"

    def __str__(self) -> str:
        return f"{self.call}/{self.name}"


@dataclass(frozen=True, slots=True)
class CallProgressed:
    """A provisional response (180 ringing, 183 session progress) came on a B-leg."""

    leg: LegId
    status: int


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """The leg's INVITE got (or, for the A-leg, was sent) a 2xx."""

    leg: LegId


@dataclass(frozen=True, slots=True)
class CallFailed:
    """The leg ended before answer: the final status it got (B) or was sent (A).

    ``local`` is true when the application server decided it without asking the
    callee (do-not-disturb, call waiting limit, no terminal).
    """

    leg: LegId
    status: int
    local: bool = False


@dataclass(frozen=True, slots=True)
class RingingTimedOut:
    """A B-leg rang for its no-answer time without being answered."""

    leg: LegId
    after: float  # seconds


@dataclass(frozen=True, slots=True)
class CallEnded:
    """An answered leg ended; ``by`` is the leg whose BYE ended the call, None when the
    application server ended it itself (ACK never came, a request timed out)."""

    leg: LegId
    by: LegId | None


CallEvent = CallProgressed | CallAnswered | CallFailed | RingingTimedOut | CallEnded
