"""Shared helpers for tests that drive real programs and servers.

``require_tool`` skips a test when a program is missing, except under CI=true where a
missing tool is a failure: `make test` installs them, so absence means a broken setup.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
# Scenario files and config writers for real SIP clients (from the team's interop kit).
INTEROP = TESTS / "data" / "interop"
# The 49 RFC 4475 torture messages, byte-exact (see PROVENANCE.md there).
RFC4475 = TESTS / "conformance" / "rfc4475"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_tool(name: str) -> str:
    """Path of program `name`; skip (fail under CI) when it is not installed."""
    path = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if path is None:
        message = f"{name} is not installed (scripts/system-deps.sh installs it)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


def require_path(path: Path, what: str) -> Path:
    if not path.exists():
        message = f"{what} not found at {path}"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return path


# Test ports come from below the kernel's ephemeral range (32768-60999 on Linux), so a
# port handed out here cannot be taken meanwhile by some connection's automatic source
# port, which made "Address already in use" a race when tests picked ports with bind(0).
PORT_RANGE = (20000, 32000)
_handed_out: set[int] = set()


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host`, never handed out before in this run.

    `kind` is kept for callers that name the socket type; both types are checked.
    """
    del kind
    for _ in range(1000):
        port = random.randrange(*PORT_RANGE)
        if port in _handed_out:
            continue
        try:
            for other in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, other) as s:
                    s.bind((host, port))
        except OSError:
            continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port")


def mark_used(port: int) -> None:
    """Never hand out `port` (a test uses it beside one from free_port: P + 1 for RTCP...)."""
    _handed_out.add(port)


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
