"""Real clients register with the registrar: sipsak, SIPp and baresip over UDP.

A few lines of asyncio put the registrar on a loopback UDP socket (the proxy role does
the same with transactions around it); each client runs its digest exchange against it.
The default challenge (MD5 alone) is what these Debian 12 clients understand.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_proxy_registrar import FakeCompany, FakeDirectory, FakeTerminal

from ivoz.proxy.registrar import DEFAULT_ALGORITHMS, RFC8760_ALGORITHMS, Registrar
from ivoz.sip import RemoteError, Request, make_response, parse_message
from ivoz.sip.auth import Credentials
from ivoz.state import Binding, MemoryLocationStore
from ivoz.transport import Address, Kind, Origin
from ivoz.transport.via import response_destination, stamp_via
from support.tools import INTEROP, free_port, require_tool

pytestmark = pytest.mark.slow

DOMAIN = "acme.ivoz.test"


class _Server(asyncio.DatagramProtocol):
    def __init__(self, registrar: Registrar, port: int) -> None:
        self.registrar = registrar
        self.port = port
        self.transport: Any = None  # an asyncio or uvloop datagram transport
        self.tasks: set[asyncio.Task[None]] = set()
        self.authorizations: list[Credentials] = []  # what the clients answered

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        task = asyncio.ensure_future(self._handle(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            request = parse_message(data)
        except RemoteError:
            return
        if not isinstance(request, Request) or request.method == "ACK":
            return
        local = Address(Kind.UDP, "127.0.0.1", self.port)
        origin = Origin(Kind.UDP, Address(Kind.UDP, addr[0], addr[1]), local)
        stamp_via(request.headers, request.via, origin)
        if request.method == "REGISTER":
            lines = request.headers.get_lines("Authorization")
            self.authorizations += [Credentials.parse(line) for line in lines]
            response = await self.registrar.handle(request, origin)
        else:
            response = make_response(request, 501)
        destination = response_destination(response.via, origin).address
        assert self.transport is not None
        self.transport.sendto(response.to_bytes(), (destination.host, destination.port))


@dataclass
class Registry:
    port: int
    store: MemoryLocationStore
    server: _Server

    async def wait_for(self, aor: str, present: bool, timeout: float = 10.0) -> list[Binding]:
        deadline = time.monotonic() + timeout
        while True:
            found = await self.store.bindings(aor, time.time())
            if bool(found) == present or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def serve(algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS) -> AsyncIterator[Registry]:
    """The registrar on a free loopback UDP port, with users alice, bob, carol (``secret``)."""
    directory = FakeDirectory()
    for domain, company_id in ((DOMAIN, 1), ("127.0.0.1", 2)):
        directory.companies[domain] = FakeCompany(company_id, domain)
        for number, user in enumerate(("alice", "bob", "carol"), start=1):
            terminal = FakeTerminal(company_id * 10 + number, company_id, user, "secret")
            directory.terminals[(company_id, user)] = terminal
    store = MemoryLocationStore()
    port = free_port()
    loop = asyncio.get_running_loop()
    registrar = Registrar(store, directory, os.urandom(16), algorithms=algorithms)
    server = _Server(registrar, port)
    transport, _ = await loop.create_datagram_endpoint(
        lambda: server, local_addr=("127.0.0.1", port)
    )
    try:
        yield Registry(port, store, server)
    finally:
        transport.close()
        for task in list(server.tasks):
            task.cancel()


@pytest.fixture
async def registry() -> AsyncIterator[Registry]:
    async with serve() as running:
        yield running


async def run(*argv: str, cwd: Path | None = None, timeout: float = 20.0) -> int:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        return await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise


async def test_sipsak_registers_with_digest(registry: Registry) -> None:
    sipsak = require_tool("sipsak")
    target = f"sip:alice@127.0.0.1:{registry.port}"
    status = await run(sipsak, "-U", "-s", target, "-a", "secret", "-u", "alice", "-x", "60", "-i")
    assert status == 0
    (binding,) = await registry.store.bindings("alice@127.0.0.1", time.time())
    assert binding.terminal_id == 21 and binding.user_agent.startswith("sipsak")
    assert 0 < binding.expires_in(time.time()) <= 60


async def test_sipsak_wrong_password_does_not_bind(registry: Registry) -> None:
    sipsak = require_tool("sipsak")
    target = f"sip:bob@127.0.0.1:{registry.port}"
    status = await run(sipsak, "-U", "-s", target, "-a", "wrong", "-u", "bob", "-x", "60", "-i")
    assert status != 0
    assert await registry.store.bindings("bob@127.0.0.1", time.time()) == []


async def test_sipp_registers_with_digest(registry: Registry, tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    scenario = INTEROP / "sipp" / "reg_auth.xml"
    port = free_port()
    status = await run(
        sipp,
        f"127.0.0.1:{registry.port}",
        "-sf",
        str(scenario),
        "-s",
        "carol",
        "-au",
        "carol",
        "-ap",
        "secret",
        "-key",
        "contact_port",
        str(port),
        "-key",
        "expires",
        "120",
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-m",
        "1",
        "-nostdin",
        cwd=tmp_path,
    )
    assert status == 0
    (binding,) = await registry.store.bindings("carol@127.0.0.1", time.time())
    assert binding.contact == f"sip:carol@127.0.0.1:{port};transport=UDP"
    assert binding.received == f"udp:127.0.0.1:{port}"


async def test_baresip_registers_and_unregisters(registry: Registry, tmp_path: Path) -> None:
    baresip = require_tool("baresip")
    sip_port, ctrl_port = free_port(), free_port()
    account = (
        f"<sip:alice@{DOMAIN};transport=udp>;auth_pass=secret;"
        f'outbound="sip:127.0.0.1:{registry.port};transport=udp";regint=600'
    )
    config = tmp_path / "baresip"
    mkcfg = INTEROP / "baresip" / "mkcfg.sh"
    made = await run(
        "sh", str(mkcfg), str(config), str(sip_port), str(ctrl_port), "ausine,440", account
    )
    assert made == 0
    process = await asyncio.create_subprocess_exec(
        baresip,
        "-f",
        str(config),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        bindings = await registry.wait_for(f"alice@{DOMAIN}", present=True)
        assert len(bindings) == 1
        (binding,) = bindings
        assert binding.user_agent.startswith("baresip")
        assert {c.algorithm for c in registry.server.authorizations} == {None}  # MD5
        assert binding.instance is not None  # baresip sends +sip.instance
        assert binding.received == f"udp:127.0.0.1:{sip_port}"
        # the first SIGTERM makes baresip un-REGISTER (digest again), then exit
        process.send_signal(signal.SIGTERM)
        assert await registry.wait_for(f"alice@{DOMAIN}", present=False) == []
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


async def test_linphone_answers_the_sha256_challenge(tmp_path: Path) -> None:
    # linphone 5.1 picks SHA-256 from an RFC 8760 challenge pair (SHA-256 first, MD5)
    linphonec = require_tool("linphonec")
    (tmp_path / ".local" / "share" / "linphone").mkdir(parents=True)
    rc = tmp_path / "phone.rc"
    made = await run("sh", str(INTEROP / "linphone" / "mkrc.sh"), str(rc), str(free_port()))
    assert made == 0
    async with serve(RFC8760_ALGORITHMS) as registry:
        process = await asyncio.create_subprocess_exec(
            linphonec,
            "-c",
            str(rc),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "HOME": str(tmp_path)},
        )
        assert process.stdin is not None
        target = f"127.0.0.1:{registry.port}"
        try:
            # its SIP stack takes a few seconds to come up: ask again until it registers
            bindings: list[Binding] = []
            deadline = time.monotonic() + 20
            while not bindings and time.monotonic() < deadline:
                command = f"register sip:carol@127.0.0.1 sip:{target} secret\n"
                process.stdin.write(command.encode())
                await process.stdin.drain()
                bindings = await registry.wait_for("carol@127.0.0.1", present=True, timeout=1)
            (binding,) = bindings
            assert binding.user_agent.startswith("Linphone")
            assert {c.algorithm for c in registry.server.authorizations} == {"SHA-256"}
            process.stdin.write(b"quit\n")  # unregisters (SHA-256 digest again), then exits
            await process.stdin.drain()
            assert await registry.wait_for("carol@127.0.0.1", present=False) == []
        finally:
            if process.returncode is None:
                process.kill()
            await process.wait()
