"""The API over HTTPS: `api_tls` serves it with the node's certificate (the one the SIP
TLS and WSS listeners use, self-signed in the data directory unless configured), and a
client that trusts that certificate gets answers; plain HTTP on that port gets none."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
from pathlib import Path

import httpx
import pytest

from ivoz.certificates import CERT_FILE
from ivoz.config import Config
from ivoz.portal import role
from support.tools import free_port


async def _get(client: httpx.AsyncClient, path: str) -> httpx.Response:
    for _ in range(200):
        try:
            return await client.get(path)
        except httpx.ConnectError:
            await asyncio.sleep(0.05)
    raise AssertionError("the portal never answered")


async def test_api_over_https_with_the_node_certificate(tmp_path: Path) -> None:
    port = free_port()
    config = dataclasses.replace(Config(), data_dir=tmp_path, api_port=port, api_tls=True)
    task = asyncio.create_task(role.serve(config))
    try:
        for _ in range(200):
            if (tmp_path / "tls" / CERT_FILE).exists():
                break
            await asyncio.sleep(0.05)
        trust = ssl.create_default_context(cafile=str(tmp_path / "tls" / CERT_FILE))
        async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{port}", verify=trust) as c:
            r = await _get(c, "/health")
            assert r.json() == {"status": "ok"}
            assert r.url.scheme == "https"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as plain:
            with pytest.raises(httpx.TransportError):
                await plain.get("/health")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_api_tls_from_the_environment() -> None:
    assert Config.from_env({"IVOZ_API_TLS": "true"}).api_tls is True
    assert Config.from_env({"IVOZ_API_TLS": "0"}).api_tls is False
    with pytest.raises(ValueError, match="IVOZ_API_TLS"):
        Config.from_env({"IVOZ_API_TLS": "maybe"})
