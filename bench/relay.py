"""RTP packets relayed per CPU second: Ivoz's relay against rtpengine (userspace).

Each relay runs as its own process on loopback. N calls are set up through the ng
protocol (the same :class:`ivoz.media.client.NgClient` for both), then one load
generator sends 172-byte RTP packets (PCMU, 20 ms: 12 header + 160 payload bytes) from
each caller socket to the relay at a bounded total rate for a few seconds, and counts
what arrives at the callee sockets. The relay's CPU time (utime + stime of the whole
process, from /proc/PID/stat) over the same window gives packets per CPU second, i.e.
per core. ``python -m bench.relay [--streams N] [--seconds S] [--rate PPS]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.results import write_section
from ivoz.media.client import NgClient

PACKET_PAYLOAD = 160  # bytes: 20 ms of PCMU
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Outcome:
    name: str
    sent: int
    received: int
    seconds: float
    cpu: float

    @property
    def per_core(self) -> float:
        return self.received / self.cpu if self.cpu > 0 else float("nan")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # proc(5): fields 14 and 15 (utime, stime), counted after the ")" of comm from 3.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def _wait_ng(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline:
            s.sendto(b"w d7:command4:pinge", ("127.0.0.1", port))
            try:
                if b"pong" in s.recv(100):
                    return
            except OSError:
                time.sleep(0.1)
    raise TimeoutError(f"no ng on port {port}")


def start_ivoz(
    ng_port: int, port_min: int, port_max: int, workdir: Path
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "ivoz", "--data-dir", str(workdir), "run", "--role", "relay"]
    command += ["--ng-port", str(ng_port), "--rtp-port-min", str(port_min)]
    command += ["--rtp-port-max", str(port_max)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_rtpengine(
    ng_port: int, port_min: int, port_max: int, workdir: Path
) -> subprocess.Popen[bytes]:
    binary = shutil.which("rtpengine") or "/usr/bin/rtpengine"
    command = [binary, "--interface=127.0.0.1", f"--listen-ng=127.0.0.1:{ng_port}"]
    command += [f"--port-min={port_min}", f"--port-max={port_max}", "--foreground"]
    command += ["--table=-1", "--log-stderr", "--log-level=3", "--delete-delay=0"]
    command += [f"--pidfile={workdir / 'rtpengine.pid'}"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _sdp(port: int) -> bytes:
    return (
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=bench\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n"
    ).encode()


def _media_port(body: bytes) -> int:
    for line in body.decode().splitlines():
        if line.startswith("m=audio "):
            return int(line.split()[1])
    raise ValueError("no m=audio line in the relay's SDP")


def _udp(rcvbuf: int = 1 << 22) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def _setup(
    ng_port: int, streams: int, prefix: str
) -> list[tuple[socket.socket, int, socket.socket]]:
    """Offer/answer one call per stream; (caller socket, relay port, callee socket)."""
    calls = []
    async with NgClient(timeout=2.0) as client:
        address = ("127.0.0.1", ng_port)
        for n in range(streams):
            a, b = _udp(), _udp()
            call = {"call-id": f"{prefix}-{n}", "from-tag": "a", "flags": ["trust address"]}
            offer = await client.request(
                address, {"command": "offer", **call, "sdp": _sdp(a.getsockname()[1])}
            )
            to_b = _media_port(offer["sdp"])
            answer = await client.request(
                address,
                {"command": "answer", **call, "to-tag": "b", "sdp": _sdp(b.getsockname()[1])},
            )
            to_a = _media_port(answer["sdp"])
            del to_b
            calls.append((a, to_a, b))
    return calls


async def _teardown(ng_port: int, streams: int, prefix: str) -> None:
    async with NgClient(timeout=2.0) as client:
        for n in range(streams):
            await client.request(
                ("127.0.0.1", ng_port), {"command": "delete", "call-id": f"{prefix}-{n}"}
            )


def _blast(
    calls: list[tuple[socket.socket, int, socket.socket]], seconds: float, rate: int
) -> tuple[int, int, float]:
    """Send at `rate` packets/s in 1 ms slices; count arrivals. (sent, received, elapsed)."""
    poller = select.epoll()
    receivers = {}
    for _, _, b in calls:
        poller.register(b.fileno(), select.EPOLLIN)
        receivers[b.fileno()] = b
    payload = bytes(range(256)) * 2
    headers = [struct.pack("!BBHII", 0x80, 0, 0, 0, 0x1000 + n) for n in range(len(calls))]
    sent = received = 0
    seq = 0
    slice_seconds = 0.001
    per_slice = max(1, int(rate * slice_seconds))
    start = time.perf_counter()
    end = start + seconds
    next_slice = start
    index = 0
    count = len(calls)
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        if now >= next_slice:
            for _ in range(per_slice):
                a, relay_port, _ = calls[index]
                header = headers[index]
                packet = (
                    header[:2]
                    + struct.pack("!HI", seq & 0xFFFF, seq * 160 & 0xFFFFFFFF)
                    + header[8:]
                )
                try:
                    a.sendto(packet + payload[:PACKET_PAYLOAD], ("127.0.0.1", relay_port))
                    sent += 1
                except BlockingIOError:
                    pass
                index += 1
                if index == count:
                    index = 0
                    seq += 1
            next_slice += slice_seconds
        for fd, _ in poller.poll(0):
            sock = receivers[fd]
            while True:
                try:
                    sock.recv(2048)
                except BlockingIOError:
                    break
                received += 1
    elapsed = time.perf_counter() - start
    drain_until = time.perf_counter() + 0.5
    while time.perf_counter() < drain_until:
        for fd, _ in poller.poll(0.05):
            sock = receivers[fd]
            while True:
                try:
                    sock.recv(2048)
                except BlockingIOError:
                    break
                received += 1
    poller.close()
    return sent, received, elapsed


def measure(name: str, streams: int, seconds: float, rate: int) -> Outcome:
    ng_port = _free_port()
    port_min = 30000 + (os.getpid() % 200) * 100
    port_max = port_min + max(4 * streams + 40, 99)
    with tempfile.TemporaryDirectory() as tmp:
        starter = start_ivoz if name == "ivoz" else start_rtpengine
        proc = starter(ng_port, port_min, port_max, Path(tmp))
        try:
            _wait_ng(ng_port)
            calls = asyncio.run(_setup(ng_port, streams, name))
            # Warm up (latching, caches), then measure.
            _blast(calls, 0.3, rate)
            cpu_before = _cpu_seconds(proc.pid)
            sent, received, elapsed = _blast(calls, seconds, rate)
            cpu = _cpu_seconds(proc.pid) - cpu_before
            asyncio.run(_teardown(ng_port, streams, name))
            for a, _, b in calls:
                a.close()
                b.close()
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return Outcome(name, sent, received, elapsed, cpu)


# A bare forwarder (no latching, no counters) in two styles, to choose the data path:
# loop.add_reader on a raw non-blocking socket drained until EAGAIN, or a
# DatagramProtocol whose transport.sendto forwards. argv: mode loop streams.
_FORWARDER = """
import asyncio, socket, sys
mode, loop_name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks), flush=True)
dests = [("127.0.0.1", int(x)) for x in sys.stdin.readline().split()]
def readable(sock, dest):
    recvfrom, sendto = sock.recvfrom, sock.sendto
    for _ in range(128):
        try:
            data, _src = recvfrom(65535)
        except BlockingIOError:
            break
        sendto(data, dest)
class Forward(asyncio.DatagramProtocol):
    def __init__(self, dest):
        self.dest = dest
    def connection_made(self, transport):
        self.transport = transport
    def datagram_received(self, data, addr):
        self.transport.sendto(data, self.dest)
async def run():
    loop = asyncio.get_running_loop()
    for s, d in zip(socks, dests):
        if mode == "reader":
            loop.add_reader(s.fileno(), readable, s, d)
        else:
            await loop.create_datagram_endpoint(lambda d=d: Forward(d), sock=s)
    await asyncio.Event().wait()
if loop_name == "uvloop":
    import uvloop
    uvloop.run(run())
else:
    asyncio.run(run())
"""


def measure_forwarder(
    mode: str, loop_name: str, streams: int, seconds: float, rate: int
) -> Outcome:
    proc = subprocess.Popen(
        [sys.executable, "-c", _FORWARDER, mode, loop_name, str(streams)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    calls = []
    try:
        ports = [int(x) for x in proc.stdout.readline().split()]
        for port in ports:
            calls.append((_udp(), port, _udp()))
        proc.stdin.write((" ".join(str(b.getsockname()[1]) for _, _, b in calls) + "\n").encode())
        proc.stdin.flush()
        _blast(calls, 0.3, rate)
        cpu_before = _cpu_seconds(proc.pid)
        sent, received, elapsed = _blast(calls, seconds, rate)
        cpu = _cpu_seconds(proc.pid) - cpu_before
    finally:
        proc.kill()
        proc.wait()
        for a, _, b in calls:
            a.close()
            b.close()
    return Outcome(f"{mode} / {loop_name}", sent, received, elapsed, cpu)


def compare_datapaths(args: argparse.Namespace) -> None:
    rows = ["| bare forwarder | pkt/s per core |", "|---|---:|"]
    for mode in ("reader", "protocol"):
        for loop_name in ("uvloop", "asyncio"):
            outcome = measure_forwarder(mode, loop_name, args.streams, args.seconds, args.rate)
            rows.append(f"| {outcome.name} | {outcome.per_core:,.0f} |")
    print("\n".join(rows))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__)
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=40000, help="packets/s offered in total")
    parser.add_argument("--repeat", type=int, default=3, help="runs per relay, median kept")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument(
        "--compare-datapaths",
        action="store_true",
        help="only compare add_reader and DatagramProtocol forwarding, uvloop and asyncio",
    )
    args = parser.parse_args(argv)
    if args.compare_datapaths:
        compare_datapaths(args)
        return
    names = ["ivoz"]
    if shutil.which("rtpengine") or os.access("/usr/bin/rtpengine", os.X_OK):
        names.append("rtpengine")
    runs: dict[str, list[Outcome]] = {name: [] for name in names}
    for _ in range(args.repeat):
        # Alternate the relays so that a burst of load elsewhere hits both alike.
        for name in names:
            outcome = measure(name, args.streams, args.seconds, args.rate)
            print(f"{name}: {outcome.per_core:,.0f} packets per CPU second", flush=True)
            runs[name].append(outcome)
    outcomes = [
        sorted(runs[name], key=lambda o: o.per_core)[len(runs[name]) // 2] for name in names
    ]
    rows = [
        "| relay | streams | offered pkt/s | relayed pkt/s | loss | relay CPU s | pkt/s per core |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for o in outcomes:
        loss = 1 - o.received / o.sent if o.sent else 0.0
        rows.append(
            f"| {o.name} | {args.streams} | {o.sent / o.seconds:,.0f} | {o.received / o.seconds:,.0f}"
            f" | {loss:.2%} | {o.cpu:.2f} | {o.per_core:,.0f} |"
        )
    table = "\n".join(rows)
    if len(outcomes) == 2:
        ratio = outcomes[0].per_core / outcomes[1].per_core
        table += f"\n\nIvoz / rtpengine (userspace) per core: **{ratio:.2f}**"
    table += (
        f"\n\n172-byte RTP packets, {args.seconds:g} s per relay after a 0.3 s warm-up, one"
        " direction per stream; per core = packets received / relay process CPU seconds;"
        f" median of {args.repeat} alternating runs. rtpengine: userspace (--table=-1)."
    )
    print(table)
    if not args.no_write:
        write_section("relay", table)


if __name__ == "__main__":
    main(sys.argv[1:])
