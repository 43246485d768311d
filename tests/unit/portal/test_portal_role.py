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


async def test_changes_reach_the_shared_bus(tmp_path: Path) -> None:
    """Under `ivoz run` the API publishes on the bus the other roles listen to."""
    from ivoz.services import Services

    port = free_port()
    config = dataclasses.replace(Config(), data_dir=tmp_path, api_port=port, api_secret="x" * 32)
    services = await Services.create(config)
    heard: list[object] = []
    services.bus.subscribe(heard.append)
    task = asyncio.create_task(role.serve(config, services))
    try:
        from ivoz.domain import models as m
        from ivoz.domain.security import hash_password

        async with services.database.sessionmaker() as session, session.begin():
            session.add(
                m.Administrator(
                    username="root", password_hash=hash_password("pw"), level="platform"
                )
            )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(200):
                try:
                    r = await client.post(
                        "/api/platform/login", json={"username": "root", "password": "pw"}
                    )
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.05)
            headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
            r = await client.post("/api/platform/brands", json={"name": "B"}, headers=headers)
            assert r.status_code == 201
        assert any(getattr(e, "entity", None) == "Brand" for e in heard)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await services.close()


async def test_a_port_in_use_is_an_error_not_an_exit(tmp_path: Path) -> None:
    import socket

    import pytest

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = dataclasses.replace(Config(), data_dir=tmp_path, api_port=port)
        with pytest.raises(OSError):
            await role.serve(config)
