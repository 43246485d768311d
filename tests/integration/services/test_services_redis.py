"""Services on Redis: a change committed by another process reaches this one's directory."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ivoz.config import Config
from ivoz.domain import models as m
from ivoz.domain.commands import create_demo
from ivoz.domain.events import RedisEventBus, commit_and_announce
from ivoz.services import Services
from ivoz.state.location import Binding, RedisLocationStore
from support.database import make_database
from support.redis import redis_url


async def test_directory_follows_events_from_another_process(tmp_path: Path) -> None:
    url = redis_url()
    async with make_database("postgresql", tmp_path) as db:
        await create_demo(db, Config(data_dir=tmp_path, demo_secret="pw"))
        services = await Services.create(
            Config(data_dir=tmp_path, database_url=db.url, redis_url=url)
        )
        portal_bus = RedisEventBus(url)  # "the portal", elsewhere
        try:
            assert isinstance(services.location, RedisLocationStore)
            acme = services.directory.company_by_domain("acme.ivoz.test")
            assert acme is not None
            ext = services.directory.extension(acme.id, "1001")
            assert ext is not None and ext.user_id is not None
            async with db.sessionmaker() as session:
                user = await session.get(m.User, ext.user_id)
                assert user is not None
                user.do_not_disturb = True
                await commit_and_announce(session, portal_bus)
            for _ in range(200):  # delivery is asynchronous; bounded wait
                seen = services.directory.user(ext.user_id)
                if seen is not None and seen.do_not_disturb:
                    break
                await asyncio.sleep(0.05)
            assert services.directory.user(ext.user_id).do_not_disturb  # type: ignore[union-attr]

            aor = f"alice-{id(services)}@acme.ivoz.test"
            await services.location.save(
                Binding(aor=aor, contact="sip:a@127.0.0.1:5999", expires_at=4e9, company_id=acme.id)
            )
            assert any(b.aor == aor for b in await services.location.by_company(acme.id, 1e9))
            await services.location.remove_all(aor)
        finally:
            await portal_bus.close()
            await services.close()
