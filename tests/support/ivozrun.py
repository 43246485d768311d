"""A whole Ivoz platform in a subprocess, on free loopback ports, for end-to-end tests.

``start_platform(workdir)`` first runs ``python -m ivoz demo`` (migrations and the demo
platform: brand Demo, client Acme on ``acme.ivoz.test``, users Alice 1001 and Bob 1002
with terminals ``alice`` and ``bob``), lets the caller change the database with a plain
synchronous SQLAlchemy session (``seed``), then starts ``python -m ivoz run --demo``
with every listener on a port of its own (``IVOZ_*`` variables) and waits until the
proxy answers OPTIONS, the relay answers an ng ping and the API accepts connections.
``IVOZ_DEMO_SECRET`` is fixed, so every demo account's password is ``SECRET``.

Extra application servers (``extra_appservers=N``) are written into the demo's
application server set before the start, each on its own loopback address
(127.0.0.2, 127.0.0.3...: the model keeps one server per IP), and started with
``platform.start_appserver(i)`` as ``ivoz run --role appserver`` processes.
``Platform.stop`` ends every process it started (SIGTERM, then SIGKILL) and prints the
tail of each log, which pytest shows when a test failed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from ivoz.domain import models as m
from ivoz.media import bencode
from support.tools import free_port, stop_process, wait_for_port

HOST = "127.0.0.1"
DOMAIN = "acme.ivoz.test"
SECRET = "e2e-demo-secret"  # IVOZ_DEMO_SECRET: every demo password (SIP and portal)
READY_TIMEOUT = 40.0  # seconds for a platform process to come up on two busy cores

Seed = Callable[[Session], None]


@dataclass
class AppServer:
    """An extra ``--role appserver`` process (started on demand)."""

    host: str
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self) -> float:
        """utime + stime of the process so far (proc(5) fields 14 and 15)."""
        if self.proc is None:
            return 0.0
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except OSError:
            return 0.0
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def kill(self) -> None:
        """SIGKILL: the server dies without a word, as a crashed machine would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Platform:
    workdir: Path
    data_dir: Path
    env: dict[str, str]
    sip_port: int  # UDP and TCP
    tls_port: int
    ws_port: int
    wss_port: int
    ng_port: int
    rtp_range: tuple[int, int]
    api_port: int
    appserver_port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    appservers: list[AppServer] = field(default_factory=list)
    roles: tuple[str, ...] = ()  # () = every role in the platform process

    host = HOST
    domain = DOMAIN
    secret = SECRET

    @property
    def database_url(self) -> str:
        return f"sqlite:///{(self.data_dir / 'ivoz.sqlite3').resolve()}"

    @property
    def cert(self) -> Path:
        """The self-signed certificate of the TLS and WSS listeners."""
        return self.data_dir / "tls" / "sip-cert.pem"

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    def port(self, transport: str) -> int:
        return {"udp": self.sip_port, "tcp": self.sip_port, "tls": self.tls_port}[transport]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 6000) -> str:
        parts = []
        for path in [self.log, *(a.log for a in self.appservers)]:
            if path.exists():
                parts.append(f"==== {path.name}\n{_readable(path, chars)}")
        return "\n".join(parts)

    # -- the relay ----------------------------------------------------------------

    def ng(self, command: str, **params: object) -> dict[str, Any]:
        """One ng command to the platform's relay (``list``, ``statistics``, ``query``)."""
        cookie = f"e2e{random.getrandbits(32):x}".encode()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(3)
            sock.sendto(
                cookie + b" " + bencode.encode({"command": command, **params}), (HOST, self.ng_port)
            )
            reply = sock.recv(65535)
        assert reply.startswith(cookie + b" "), reply[:100]
        decoded = bencode.decode(reply[len(cookie) + 1 :])
        assert isinstance(decoded, dict), decoded
        return {(k.decode() if isinstance(k, bytes) else str(k)): v for k, v in decoded.items()}

    def relay_calls(self) -> list[str]:
        """Call-IDs of the sessions the relay holds now (each call leg is one)."""
        calls = self.ng("list", limit="1000").get("calls", [])
        assert isinstance(calls, list), calls
        return [c.decode() if isinstance(c, bytes) else str(c) for c in calls]

    def relayed_packets(self) -> int:
        statistics = self.ng("statistics")["statistics"]
        totals = statistics[b"totalstatistics"]
        return int(totals[b"relayedpackets"])

    # -- database -----------------------------------------------------------------

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A synchronous session on the platform's SQLite file (committed on success).

        The running processes keep their configuration cache: change the database
        through the REST API, or before the start (``seed``), when they must see it.
        """
        engine = create_engine(self.database_url)
        try:
            with Session(engine) as session, session.begin():
                yield session
        finally:
            engine.dispose()

    # -- processes ----------------------------------------------------------------

    def _ivoz(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "ivoz", "--data-dir", str(self.data_dir), *args]

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self._ivoz("run", "--demo"),
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        try:
            wait_ready(self.proc, HOST, self.sip_port, self.log)
            wait_ng(self.proc, self.ng_port, self.log)
            wait_for_port(HOST, self.api_port, timeout=READY_TIMEOUT)
            embedded = not self.roles or "appserver" in self.roles
            if embedded and _has_module("ivoz.appserver.role"):
                wait_options(self.proc, HOST, self.appserver_port, self.log, required=True)
        except BaseException:
            self.stop()
            raise

    def start_appserver(self, index: int) -> AppServer:
        server = self.appservers[index]
        env = {
            **self.env,
            "IVOZ_APPSERVER_HOST": server.host,
            "IVOZ_APPSERVER_PORT": str(server.port),
        }
        with server.log.open("ab") as out:
            server.proc = subprocess.Popen(
                self._ivoz("run", "--role", "appserver"),
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        wait_options(server.proc, server.host, server.port, server.log, required=True)
        return server

    def stop(self) -> None:
        for server in self.appservers:
            if server.proc is not None:
                stop_process(server.proc)
        if self.proc is not None:
            stop_process(self.proc, timeout=10)
        print(self.log_tail())


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _configure(workdir: Path, extra_appservers: int) -> Platform:
    data_dir = workdir / "var"
    data_dir.mkdir(parents=True, exist_ok=True)
    sip = free_port()  # free for UDP and TCP alike
    ports = [free_port() for _ in range(5)]
    tls, ws, wss, api, appserver = ports
    ng = free_port(socket.SOCK_DGRAM)
    # An RTP range of its own per platform: other engineers' relays run meanwhile.
    rtp_min = random.randrange(20000, 59000, 200)
    rtp_range = (rtp_min, rtp_min + 199)
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "IVOZ_DEMO_SECRET": SECRET,
        "IVOZ_SIP_HOST": HOST,
        "IVOZ_SIP_UDP_PORT": str(sip),
        "IVOZ_SIP_TCP_PORT": str(sip),
        "IVOZ_SIP_TLS_PORT": str(tls),
        "IVOZ_SIP_WS_PORT": str(ws),
        "IVOZ_SIP_WSS_PORT": str(wss),
        "IVOZ_NG_HOST": HOST,
        "IVOZ_NG_PORT": str(ng),
        "IVOZ_RTP_HOST": HOST,
        "IVOZ_RTP_PORT_MIN": str(rtp_range[0]),
        "IVOZ_RTP_PORT_MAX": str(rtp_range[1]),
        "IVOZ_API_HOST": HOST,
        "IVOZ_API_PORT": str(api),
        "IVOZ_APPSERVER_HOST": HOST,
        "IVOZ_APPSERVER_PORT": str(appserver),
        "IVOZ_APPSERVER_PROXY": f"{HOST}:{sip}",
    }
    env.pop("IVOZ_DATABASE_URL", None)
    env.pop("IVOZ_REDIS_URL", None)
    platform = Platform(
        workdir=workdir,
        data_dir=data_dir,
        env=env,
        sip_port=sip,
        tls_port=tls,
        ws_port=ws,
        wss_port=wss,
        ng_port=ng,
        rtp_range=rtp_range,
        api_port=api,
        appserver_port=appserver,
        log=workdir / "platform.log",
    )
    for index in range(extra_appservers):
        host = f"127.0.0.{index + 2}"
        platform.appservers.append(
            AppServer(host, free_port(host=host), workdir / f"appserver{index + 2}.log")
        )
    return platform


def _register_appservers(platform: Platform, session: Session) -> None:
    """Every application server of this run in the demo's set (added when missing)."""
    app_set = session.scalar(select(m.ApplicationServerSet).order_by(m.ApplicationServerSet.id))
    assert app_set is not None, "the demo made no application server set"
    wanted = [(a.host, a.port) for a in platform.appservers]
    if not platform.roles or "appserver" in platform.roles:
        wanted.insert(0, (HOST, platform.appserver_port))
    for host, port in wanted:
        server = session.scalar(select(m.ApplicationServer).where(m.ApplicationServer.ip == host))
        if server is None:
            session.add(
                m.ApplicationServer(
                    name=f"e2e-{host}",
                    ip=host,
                    port=port,
                    application_server_set_id=app_set.id,
                )
            )
        else:
            server.port = port
            server.application_server_set_id = app_set.id


@contextlib.contextmanager
def start_platform(
    workdir: Path,
    *,
    seed: Seed | None = None,
    extra_appservers: int = 0,
    roles: tuple[str, ...] = (),
) -> Iterator[Platform]:
    """Create the demo database, apply ``seed``, run the platform; stop it at exit.

    ``roles`` limits the platform process to some roles (``IVOZ_ROLES``), e.g. every
    role but ``appserver`` when the test runs its application servers itself.
    """
    platform = _configure(workdir, extra_appservers)
    if roles:
        platform.roles = roles
        platform.env["IVOZ_ROLES"] = ",".join(roles)
    result = subprocess.run(
        platform._ivoz("demo"),
        env=platform.env,
        cwd=workdir,
        capture_output=True,
        timeout=120,
    )
    platform.log.write_bytes(result.stdout + result.stderr)
    if result.returncode != 0:
        raise RuntimeError(f"ivoz demo failed:\n{platform.log_tail()}")
    with platform.session() as session:
        _register_appservers(platform, session)
        if seed is not None:
            seed(session)
    platform.start()
    try:
        yield platform
    finally:
        platform.stop()
    # A role that failed behind the phones' backs fails the module too.
    for log in [platform.log, *(a.log for a in platform.appservers)]:
        text = log.read_text(errors="replace") if log.exists() else ""
        assert "Traceback" not in text, f"{log.name} holds a traceback:\n{_readable(log)}"


# -- readiness ---------------------------------------------------------------------


def options_request(host: str, port: int, local_port: int) -> bytes:
    tag = random.getrandbits(32)
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {HOST}:{local_port};rport;branch=z9hG4bK{random.getrandbits(48):x}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{HOST}>;tag={tag:x}\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: {random.getrandbits(64):x}@{HOST}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def sip_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether a UDP OPTIONS to host:port gets any SIP response."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        sock.settimeout(timeout)
        sock.sendto(options_request(host, port, sock.getsockname()[1]), (host, port))
        try:
            return sock.recv(65535).startswith(b"SIP/2.0 ")
        except OSError:
            return False


def _readable(log: Path, chars: int = 6000) -> str:
    """The end of a log without Alembic's start-up chatter."""
    lines = log.read_text(errors="replace").splitlines() if log.exists() else []
    return "\n".join(line for line in lines if "alembic." not in line)[-chars:]


def _check_alive(proc: subprocess.Popen[bytes], log: Path) -> None:
    if proc.poll() is not None:
        raise RuntimeError(f"ivoz exited with {proc.returncode}:\n{_readable(log)}")


def wait_options(
    proc: subprocess.Popen[bytes],
    host: str,
    port: int,
    log: Path,
    *,
    required: bool,
    timeout: float = READY_TIMEOUT,
) -> bool:
    """Wait for a SIP answer on UDP host:port; ``required=False`` gives up quietly."""
    deadline = time.monotonic() + (timeout if required else min(timeout, 8.0))
    while time.monotonic() < deadline:
        _check_alive(proc, log)
        if sip_answers(host, port):
            return True
    if required:
        raise TimeoutError(f"no SIP answer from {host}:{port}:\n{_readable(log)}")
    return False


def wait_ready(proc: subprocess.Popen[bytes], host: str, port: int, log: Path) -> None:
    wait_options(proc, host, port, log, required=True)


def wait_ng(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        while time.monotonic() < deadline:
            _check_alive(proc, log)
            sock.sendto(b"ready d7:command4:pinge", (HOST, port))
            try:
                if b"pong" in sock.recv(200):
                    return
            except OSError:
                time.sleep(0.1)
    raise TimeoutError(f"no ng answer on {port}:\n{_readable(log)}")


# -- seeding helpers (run inside ``seed`` or ``Platform.session``) -------------------------


def company(session: Session, domain: str = DOMAIN) -> m.Company:
    found = session.scalar(select(m.Company).where(m.Company.domain == domain))
    assert found is not None, f"no client with domain {domain}"
    return found


def add_company(session: Session, name: str, domain: str) -> m.Company:
    """A second vPBX client of the demo brand, on the demo's relay and server sets."""
    acme = company(session)
    client = m.Company(
        brand_id=acme.brand_id,
        name=name,
        type="vpbx",
        domain=domain,
        media_relay_set_id=acme.media_relay_set_id,
        application_server_set_id=acme.application_server_set_id,
    )
    session.add(client)
    session.flush()
    return client


def add_user(
    session: Session,
    client: m.Company,
    sip_username: str,
    number: str,
    *,
    password: str = SECRET,
    **user_fields: object,
) -> m.User:
    """A user with a terminal (``sip_username``/``password``) and extension ``number``."""
    terminal = m.Terminal(
        company_id=client.id,
        brand_id=client.brand_id,
        name=f"{sip_username}-phone",
        sip_username=sip_username,
        sip_password=password,
        allowed_codecs=["PCMA", "PCMU", "opus"],
    )
    session.add(terminal)
    session.flush()
    user = m.User(
        company_id=client.id,
        brand_id=client.brand_id,
        name=sip_username.capitalize(),
        email=f"{sip_username}@{client.domain}",
        terminal_id=terminal.id,
        **user_fields,
    )
    session.add(user)
    session.flush()
    extension = m.Extension(
        company_id=client.id,
        brand_id=client.brand_id,
        number=number,
        route_type="user",
        user_id=user.id,
    )
    session.add(extension)
    session.flush()
    user.extension_id = extension.id
    return user


def demo_user(session: Session, sip_username: str) -> m.User:
    """The user whose terminal is ``sip_username`` in the demo client."""
    acme = company(session)
    terminal = session.scalar(
        select(m.Terminal).where(
            m.Terminal.company_id == acme.id, m.Terminal.sip_username == sip_username
        )
    )
    assert terminal is not None, sip_username
    user = session.scalar(select(m.User).where(m.User.terminal_id == terminal.id))
    assert user is not None, sip_username
    return user
