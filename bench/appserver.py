"""Application server call throughput: SIPp on both sides of the B2BUA, over loopback UDP.

``python -m bench.appserver [calls] [rate]`` (default 1000 calls at 200 per second) runs
the ``appserver`` role in this process on a fresh SQLite demo platform, one SIPp
playing the users proxy's A-leg (tests/unit/appserver/data/appserver_uac.xml: INVITE
with the X-Ivoz headers, ACK, 200 ms, BYE) and SIPp's built-in ``uas`` as the callee
behind the "proxy" address. It records successful and failed calls (SIPp's counters)
and the application server's CPU time per call (user + system time of this process
while SIPp runs: parsing, transactions, both legs' dialogs, routing), in the
``appserver`` section of bench/RESULTS.md. Every call is 14 SIP messages through the
application server (7 in, 7 out, not counting 100 Trying).
"""

from __future__ import annotations

import asyncio
import csv
import logging
import resource
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from bench.results import write_section

SCENARIO = Path(__file__).resolve().parents[1] / "tests/unit/appserver/data/appserver_uac.xml"


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _run(calls: int, rate: int, workdir: Path) -> dict[str, float]:
    from ivoz.appserver.role import serve
    from ivoz.config import Config
    from ivoz.domain.commands import prepare
    from ivoz.services import Services

    sipp = shutil.which("sipp")
    if sipp is None:
        raise SystemExit("sipp is not installed (Debian package sip-tester)")
    proxy_port, as_port, uac_port = _free_udp_port(), _free_udp_port(), _free_udp_port()
    config = Config(
        data_dir=workdir, sip_udp_port=proxy_port, appserver_port=as_port, demo_secret="bench"
    )
    await prepare(config, demo=True)
    services = await Services.create(config)
    company = services.directory.company_by_domain("acme.ivoz.test")
    assert company is not None
    alice = services.directory.terminal(company.id, "alice")
    assert alice is not None
    task = asyncio.create_task(serve(config, services))
    common = ("-i", "127.0.0.1", "-mi", "127.0.0.1", "-nostdin", "-timeout", "120")
    quiet = {"stdout": asyncio.subprocess.DEVNULL, "stderr": asyncio.subprocess.DEVNULL}
    callee = await asyncio.create_subprocess_exec(
        sipp, "-sn", "uas", "-p", str(proxy_port), "-mp", str(_free_udp_port()),
        "-m", str(calls), *common, cwd=workdir, **quiet,
    )  # fmt: skip
    try:
        await asyncio.sleep(0.5)  # the callee's socket is up
        cpu, wall = _cpu(), time.monotonic()
        caller = await asyncio.create_subprocess_exec(
            sipp, f"127.0.0.1:{as_port}", "-sf", str(SCENARIO),
            "-key", "company", str(company.id), "-key", "caller", str(alice.id),
            "-key", "dialled", "1002", "-p", str(uac_port), "-mp", str(_free_udp_port()),
            "-m", str(calls), "-r", str(rate), "-l", str(rate), "-trace_stat",
            *common, cwd=workdir, **quiet,
        )  # fmt: skip
        await asyncio.wait_for(caller.wait(), 60 + 3 * calls / rate)
        cpu, wall = _cpu() - cpu, time.monotonic() - wall
        await asyncio.wait_for(callee.wait(), 30)
    finally:
        if callee.returncode is None:
            callee.kill()
            await callee.wait()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await services.close()
    stats = next(workdir.glob("appserver_uac_*.csv"))
    with stats.open() as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    last = rows[-1]
    return {
        "ok": float(last["SuccessfulCall(C)"]),
        "failed": float(last["FailedCall(C)"]),
        "cpu": cpu,
        "wall": wall,
    }


def main(argv: list[str]) -> None:
    calls = int(argv[0]) if argv else 1000
    rate = int(argv[1]) if len(argv) > 1 else 200
    logging.disable(logging.INFO)
    with tempfile.TemporaryDirectory(prefix="bench-appserver-") as tmp:
        figures = asyncio.run(_run(calls, rate, Path(tmp)))
    per_cpu = figures["ok"] / figures["cpu"] if figures["cpu"] else 0.0
    table = "\n".join(
        [
            "| calls offered | rate (calls/s) | successful | failed | wall (s) | AS CPU (s) | calls per CPU-second |",
            "|---|---|---|---|---|---|---|",
            f"| {calls} | {rate} | {figures['ok']:.0f} | {figures['failed']:.0f} "
            f"| {figures['wall']:.1f} | {figures['cpu']:.2f} | {per_cpu:.0f} |",
        ]
    )
    print(table)
    write_section(
        "appserver",
        "## Application server (B2BUA between two SIPp, loopback UDP)\n\n"
        "INVITE, 180, 200, ACK, 200 ms, BYE on both legs; CPU is the application server"
        " process's user + system time (one core).\n\n" + table,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
