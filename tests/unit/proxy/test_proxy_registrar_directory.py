"""The registrar against the real directory of the demo platform (SQLite): Alice registers
with her terminal's credentials; Bob's credentials cannot bind Alice's AOR."""

from __future__ import annotations

import tempfile
from pathlib import Path

from test_proxy_registrar import SECRET, authorize, register, udp_origin

from ivoz.config import Config
from ivoz.directory import Directory
from ivoz.domain.commands import DEMO_DOMAIN, create_demo
from ivoz.domain.db import Database
from ivoz.proxy.registrar import Registrar
from ivoz.state import MemoryLocationStore
from support.database import database_url, migrated_template

NOW = 1_800_000_000.0


async def test_demo_terminals_register(tmp_path: Path) -> None:
    template = await migrated_template("sqlite")
    async with database_url("sqlite", tmp_path, template=template) as url:
        db = Database(url)
        try:
            await create_demo(db, Config(data_dir=Path(tempfile.gettempdir()), demo_secret="s"))
            directory = await Directory.load(db)
        finally:
            await db.dispose()
    company = directory.company_by_domain(DEMO_DOMAIN)
    alice = directory.terminal(company.id, "alice") if company else None
    bob = directory.terminal(company.id, "bob") if company else None
    assert company is not None and alice is not None and bob is not None
    store = MemoryLocationStore()
    registrar = Registrar(store, directory, SECRET)
    origin = udp_origin()

    challenge = await registrar.handle(register(), origin, NOW)
    assert challenge.status == 401
    request = authorize(challenge, register(cseq=2), password=alice.sip_password, algorithm="MD5")
    assert (await registrar.handle(request, origin, NOW)).status == 200
    (binding,) = await store.bindings(f"alice@{DEMO_DOMAIN}", NOW)
    assert (binding.terminal_id, binding.company_id) == (alice.id, company.id)

    # Bob's valid credentials for Alice's AOR: 403, nothing bound for Bob's terminal
    request = authorize(
        challenge,
        register(cseq=3, call_id="bob-tries"),
        username="bob",
        password=bob.sip_password,
        algorithm="MD5",
    )
    assert (await registrar.handle(request, origin, NOW)).status == 403
    assert [b.terminal_id for b in await store.by_company(company.id, NOW)] == [alice.id]
