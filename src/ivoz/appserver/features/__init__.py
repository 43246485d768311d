"""Routing features, one module each; ``default_features`` is the order they run in.

Unconditional forwarding comes first (a forwarded user's phone never rings, even on
do-not-disturb), then do-not-disturb, then the call waiting limit. The extension
lookup itself is the router's (``Router.dialled``).
"""

from __future__ import annotations

from ivoz.appserver.features.call_waiting import CallWaitingLimit
from ivoz.appserver.features.dnd import DoNotDisturb
from ivoz.appserver.features.forwarding import CallForwarding
from ivoz.appserver.routing import Feature


def default_features() -> list[Feature]:
    return [CallForwarding(), DoNotDisturb(), CallWaitingLimit()]


__all__ = ["CallForwarding", "CallWaitingLimit", "DoNotDisturb", "default_features"]
