"""Call waiting limit: a user already in ``call_waiting_limit`` calls is busy.

The count is the user's calls in this application server (as caller or callee, ringing
or answered), given by ``RouteContext.active_calls``. A limit of 0 means no limit (the
configuration model's convention).
"""

from __future__ import annotations

from typing import Any

from ivoz.appserver.events import CallFailed, RingingTimedOut
from ivoz.appserver.routing import Busy, FeatureDecision, RouteContext


class CallWaitingLimit:
    name = "call-waiting-limit"

    def before_ring(self, ctx: RouteContext, user: Any) -> FeatureDecision | None:
        limit = user.call_waiting_limit
        if limit and ctx.active_calls(user.id) >= limit:
            return Busy("call waiting limit")
        return None

    def ring_timeout(self, ctx: RouteContext, user: Any) -> float | None:
        return None

    def after_failure(
        self, ctx: RouteContext, user: Any, event: CallFailed | RingingTimedOut
    ) -> FeatureDecision | None:
        return None
