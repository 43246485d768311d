"""End to end: two baresip phones talk through the media relay, with real audio.

Alice (440 Hz tone) calls Bob (880 Hz tone) through a small test-only SIP forwarder
(below) that anchors the media with the ng client: ``offer`` on the INVITE, ``answer``
on the 200 OK, ``query`` and ``delete`` on the BYE, rewriting the SDP bodies. The relay
is either Ivoz's (``python -m ivoz run --role relay``) or rtpengine-daemon in userspace
mode: the same client and forwarder drive both. Each side's recording must carry the
other side's tone (numpy FFT), and the relay's counters must show the packets.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ivoz.media.client import NgClient, Relay, RelaySet
from ivoz.state import MemoryRelayOwners
from support.phones import dominant_frequency, write_baresip_config, write_tone
from support.tools import free_port, require_tool, stop_process

pytestmark = pytest.mark.slow

CALL_SECONDS = 4.0


# ---- baresip ---------------------------------------------------------------------------


def baresip_config(
    directory: Path, sip_port: int, ctrl_port: int, wav: Path, user: str, codec: str
) -> None:
    (directory / "rec").mkdir(parents=True)
    write_baresip_config(
        directory,
        sip_port=sip_port,
        ctrl_port=ctrl_port,
        wav=wav,
        account=(
            f"<sip:{user}@127.0.0.1:{sip_port};transport=udp>;regint=0;answermode=auto;"
            f"audio_codecs={codec}"
        ),
        modules=("g711", "g722", "gsm", "opus", "sndfile", "alsa", "aufile"),
    )


class Ctl:
    """baresip's ctrl_tcp: netstring-framed JSON commands, responses and events."""

    def __init__(self, port: int) -> None:
        deadline = time.monotonic() + 10
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.buffer = b""

    def send(self, command: str, params: str = "") -> None:
        body = json.dumps({"command": command, "params": params, "token": command}).encode()
        self.sock.sendall(str(len(body)).encode() + b":" + body + b",")

    def events(self, timeout: float) -> Iterator[dict[str, Any]]:
        end = time.monotonic() + timeout
        while True:
            colon = self.buffer.find(b":")
            if colon > 0:
                size = int(self.buffer[:colon])
                if len(self.buffer) >= colon + 2 + size:
                    message = json.loads(self.buffer[colon + 1 : colon + 1 + size])
                    self.buffer = self.buffer[colon + 2 + size :]
                    yield message
                    continue
            left = end - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return
            if not data:
                return
            self.buffer += data

    def close(self) -> None:
        self.sock.close()


# ---- the test-only SIP forwarder ---------------------------------------------------------

COMPACT = {
    "v": "via",
    "m": "contact",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "l": "content-length",
}


class Forwarder:
    """Joins exactly two phones: what arrives on one socket leaves by the other.

    Requests get our Via on top (responses lose it), Contacts point at the forwarder,
    and SDP bodies go through the relay set. Raw text handling: good enough for two
    well-behaved phones on loopback, not a proxy.
    """

    def __init__(self, relays: RelaySet, bob: tuple[str, int], nat: bool = False) -> None:
        self.relays = relays
        self.bob = bob
        # Pretend Alice is behind NAT: her SDP names an address where nothing listens.
        self.nat = nat
        self.alice: tuple[str, int] | None = None
        self.queries: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.offers: list[bytes] = []
        self.sockets: dict[str, asyncio.DatagramTransport] = {}
        self.ports: dict[str, int] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        for side in ("alice", "bob"):
            transport, _ = await loop.create_datagram_endpoint(
                lambda side=side: _Side(self, side),
                local_addr=("127.0.0.1", 0),  # type: ignore[misc]
            )
            self.sockets[side] = transport
            self.ports[side] = transport.get_extra_info("sockname")[1]

    def close(self) -> None:
        for transport in self.sockets.values():
            transport.close()

    async def handle(self, side: str, data: bytes, source: tuple[str, int]) -> None:
        try:
            await self._handle(side, data, source)
        except Exception as exc:  # reported by the test
            self.errors.append(f"{type(exc).__name__}: {exc}")

    async def _handle(self, side: str, data: bytes, source: tuple[str, int]) -> None:
        if not data.strip():
            return  # keep-alive
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        other = "bob" if side == "alice" else "alice"
        if side == "alice":
            self.alice = source
        out_port = self.ports[other]
        is_request = not lines[0].startswith("SIP/2.0")
        headers = lines[1:]
        call_id = self._header(headers, "call-id")
        from_tag = self._tag(self._header(headers, "from"))
        to_tag = self._tag(self._header(headers, "to"))
        method = lines[0].split()[0] if is_request else ""
        cseq = self._header(headers, "cseq").split()
        if is_request:
            if method == "INVITE" and to_tag is None:
                lines[0] = f"INVITE sip:bob@{self.bob[0]}:{self.bob[1]} SIP/2.0"
            digest = hashlib.sha1(data).hexdigest()[:16]
            headers.insert(0, f"Via: SIP/2.0/UDP 127.0.0.1:{out_port};branch=z9hG4bK-fw{digest}")
            if method == "INVITE" and body:
                options: dict[str, Any] = {"to-tag": to_tag} if to_tag else {}
                if self.nat and side == "alice":
                    body = re.sub(rb"c=IN IP4 [0-9.]+", b"c=IN IP4 127.0.0.99", body)
                    body = re.sub(rb"m=audio \d+", b"m=audio 9", body)
                    options["flags"] = ["strict source"]
                body, _ = await self.relays.offer(call_id, from_tag or "", body, **options)
                self.offers.append(body)
            elif method == "BYE":
                self.queries.append(await self.relays.query(call_id))
                await self.relays.delete(call_id)
        else:
            # Our Via is the top one; the response goes on without it.
            for index, line in enumerate(headers):
                if line.split(":", 1)[0].strip().lower() in ("via", "v"):
                    del headers[index]
                    break
            status = int(lines[0].split()[1])
            if cseq[-1] == "INVITE" and 180 <= status < 300 and body:
                body = await self.relays.answer(call_id, from_tag or "", to_tag or "", body)
        for index, line in enumerate(headers):
            name = line.split(":", 1)[0].strip().lower()
            name = COMPACT.get(name, name)
            if name == "contact":
                headers[index] = re.sub(
                    r"<sip:([^@>;]*@)?[^;>]+", rf"<sip:\g<1>127.0.0.1:{out_port}", line, count=1
                )
            elif name == "content-length":
                headers[index] = f"Content-Length: {len(body)}"
        message = "\r\n".join([lines[0], *headers]).encode() + b"\r\n\r\n" + body
        destination = self.bob if other == "bob" else self.alice
        assert destination is not None
        self.sockets[other].sendto(message, destination)

    @staticmethod
    def _header(headers: list[str], wanted: str) -> str:
        for line in headers:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if COMPACT.get(name, name) == wanted:
                return value.strip()
        return ""

    @staticmethod
    def _tag(value: str) -> str | None:
        match = re.search(r";\s*tag=([^;>\s]+)", value)
        return match.group(1) if match else None


class _Side(asyncio.DatagramProtocol):
    def __init__(self, forwarder: Forwarder, side: str) -> None:
        self.forwarder = forwarder
        self.side = side
        self.tasks: set[asyncio.Task[None]] = set()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        task = asyncio.ensure_future(self.forwarder.handle(self.side, data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


class ForwarderThread:
    """Runs the forwarder and its ng client on their own event loop."""

    def __init__(self, ng_port: int, bob: tuple[str, int], nat: bool) -> None:
        self.ng_port = ng_port
        self.bob = bob
        self.nat = nat
        self.ready = threading.Event()
        self.forwarder: Forwarder | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.stop = asyncio.Event()
        async with NgClient(timeout=2.0) as client:
            relays = RelaySet([Relay("127.0.0.1", self.ng_port)], MemoryRelayOwners(), client)
            self.forwarder = Forwarder(relays, self.bob, self.nat)
            await self.forwarder.start()
            self.ready.set()
            await self.stop.wait()
            self.forwarder.close()
            await asyncio.sleep(0)

    def __enter__(self) -> Forwarder:
        self.thread.start()
        assert self.ready.wait(10)
        assert self.forwarder is not None
        return self.forwarder

    def __exit__(self, *exc: object) -> None:
        if self.loop is not None and self.stop is not None:
            self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(5)


# ---- relays ----------------------------------------------------------------------------


def wait_ng(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            assert proc.poll() is None, "the relay exited"
            s.sendto(b"w d7:command4:pinge", ("127.0.0.1", port))
            try:
                if b"pong" in s.recv(100):
                    return
            except OSError:
                time.sleep(0.1)
    raise TimeoutError(f"relay: no ng on port {port}")


@contextlib.contextmanager
def relay_process(kind: str, workdir: Path) -> Iterator[int]:
    ng_port = free_port(socket.SOCK_DGRAM)
    base = free_port(socket.SOCK_DGRAM)
    base = min(base - base % 2, 65000)
    log = (workdir / f"{kind}.log").open("wb")
    if kind == "ivoz":
        command = [sys.executable, "-m", "ivoz", "--data-dir", str(workdir / "var")]
        command += ["run", "--role", "relay", "--ng-port", str(ng_port)]
        command += ["--rtp-port-min", str(base), "--rtp-port-max", str(base + 100)]
    else:
        command = [require_tool("rtpengine"), "--interface=127.0.0.1"]
        command += [f"--listen-ng=127.0.0.1:{ng_port}", f"--port-min={base}"]
        command += [f"--port-max={base + 100}", "--foreground", "--table=-1", "--log-stderr"]
        command += ["--delete-delay=0", f"--pidfile={workdir / 'rtpengine.pid'}"]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ng(ng_port, proc)
        yield ng_port
    finally:
        stop_process(proc)
        log.close()


# ---- the test --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relay", "codec", "nat"),
    [
        ("ivoz", "PCMU", False),
        ("rtpengine", "PCMU", False),
        # The relay never looks into payloads: other codecs pass the same way.
        ("ivoz", "PCMA", False),
        ("ivoz", "G722/16000/1", False),
        ("ivoz", "GSM", False),
        ("ivoz", "opus/48000/2", False),
        # Alice's SDP lies (NAT): the relay must latch onto where her packets come from.
        ("ivoz", "PCMU", True),
    ],
    ids=[
        "ivoz-PCMU",
        "rtpengine-PCMU",
        "ivoz-PCMA",
        "ivoz-G722",
        "ivoz-GSM",
        "ivoz-opus",
        "ivoz-NAT",
    ],
)
def test_relay_two_phones_hear_each_other(
    relay: str, codec: str, nat: bool, tmp_path: Path
) -> None:
    baresip = require_tool("baresip")
    if relay == "rtpengine":
        require_tool("rtpengine")
    write_tone(tmp_path / "alice_440.wav", 440, seconds=20.0)
    write_tone(tmp_path / "bob_880.wav", 880, seconds=20.0)
    phones: dict[str, tuple[int, int]] = {}
    for name in ("alice", "bob"):
        sip_port, ctrl_port = free_port(socket.SOCK_DGRAM), free_port()
        tone = "alice_440.wav" if name == "alice" else "bob_880.wav"
        baresip_config(tmp_path / name, sip_port, ctrl_port, tmp_path / tone, name, codec)
        phones[name] = (sip_port, ctrl_port)

    procs: list[subprocess.Popen[bytes]] = []
    controls: list[Ctl] = []
    with (
        relay_process(relay, tmp_path) as ng_port,
        ForwarderThread(ng_port, ("127.0.0.1", phones["bob"][0]), nat) as forwarder,
    ):
        try:
            for name in ("alice", "bob"):
                log = (tmp_path / f"{name}.log").open("wb")
                procs.append(
                    subprocess.Popen(
                        [baresip, "-f", str(tmp_path / name)],
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                )
                log.close()
            alice, bob = Ctl(phones["alice"][1]), Ctl(phones["bob"][1])
            controls += [alice, bob]
            alice.send("dial", f"sip:bob@127.0.0.1:{forwarder.ports['alice']}")
            events = []
            for message in alice.events(10):
                if message.get("event"):
                    events.append(message.get("type"))
                if message.get("type") in ("CALL_ESTABLISHED", "CALL_CLOSED"):
                    break
            assert "CALL_ESTABLISHED" in events, (events, forwarder.errors)
            time.sleep(CALL_SECONDS)
            alice.send("hangup")
            for message in bob.events(3):
                if message.get("type") == "CALL_CLOSED":
                    break
            for control in controls:
                control.send("quit")
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
        finally:
            for control in controls:
                control.close()
            for proc in procs:
                stop_process(proc)

    assert forwarder.errors == []
    # The SDP the phones saw pointed at the relay, and the relay counted the packets.
    assert forwarder.offers and b"c=IN IP4 127.0.0.1" in forwarder.offers[0]
    assert codec.split("/")[0].encode() in forwarder.offers[0]
    assert forwarder.queries, "no BYE went through the forwarder"
    totals = forwarder.queries[0]["totals"]["RTP"]
    if nat:
        # Latching: the relay learnt Alice's real address from her packets.
        streams = [
            media["streams"][0]
            for tag in forwarder.queries[0]["tags"].values()
            for media in tag["medias"]
        ]
        advertised = {s["advertised endpoint"].get("address") for s in streams}
        assert b"127.0.0.99" in advertised
        assert all(s["endpoint"]["address"] == b"127.0.0.1" for s in streams)
    assert totals["packets"] > 2 * 25 * (CALL_SECONDS - 1), totals  # 50 packets/s per side
    for name, expected in (("alice", 880), ("bob", 440)):
        dumps = sorted((tmp_path / name / "rec").glob("*-dec.wav"))
        assert dumps, f"{name} recorded nothing"
        peak, rms, seconds = dominant_frequency(dumps[-1])
        print(
            f"{relay} {codec}: {name} heard {peak:.0f} Hz, RMS {rms:.0f}, {seconds:.1f} s; RTP {totals}"
        )
        assert seconds > 1.0, (name, seconds)
        assert rms > 100, (name, rms)
        assert abs(peak - expected) < 20, (name, peak, expected)
