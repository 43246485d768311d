"""The users proxy reaches a SIPp UAS through a name that a real DNS server resolves.

dnsmasq serves ``_sip._udp.uas.ivoz.test`` with two SRV records: priority 10 on a
small UDP responder of this test that answers every request with 503, priority 20 on
``sipp -sn uas``. ``ivoz run --role proxy-users`` (``IVOZ_DNS_SERVERS`` pointing at
dnsmasq) gets an in-dialog INVITE routed through it to ``sip:service@uas.ivoz.test``:
it asks NAPTR, then SRV, then A, sends to the first target, gets the 503 and moves to
the second (RFC 3263 4.3). SIPp answers 180 and 200; the ACK and the BYE follow SIPp's
Contact through the proxy, and SIPp ends its one call successfully.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ivoz.sip import Request, Response, make_response, parse_message
from support.dnsmasq import dnsmasq
from support.tools import free_port, require_tool, stop_process, wait_for_port

HOST = "127.0.0.1"

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def proxy(data_dir: Path, env: dict[str, str]) -> Iterator[int]:
    """`ivoz run --role proxy-users` on free ports; yields its UDP (and TCP) port."""
    log = data_dir / "proxy.log"
    sip, tls, ws, wss = free_port(), free_port(), free_port(), free_port()
    command = [
        sys.executable, "-m", "ivoz", "--data-dir", str(data_dir), "-v", "run",
        "--role", "proxy-users", "--sip-host", HOST,
        "--sip-udp-port", str(sip), "--sip-tcp-port", str(sip), "--sip-tls-port", str(tls),
        "--sip-ws-port", str(ws), "--sip-wss-port", str(wss),
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env}
        )
    try:
        wait_for_port(HOST, sip, timeout=30)
        yield sip
    finally:
        stop_process(proc)
        text = log.read_text(errors="replace")
        print(text[-4000:])  # shown by pytest when the test failed
    assert "Traceback" not in text, text[-4000:]


@contextlib.contextmanager
def busy_server(port: int) -> Iterator[list[str]]:
    """A UDP SIP server on ``port`` that answers every request but ACK with 503."""
    seen: list[str] = []
    stop = threading.Event()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((HOST, port))
    sock.settimeout(0.1)

    def serve() -> None:
        while not stop.is_set():
            try:
                data, source = sock.recvfrom(65535)
            except TimeoutError:
                continue
            message = parse_message(data, datagram=True)
            if not isinstance(message, Request):
                continue
            seen.append(message.method)
            if message.method != "ACK":
                answer = make_response(message, 503, "Service Unavailable", to_tag="busy")
                sock.sendto(answer.to_bytes(), source)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(2)
        sock.close()


def request(method: str, ruri: str, proxy_port: int, local: int, seq: int, to_tag: str) -> bytes:
    branch = f"z9hG4bK{random.getrandbits(48):x}"
    return (
        f"{method} {ruri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{local};rport;branch={branch}\r\n"
        f"Route: <sip:{HOST}:{proxy_port};lr>\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:tester@{HOST}>;tag=dns-e2e\r\n"
        f"To: <sip:service@uas.ivoz.test>;tag={to_tag}\r\n"
        "Call-ID: dns-e2e-call\r\n"
        f"CSeq: {seq} {method}\r\n"
        f"Contact: <sip:tester@{HOST}:{local}>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def final(sock: socket.socket, method: str) -> Response:
    """The final response to ``method`` (provisionals skipped)."""
    while True:
        data, _ = sock.recvfrom(65535)
        message = parse_message(data, datagram=True)
        if (
            isinstance(message, Response)
            and message.cseq.method == method
            and message.status >= 200
        ):
            return message


def test_proxy_reaches_sipp_by_srv_with_failover_on_503(tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    busy_port, sipp_port = free_port(), free_port()
    records = [
        f"--srv-host=_sip._udp.uas.ivoz.test,busy.ivoz.test,{busy_port},10,0",
        f"--srv-host=_sip._udp.uas.ivoz.test,sipp.ivoz.test,{sipp_port},20,0",
        "--host-record=busy.ivoz.test,127.0.0.1",
        "--host-record=sipp.ivoz.test,127.0.0.1",
    ]
    with (
        dnsmasq(records) as dns,
        busy_server(busy_port) as busy,
        proxy(tmp_path, {"IVOZ_DNS_SERVERS": dns.server}) as proxy_port,
    ):
        uas = subprocess.Popen(
            [sipp, "-sn", "uas", "-i", HOST, "-p", str(sipp_port), "-m", "1",
             "-timeout", "30s", "-nostdin", "-trace_err"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind((HOST, 0))
                sock.settimeout(15)
                local = sock.getsockname()[1]
                target = "sip:service@uas.ivoz.test"
                sock.sendto(
                    request("INVITE", target, proxy_port, local, 1, "t1"), (HOST, proxy_port)
                )
                ok = final(sock, "INVITE")
                assert ok.status == 200, ok.to_bytes()[:300]
                # the 200 came from SIPp, after the busy server's 503 (failover)
                assert busy == ["INVITE", "ACK"]
                contact = ok.contacts[0].uri
                assert contact.port == sipp_port
                remote = str(contact)
                to_tag = ok.to_tag or ""
                sock.sendto(
                    request("ACK", remote, proxy_port, local, 1, to_tag), (HOST, proxy_port)
                )
                sock.sendto(
                    request("BYE", remote, proxy_port, local, 2, to_tag), (HOST, proxy_port)
                )
                assert final(sock, "BYE").status == 200
            assert uas.wait(20) == 0  # SIPp's one call went through successfully
        finally:
            stop_process(uas)
            errors = "".join(p.read_text(errors="replace") for p in tmp_path.glob("*_errors.log"))
            print(errors[-2000:])
        # what reached the DNS server: NAPTR first, then the SRV, then the targets' A
        asked = dns.queries()
        assert asked[0] == ("NAPTR", "uas.ivoz.test")
        assert ("SRV", "_sip._udp.uas.ivoz.test") in asked
        assert ("A", "sipp.ivoz.test") in asked
