"""Call forwarding: unconditional, on busy, on no answer, when not registered.

Reads the user's forwards (``Directory.forwards(user_id)``, only the enabled ones):

| kind | when | from |
|---|---|---|
| unconditional | before the phone rings | ``before_ring`` |
| busy | 486 Busy Here or 600 Busy Everywhere from the callee, or a local busy (DND, call waiting limit) | ``after_failure`` |
| noanswer | ``no_answer_timeout`` seconds of ringing (the B2BUA's timer: ``RingingTimedOut``) | ``ring_timeout``, ``after_failure`` |
| unregistered | 480 Temporarily Unavailable or 404 Not Found from the proxy (no registered contact), or no terminal | ``after_failure`` |

The target is an extension of the same company or an external number
(``Divert``; the router counts hops and refuses external numbers for now).
"""

from __future__ import annotations

from typing import Any

from ivoz.appserver.events import CallFailed, RingingTimedOut
from ivoz.appserver.routing import Divert, FeatureDecision, RouteContext

# RFC 3261 21.4.24 486 Busy Here, 21.6.1 600 Busy Everywhere
BUSY_STATUSES = frozenset({486, 600})
# RFC 3261 21.4.18 480 Temporarily Unavailable, 21.4.5 404 Not Found: the proxy's
# answers when the callee has no registered contact
UNREGISTERED_STATUSES = frozenset({480, 404})


class CallForwarding:
    name = "call-forwarding"

    def _forward(self, ctx: RouteContext, user: Any, kind: str) -> Any | None:
        for forward in ctx.directory.forwards(user.id):
            if forward.enabled and forward.kind == kind:
                return forward
        return None

    def _divert(self, ctx: RouteContext, user: Any, kind: str) -> Divert | None:
        forward = self._forward(ctx, user, kind)
        if forward is None:
            return None
        return Divert(forward.target_type, forward.target, kind)

    def before_ring(self, ctx: RouteContext, user: Any) -> FeatureDecision | None:
        return self._divert(ctx, user, "unconditional")

    def ring_timeout(self, ctx: RouteContext, user: Any) -> float | None:
        forward = self._forward(ctx, user, "noanswer")
        if forward is None:
            return None
        return float(max(1, forward.no_answer_timeout))

    def after_failure(
        self, ctx: RouteContext, user: Any, event: CallFailed | RingingTimedOut
    ) -> FeatureDecision | None:
        if isinstance(event, RingingTimedOut):
            return self._divert(ctx, user, "noanswer")
        if event.status in BUSY_STATUSES:
            return self._divert(ctx, user, "busy")
        if event.status in UNREGISTERED_STATUSES:
            return self._divert(ctx, user, "unregistered")
        return None
