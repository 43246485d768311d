"""Registration status through the API of a running ``ivoz run``, with real phones.

Under ``ivoz run`` the proxy and the portal share one ``Services`` (so one location
store): a baresip that registers to the proxy shows up in the portal's registration
status, for its client, its brand and the platform, with its contact, user agent,
expiry and source address; a phone of another brand's client is not there for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from ivoz.domain import models as m
from support.ivozrun import DOMAIN, Platform, add_user, company, start_platform
from support.phones import ALICE_HZ, BOB_HZ, Baresip
from support.tools import require_tool

pytestmark = pytest.mark.slow

OTHER_DOMAIN = "initech.ivoz.test"
OTHER_PASSWORD = "initech-password"


def _seed(session: Session) -> None:
    acme = company(session)
    brand = m.Brand(name="Other")
    session.add(brand)
    session.flush()
    initech = m.Company(
        brand_id=brand.id,
        name="Initech",
        domain=OTHER_DOMAIN,
        media_relay_set_id=acme.media_relay_set_id,
        application_server_set_id=acme.application_server_set_id,
    )
    session.add(initech)
    session.flush()
    add_user(session, initech, "alice", "1001", password=OTHER_PASSWORD)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    require_tool("baresip")
    with start_platform(tmp_path_factory.mktemp("registrations"), seed=_seed) as running:
        yield running


def _token(platform: Platform, level: str, username: str, host: str | None) -> dict[str, str]:
    headers = {"Host": f"{host}:{platform.api_port}"} if host else {}
    r = httpx.post(
        f"{platform.api_url}/api/{level}/login",
        json={"username": username, "password": platform.secret},
        headers=headers,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _status(platform: Platform, level: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = httpx.get(
        f"{platform.api_url}/api/{level}/registrations",
        params={"registered": "true", "per_page": 500},
        headers=headers,
        timeout=10,
    )
    assert r.status_code == 200, r.text
    rows: list[dict[str, Any]] = r.json()
    return rows


def _phone(platform: Platform, tmp_path: Path, name: str, domain: str, password: str) -> Baresip:
    return Baresip(
        tmp_path,
        name,
        tone=ALICE_HZ if name == "acme" else BOB_HZ,
        user="alice",
        password=password,
        domain=domain,
        proxy=(platform.host, platform.port("udp")),
        transport="udp",
    )


def test_registrations_of_running_phones_per_level(platform: Platform, tmp_path: Path) -> None:
    acme_phone = _phone(platform, tmp_path, "acme", DOMAIN, platform.secret)
    other_phone = _phone(platform, tmp_path, "initech", OTHER_DOMAIN, OTHER_PASSWORD)
    with acme_phone, other_phone:
        acme_phone.wait_registered()
        other_phone.wait_registered()

        client = _status(platform, "client", _token(platform, "client", "acme", "acme.localhost"))
        assert [row["aor"] for row in client] == [f"alice@{DOMAIN}"]
        (contact,) = client[0]["contacts"]
        assert "baresip" in contact["user_agent"].lower()
        assert contact["transport"] == "UDP"
        assert 0 < contact["expires"] <= 600
        assert f":{acme_phone.sip_port}" in contact["contact"]
        # The address the REGISTER came from (the phone's own port on loopback).
        assert contact["source"] == f"udp:127.0.0.1:{acme_phone.sip_port}"

        brand = _status(platform, "brand", _token(platform, "brand", "demo", "localhost"))
        assert [row["aor"] for row in brand] == [f"alice@{DOMAIN}"]  # not Initech's

        everyone = _status(platform, "platform", _token(platform, "platform", "admin", None))
        assert {row["aor"] for row in everyone} == {f"alice@{DOMAIN}", f"alice@{OTHER_DOMAIN}"}
