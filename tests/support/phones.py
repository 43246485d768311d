"""Real softphones for end-to-end tests: baresip and linphone drivers, tones, FFT check.

``Baresip`` writes a headless config directory (aufile source playing a tone WAV,
sndfile recording what it hears into ``rec/``, ctrl_tcp for control), starts
``baresip -f DIR`` and follows its ctrl_tcp events on a reader thread: tests wait for
``REGISTER_OK``, ``CALL_INCOMING``, ``CALL_RINGING``, ``CALL_ESTABLISHED``,
``CALL_DTMF_START`` and ``CALL_CLOSED``. The account registers to an AOR of the
platform's domain (``sip:alice@acme.ivoz.test``) through an outbound proxy that is the
platform's listener for the chosen transport (udp, tcp or tls).

``Linphone`` runs ``linphonec`` with a generated rc file, fed commands on its stdin
(``register``, ``call``, ``answer``, ``terminate``), with files as its sound card; its
state is read from its output ("Call N ... connected") and its debug log (REGISTER results).

``write_tone`` and ``dominant_frequency`` make and check the audio: each phone plays
its own sine tone, and the peak of the FFT of what it recorded tells whose tone it heard.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import socket
import ssl
import subprocess
import threading
import time
import wave
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, BytesMessage, Ping, TextMessage
from wsproto.events import Request as WsRequest

from support.tools import free_port, mark_used, require_tool, stop_process

HOST = "127.0.0.1"
RATE = 8000  # Hz: phones' sources and recordings are 8 kHz mono
ALICE_HZ = 440.0
BOB_HZ = 880.0


# -- audio -----------------------------------------------------------------------------


def write_tone(path: Path, freq: float, seconds: float = 60.0) -> Path:
    """A 16-bit mono 8 kHz sine WAV; longer than any call (baresip hangs up at its end)."""
    t = np.arange(int(RATE * seconds)) / RATE
    samples = (0.5 * 32767 * np.sin(2 * np.pi * freq * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.tobytes())
    return path


def dominant_frequency(path: Path) -> tuple[float, float, float]:
    """(peak Hz, RMS, seconds) of a 16-bit WAV; header sizes are not trusted.

    A phone killed mid-call leaves the RIFF sizes unfinished, so the samples are taken
    from the ``data`` chunk to the end of the file. The first fifth is skipped (jitter
    buffer fill, comfort noise).
    """
    data = path.read_bytes()
    fmt = data.find(b"fmt ")
    if fmt < 0:
        return 0.0, 0.0, 0.0
    channels = int.from_bytes(data[fmt + 10 : fmt + 12], "little")
    rate = int.from_bytes(data[fmt + 12 : fmt + 16], "little")
    start = data.find(b"data", fmt) + 8
    pcm = np.frombuffer(data[start : start + (len(data) - start) // 2 * 2], dtype="<i2")
    samples = pcm.reshape(-1, channels)[:, 0] if channels > 1 else pcm
    signal = samples.astype(np.float64)[len(samples) // 5 :]
    if len(signal) < rate // 2:
        return 0.0, 0.0, len(signal) / max(rate, 1)
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(len(signal))))
    freqs = np.fft.rfftfreq(len(signal), 1 / rate)
    return (
        float(freqs[int(np.argmax(spectrum[1:])) + 1]),
        float(np.sqrt(np.mean(signal**2))),
        len(signal) / rate,
    )


def assert_hears(path: Path | None, expected: float, who: str = "") -> None:
    """The recording holds a tone at ``expected`` Hz (within 20 Hz), loud enough."""
    assert path is not None, f"{who}: no recording"
    peak, rms, seconds = dominant_frequency(path)
    detail = f"{who} heard {peak:.0f} Hz, RMS {rms:.0f}, {seconds:.1f} s in {path.name}"
    assert seconds > 1.0, detail
    assert rms > 100, detail
    assert abs(peak - expected) < 20, detail


# -- baresip ---------------------------------------------------------------------------


def free_port_pair() -> int:
    """A port P such that P and P + 1 are both free (UDP and TCP) right now."""
    for _ in range(100):
        port = free_port()
        try:
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    s.bind((HOST, port + 1))
        except OSError:
            continue
        mark_used(port + 1)
        return port
    raise RuntimeError("no free pair of ports")


class BaresipError(AssertionError):
    pass


BARESIP_MODULES = ("g711", "g722", "opus", "sndfile", "alsa", "aufile")


def write_baresip_config(
    directory: Path,
    *,
    sip_port: int,
    ctrl_port: int,
    wav: Path,
    account: str,
    modules: Iterable[str] = BARESIP_MODULES,
    settings: dict[str, str] | None = None,
) -> None:
    """A headless baresip config directory: ``config``, ``accounts`` (one line), ``contacts``.

    The source plays ``wav`` (aufile), what the phone hears is recorded into
    ``DIRECTORY/rec`` (sndfile), ctrl_tcp listens on ``ctrl_port``; ``settings`` adds
    config lines.
    """
    rtp = free_port(socket.SOCK_DGRAM)
    rtp = min(rtp - rtp % 2, 65000)
    lines = {
        "poll_method": "epoll",
        "sip_listen": f"{HOST}:{sip_port}",
        "call_local_timeout": "120",
        "call_max_calls": "4",
        "audio_player": "alsa,null",
        "audio_source": f"aufile,{wav}",
        "audio_alert": "alsa,null",
        "ausrc_srate": "8000",
        "ausrc_channels": "1",
        "auplay_srate": "8000",
        "auplay_channels": "1",
        "audio_buffer": "20-160",
        "rtp_ports": f"{rtp}-{rtp + 20}",
        "rtcp_mux": "no",
        "jitter_buffer_delay": "5-10",
        "net_interface": HOST,
        "module_path": "/usr/lib/baresip/modules",
        "ctrl_tcp_listen": f"{HOST}:{ctrl_port}",
        "snd_path": str(directory / "rec"),
        **(settings or {}),
        "statmode_default": "off",
    }
    text = "".join(f"{key}\t{value}\n" for key, value in lines.items())
    for module in modules:
        text += f"module\t{module}.so\n"
    text += "module_tmp\tuuid.so\nmodule_tmp\taccount.so\n"
    text += "module_app\tmenu.so\nmodule_app\tctrl_tcp.so\n"
    (directory / "config").write_text(text)
    (directory / "accounts").write_text(account + "\n")
    (directory / "contacts").write_text("")


class Baresip:
    """One baresip process with one account, driven over ctrl_tcp."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        *,
        tone: float,
        account: str | None = None,
        user: str | None = None,
        password: str = "",
        domain: str = "",
        proxy: tuple[str, int] | None = None,
        transport: str = "udp",
        codec: str = "PCMU",
        regint: int = 600,
        extra: str = "",
    ) -> None:
        """``account`` is a whole baresip account line; otherwise one is built.

        The built account is ``<sip:USER@DOMAIN;transport=T>`` registering every
        ``regint`` seconds through ``proxy`` (outbound proxy on transport T), answering
        by hand (``accept``), offering ``codec`` only.
        """
        self.name = name
        self.directory = workdir / f"baresip-{name}"
        self.rec = self.directory / "rec"
        self.rec.mkdir(parents=True, exist_ok=True)
        # baresip listens on SIP_PORT (UDP, TCP) and SIP_PORT + 1 (TLS).
        self.sip_port = free_port_pair()
        self.ctrl_port = free_port()
        while self.ctrl_port in (self.sip_port, self.sip_port + 1):
            self.ctrl_port = free_port()
        self.tone = tone
        self.wav = write_tone(self.directory / f"tone_{int(tone)}.wav", tone)
        if account is None:
            assert user and domain and proxy, "user, domain and proxy build the account"
            host, port = proxy
            account = (
                f"<sip:{user}@{domain};transport={transport}>;auth_pass={password};"
                f'outbound="sip:{host}:{port};transport={transport}";'
                f"regint={regint};answermode=manual;audio_codecs={codec}{extra}"
            )
        self.account = account
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / f"baresip-{name}.log"
        self._sock: socket.socket | None = None
        self._events: list[dict[str, Any]] = []
        self._responses: list[dict[str, Any]] = []
        self._cursor = 0
        self._cond = threading.Condition()
        self._reader: threading.Thread | None = None
        self._write_config()

    def _write_config(self) -> None:
        write_baresip_config(
            self.directory,
            sip_port=self.sip_port,
            ctrl_port=self.ctrl_port,
            wav=self.wav,
            account=self.account,
            settings={"menu_bell": "no"},
        )

    # -- process ----------------------------------------------------------------

    def start(self) -> Baresip:
        program = require_tool("baresip")
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [program, "-f", str(self.directory)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while True:
            try:
                self._sock = socket.create_connection((HOST, self.ctrl_port), timeout=1)
                break
            except OSError as exc:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    message = f"{self.name}: baresip did not start\n{self.log_tail()}"
                    raise BaresipError(message) from exc
                time.sleep(0.1)
        self._sock.settimeout(None)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def stop(self) -> None:
        """``quit`` over ctrl_tcp, then SIGTERM/SIGKILL; never waits for an unREGISTER."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.send("quit")
            try:
                self.proc.wait(4)
            except subprocess.TimeoutExpired:
                stop_process(self.proc, timeout=2)
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        if self._reader is not None:
            self._reader.join(2)

    def __enter__(self) -> Baresip:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    # -- ctrl_tcp ---------------------------------------------------------------

    def send(self, command: str, params: str = "") -> None:
        """One ctrl_tcp command (netstring-framed JSON)."""
        assert self._sock is not None
        body = json.dumps({"command": command, "params": params, "token": command}).encode()
        self._sock.sendall(str(len(body)).encode() + b":" + body + b",")

    def _read(self) -> None:
        assert self._sock is not None
        buffer = b""
        while True:
            try:
                data = self._sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                with self._cond:
                    self._events.append({"event": True, "type": "CTRL_CLOSED"})
                    self._cond.notify_all()
                return
            buffer += data
            while True:
                colon = buffer.find(b":")
                if colon <= 0:
                    break
                size = int(buffer[:colon])
                if len(buffer) < colon + 2 + size:
                    break
                message = json.loads(buffer[colon + 1 : colon + 1 + size])
                buffer = buffer[colon + 2 + size :]
                with self._cond:
                    if message.get("event"):
                        self._events.append(message)
                    elif message.get("response"):
                        self._responses.append(message)
                    self._cond.notify_all()

    @property
    def events(self) -> list[str]:
        with self._cond:
            return [str(e.get("type")) for e in self._events]

    def wait_event(
        self, wanted: str | Iterable[str], timeout: float = 10.0, *, fail: Iterable[str] = ()
    ) -> dict[str, Any]:
        """The next event (after the last one waited for) whose type is in ``wanted``.

        An event in ``fail`` or the end of the control connection raises at once.
        """
        names = {wanted} if isinstance(wanted, str) else set(wanted)
        failing = set(fail) | {"CTRL_CLOSED"}
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                while self._cursor < len(self._events):
                    event = self._events[self._cursor]
                    self._cursor += 1
                    kind = event.get("type")
                    if kind in names:
                        return event
                    if kind in failing:
                        raise BaresipError(
                            f"{self.name}: {kind} {event.get('param', '')} while waiting for"
                            f" {sorted(names)}; events {self.events}\n{self.log_tail()}"
                        )
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BaresipError(
                        f"{self.name}: no {sorted(names)} in {timeout}s; events"
                        f" {[e.get('type') for e in self._events]}\n{self.log_tail()}"
                    )
                self._cond.wait(left)

    def command(self, command: str, params: str = "", timeout: float = 5.0) -> str:
        """Send a command and return its response's text."""
        with self._cond:
            seen = len(self._responses)
        self.send(command, params)
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._responses) <= seen:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BaresipError(f"{self.name}: no response to {command}")
                self._cond.wait(left)
            return str(self._responses[seen].get("data", ""))

    def registration(self) -> str:
        """``reginfo``'s line for the account, colour codes removed."""
        return re.sub(r"\x1b\[[0-9;]*m", "", self.command("reginfo"))

    def drain(self) -> None:
        """Forget the events so far: later waits see only what happens next."""
        with self._cond:
            self._cursor = len(self._events)

    def wait_registered(self, timeout: float = 10.0) -> None:
        """Registered (the REGISTER may have succeeded before ctrl_tcp was connected)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                types = [e.get("type") for e in self._events]
            if "REGISTER_FAIL" in types:
                raise BaresipError(f"{self.name}: REGISTER_FAIL\n{self.log_tail()}")
            if "REGISTER_OK" in types or re.search(r"\bOK\b", self.registration()):
                return
            if time.monotonic() > deadline:
                raise BaresipError(
                    f"{self.name}: not registered: {self.registration()!r}\n{self.log_tail()}"
                )
            time.sleep(0.2)

    def dial(self, uri: str) -> None:
        self.send("dial", uri)

    def accept(self) -> None:
        self.send("accept")

    def hangup(self) -> None:
        self.send("hangup")

    def send_dtmf(self, digits: str) -> None:
        """RFC 4733 telephone-events in the call's RTP."""
        self.send("sndcode", digits)

    def recording(self) -> Path | None:
        """The newest recording of received audio (sndfile's ``dump-*-dec.wav``)."""
        dumps = sorted(self.rec.glob("*-dec.wav"), key=lambda p: p.stat().st_mtime)
        return dumps[-1] if dumps else None


# -- linphone --------------------------------------------------------------------------


class Linphone:
    """``linphonec`` on a pipe, with a fresh rc file (it rewrites its rc at exit)."""

    def __init__(
        self,
        workdir: Path,
        name: str,
        *,
        tone: float,
        account: tuple[str, str, str] | None = None,
    ) -> None:
        """``account`` = (identity, proxy, password): registered at start, and the
        proxy is also the route of outgoing calls (``register`` alone does not route)."""
        self.name = name
        self.directory = workdir / f"linphone-{name}"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.sip_port = free_port()
        rtp = free_port(socket.SOCK_DGRAM)
        rtp = min(rtp - rtp % 2, 65000)
        self.rc = self.directory / "linphone.rc"
        self.rc.write_text(
            "[sip]\n"
            f"bind_address={HOST}\n"
            f"sip_port={self.sip_port}\n"
            f"sip_tcp_port={self.sip_port}\n"
            "sip_tls_port=-1\n"
            "verify_server_certs=0\n"
            "verify_server_cn=0\n"
            "[rtp]\n"
            f"audio_rtp_port={rtp}-{rtp + 19}\n"
            "[sound]\n"
            "echocancellation=0\n" + (self._account(*account) if account else "")
        )
        self.wav = write_tone(self.directory / f"tone_{int(tone)}.wav", tone)
        self.record = self.directory / "recording.wav"
        self.out = workdir / f"linphone-{name}.out"
        self.debug_log = workdir / f"linphone-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._seen = {False: 0, True: 0}

    @staticmethod
    def _account(identity: str, proxy: str, password: str) -> str:
        user, domain = identity.removeprefix("sip:").split("@", 1)
        return (
            "[proxy_0]\n"
            f"reg_proxy=<{proxy}>\n"
            f"reg_route=<{proxy};lr>\n"
            f"reg_identity=<{identity}>\n"
            "reg_expires=600\n"
            "reg_sendregister=1\n"
            "[auth_info_0]\n"
            f"username={user}\n"
            f"passwd={password}\n"
            f"domain={domain}\n"
        )

    def start(self) -> Linphone:
        program = require_tool("linphonec")
        home = self.directory / "home"
        (home / ".local" / "share" / "linphone").mkdir(parents=True, exist_ok=True)
        with self.out.open("ab") as out:
            self.proc = subprocess.Popen(
                [program, "-c", str(self.rc), "-d", "4", "-l", str(self.debug_log)],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={"HOME": str(home), "PATH": "/usr/bin:/bin"},
            )
        # The SIP stack takes a moment before it accepts commands ("No listening point").
        self.wait_output(r"Ready|linphonec>", 10)
        time.sleep(1.0)
        self.send("soundcard use files")
        self.send(f"play {self.wav}")
        self.send(f"record {self.record}")
        return self

    def send(self, line: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        self.proc.stdin.flush()

    def register(self, identity: str, proxy: str, password: str) -> None:
        """Register ``identity`` through ``proxy`` (calls: see ``account``)."""
        self.send(f"register {identity} {proxy} {password}")

    def output(self, debug: bool = False) -> str:
        """linphonec's console output, or with ``debug`` its debug log (SIP events)."""
        path = self.debug_log if debug else self.out
        return path.read_text(errors="replace") if path.exists() else ""

    def wait_output(
        self, pattern: str, timeout: float = 10.0, *, fail: str | None = None, debug: bool = False
    ) -> str:
        """The first match of ``pattern`` not yet consumed by an earlier wait on that output."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.output(debug)
            seen = self._seen[debug]
            match = re.search(pattern, text[seen:])
            if match:
                self._seen[debug] = seen + match.end()
                return match.group(0)
            if fail and re.search(fail, text[seen:]):
                raise AssertionError(f"{self.name}: {fail!r} in output\n{text[-3000:]}")
            if time.monotonic() > deadline or (self.proc and self.proc.poll() is not None):
                raise AssertionError(f"{self.name}: no {pattern!r} in {timeout}s\n{text[-3000:]}")
            time.sleep(0.1)

    def wait_registered(self, timeout: float = 10.0) -> None:
        self.wait_output(
            r"Register refresher \[200\]",
            timeout,
            fail=r"Register refresher \[[3-6]\d\d\]",
            debug=True,
        )

    def registration_failed(self, timeout: float = 10.0) -> str:
        """The final status of a REGISTER that did not succeed (401, 403, 404...)."""
        return self.wait_output(
            r"Register refresher \[[3-6]\d\d\]|Registration .* failed", timeout, debug=True
        )

    def call(self, uri: str) -> None:
        self.send(f"call {uri}")

    def answer(self) -> None:
        self.send("answer")

    def hangup(self) -> None:
        self.send("terminate")

    def send_dtmf(self, digit: str) -> None:
        """A single digit on linphonec's stdin sends it as RFC 4733 telephone-event."""
        self.send(digit)

    def wait_incoming(self, timeout: float = 10.0) -> str:
        return self.wait_output(r"Receiving new incoming call from [^\n]+", timeout)

    def wait_connected(self, timeout: float = 10.0) -> str:
        return self.wait_output(r"Call \d+ with [^\n]+ connected", timeout)

    def wait_ended(self, timeout: float = 10.0) -> str:
        return self.wait_output(r"Call \d+ with [^\n]+ (ended|error)[^\n]*", timeout)

    def wait_dtmf(self, timeout: float = 10.0) -> str:
        """The digit of the next RFC 4733 event received ("Receiving tone 5 from ...")."""
        return self.wait_output(r"Receiving tone \S", timeout)[-1]

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.send("terminate")
                self.send("quit")
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                # A linphonec on a pipe can hang at exit, deaf to SIGTERM.
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()

    def __enter__(self) -> Linphone:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- a SIP-over-WebSocket phone (RFC 7118) -------------------------------------------------


class WsPhone:
    """A minimal SIP-over-WebSocket UA on one connection (wsproto), for registrations and
    for seeing the requests the platform sends back over that connection.

    Like a browser it cannot be reached any other way: its Via and Contact name an
    ``.invalid`` host (RFC 7118 5.2), so whatever reaches it proves the platform used the
    connection the phone registered on.
    """

    def __init__(self, host: str, port: int, *, secure: bool = False) -> None:
        raw = socket.create_connection((host, port), timeout=10)
        self.sock: socket.socket = raw
        if secure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            self.sock = context.wrap_socket(raw, server_hostname="localhost")
        self.transport = "WSS" if secure else "WS"
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(
            self.ws.send(WsRequest(host=f"{host}:{port}", target="/", subprotocols=["sip"]))
        )
        self.host = f"{secrets.token_hex(6)}.invalid"
        self._messages: list[str] = []
        self._parts: list[str] = []
        self._accepted = False
        while not self._accepted:
            self._pump(10.0)

    def _pump(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        data = self.sock.recv(65535)
        if not data:
            raise ConnectionError("the platform closed the WebSocket")
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                assert event.subprotocol == "sip", event
                self._accepted = True
            elif isinstance(event, TextMessage | BytesMessage):
                part = event.data if isinstance(event.data, str) else event.data.decode()
                self._parts.append(part)
                if event.message_finished:
                    self._messages.append("".join(self._parts))
                    self._parts = []
            elif isinstance(event, Ping):
                self.sock.sendall(self.ws.send(event.response()))

    def send(self, text: str) -> None:
        self.sock.sendall(self.ws.send(TextMessage(data=text)))

    def receive(self, timeout: float = 10.0) -> str:
        """The next whole SIP message that arrived over the WebSocket."""
        deadline = time.monotonic() + timeout
        while not self._messages:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no SIP message over the WebSocket")
            self._pump(left)
        return self._messages.pop(0)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()
