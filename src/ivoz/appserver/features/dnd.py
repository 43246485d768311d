"""Do-not-disturb: a user with DND set is busy (486, or the busy forward)."""

from __future__ import annotations

from typing import Any

from ivoz.appserver.events import CallFailed, RingingTimedOut
from ivoz.appserver.routing import Busy, FeatureDecision, RouteContext


class DoNotDisturb:
    name = "do-not-disturb"

    def before_ring(self, ctx: RouteContext, user: Any) -> FeatureDecision | None:
        return Busy("do-not-disturb") if user.do_not_disturb else None

    def ring_timeout(self, ctx: RouteContext, user: Any) -> float | None:
        return None

    def after_failure(
        self, ctx: RouteContext, user: Any, event: CallFailed | RingingTimedOut
    ) -> FeatureDecision | None:
        return None
