"""The ng client the proxies use: talk to one relay, or choose among a set of them.

:class:`NgClient` sends a command and waits for the reply with the same cookie,
retransmitting the *same* cookie on silence (the relay answers a retransmission from
its reply cache, so nothing runs twice). :class:`RelaySet` picks a relay for each new
call by weight among the healthy ones (health from periodic ``ping``), moves on to the
next one on ``load limit`` or timeout, and records the owner of each call in a
:class:`ivoz.state.RelayOwners` so that ``answer``, ``query`` and ``delete`` reach the
relay that took the ``offer``. Both work unchanged against rtpengine.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ivoz.media import bencode
from ivoz.state import RelayOwners

log = logging.getLogger(__name__)

Address = tuple[str, int]

TIMEOUT = 1.0  # seconds to wait for one relay's reply, retransmissions included
RETRANSMISSIONS = 2  # extra sends of the same cookie within TIMEOUT
OWNER_TTL = 4 * 3600.0  # seconds; refreshed on each command of the call
PING_INTERVAL = 5.0  # seconds between health pings


class NgTimeout(TimeoutError):
    """The relay did not answer."""


class NgFailed(Exception):
    """The relay answered ``result: error`` (or something we cannot use)."""

    def __init__(self, reason: str, reply: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reply = reply or {}


class NoRelay(Exception):
    """No relay of the set could take the call, or none owns it."""


def _plain(value: bencode.Value) -> Any:
    """Decoded bencode with ``str`` dictionary keys (values stay bytes/int/list)."""
    # bencode.decode makes exactly bytes, int, list and dict: strings and integers,
    # most of a reply, are kept without a call.
    if type(value) is dict:
        return {
            key.decode("utf-8", "replace"): item
            if type(item) is bytes or type(item) is int
            else _plain(item)
            for key, item in value.items()
        }
    if type(value) is list:
        return [
            item if type(item) is bytes or type(item) is int else _plain(item) for item in value
        ]
    return value


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class _ClientProtocol(asyncio.DatagramProtocol):
    def __init__(self, client: NgClient) -> None:
        self.client = client

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.client._received(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("ng client socket error: %s", exc)


class NgClient:
    """One UDP socket for commands to any number of relays."""

    def __init__(self, timeout: float = TIMEOUT, retransmissions: int = RETRANSMISSIONS) -> None:
        self.timeout = timeout
        self.retransmissions = retransmissions
        self._prefix = f"{os.getpid():x}{random.getrandbits(32):08x}"
        self._counter = itertools.count(1)
        self._pending: dict[bytes, asyncio.Future[bytes]] = {}
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self, local_host: str = "127.0.0.1") -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _ClientProtocol(self), local_addr=(local_host, 0)
        )
        self._transport = transport

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()

    async def __aenter__(self) -> NgClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def _received(self, data: bytes) -> None:
        cookie, _, _ = data.partition(b" ")
        future = self._pending.get(cookie)
        if future is not None and not future.done():
            future.set_result(data)

    async def request(
        self, address: Address, command: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """Send one command; the decoded reply (``str`` keys). Raises :class:`NgTimeout`."""
        if self._transport is None:
            await self.start()
        assert self._transport is not None
        cookie = f"{self._prefix}_{next(self._counter)}".encode()
        datagram = cookie + b" " + bencode.encode(command)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        self._pending[cookie] = future
        total = self.timeout if timeout is None else timeout
        interval = total / (self.retransmissions + 1)
        transport = self._transport
        # One timer at a time resends the same datagram (same cookie: the relay answers
        # a retransmission from its reply cache) and, after the last, gives up.
        timer: asyncio.TimerHandle | None = None

        def resend(left: int) -> None:
            nonlocal timer
            if future.done():
                return
            if left == 0:
                future.set_exception(NgTimeout(f"no ng reply from {address[0]}:{address[1]}"))
                return
            transport.sendto(datagram, address)
            timer = loop.call_later(interval, resend, left - 1)

        try:
            resend(self.retransmissions + 1)
            data = await future
        finally:
            if timer is not None:
                timer.cancel()
            self._pending.pop(cookie, None)
            if not future.done():
                future.cancel()
        payload = data.partition(b" ")[2]
        try:
            reply = _plain(bencode.decode(payload))
        except bencode.BencodeError as exc:
            raise NgFailed(f"undecodable reply: {exc}") from None
        if not isinstance(reply, dict):
            raise NgFailed("reply is not a dictionary")
        return reply

    async def command(self, address: Address, command: dict[str, Any]) -> dict[str, Any]:
        """Like :meth:`request`, but ``result: error`` raises :class:`NgFailed`."""
        reply = await self.request(address, command)
        result = _text(reply.get("result", b""))
        if result == "error":
            raise NgFailed(_text(reply.get("error-reason", b"error")), reply)
        return reply


@dataclass(frozen=True, slots=True)
class Relay:
    """One relay of a set: its ng address and weight."""

    host: str
    port: int
    weight: int = 1

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError("relay weight must not be negative")

    @property
    def address(self) -> Address:
        return (self.host, self.port)

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, text: str, weight: int = 1) -> Relay:
        host, _, port = text.rpartition(":")
        return cls(host or "127.0.0.1", int(port), weight)


class RelaySet:
    """Choice of relay per call within one set (the set a client, carrier or DDI uses)."""

    def __init__(
        self,
        relays: Iterable[Relay],
        owners: RelayOwners,
        client: NgClient,
        *,
        owner_ttl: float = OWNER_TTL,
        rng: random.Random | None = None,
    ) -> None:
        self.relays = list(relays)
        if not self.relays:
            raise ValueError("a relay set needs at least one relay")
        self.owners = owners
        self.client = client
        self.owner_ttl = owner_ttl
        self.rng = rng or random.Random()
        self.healthy: dict[str, bool] = {relay.name: True for relay in self.relays}
        self._by_name = {relay.name: relay for relay in self.relays}

    # ---- health -----------------------------------------------------------------

    async def ping(self, relay: Relay) -> bool:
        try:
            reply = await self.client.request(relay.address, {"command": "ping"})
            alive = _text(reply.get("result", b"")) == "pong"
        except (NgTimeout, NgFailed):
            alive = False
        if alive != self.healthy.get(relay.name):
            log.info("relay %s is %s", relay.name, "up" if alive else "down")
        self.healthy[relay.name] = alive
        return alive

    async def ping_all(self) -> None:
        await asyncio.gather(*(self.ping(relay) for relay in self.relays))

    async def watch(self, interval: float = PING_INTERVAL) -> None:
        """Ping every relay every `interval` seconds until cancelled."""
        while True:
            await self.ping_all()
            await asyncio.sleep(interval)

    def candidates(self) -> list[Relay]:
        """Healthy relays in a weighted random order (then the unhealthy, as last resort)."""
        order: list[Relay] = []
        pool = [r for r in self.relays if self.healthy.get(r.name) and r.weight > 0]
        while pool:
            total = sum(r.weight for r in pool)
            pick = self.rng.uniform(0, total)
            for relay in pool:
                pick -= relay.weight
                if pick <= 0:
                    break
            order.append(relay)
            pool.remove(relay)
        order.extend(r for r in self.relays if r not in order and r.weight > 0)
        return order

    # ---- commands ---------------------------------------------------------------

    async def offer(
        self, call_id: str, from_tag: str, sdp: bytes, **options: Any
    ) -> tuple[bytes, Relay]:
        """Anchor a new (or re-offered) call; returns the rewritten SDP and its relay."""
        command = {
            "command": "offer",
            "call-id": call_id,
            "from-tag": from_tag,
            "sdp": sdp,
            **options,
        }
        supports = list(command.get("supports", []))
        if "load limit" not in supports:
            command["supports"] = [*supports, "load limit"]
        owner = await self.owners.get(call_id)
        if owner is not None and owner in self._by_name:
            # A re-INVITE: the call stays where it is.
            relay = self._by_name[owner]
            reply = await self.client.command(relay.address, command)
            return self._sdp(reply), relay
        reasons = []
        for relay in self.candidates():
            try:
                reply = await self.client.command(relay.address, command)
            except NgTimeout:
                self.healthy[relay.name] = False
                reasons.append(f"{relay.name}: timeout")
                continue
            if _text(reply.get("result", b"")) == "load limit":
                reasons.append(f"{relay.name}: load limit")
                continue
            await self.owners.set(call_id, relay.name, self.owner_ttl)
            return self._sdp(reply), relay
        raise NoRelay("no relay took the call (" + "; ".join(reasons) + ")")

    async def answer(
        self, call_id: str, from_tag: str, to_tag: str, sdp: bytes, **options: Any
    ) -> bytes:
        relay = await self._owner(call_id)
        command = {
            "command": "answer",
            "call-id": call_id,
            "from-tag": from_tag,
            "to-tag": to_tag,
            "sdp": sdp,
            **options,
        }
        reply = await self.client.command(relay.address, command)
        await self.owners.set(call_id, relay.name, self.owner_ttl)
        return self._sdp(reply)

    async def delete(self, call_id: str, **options: Any) -> dict[str, Any]:
        relay = await self._owner(call_id)
        try:
            return await self.client.command(
                relay.address, {"command": "delete", "call-id": call_id, **options}
            )
        finally:
            await self.owners.delete(call_id)

    async def query(self, call_id: str) -> dict[str, Any]:
        relay = await self._owner(call_id)
        return await self.client.command(relay.address, {"command": "query", "call-id": call_id})

    async def owner(self, call_id: str) -> Relay | None:
        name = await self.owners.get(call_id)
        return self._by_name.get(name) if name is not None else None

    async def _owner(self, call_id: str) -> Relay:
        relay = await self.owner(call_id)
        if relay is None:
            raise NoRelay(f"no relay owns call {call_id}")
        return relay

    @staticmethod
    def _sdp(reply: dict[str, Any]) -> bytes:
        body = reply.get("sdp")
        if not isinstance(body, bytes):
            raise NgFailed("reply carries no SDP", reply)
        return body
