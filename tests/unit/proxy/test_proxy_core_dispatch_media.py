"""ivoz.proxy.dispatch (least busy, health flips on a fake clock) and ivoz.proxy.media."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from ivoz.proxy.dispatch import Dispatcher
from ivoz.proxy.media import MediaAnchor, has_sdp, ng_options
from ivoz.transport import Address, Kind


@dataclass(frozen=True)
class Server:
    id: int
    host: str = "127.0.0.1"
    port: int = 5062


A, B, C = Server(1), Server(2), Server(3)


def test_least_busy_first_ties_in_directory_order() -> None:
    dispatcher = Dispatcher()
    assert dispatcher.choose([A, B, C]) == [A, B, C]
    dispatcher.call_started(1, "c1")
    dispatcher.call_started(1, "c2")
    dispatcher.call_started(2, "c3")
    assert dispatcher.choose([A, B, C]) == [C, B, A]
    dispatcher.call_ended("c1")
    dispatcher.call_ended("c2")
    dispatcher.call_ended("unknown")
    assert dispatcher.choose([A, B, C]) == [A, C, B]
    assert dispatcher.load(1) == 0 and dispatcher.load(2) == 1


def test_a_call_moved_to_another_server_counts_there_only() -> None:
    dispatcher = Dispatcher()
    dispatcher.call_started(1, "c1")
    dispatcher.call_started(2, "c1")  # failover
    assert (dispatcher.load(1), dispatcher.load(2)) == (0, 1)


def test_unanswered_probe_takes_a_server_out_until_it_answers() -> None:
    dispatcher = Dispatcher(interval=2.0, timeout=1.5)
    dispatcher.watch([A, B])
    assert sorted(dispatcher.due(0.0)) == [1, 2]
    assert dispatcher.due(0.5) == []  # probes outstanding
    dispatcher.answered(1, 0.1)
    # B's probe is not answered within the timeout
    assert dispatcher.next_deadline() == pytest.approx(1.5)
    dispatcher.due(1.5)
    assert not dispatcher.healthy(2) and dispatcher.healthy(1)
    assert dispatcher.choose([B, A]) == [A]
    # next probe of B answered: back in rotation
    assert 2 in dispatcher.due(2.0)
    dispatcher.answered(2, 2.1)
    assert dispatcher.choose([B, A]) == [B, A]


def test_all_down_still_tries_them_all() -> None:
    dispatcher = Dispatcher()
    dispatcher.failed(1, 0.0)
    dispatcher.failed(2, 0.0)
    assert dispatcher.choose([A, B]) == [A, B]


def test_watch_forgets_removed_servers_without_calls() -> None:
    dispatcher = Dispatcher()
    dispatcher.watch([A, B])
    dispatcher.call_started(2, "c")
    dispatcher.watch([A])
    assert sorted(dispatcher.due(0.0)) == [1, 2]  # B still has a call in flight
    dispatcher.call_ended("c")
    dispatcher.watch([A])
    assert dispatcher.due(10.0) == [1]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Dispatcher(interval=0)


class FakeRelaySet:
    def __init__(self) -> None:
        self.commands: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    async def offer(self, call_id: str, from_tag: str, sdp: bytes, **options: Any) -> Any:
        self.commands.append(("offer", (call_id, from_tag, sdp), options))
        return b"relay-offer", object()

    async def answer(
        self, call_id: str, from_tag: str, to_tag: str, sdp: bytes, **options: Any
    ) -> bytes:
        self.commands.append(("answer", (call_id, from_tag, to_tag, sdp), options))
        return b"relay-answer"

    async def delete(self, call_id: str, **options: Any) -> Any:
        self.commands.append(("delete", (call_id,), options))
        raise LookupError("the relay does not know it")


async def test_media_anchor_offer_answer_delete_on_the_clients_set() -> None:
    relays = FakeRelaySet()
    asked: list[int | None] = []

    def relay_set_for(set_id: int | None) -> FakeRelaySet:
        asked.append(set_id)
        return relays

    anchor = MediaAnchor(relay_set_for)
    phone = Address(Kind.UDP, "192.0.2.7", 40000)
    assert await anchor.offer(4, "c", "f", b"v=0", phone) == b"relay-offer"
    assert await anchor.answer(4, "c", "f", "t", b"v=0", None) == b"relay-answer"
    await anchor.delete(4, "c")  # a failing delete is not an error
    assert asked == [4, 4, 4]
    (_, args, options), (_, answer_args, answer_options), _ = relays.commands
    assert args == ("c", "f", b"v=0")
    assert options["flags"] == ["SIP source address"]
    assert options["received from"] == ["IP4", "192.0.2.7"]
    assert answer_args == ("c", "f", "t", b"v=0")
    assert "flags" not in answer_options  # SDP from a server is trusted


async def test_no_relay_set_is_an_error_for_offer() -> None:
    anchor = MediaAnchor(lambda _: None)
    with pytest.raises(LookupError):
        await anchor.offer(None, "c", "f", b"v=0", None)


def test_ng_options_and_sdp_detection() -> None:
    v6 = ng_options(Address(Kind.UDP, "2001:db8::1", 5060))
    assert v6["received from"] == ["IP6", "2001:db8::1"]
    assert v6["replace"] == ["origin", "session-connection"] and v6["ICE"] == "remove"
    assert has_sdp(b"v=0", "application/sdp; charset=x")
    assert has_sdp(b"v=0", None)
    assert not has_sdp(b"", "application/sdp")
    assert not has_sdp(b"x", "text/plain")
