"""The ng control protocol (rtpengine's): ``cookie SP bencode-dictionary`` over UDP.

:class:`NgServer` is sans-IO: ``process(datagram, now)`` returns the reply datagram.
Replies are cached per cookie for :data:`CACHE_TTL` seconds, so a command the client
retransmits (its reply was lost) is answered again from the cache and not executed
twice. :class:`NgCommands` turns a decoded command into calls on the :class:`Relay`;
whatever goes wrong comes back as ``{"result": "error", "error-reason": ...}``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, cast

from ivoz import sdp
from ivoz.media import bencode
from ivoz.media.relay import LoadLimit, MediaFlags, NgError, Relay

log = logging.getLogger(__name__)

CACHE_TTL = 30.0  # seconds a reply is kept for retransmissions of its cookie
MAX_CACHE = 100_000  # replies; the oldest go first beyond this

COMMANDS = ("ping", "offer", "answer", "delete", "query", "list", "statistics")


def normalise(name: str) -> str:
    """ng keys and flags are spelt with spaces, dashes or underscores alike."""
    return name.strip().lower().replace("-", " ").replace("_", " ")


def _text(value: bencode.Value, key: str) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, int):
        return str(value)
    raise NgError(f"'{key}' must be a string")


def _texts(value: bencode.Value, key: str) -> list[str]:
    if isinstance(value, list):
        return [_text(item, key) for item in value]
    return _text(value, key).split()


class Command:
    """A decoded command dictionary with normalised keys."""

    def __init__(self, raw: dict[bytes, bencode.Value]) -> None:
        self.values: dict[str, bencode.Value] = {}
        for key, value in raw.items():
            self.values[normalise(key.decode("utf-8", "replace"))] = value

    def text(self, key: str, required: bool = False) -> str | None:
        value = self.values.get(key)
        if value is None:
            if required:
                raise NgError(f"No {key.replace(' ', '-')} in message")
            return None
        return _text(value, key)

    def required(self, key: str) -> str:
        text = self.text(key, required=True)
        assert text is not None
        return text

    def texts(self, key: str) -> list[str]:
        value = self.values.get(key)
        return [] if value is None else [normalise(t) for t in _texts(value, key)]

    def body(self) -> bytes:
        value = self.values.get("sdp")
        if not isinstance(value, bytes) or not value:
            raise NgError("No SDP body in message")
        return value


class NgCommands:
    """Runs ng commands against a relay."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def handle(self, raw: bencode.Value) -> dict[str, Any]:
        supports_load_limit = False
        try:
            if not isinstance(raw, dict):
                raise NgError("Message is not a dictionary")
            command = Command(raw)
            supports_load_limit = "load limit" in command.texts("supports")
            name = normalise(command.required("command"))
            handler = getattr(self, f"_{name}", None) if name in COMMANDS else None
            if handler is None:
                raise NgError("Unrecognized command")
            result: dict[str, Any] = handler(command)
            return result
        except LoadLimit as exc:
            if supports_load_limit:
                return {"result": "load limit", "message": str(exc)}
            return {"result": "error", "error-reason": str(exc)}
        except NgError as exc:
            return {"result": "error", "error-reason": str(exc)}
        except Exception:  # garbage must never crash the relay
            log.exception("ng command failed")
            return {"result": "error", "error-reason": "Internal error"}

    def _ping(self, command: Command) -> dict[str, Any]:
        return {"result": "pong"}

    def _options(self, command: Command) -> tuple[MediaFlags, str | None, sdp.RewriteOptions]:
        flags = set(command.texts("flags"))
        replace = set(command.texts("replace"))
        ice = command.text("ice")
        protocol = command.text("transport protocol")
        if protocol is not None and protocol not in ("RTP/AVP", "RTP/AVPF"):
            raise NgError(f"Unsupported transport protocol {protocol}")
        source = None
        received = command.values.get("received from")
        if "sip source address" in flags and "trust address" not in flags:
            if received is None:
                raise NgError("'SIP source address' without 'received from'")
            parts = _texts(received, "received from")
            source = parts[-1]
        media_flags = MediaFlags(
            symmetric="asymmetric" not in flags,
            strict_source="strict source" in flags,
            media_handover="media handover" in flags,
            port_latching="port latching" in flags,
        )
        options = sdp.RewriteOptions(
            replace_origin="origin" in replace,
            remove_ice=ice is not None and ice.lower() == "remove",
            transport_protocol=protocol,
        )
        return media_flags, source, options

    def _offer(self, command: Command) -> dict[str, Any]:
        flags, source, options = self._options(command)
        body = self.relay.offer(
            command.required("call id"),
            command.required("from tag"),
            command.body(),
            to_tag=command.text("to tag") or None,
            flags=flags,
            source=source,
            options=options,
        )
        return {"result": "ok", "sdp": body}

    def _answer(self, command: Command) -> dict[str, Any]:
        flags, source, options = self._options(command)
        body = self.relay.answer(
            command.required("call id"),
            command.required("from tag"),
            command.required("to tag"),
            command.body(),
            flags=flags,
            source=source,
            options=options,
        )
        return {"result": "ok", "sdp": body}

    def _delete(self, command: Command) -> dict[str, Any]:
        report = self.relay.delete(command.required("call id"))
        return {"result": "ok", **report}

    def _query(self, command: Command) -> dict[str, Any]:
        return {"result": "ok", **self.relay.query(command.required("call id"))}

    def _list(self, command: Command) -> dict[str, Any]:
        limit_text = command.text("limit")
        limit = int(limit_text) if limit_text and limit_text.isdigit() else 32
        return {"result": "ok", "calls": list(self.relay.calls)[:limit]}

    def _statistics(self, command: Command) -> dict[str, Any]:
        return {"result": "ok", "statistics": self.relay.statistics()}


class NgServer:
    """Cookie framing and the reply cache around :class:`NgCommands`."""

    def __init__(self, handle: Callable[[bencode.Value], dict[str, Any]]) -> None:
        self.handle = handle
        self._cache: OrderedDict[bytes, tuple[float, bytes]] = OrderedDict()
        self.executed = 0
        self.retransmissions = 0
        self.unframed = 0

    def process(self, datagram: bytes, now: float) -> bytes | None:
        """The reply to one datagram, or None when it has no cookie to answer to."""
        self._purge(now)
        cookie, sep, payload = datagram.partition(b" ")
        if not sep or not cookie:
            self.unframed += 1
            return None
        cached = self._cache.get(cookie)
        if cached is not None:
            self.retransmissions += 1
            return cached[1]
        try:
            command = bencode.decode(payload)
        except bencode.BencodeError as exc:
            reply = {"result": "error", "error-reason": f"Could not decode message: {exc}"}
        else:
            self.executed += 1
            reply = self.handle(command)
        data = cookie + b" " + bencode.encode(reply)
        self._cache[cookie] = (now + CACHE_TTL, data)
        if len(self._cache) > MAX_CACHE:
            self._cache.popitem(last=False)
        return data

    def _purge(self, now: float) -> None:
        cache = self._cache
        while cache:
            cookie, (expires, _) = next(iter(cache.items()))
            if expires > now:
                break
            del cache[cookie]


class NgProtocol(asyncio.DatagramProtocol):
    """The UDP socket around an :class:`NgServer`."""

    def __init__(self, server: NgServer, clock: Callable[[], float]) -> None:
        self.server = server
        self.clock = clock
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.server.process(data, self.clock())
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("ng socket error: %s", exc)
