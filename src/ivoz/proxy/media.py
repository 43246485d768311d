"""Media anchoring for the users proxy: ng offer, answer and delete on the client's relays.

:class:`MediaAnchor` turns a call leg's SDP into the relay's SDP through the client's
media relay set (``directory.media_relays(company.media_relay_set_id)``; every relay
when the client names no set), with :class:`ivoz.media.client.RelaySet` choosing the
relay and remembering its owner, so every leg's RTP flows through a relay. The flags
are those of a users proxy facing phones behind NAT (Kamailio + rtpengine practice):

- ``SIP source address`` with ``received from`` = the packet's source when the SDP
  comes from a phone (the address in its SDP may be private; RTP latching then learns
  the real one, ``symmetric`` is the relay's default);
- ``replace: origin, session-connection`` so that o= and c= name the relay;
- ``ICE: remove``: the relay is the only candidate (WebRTC media is not in scope).

SDP from an application server (already pointing at a relay) is trusted as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from ivoz.transport.address import Address

log = logging.getLogger(__name__)


class RelaySetLike(Protocol):
    """The part of :class:`ivoz.media.client.RelaySet` used here."""

    async def offer(self, call_id: str, from_tag: str, sdp: bytes, **options: Any) -> Any: ...

    async def answer(
        self, call_id: str, from_tag: str, to_tag: str, sdp: bytes, **options: Any
    ) -> bytes: ...

    async def delete(self, call_id: str, **options: Any) -> Any: ...


def ng_options(source: Address | None) -> dict[str, Any]:
    """The ng options for SDP that came from ``source`` (None: a trusted server)."""
    options: dict[str, Any] = {
        "replace": ["origin", "session-connection"],
        "ICE": "remove",
    }
    if source is not None:
        family = "IP6" if ":" in source.host else "IP4"
        options["flags"] = ["SIP source address"]
        options["received from"] = [family, source.host]
    return options


def has_sdp(body: bytes, content_type: str | None) -> bool:
    if not body:
        return False
    return content_type is None or content_type.split(";")[0].strip().lower() == "application/sdp"


class MediaAnchor:
    """ng commands for the proxy, on the relay set of each client."""

    def __init__(self, relay_set_for: Callable[[int | None], RelaySetLike | None]) -> None:
        #: the relay set of a client's media_relay_set_id (None: the default set)
        self.relay_set_for = relay_set_for

    async def offer(
        self, set_id: int | None, call_id: str, from_tag: str, sdp: bytes, source: Address | None
    ) -> bytes:
        relays = self._set(set_id)
        result = await relays.offer(call_id, from_tag, sdp, **ng_options(source))
        body = result[0] if isinstance(result, tuple) else result
        if not isinstance(body, bytes):
            raise ValueError("the relay answered no SDP")
        return body

    async def answer(
        self,
        set_id: int | None,
        call_id: str,
        from_tag: str,
        to_tag: str,
        sdp: bytes,
        source: Address | None,
    ) -> bytes:
        relays = self._set(set_id)
        return await relays.answer(call_id, from_tag, to_tag, sdp, **ng_options(source))

    async def delete(self, set_id: int | None, call_id: str) -> None:
        try:
            relays = self._set(set_id)
            await relays.delete(call_id)
        except Exception as exc:  # a call the relay never saw, or a relay gone: nothing to free
            log.debug("ng delete of %s: %s", call_id, exc)

    def _set(self, set_id: int | None) -> RelaySetLike:
        relays = self.relay_set_for(set_id)
        if relays is None:
            raise LookupError(f"no media relay in set {set_id}")
        return relays


class DirectoryRelaySets:
    """``relay_set_for`` backed by the directory and one shared ng client.

    A :class:`ivoz.media.client.RelaySet` is made per set id and made again when the
    directory's list of relays of that set changes.
    """

    def __init__(self, directory: Any, owners: Any, client: Any) -> None:
        self.directory = directory
        self.owners = owners
        self.client = client
        self._sets: dict[int | None, tuple[tuple[tuple[str, int, int], ...], Any]] = {}

    def __call__(self, set_id: int | None) -> RelaySetLike | None:
        from ivoz.media.client import Relay, RelaySet

        views = self.directory.media_relays(set_id)
        if not views and set_id is not None:
            views = self.directory.media_relays(None)
        key = tuple((v.host, v.port, v.weight) for v in views)
        if not key:
            return None
        cached = self._sets.get(set_id)
        if cached is not None and cached[0] == key:
            relays: RelaySetLike = cached[1]
            return relays
        made = RelaySet([Relay(h, p, w) for h, p, w in key], self.owners, self.client)
        self._sets[set_id] = (key, made)
        return made
