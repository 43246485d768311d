"""Registrations and call set-ups per CPU second: Ivoz's users proxy against Kamailio.

Both servers run on loopback in the same run and get the same SIPp traffic:

- registrations: ``--registrations`` REGISTERs with digest authentication (each one a
  REGISTER, its 401 challenge, the authenticated REGISTER and its 200), at a bounded
  rate;
- calls: ``--calls`` INVITE-to-BYE calls at a bounded rate from a SIPp caller that
  authenticates (407) to a SIPp callee registered as ``bob``: INVITE, 200, ACK, BYE,
  200, the in-dialog requests following the Record-Route.

Ivoz (``ivoz run --demo``: users proxy, application server, relay and portal in one
process) does more per call than Kamailio: every call crosses the application server
(a B2BUA, so two proxy transactions per call) and the relay (ng offer, answer and
delete). Kamailio (``bench/kamailio.cfg``) is a plain registrar with digest auth and a
stateful record-routing proxy. Per core = operations completed / CPU seconds (utime +
stime from /proc) of the server's processes during the phase. ``python -m bench.proxy``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.results import write_section

HOST = "127.0.0.1"
DOMAIN = "acme.ivoz.test"
SECRET = "bench-secret"
CLK_TCK = os.sysconf("SC_CLK_TCK")
KAMAILIO_CFG = Path(__file__).with_name("kamailio.cfg")

# SIPp scenarios: REGISTER with digest; caller with proxy auth; callee that echoes
# Record-Route (RFC 3261 12.1.1) so that ACK and BYE follow the proxy.
REGISTER_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register">
  <send retrans="500"><![CDATA[
REGISTER sip:[domain] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch];rport
From: <sip:[user]@[domain]>;tag=[pid]r[call_number]
To: <sip:[user]@[domain]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:[user]@[local_ip]:[contact_port]>
Max-Forwards: 70
Expires: 3600
User-Agent: SIPp bench
Content-Length: 0

]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
REGISTER sip:[domain] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch];rport
From: <sip:[user]@[domain]>;tag=[pid]r[call_number]
To: <sip:[user]@[domain]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:[user]@[local_ip]:[contact_port]>
[authentication]
Max-Forwards: 70
Expires: 3600
User-Agent: SIPp bench
Content-Length: 0

]]></send>
  <recv response="200"/>
</scenario>
"""

CALLER_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller">
  <send retrans="500"><![CDATA[
INVITE sip:[callee]@[domain] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch];rport
From: <sip:[user]@[domain]>;tag=[pid]c[call_number]
To: <sip:[callee]@[domain]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:[user]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=caller 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="407" auth="true"/>
  <send><![CDATA[
ACK sip:[callee]@[domain] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch-3];rport
[last_From:]
[last_To:]
[last_Call-ID:]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
INVITE sip:[callee]@[domain] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch];rport
From: <sip:[user]@[domain]>;tag=[pid]c[call_number]
To: <sip:[callee]@[domain]>
Call-ID: [call_id]
CSeq: 2 INVITE
Contact: <sip:[user]@[local_ip]:[local_port]>
[authentication]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=caller 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch];rport
[routes]
[last_From:]
[last_To:]
[last_Call-ID:]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

]]></send>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/UDP [local_ip]:[local_port];branch=[branch];rport
[routes]
[last_From:]
[last_To:]
[last_Call-ID:]
CSeq: 3 BYE
Max-Forwards: 70
Content-Length: 0

]]></send>
  <recv response="200" crlf="true"/>
</scenario>
"""

CALLEE_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callee">
  <recv request="INVITE" crlf="true"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]b[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:bob@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=callee 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv request="ACK" crlf="true"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

]]></send>
</scenario>
"""


@dataclass
class Phase:
    server: str
    what: str
    attempted: int
    succeeded: int
    seconds: float
    cpu: float
    rate: int = 0  # offered per second

    @property
    def per_core(self) -> float:
        return self.succeeded / self.cpu if self.cpu > 0 else float("nan")


def _total(phases: list[Phase], server: str, what: str) -> Phase | None:
    chosen = [p for p in phases if p.server == server and p.what == what]
    if not chosen:
        return None
    return Phase(
        server,
        what,
        sum(p.attempted for p in chosen),
        sum(p.succeeded for p in chosen),
        sum(p.seconds for p in chosen),
        sum(p.cpu for p in chosen),
    )


def _free_port(kind: int = socket.SOCK_STREAM) -> int:
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((HOST, 0))
            port: int = s.getsockname()[1]
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, other) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


def _cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # proc(5): utime and stime are fields 14 and 15; counted from 3 after comm's ")".
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return total


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Kamailio forks its workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _sip_answers(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(0.5)
        local = sock.getsockname()[1]
        sock.sendto(
            (
                f"OPTIONS sip:{HOST}:{port} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {HOST}:{local};rport;branch=z9hG4bKbench{time.time_ns()}\r\n"
                f"Max-Forwards: 70\r\nFrom: <sip:bench@{HOST}>;tag=b\r\nTo: <sip:{HOST}>\r\n"
                f"Call-ID: {time.time_ns()}@bench\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
            ).encode(),
            (HOST, port),
        )
        try:
            return sock.recv(4096).startswith(b"SIP/2.0")
        except OSError:
            return False


def _wait_sip(proc: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text(errors='replace')[-3000:]}")
        if _sip_answers(port):
            return
        time.sleep(0.2)
    raise TimeoutError(f"no SIP answer on {port}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    callee: str  # what the caller dials

    def cpu(self) -> float:
        return _cpu_seconds(_tree(self.proc.pid))


@contextmanager
def kamailio(workdir: Path) -> Iterator[Server]:
    program = shutil.which("kamailio") or "/usr/sbin/kamailio"
    port = _free_port()
    log = workdir / "kamailio.log"
    command = [program, "-f", str(KAMAILIO_CFG.resolve()), "-DD", "-E", "-m", "128"]
    command += ["-l", f"udp:{HOST}:{port}", "-A", f'PASSWORD="{SECRET}"']
    command += ["-P", str(workdir / "kamailio.pid"), "-Y", str(workdir)]
    with log.open("wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        _wait_sip(proc, port, log)
        yield Server("Kamailio", port, proc, "bob")
    finally:
        _stop(proc)


@contextmanager
def ivoz(workdir: Path) -> Iterator[Server]:
    data_dir = workdir / "var"
    sip, api, appserver = _free_port(), _free_port(), _free_port()
    ng = _free_port(socket.SOCK_DGRAM)
    rtp = 30000 + (os.getpid() % 100) * 200
    env = {
        **os.environ,
        "IVOZ_DEMO_SECRET": SECRET,
        "IVOZ_SIP_HOST": HOST,
        "IVOZ_SIP_UDP_PORT": str(sip),
        "IVOZ_SIP_TCP_PORT": str(sip),
        "IVOZ_SIP_TLS_PORT": str(_free_port()),
        "IVOZ_SIP_WS_PORT": str(_free_port()),
        "IVOZ_SIP_WSS_PORT": str(_free_port()),
        "IVOZ_NG_PORT": str(ng),
        "IVOZ_RTP_PORT_MIN": str(rtp),
        "IVOZ_RTP_PORT_MAX": str(rtp + 1999),
        "IVOZ_API_PORT": str(api),
        "IVOZ_APPSERVER_HOST": HOST,
        "IVOZ_APPSERVER_PORT": str(appserver),
        "IVOZ_APPSERVER_PROXY": f"{HOST}:{sip}",
    }
    env.pop("IVOZ_DATABASE_URL", None)
    env.pop("IVOZ_REDIS_URL", None)
    base = [sys.executable, "-m", "ivoz", "--data-dir", str(data_dir)]
    log = workdir / "ivoz.log"
    with log.open("wb") as out:
        subprocess.run([*base, "demo"], env=env, stdout=out, stderr=subprocess.STDOUT, check=True)
    _register_appserver(data_dir, appserver)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*base, "run", "--demo"], env=env, stdout=out, stderr=subprocess.STDOUT, cwd=workdir
        )
    try:
        _wait_sip(proc, sip, log)
        if not _wait_port_udp(appserver, proc):
            print("ivoz: the application server does not answer; calls will fail", flush=True)
        yield Server("Ivoz", sip, proc, "1002")
    finally:
        _stop(proc)


def _wait_port_udp(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if _sip_answers(port):
            return True
        time.sleep(0.2)
    return False


def _register_appserver(data_dir: Path, port: int) -> None:
    """The application server of this run in the demo's set (the demo may name another)."""
    from sqlalchemy import create_engine, select
    from sqlalchemy.orm import Session

    from ivoz.domain import models as m

    engine = create_engine(f"sqlite:///{(data_dir / 'ivoz.sqlite3').resolve()}")
    try:
        with Session(engine) as session, session.begin():
            app_set = session.scalar(
                select(m.ApplicationServerSet).order_by(m.ApplicationServerSet.id)
            )
            assert app_set is not None
            server = session.scalar(
                select(m.ApplicationServer).where(m.ApplicationServer.ip == HOST)
            )
            if server is None:
                server = m.ApplicationServer(name="bench", ip=HOST, port=port)
                session.add(server)
            server.port = port
            server.application_server_set_id = app_set.id
    finally:
        engine.dispose()


# -- SIPp -------------------------------------------------------------------------------


def sipp(
    workdir: Path,
    scenario: str,
    server: Server,
    *,
    calls: int,
    rate: int,
    user: str,
    keys: dict[str, str],
    timeout: float,
    local_port: int | None = None,
) -> tuple[int, int]:
    """Run one SIPp client scenario; (attempted, successful) calls."""
    program = shutil.which("sipp") or "sipp"
    xml = workdir / f"{scenario}.xml"
    xml.write_text({"register": REGISTER_XML, "caller": CALLER_XML}[scenario])
    command = [program, f"{HOST}:{server.port}", "-sf", str(xml), "-i", HOST]
    command += ["-p", str(local_port or _free_port()), "-m", str(calls), "-r", str(rate)]
    command += ["-l", "200"]
    command += ["-au", user, "-ap", SECRET, "-nostdin", "-trace_screen", "-trace_err"]
    # RFC 3261 22.4: the digest uri is the Request-URI (SIPp's default is remote_ip:port).
    callee = keys.get("callee")
    command += ["-auth_uri", f"{callee}@{DOMAIN}" if callee else DOMAIN]  # SIPp adds "sip:"
    command += ["-timeout", f"{int(timeout)}s", "-mp", str(_free_port(socket.SOCK_DGRAM))]
    for key, value in {"domain": DOMAIN, "user": user, **keys}.items():
        command += ["-key", key, value]
    for old in [
        *workdir.glob(f"{scenario}_*_screen.log"),
        *workdir.glob(f"{scenario}_*_errors.log"),
    ]:
        old.unlink()
    subprocess.run(command, cwd=workdir, capture_output=True, timeout=timeout + 30)
    screens = list(workdir.glob(f"{scenario}_*_screen.log"))
    text = screens[0].read_text(errors="replace") if screens else ""
    ok = re.search(r"Successful call\s*\|\s*\d+\s*\|\s*(\d+)", text)
    failed = re.search(r"Failed call\s*\|\s*\d+\s*\|\s*(\d+)", text)
    succeeded = int(ok.group(1)) if ok else 0
    return succeeded + (int(failed.group(1)) if failed else 0), succeeded


@contextmanager
def callee(workdir: Path, port: int) -> Iterator[int]:
    """A SIPp UAS answering every INVITE (200 with SDP, echoing Record-Route)."""
    program = shutil.which("sipp") or "sipp"
    xml = workdir / "callee.xml"
    xml.write_text(CALLEE_XML)
    command = [program, "-sf", str(xml), "-i", HOST, "-p", str(port), "-nostdin"]
    command += ["-mp", str(_free_port(socket.SOCK_DGRAM))]
    proc = subprocess.Popen(
        command, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(0.5)
        yield port
    finally:
        _stop(proc)


def run_server(name: str, args: argparse.Namespace) -> list[Phase]:
    phases = []
    with tempfile.TemporaryDirectory(prefix=f"bench-proxy-{name}-") as tmp:
        workdir = Path(tmp)
        if args.keep:
            workdir = Path(tempfile.mkdtemp(prefix=f"bench-proxy-{name}-"))
            print(f"{name}: logs and SIPp traces in {workdir}", flush=True)
        starter = ivoz if name == "ivoz" else kamailio
        with starter(workdir) as server:
            time.sleep(1.0)  # let start-up work settle before measuring
            # Rate-limited steps, each with its share of the registrations.
            for rate in args.register_rates:
                cpu, start = server.cpu(), time.monotonic()
                attempted, ok = sipp(
                    workdir,
                    "register",
                    server,
                    calls=args.registrations // len(args.register_rates),
                    rate=rate,
                    user="alice",
                    keys={"contact_port": "5999"},
                    timeout=120,
                )
                seconds, used = time.monotonic() - start, server.cpu() - cpu
                phases.append(
                    Phase(server.name, "registrations", attempted, ok, seconds, used, rate)
                )
            # The callee registers as bob from the port it then answers on (a Contact
            # that is not the REGISTER's source would count as behind NAT).
            callee_port = _free_port()
            sipp(
                workdir,
                "register",
                server,
                calls=1,
                rate=1,
                user="bob",
                keys={"contact_port": str(callee_port)},
                timeout=20,
                local_port=callee_port,
            )
            with callee(workdir, callee_port):
                for rate in args.call_rates:
                    cpu, start = server.cpu(), time.monotonic()
                    attempted, ok = sipp(
                        workdir,
                        "caller",
                        server,
                        calls=args.calls // len(args.call_rates),
                        rate=rate,
                        user="alice",
                        keys={"callee": server.callee},
                        timeout=120,
                    )
                    seconds, used = time.monotonic() - start, server.cpu() - cpu
                    phases.append(Phase(server.name, "calls", attempted, ok, seconds, used, rate))
    for phase in phases:
        print(
            f"{phase.server} {phase.what}: {phase.succeeded}/{phase.attempted} in"
            f" {phase.seconds:.1f} s, {phase.cpu:.2f} CPU s, {phase.per_core:,.0f} per core",
            flush=True,
        )
    return phases


def _rates(text: str) -> list[int]:
    return [int(r) for r in text.split(",") if r.strip()]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.proxy", description=__doc__)
    parser.add_argument("--registrations", type=int, default=2000, help="in all steps")
    parser.add_argument(
        "--register-rates", type=_rates, default=[200, 400], help="REGISTERs/s per step"
    )
    parser.add_argument("--calls", type=int, default=500, help="in all steps")
    parser.add_argument("--call-rates", type=_rates, default=[25, 50], help="calls/s per step")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep logs and SIPp traces")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    phases = run_server("ivoz", args) + run_server("kamailio", args)
    rows = [
        "## Users proxy against Kamailio (SIPp, loopback UDP)",
        "",
        "| server | work | done / tried | offered rate /s | wall s | server CPU s | per core /s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for p in phases:
        rows.append(
            f"| {p.server} | {p.what} | {p.succeeded} / {p.attempted} | {p.rate} | {p.seconds:.1f}"
            f" | {p.cpu:.2f} | {p.per_core:,.0f} |"
        )
    notes = []
    for what in ("registrations", "calls"):
        mine, theirs = _total(phases, "Ivoz", what), _total(phases, "Kamailio", what)
        if mine and theirs and mine.succeeded and theirs.succeeded:
            ratio = mine.per_core / theirs.per_core
            notes.append(
                f"{what}: Ivoz {mine.per_core:,.0f} and Kamailio {theirs.per_core:,.0f} per core"
                f" over all steps; ratio Ivoz / Kamailio {ratio:.2f}"
            )
        else:
            notes.append(f"{what}: ratio not measured (failures above)")
    table = "\n".join(rows) + "\n\n" + "\n".join(f"- {n}" for n in notes)
    table += (
        "\n\nSIPp over UDP on loopback; registrations with digest (401 round trip), calls"
        " INVITE with 407 round trip, 200, ACK, BYE, 200. Ivoz's calls cross the users"
        " proxy twice, the application server (B2BUA) and the relay (ng offer/answer/"
        "delete) in one process; Kamailio (bench/kamailio.cfg, 2 UDP workers) is a plain"
        " registrar and record-routing stateful proxy. CPU seconds (utime + stime from"
        " /proc, 10 ms ticks) of the server's processes while each step ran; one-minute"
        f" load average at the start: {load:.1f} on {os.cpu_count()} cores."
    )
    print(table)
    if not args.no_write:
        write_section("proxy", table)


if __name__ == "__main__":
    main(sys.argv[1:])
