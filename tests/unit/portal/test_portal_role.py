"""The portal role serves the API over real HTTP and stops when cancelled; the token
secret is generated once into the data directory, private, and reused."""

from __future__ import annotations

import asyncio
import dataclasses
import stat
from pathlib import Path

import httpx

from ivoz.config import Config
from ivoz.portal import role
from ivoz.portal.tokens import load_or_create_secret
from support.tools import free_port


async def test_serve_answers_and_stops(tmp_path: Path) -> None:
    port = free_port()
    config = dataclasses.replace(Config(), data_dir=tmp_path, api_port=port)
    task = asyncio.create_task(role.serve(config))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(200):
                try:
                    r = await client.get("/health")
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            assert r.json() == {"status": "ok"}
            r = await client.get("/api/brand/openapi.json")
            assert r.status_code == 200
            r = await client.post("/api/platform/login", json={"username": "x", "password": "y"})
            assert r.status_code == 401
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert task.done()
    assert (tmp_path / "api-secret").exists()


def test_secret_is_private_and_reused(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path)
    mode = stat.S_IMODE((tmp_path / "api-secret").stat().st_mode)
    assert mode == 0o600
    assert len(first) >= 32
    assert load_or_create_secret(tmp_path) == first
