"""Shared helpers for tests that drive real programs and servers.

``require_tool`` skips a test when a program is missing, except under CI=true where a
missing tool is a failure: `make test` installs them, so absence means a broken setup.
"""

from __future__ import annotations

import os
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


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host` at the time of asking."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((host, 0))
            port: int = s.getsockname()[1]
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, other) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port")


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
