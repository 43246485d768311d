"""Where a call goes: the router and the shape of a routing feature.

The B2BUA asks the :class:`Router` three questions, always with call-control events
or plain values, never SIP (STYLE.md rule 9):

* ``dialled(ctx, number)``: a new call to ``number`` (an extension of the caller's
  company);
* ``failed(ctx, user, event)``: the B-leg ringing ``user`` failed (``CallFailed``, from
  the callee or decided locally) or rang too long (``RingingTimedOut``);

and always gets a final :class:`Ring` (place a B-leg to that terminal) or
:class:`Reject` (answer the caller with that status). Features are plugins
(``features/``): each may stop or divert the call before the callee rings
(``before_ring``), name a no-answer time (``ring_timeout``) and divert it after a
failure (``after_failure``). A feature returns :class:`Busy` to say "treat the callee
as busy" (the busy forward then applies), or :class:`Divert` to send the call to another
extension or number. Diversions are counted in ``ctx.hops``; more than
:data:`MAX_HOPS` ends the call with 482 Loop Detected.

External numbers (a forward to a number, an extension routed to a number) have no
trunk yet: they end with 404 "External calls not available".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from ivoz.appserver.events import CallFailed, LegId, RingingTimedOut
from ivoz.appserver.ports import DirectoryReader

# Diversions (forwards) one call may take before it is refused as a loop.
MAX_HOPS = 5
EXTERNAL_UNAVAILABLE = (404, "External calls not available")
# decisions taken before any B-leg exists carry this placeholder leg
_NO_LEG = LegId("", "")


@dataclass(frozen=True, slots=True)
class Ring:
    """Place a B-leg to ``terminal`` (of ``user``); ``no_answer_timeout`` in seconds."""

    user: Any  # UserView
    terminal: Any  # TerminalView
    no_answer_timeout: float | None = None
    dialled: str = ""


@dataclass(frozen=True, slots=True)
class Reject:
    """Answer the caller with this final status."""

    status: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Busy:
    """A feature found the callee busy (do-not-disturb, call waiting limit)."""

    why: str


@dataclass(frozen=True, slots=True)
class Divert:
    """Send the call elsewhere: ``target_type`` "extension" or "number"."""

    target_type: str
    target: str
    why: str  # "unconditional", "busy", "noanswer", "unregistered"


Decision = Ring | Reject
FeatureDecision = Ring | Reject | Busy | Divert


@dataclass(frozen=True, slots=True)
class RouteContext:
    """What routing knows about a call: the tenant and caller from the trusted headers."""

    company: Any  # CompanyView
    caller_terminal: Any | None  # TerminalView
    caller_user: Any | None  # UserView
    directory: DirectoryReader
    active_calls: Callable[[int], int] = field(default=lambda user_id: 0)
    hops: int = 0
    diversions: tuple[str, ...] = ()  # the extensions the call was diverted from


class Feature(Protocol):
    """A routing plugin. Every hook may return None: no opinion."""

    name: str

    def before_ring(self, ctx: RouteContext, user: Any) -> FeatureDecision | None: ...

    def ring_timeout(self, ctx: RouteContext, user: Any) -> float | None: ...

    def after_failure(
        self, ctx: RouteContext, user: Any, event: CallFailed | RingingTimedOut
    ) -> FeatureDecision | None: ...


class Router:
    """Runs the features in order; see the module docstring."""

    def __init__(self, features: Sequence[Feature] | None = None) -> None:
        if features is None:
            from ivoz.appserver.features import default_features

            features = default_features()
        self.features = tuple(features)

    def dialled(self, ctx: RouteContext, number: str) -> tuple[Decision, RouteContext]:
        """The decision for a call to extension ``number``, and the context it used."""
        extension = ctx.directory.extension(ctx.company.id, number)
        if extension is None:
            return Reject(404, "Extension not found"), ctx
        if extension.route_type == "number":
            return Reject(*EXTERNAL_UNAVAILABLE), ctx
        user = None if extension.user_id is None else ctx.directory.user(extension.user_id)
        if (
            extension.route_type != "user"
            or user is None
            or user.company_id != ctx.company.id
            or not getattr(user, "active", True)
        ):
            # only users are routable yet (IVRs, hunt groups... come with their issues)
            return Reject(404, "Extension not routable"), ctx
        return self._offer(ctx, user, number)

    def failed(
        self, ctx: RouteContext, user: Any, event: CallFailed | RingingTimedOut
    ) -> tuple[Decision | None, RouteContext]:
        """After a B-leg failure or ring timeout; None: keep ringing (timeouts only)."""
        for feature in self.features:
            decision = feature.after_failure(ctx, user, event)
            if decision is not None:
                return self._settle(ctx, user, decision)
        if isinstance(event, RingingTimedOut):
            return None, ctx
        return Reject(event.status), ctx

    def _offer(self, ctx: RouteContext, user: Any, dialled: str) -> tuple[Decision, RouteContext]:
        for feature in self.features:
            decision = feature.before_ring(ctx, user)
            if decision is not None:
                return self._settle(ctx, user, decision)
        terminal = (
            None if user.terminal_id is None else ctx.directory.terminal_by_id(user.terminal_id)
        )
        if terminal is None:
            # a user without a terminal is as good as not registered
            return self._after(ctx, user, CallFailed(_NO_LEG, 480, local=True))
        timeouts = [t for f in self.features if (t := f.ring_timeout(ctx, user)) is not None]
        return Ring(user, terminal, min(timeouts) if timeouts else None, dialled), ctx

    def _after(
        self, ctx: RouteContext, user: Any, event: CallFailed
    ) -> tuple[Decision, RouteContext]:
        decision, ctx = self.failed(ctx, user, event)
        assert decision is not None  # only timeouts may keep ringing
        return decision, ctx

    def _settle(
        self, ctx: RouteContext, user: Any, decision: FeatureDecision
    ) -> tuple[Decision, RouteContext]:
        if isinstance(decision, Busy):
            # RFC 3261 21.4.24: 486 Busy Here; the busy forward may still apply
            return self._after(ctx, user, CallFailed(_NO_LEG, 486, local=True))
        if isinstance(decision, Divert):
            return self.divert(ctx, user, decision)
        return decision, ctx

    def divert(self, ctx: RouteContext, user: Any, divert: Divert) -> tuple[Decision, RouteContext]:
        if ctx.hops >= MAX_HOPS:
            # RFC 3261 21.4.20: 482 Loop Detected
            return Reject(482, "Forwarding loop"), ctx
        ctx = replace(
            ctx,
            hops=ctx.hops + 1,
            diversions=(*ctx.diversions, user.extension_number or str(user.id)),
        )
        if divert.target_type != "extension":
            return Reject(*EXTERNAL_UNAVAILABLE), ctx
        return self.dialled(ctx, divert.target)
