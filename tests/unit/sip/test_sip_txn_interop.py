"""Transactions, dialogs and digest auth against real SIP tools (SIPp, sipsak) over UDP.

A tiny user agent made of nothing but the sans-IO core (TransactionLayer, Dialog,
digest) and a UDP socket on 127.0.0.1 plays callee, caller or registrar; SIPp and
sipsak are the peers and judge the outcome by their exit status.
"""

from __future__ import annotations

import select
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import pytest

from ivoz import sip
from ivoz.sip import digest
from ivoz.sip.auth import credentials_for
from ivoz.sip.dialog import Dialog, DialogId, DialogState, dialog_id_of
from ivoz.sip.transaction import (
    Event,
    RequestReceived,
    ResponseReceived,
    ServerInviteTransaction,
    ServerTransaction,
    State,
    TransactionLayer,
    TransactionTimedOut,
)
from support.tools import INTEROP, free_port, require_path, require_tool, stop_process

pytestmark = pytest.mark.slow

Handler = Callable[["UdpAgent", Event, float], None]


class UdpAgent:
    """Our transaction layer on a real UDP socket, driven by the monotonic clock."""

    def __init__(self, handler: Handler) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.layer = TransactionLayer()
        self.handler = handler
        self.errors: list[BaseException] = []
        self.malformed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> UdpAgent:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def via(self) -> sip.Via:
        return sip.Via("UDP", "127.0.0.1", self.port, {"rport": None})

    def call(self, command: Callable[[float], None]) -> None:
        """Run ``command(now)`` on the agent's state, then send what it produced."""
        with self._lock:
            now = time.monotonic()
            command(now)
            self._flush(now)

    def send_direct(self, message: sip.Request, address: tuple[str, int]) -> None:
        self.sock.sendto(message.to_bytes(), address)

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                deadline = self.layer.next_timer()
            timeout = 0.05 if deadline is None else min(0.05, max(0.0, deadline - time.monotonic()))
            readable, _, _ = select.select([self.sock], [], [], timeout)
            with self._lock:
                now = time.monotonic()
                if readable:
                    data, address = self.sock.recvfrom(65535)
                    try:
                        message = sip.parse_message(data)
                        self.layer.receive(message, now, reliable=False, source=address)
                    except sip.RemoteError:
                        self.malformed += 1
                self.layer.on_timer(now)
                self._flush(now)

    def _flush(self, now: float) -> None:
        while True:
            events = self.layer.next_events()
            for event in events:
                try:
                    self.handler(self, event, now)
                except Exception as exc:  # reported by the test, never lost in the thread
                    self.errors.append(exc)
            out = self.layer.messages_to_send()
            for transmit in out:
                assert isinstance(transmit.destination, tuple)
                self.sock.sendto(transmit.message.to_bytes(), transmit.destination)
            if not events and not out:
                return


def run(argv: list[str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        stop_process(proc)
    return subprocess.CompletedProcess(argv, proc.returncode, out, b"")


# -- SIPp calls us ------------------------------------------------------------------


class Callee:
    """Answers INVITE with 180 then 200 (a UAS dialog), takes ACK and BYE in the dialog."""

    def __init__(self) -> None:
        self.dialogs: dict[DialogId, Dialog] = {}
        self.acks = 0
        self.byes = 0

    def __call__(self, ua: UdpAgent, event: Event, now: float) -> None:
        if not isinstance(event, RequestReceived):
            return
        request = event.request
        if request.method == "ACK":
            # the ACK for our 2xx comes without a transaction (RFC 3261 17.2.3 / 13.3.1.4)
            self.dialogs[dialog_id_of(request, received=True)].receive_request(request)
            self.acks += 1
            return
        txn = event.transaction
        assert txn is not None
        contact = f"<sip:bob@127.0.0.1:{ua.port}>"
        if request.method == "INVITE" and request.to_tag is None:
            tag = sip.new_tag()
            ringing = sip.make_response(request, 180, to_tag=tag)
            ringing.headers.add("Contact", contact)
            dialog = Dialog.from_uas(request, ringing)
            self.dialogs[dialog.id] = dialog
            ua.layer.send_response(txn, ringing, now)
            ok = sip.make_response(request, 200, to_tag=tag)
            ok.headers.add("Contact", contact)
            dialog.send_response(ok)
            ua.layer.send_response(txn, ok, now)
        elif request.method == "BYE":
            found = self.dialogs.get(dialog_id_of(request, received=True))
            if found is None:
                ua.layer.send_response(txn, sip.make_response(request, 481), now)
                return
            found.receive_request(request)
            self.byes += 1
            ua.layer.send_response(txn, sip.make_response(request, 200), now)
        else:
            ua.layer.send_response(txn, sip.make_response(request, 501), now)


def test_sipp_uac_calls_our_uas(tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    callee = Callee()
    with UdpAgent(callee) as ua:
        result = run(
            [
                sipp, "-sn", "uac", f"127.0.0.1:{ua.port}", "-s", "bob",
                "-i", "127.0.0.1", "-p", str(free_port(socket.SOCK_DGRAM)),
                "-m", "3", "-r", "10", "-d", "200", "-nostdin", "-timeout", "40s",
            ],
            tmp_path,
        )  # fmt: skip
        deadline = time.monotonic() + 5
        while len(ua.layer) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert result.returncode == 0, result.stdout.decode(errors="replace")[-3000:]
    assert ua.errors == []
    assert len(callee.dialogs) == 3
    assert callee.acks == 3 and callee.byes == 3
    assert all(d.state is DialogState.TERMINATED for d in callee.dialogs.values())


# -- we call SIPp -------------------------------------------------------------------


class Caller:
    """Sends INVITE, builds the UAC dialog, ACKs the 2xx, hangs up with BYE."""

    def __init__(self) -> None:
        self.dialog: Dialog | None = None
        self.ack: sip.Request | None = None
        self.statuses: list[tuple[str, int]] = []
        self.done = threading.Event()
        self.timed_out = False

    def invite(self, ua: UdpAgent, sipp_port: int) -> Callable[[float], None]:
        def command(now: float) -> None:
            headers = sip.Headers()
            headers.add("Via", str(ua.via().with_params(branch=sip.new_branch())))
            headers.add("Max-Forwards", "70")
            headers.add("From", f"<sip:alice@127.0.0.1:{ua.port}>;tag={sip.new_tag()}")
            headers.add("To", f"<sip:service@127.0.0.1:{sipp_port}>")
            headers.add("Call-ID", sip.new_call_id("127.0.0.1"))
            headers.add("CSeq", "1 INVITE")
            headers.add("Contact", f"<sip:alice@127.0.0.1:{ua.port}>")
            invite = sip.Request("INVITE", f"sip:service@127.0.0.1:{sipp_port}", headers)
            # SIPp may not listen yet: Timer A retransmits until it does
            ua.layer.send_request(invite, now, reliable=False, destination=("127.0.0.1", sipp_port))

        return command

    def __call__(self, ua: UdpAgent, event: Event, now: float) -> None:
        if isinstance(event, TransactionTimedOut):
            self.timed_out = True
            self.done.set()
        if not isinstance(event, ResponseReceived):
            return
        response = event.response
        request = event.transaction.request
        self.statuses.append((response.cseq.method, response.status))
        if request.method == "INVITE":
            if response.to_tag is None or response.status >= 300:
                return
            if self.dialog is None:
                self.dialog = Dialog.from_uac(request, response)
            else:
                self.dialog.receive_response(response)
            if response.status < 200:
                return
            target = self.dialog.remote_target
            address = (target.host, target.port or 5060)
            if self.ack is None:
                # RFC 3261 13.2.2.4: the UAC core ACKs the 2xx in the dialog
                self.ack = self.dialog.create_request("ACK", cseq=request.cseq.seq, via=ua.via())
                bye = self.dialog.create_request("BYE", via=ua.via())
                ua.send_direct(self.ack, address)
                ua.layer.send_request(bye, now, reliable=False, destination=address)
            else:
                ua.send_direct(self.ack, address)  # a retransmitted 2xx: ACK again
        elif request.method == "BYE" and response.status >= 200:
            self.done.set()


def test_our_uac_calls_sipp_uas(tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    sipp_port = free_port(socket.SOCK_DGRAM)
    caller = Caller()
    proc = subprocess.Popen(
        [sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", str(sipp_port), "-m", "1", "-nostdin"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        with UdpAgent(caller) as ua:
            ua.call(caller.invite(ua, sipp_port))
            assert caller.done.wait(40), caller.statuses
            out, _ = proc.communicate(timeout=20)
    finally:
        stop_process(proc)
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    assert ua.errors == [] and not caller.timed_out
    assert ("INVITE", 200) in caller.statuses and ("BYE", 200) in caller.statuses
    assert caller.dialog is not None and caller.dialog.state is DialogState.TERMINATED


# -- retransmissions against a real peer ---------------------------------------------

BUSY_UAC = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="busy, first 486 ignored">
  <send>
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="486"/>
  <recv response="486"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-4]
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="300"/>
</scenario>
"""

LATE_UAS = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="answers the retransmitted INVITE">
  <recv request="INVITE"/>
  <recv request="INVITE"/>
  <send>
    <![CDATA[
      SIP/2.0 486 Busy Here
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
</scenario>
"""


class Busy:
    """Answers every INVITE 486 and records what the server transactions do."""

    def __init__(self) -> None:
        self.transactions: list[ServerTransaction] = []

    def __call__(self, ua: UdpAgent, event: Event, now: float) -> None:
        if isinstance(event, RequestReceived) and event.transaction is not None:
            self.transactions.append(event.transaction)
            busy = sip.make_response(event.request, 486, to_tag=sip.new_tag())
            ua.layer.send_response(event.transaction, busy, now)


def test_timer_g_retransmits_486_until_sipp_acks(tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    scenario = tmp_path / "busy_uac.xml"
    scenario.write_text(BUSY_UAC)
    busy = Busy()
    with UdpAgent(busy) as ua:
        result = run(
            [
                sipp, f"127.0.0.1:{ua.port}", "-sf", str(scenario), "-s", "bob",
                "-i", "127.0.0.1", "-p", str(free_port(socket.SOCK_DGRAM)),
                "-m", "1", "-nr", "-nostdin", "-timeout", "20s",
            ],
            tmp_path,
        )  # fmt: skip
        states = [t.state for t in busy.transactions]
    # SIPp only passes when the 486 came twice (RFC 3261 17.2.1: Timer G) and our
    # transaction took its ACK (Confirmed, then Terminated after Timer I)
    assert result.returncode == 0, result.stdout.decode(errors="replace")[-3000:]
    assert ua.errors == []
    assert len(states) == 1 and states[0] in (State.CONFIRMED, State.TERMINATED)


def test_timer_a_retransmits_invite_and_the_transaction_acks_486(tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    scenario = tmp_path / "late_uas.xml"
    scenario.write_text(LATE_UAS)
    sipp_port = free_port(socket.SOCK_DGRAM)
    caller = Caller()
    proc = subprocess.Popen(
        [sipp, "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(sipp_port), "-m", "1",
         "-nr", "-nostdin", "-timeout", "20s"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        with UdpAgent(caller) as ua:
            ua.call(caller.invite(ua, sipp_port))
            out, _ = proc.communicate(timeout=30)
    finally:
        stop_process(proc)
    # SIPp only passes when it saw the INVITE twice (RFC 3261 17.1.1.2: Timer A) and
    # then the ACK our INVITE client transaction generated for the 486 (17.1.1.3)
    assert proc.returncode == 0, out.decode(errors="replace")[-3000:]
    assert ua.errors == []
    assert ("INVITE", 486) in caller.statuses


CANCEL_UAC = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="cancel while ringing">
  <send>
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180"/>
  <send>
    <![CDATA[
      CANCEL sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-3]
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 CANCEL
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
  <recv response="487"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-6]
      From: <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <pause milliseconds="300"/>
</scenario>
"""


class Ringing:
    """Rings on INVITE; a CANCEL gets 200 and the INVITE 487 (RFC 3261 9.2)."""

    def __init__(self) -> None:
        self.invites: list[ServerInviteTransaction] = []
        self.tags: dict[str, str] = {}

    def __call__(self, ua: UdpAgent, event: Event, now: float) -> None:
        if not isinstance(event, RequestReceived) or event.transaction is None:
            return
        request, txn = event.request, event.transaction
        if request.method == "INVITE":
            assert isinstance(txn, ServerInviteTransaction)
            self.invites.append(txn)
            tag = self.tags.setdefault(request.call_id, sip.new_tag())
            ua.layer.send_response(txn, sip.make_response(request, 180, to_tag=tag), now)
        elif request.method == "CANCEL":
            invite = ua.layer.find_cancelled(request)
            if invite is None:
                ua.layer.send_response(txn, sip.make_response(request, 481), now)
                return
            ua.layer.send_response(txn, sip.make_response(request, 200), now)
            if invite.state is State.PROCEEDING:
                tag = self.tags[request.call_id]
                terminated = sip.make_response(invite.request, 487, to_tag=tag)
                ua.layer.send_response(invite, terminated, now)


def test_sipp_cancels_a_ringing_call(tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    scenario = tmp_path / "cancel_uac.xml"
    scenario.write_text(CANCEL_UAC)
    ringing = Ringing()
    with UdpAgent(ringing) as ua:
        result = run(
            [
                sipp, f"127.0.0.1:{ua.port}", "-sf", str(scenario), "-s", "bob",
                "-i", "127.0.0.1", "-p", str(free_port(socket.SOCK_DGRAM)),
                "-m", "2", "-nr", "-nostdin", "-timeout", "20s",
            ],
            tmp_path,
        )  # fmt: skip
        states = [t.state for t in ringing.invites]
    assert result.returncode == 0, result.stdout.decode(errors="replace")[-3000:]
    assert ua.errors == []
    # the ACK for the 487 matched the INVITE transaction (Confirmed, or done with Timer I)
    assert len(states) == 2 and all(s in (State.CONFIRMED, State.TERMINATED) for s in states)


# -- digest against sipsak and SIPp -------------------------------------------------

REALM = "ivoz.test"
SECRET = b"interop-secret"


class Registrar:
    """Challenges every REGISTER and OPTIONS; 200 when the digest verifies, else 403."""

    def __init__(self, password: str = "secret") -> None:
        self.password = password
        self.results: list[digest.DigestResult] = []

    def __call__(self, ua: UdpAgent, event: Event, now: float) -> None:
        if not isinstance(event, RequestReceived) or event.transaction is None:
            return
        request = event.request
        credentials = credentials_for(request, REALM)
        if credentials is None:
            response = sip.make_response(request, 401, to_tag=sip.new_tag())
            challenge = digest.make_challenge(REALM, SECRET, now)
            response.headers.add("WWW-Authenticate", str(challenge))
        else:
            result = digest.verify(
                credentials, request.method, SECRET, now, password=self.password, realm=REALM
            )
            self.results.append(result)
            status = 200 if result is digest.DigestResult.OK else 403
            response = sip.make_response(request, status, to_tag=sip.new_tag())
            if status == 200 and request.method == "REGISTER":
                for contact in request.headers.get_all("Contact"):
                    response.headers.add("Contact", f"{contact};expires=60")
        ua.layer.send_response(event.transaction, response, now)


@pytest.mark.parametrize(("password", "ok"), [("secret", True), ("wrong", False)])
def test_sipsak_digest(tmp_path: Path, password: str, ok: bool) -> None:
    sipsak = require_tool("sipsak")
    registrar = Registrar()
    with UdpAgent(registrar) as ua:
        result = run(
            [sipsak, "-s", f"sip:alice@127.0.0.1:{ua.port}", "-a", password, "-u", "alice"],
            tmp_path,
        )
    assert ua.errors == []
    assert (result.returncode == 0) is ok, result.stdout.decode(errors="replace")
    expected = digest.DigestResult.OK if ok else digest.DigestResult.BAD
    assert registrar.results == [expected]


def test_sipp_register_with_digest(tmp_path: Path) -> None:
    sipp = require_tool("sipp")
    scenario = require_path(INTEROP / "sipp" / "reg_auth.xml", "SIPp REGISTER scenario")
    registrar = Registrar()
    sipp_port = free_port(socket.SOCK_DGRAM)
    with UdpAgent(registrar) as ua:
        result = run(
            [
                sipp, f"127.0.0.1:{ua.port}", "-sf", str(scenario), "-s", "alice",
                "-au", "alice", "-ap", "secret", "-key", "contact_port", str(sipp_port),
                "-key", "expires", "60", "-i", "127.0.0.1", "-p", str(sipp_port),
                "-m", "2", "-nostdin", "-timeout", "30s",
            ],
            tmp_path,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout.decode(errors="replace")[-3000:]
    assert ua.errors == []
    assert registrar.results == [digest.DigestResult.OK] * 2
