"""OPTIONS answered per server CPU second by `ivoz run --role proxy-users` (UDP, TCP).

Starts the server on free loopback ports, drives it with SIPp (the OPTIONS UAC scenario
of the e2e tests) at a fixed rate for a bounded number of requests, and divides the
requests answered by the CPU time the server process used meanwhile (user + system,
from /proc). Every request goes through parsing, Via stamping, a server transaction and
serialisation of the response.

    python -m bench.transport [--calls 20000] [--rate 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.results import write_section

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "tests" / "e2e" / "data" / "transport" / "options_uac.xml"
HOST = "127.0.0.1"


def _free_port() -> int:
    while True:
        with socket.socket() as tcp:
            tcp.bind((HOST, 0))
            port: int = tcp.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind((HOST, port))
            except OSError:
                continue
        return port


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _wait_for(port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server did not listen on {port}")


def _run(sipp: str, transport: str, port: int, calls: int, rate: int, cwd: Path) -> int:
    command = [
        sipp, f"{HOST}:{port}", "-sf", str(SCENARIO), "-t", transport, "-i", HOST,
        "-p", str(_free_port()), "-m", str(calls), "-r", str(rate), "-l", str(rate),
        "-timeout", "120s", "-nostdin",
    ]  # fmt: skip
    return subprocess.run(command, cwd=cwd, capture_output=True, timeout=300).returncode


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.transport")
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rate", type=int, default=2000, help="OPTIONS per second offered")
    args = parser.parse_args(argv)
    sipp = shutil.which("sipp")
    if sipp is None:
        print("sipp (Debian package sip-tester) is not installed; skipped")
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        port, tls, ws, wss = _free_port(), _free_port(), _free_port(), _free_port()
        command = [
            sys.executable, "-m", "ivoz", "--data-dir", str(work), "run",
            "--role", "proxy-users", "--sip-host", HOST,
            "--sip-udp-port", str(port), "--sip-tcp-port", str(port),
            "--sip-tls-port", str(tls), "--sip-ws-port", str(ws), "--sip-wss-port", str(wss),
        ]  # fmt: skip
        with (work / "server.log").open("wb") as log:
            server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            _wait_for(wss)
            for name, transport in (("UDP", "u1"), ("TCP", "t1")):
                cpu = _cpu_seconds(server.pid)
                wall = time.monotonic()
                status = _run(sipp, transport, port, args.calls, args.rate, work)
                wall = time.monotonic() - wall
                cpu = _cpu_seconds(server.pid) - cpu
                rows.append(
                    f"| {name} | {args.calls} | {args.rate} | {args.calls / wall:,.0f} | "
                    f"{cpu:.2f} | {args.calls / cpu:,.0f} | {'yes' if status == 0 else 'no'} |"
                )
                print(rows[-1], flush=True)
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    table = "\n".join(
        [
            "### SIP OPTIONS through `ivoz run --role proxy-users` (SIPp UAC, loopback)",
            "",
            "| transport | requests | offered /s | achieved /s | server CPU s | "
            "OPTIONS per CPU second | all answered 200 |",
            "|---|---|---|---|---|---|---|",
            *rows,
        ]
    )
    write_section("transport", table)


if __name__ == "__main__":
    main(sys.argv[1:])
