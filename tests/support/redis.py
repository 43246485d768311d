"""A real Redis server for integration tests.

Uses IVOZ_TEST_REDIS_URL when set, else a server already answering on 127.0.0.1:6379,
else starts a throwaway `redis-server` on a free loopback port (stopped at exit).
Without any of them the test is skipped, or fails under CI=true.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

from support.tools import free_port, in_ci

_started: str | None = None


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _start() -> str | None:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not os.access(binary, os.X_OK):
        return None
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="ivoz-redis-")
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    atexit.register(lambda: (proc.terminate(), proc.wait(5)))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _answers("127.0.0.1", port):
            return f"redis://127.0.0.1:{port}/0"
        time.sleep(0.05)
    return None


def redis_url() -> str:
    """URL of a Redis server that answers PING; skip (fail in CI) when none can be had."""
    global _started
    if url := os.environ.get("IVOZ_TEST_REDIS_URL"):
        return url
    if _answers("127.0.0.1", 6379):
        return "redis://127.0.0.1:6379/0"
    if _started is None:
        _started = _start()
    if _started is None:
        message = "no Redis server: none on 127.0.0.1:6379 and redis-server could not be started"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    return _started
