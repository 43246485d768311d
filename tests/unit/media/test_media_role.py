"""The relay role wired up: serve() answers ng on its socket and frees idle calls."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import pytest

from ivoz.config import Config
from ivoz.media import role
from ivoz.media.client import NgClient
from support.tools import free_port

BODY = (
    b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    b"m=audio 5004 RTP/AVP 0\r\n"
)


async def test_serve_answers_and_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IVOZ_RELAY_TIMEOUT", "0.3")
    base = min(free_port(socket.SOCK_DGRAM), 65000)
    config = Config(
        data_dir=tmp_path,
        ng_port=free_port(socket.SOCK_DGRAM),
        rtp_port_min=base,
        rtp_port_max=base + 50,
        relay_max_sessions=1,
    )
    task = asyncio.create_task(role.serve(config))
    address = ("127.0.0.1", config.ng_port)
    try:
        async with NgClient(timeout=1.0) as client:
            for _ in range(50):
                with contextlib.suppress(TimeoutError):
                    if (await client.request(address, {"command": "ping"}))["result"] == b"pong":
                        break
            offer = {"command": "offer", "call-id": "r1", "from-tag": "a", "sdp": BODY}
            assert (await client.request(address, offer))["result"] == b"ok"
            full = await client.request(
                address, {**offer, "call-id": "r2", "supports": ["load limit"]}
            )
            assert full["result"] == b"load limit"
            # Nothing flows: the call is freed after the (0.3 s) timeout.
            for _ in range(100):
                listed = await client.request(address, {"command": "list"})
                if not listed["calls"]:
                    break
                await asyncio.sleep(0.05)
            assert listed["calls"] == []
            stats = await client.request(address, {"command": "statistics"})
            assert stats["statistics"]["totalstatistics"]["timeoutsessions"] == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
