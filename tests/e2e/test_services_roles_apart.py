"""Roles in separate processes meet in Redis: configuration events and registrations.

One process runs the users proxy, the application server and the relay; another runs
the portal alone; both on the same SQLite file and the same Redis (``IVOZ_REDIS_URL``).
A SIP password changed through the portal process reaches the proxy process's
directory (RedisEventBus), and the registration the proxy process takes is in the
portal process's registration status (RedisLocationStore).
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.ivozrun import HOST, wait_ready
from support.phones import BOB_HZ, Baresip, BaresipError
from support.redis import redis_url
from support.tools import free_port, require_tool, stop_process, wait_for_port

pytestmark = pytest.mark.slow

DOMAIN = "acme.ivoz.test"
SECRET = "apart-demo-secret"
NEW_PASSWORD = "changed-over-redis"


def _own_database(url: str) -> str:
    """The same server, one of its numbered databases picked at random: the location
    keys of this run stay apart from other tests' (every demo's client is id 1)."""
    base, _, last = url.rpartition("/")
    number = random.randrange(1, 16)
    return f"{base}/{number}" if last.isdigit() else f"{url.rstrip('/')}/{number}"


class Processes:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.data = workdir / "var"
        self.sip = free_port()
        self.api = free_port()
        ng = free_port(socket.SOCK_DGRAM)
        rtp_min = random.randrange(20000, 59000, 200)
        self.env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "IVOZ_DEMO_SECRET": SECRET,
            "IVOZ_REDIS_URL": _own_database(redis_url()),
            "IVOZ_SIP_HOST": HOST,
            "IVOZ_SIP_UDP_PORT": str(self.sip),
            "IVOZ_SIP_TCP_PORT": str(self.sip),
            "IVOZ_SIP_TLS_PORT": str(free_port()),
            "IVOZ_SIP_WS_PORT": str(free_port()),
            "IVOZ_SIP_WSS_PORT": str(free_port()),
            "IVOZ_NG_HOST": HOST,
            "IVOZ_NG_PORT": str(ng),
            "IVOZ_RTP_HOST": HOST,
            "IVOZ_RTP_PORT_MIN": str(rtp_min),
            "IVOZ_RTP_PORT_MAX": str(rtp_min + 99),
            "IVOZ_API_HOST": HOST,
            "IVOZ_API_PORT": str(self.api),
            "IVOZ_APPSERVER_HOST": HOST,
            "IVOZ_APPSERVER_PORT": str(free_port()),
        }
        self.env.pop("IVOZ_DATABASE_URL", None)
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def ivoz(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "ivoz", "--data-dir", str(self.data), *args]

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = self.workdir / f"{name}.log"
        with log.open("ab") as out:
            proc = subprocess.Popen(
                self.ivoz(*args), env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        self.procs.append((proc, log))
        return proc

    def stop(self) -> None:
        for proc, log in self.procs:
            stop_process(proc, timeout=10)
            print(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}")


@pytest.fixture
def apart(tmp_path: Path) -> Iterator[Processes]:
    require_tool("baresip")
    processes = Processes(tmp_path)
    demo = subprocess.run(
        processes.ivoz("demo"), env=processes.env, capture_output=True, timeout=120, check=False
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    try:
        sip = processes.start(
            "sip", "run", "--role", "proxy-users", "--role", "appserver", "--role", "relay"
        )
        processes.start("portal", "run", "--role", "portal")
        wait_ready(sip, HOST, processes.sip, tmp_path / "sip.log")
        wait_for_port(HOST, processes.api, timeout=40)
        yield processes
    finally:
        processes.stop()


def _api(apart: Processes, method: str, path: str, token: str = "", **kwargs: Any) -> Any:
    headers = {"Host": f"acme.localhost:{apart.api}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    r = httpx.request(
        method, f"http://{HOST}:{apart.api}/api/client{path}", headers=headers, timeout=10, **kwargs
    )
    assert r.status_code < 300, (method, path, r.status_code, r.text)
    return r.json()


def test_portal_and_proxy_processes_share_events_and_registrations(
    apart: Processes, tmp_path: Path
) -> None:
    token = _api(apart, "POST", "/login", json={"username": "acme", "password": SECRET})[
        "access_token"
    ]
    (bob,) = _api(apart, "GET", "/terminals", token, params={"sip_username": "bob"})
    _api(apart, "PATCH", f"/terminals/{bob['id']}", token, json={"sip_password": NEW_PASSWORD})

    # The proxy process learnt the new password over Redis: the phone registers with it
    # (a few attempts: the event is delivered asynchronously).
    for attempt in range(3):
        phone = Baresip(
            tmp_path / f"try{attempt}",
            "bob",
            tone=BOB_HZ,
            user="bob",
            password=NEW_PASSWORD,
            domain=DOMAIN,
            proxy=(HOST, apart.sip),
        )
        with phone:
            try:
                phone.wait_registered()
            except BaresipError:
                if attempt == 2:
                    raise
                continue
            # The registration is in the portal process's view (RedisLocationStore).
            rows = _api(apart, "GET", "/registrations", token, params={"registered": "true"})
            assert [row["aor"] for row in rows] == [f"bob@{DOMAIN}"]
            (contact,) = rows[0]["contacts"]
            assert f":{phone.sip_port}" in contact["contact"]
            assert "baresip" in contact["user_agent"].lower()
            break
