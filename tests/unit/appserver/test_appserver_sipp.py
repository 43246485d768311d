"""The application server between two SIPp instances over loopback UDP.

One SIPp plays the users proxy's A-leg (``data/appserver_uac.xml``: INVITE with the
trusted X-Ivoz-* headers, ACK, BYE); the built-in ``uas`` scenario listens where the
application server sends its B-legs (the proxy's address) and answers 180, 200, then
the BYE. SIPp's exit status says every call completed.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from ivoz.config import Config
from support.tools import free_port, require_tool

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data"
CALLS = 5


async def _run(*argv: str, cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.kill()
        await process.wait()


async def test_calls_between_sipp_peers(tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    pytest.importorskip("ivoz.transport.node")
    services_module = pytest.importorskip("ivoz.services")
    from ivoz.appserver.role import serve
    from ivoz.domain.commands import prepare

    udp = socket.SOCK_DGRAM
    proxy_port, as_port, uac_port = free_port(udp), free_port(udp), free_port(udp)
    config = Config(
        data_dir=tmp_path, sip_udp_port=proxy_port, appserver_port=as_port, demo_secret="s"
    )
    await prepare(config, demo=True)
    services = await services_module.Services.create(config)
    company = services.directory.company_by_domain("acme.ivoz.test")
    alice = services.directory.terminal(company.id, "alice")
    task = asyncio.create_task(serve(config, services))
    common = ("-i", "127.0.0.1", "-mi", "127.0.0.1", "-nostdin", "-timeout", "30")
    callee = await _run(
        sipp, "-sn", "uas", "-p", str(proxy_port), "-mp", str(free_port(udp)),
        "-m", str(CALLS), *common, cwd=tmp_path,
    )  # fmt: skip
    caller = None
    try:
        await asyncio.sleep(0.3)  # both listeners up (no protocol timer involved)
        caller = await _run(
            sipp, f"127.0.0.1:{as_port}", "-sf", str(DATA / "appserver_uac.xml"),
            "-key", "company", str(company.id), "-key", "caller", str(alice.id),
            "-key", "dialled", "1002", "-p", str(uac_port), "-mp", str(free_port(udp)),
            "-m", str(CALLS), "-r", "5", *common, cwd=tmp_path,
        )  # fmt: skip
        _, caller_err = await asyncio.wait_for(caller.communicate(), 40)
        assert caller.returncode == 0, caller_err.decode(errors="replace")[-2000:]
        _, callee_err = await asyncio.wait_for(callee.communicate(), 20)
        assert callee.returncode == 0, callee_err.decode(errors="replace")[-2000:]
    finally:
        for process in (caller, callee):
            if process is not None:
                await _stop(process)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await services.close()
