"""The Directory at platform size: load time, event-loop stalls, lookups and event latency.

A SQLite database (a temporary file) is filled with C clients of N users each (every
user with a terminal, an extension and a call forward), then:

- ``Directory.load`` is timed while a ticker task measures the longest gap between two
  of its ticks (how long the load held the event loop);
- lookups per second: the proxy's and application server's path for one call
  (company by domain, terminal by user name, extension, user, forwards);
- how long applying a committed change's event takes (publish on the memory bus until
  the directory holds it): a user's DND (row re-read) and a deletion (the client's
  slice re-read).

``python -m bench.directory [--clients C] [--users N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, select

from bench.results import write_section
from ivoz.directory import Directory
from ivoz.domain import models as m
from ivoz.domain.db import Database
from ivoz.domain.events import MemoryEventBus, commit_and_announce


async def _fill(db: Database, clients: int, users: int) -> None:
    async with db.sessionmaker() as session, session.begin():
        brand = m.Brand(name="Bench")
        session.add(brand)
        await session.flush()
        await session.execute(
            insert(m.Company),
            [
                {"id": c, "brand_id": brand.id, "name": f"c{c}", "domain": f"c{c}.bench.test"}
                for c in range(1, clients + 1)
            ],
        )
        rows = [(c, u, (c - 1) * users + u) for c in range(1, clients + 1) for u in range(users)]
        await session.execute(
            insert(m.Terminal),
            [
                {
                    "id": i,
                    "company_id": c,
                    "brand_id": brand.id,
                    "name": f"t{u}",
                    "sip_username": f"u{u}",
                    "sip_password": "pw",
                    "allowed_codecs": ["PCMA"],
                }
                for c, u, i in rows
            ],
        )
        await session.execute(
            insert(m.User),
            [
                {
                    "id": i,
                    "company_id": c,
                    "brand_id": brand.id,
                    "name": f"user {u}",
                    "terminal_id": i,
                    "do_not_disturb": False,
                    "call_waiting_limit": 0,
                    "active": True,
                }
                for c, u, i in rows
            ],
        )
        await session.execute(
            insert(m.Extension),
            [
                {
                    "id": i,
                    "company_id": c,
                    "brand_id": brand.id,
                    "number": str(1000 + u),
                    "route_type": "user",
                    "user_id": i,
                }
                for c, u, i in rows
            ],
        )
        await session.execute(
            insert(m.CallForwardSetting),
            [
                {
                    "user_id": i,
                    "company_id": c,
                    "brand_id": brand.id,
                    "kind": "busy",
                    "target_type": "extension",
                    "target": "1000",
                    "no_answer_timeout": 10,
                    "enabled": True,
                }
                for c, u, i in rows
            ],
        )


async def _ticker(gaps: list[float], stop: asyncio.Event) -> None:
    last = time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0)
        now = time.perf_counter()
        gaps.append(now - last)
        last = now


async def run(clients: int, users: int) -> list[tuple[str, str]]:
    with tempfile.TemporaryDirectory(prefix="ivoz-bench-directory-") as tmp:
        db = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'bench.sqlite3'}")
        try:
            await db.upgrade()
            await _fill(db, clients, users)
            total = clients * users

            gaps: list[float] = []
            collections: list[float] = []  # generation-2 garbage collections, seconds
            started: list[float] = []

            def on_gc(phase: str, info: dict[str, int]) -> None:
                if info["generation"] != 2:
                    return
                if phase == "start":
                    started.append(time.perf_counter())
                elif started:
                    collections.append(time.perf_counter() - started.pop())

            gc.callbacks.append(on_gc)
            stop = asyncio.Event()
            ticker = asyncio.create_task(_ticker(gaps, stop))
            await asyncio.sleep(0)
            start = time.perf_counter()
            directory = await Directory.load(db)
            load = time.perf_counter() - start
            stop.set()
            await ticker
            gc.callbacks.remove(on_gc)
            longest_gc = max(collections, default=0.0)

            lookups = 0
            start = time.perf_counter()
            while time.perf_counter() - start < 1.0:
                for c in range(1, clients + 1, max(1, clients // 20)):
                    company = directory.company_by_domain(f"c{c}.bench.test")
                    assert company is not None
                    terminal = directory.terminal(company.id, "u7")
                    assert terminal is not None and terminal.user_id is not None
                    extension = directory.extension(company.id, "1003")
                    assert extension is not None and extension.user_id is not None
                    directory.user(extension.user_id)
                    directory.forwards(extension.user_id)
                    lookups += 1
            per_second = lookups / (time.perf_counter() - start)

            bus = MemoryEventBus()
            directory.attach(bus)
            async with db.sessionmaker() as session:
                user = await session.get(m.User, total // 2)
                assert user is not None
                user.do_not_disturb = True
                events = await commit_and_announce(session, None)
            start = time.perf_counter()
            for event in events:
                await bus.publish(event)
            update = time.perf_counter() - start
            assert directory.user(total // 2).do_not_disturb  # type: ignore[union-attr]

            async with db.sessionmaker() as session:
                forward = await session.scalar(
                    select(m.CallForwardSetting).where(m.CallForwardSetting.user_id == 1)
                )
                await session.delete(forward)
                events = await commit_and_announce(session, None)
            start = time.perf_counter()
            for event in events:
                await bus.publish(event)
            deletion = time.perf_counter() - start
            assert directory.forwards(1) == []
        finally:
            await db.dispose()
    return [
        ("platform size", f"{clients} clients x {users} users (terminal, extension, forward each)"),
        ("Directory.load", f"{load:.2f} s ({total * 4 / load:,.0f} rows/s)"),
        (
            "longest event-loop stall during the load",
            f"{max(gaps) * 1000:.0f} ms (longest generation-2 GC pass: {longest_gc * 1000:.0f} ms)",
        ),
        ("call lookups (domain, terminal, extension, user, forwards)", f"{per_second:,.0f}/s"),
        ("DND change event applied (row re-read)", f"{update * 1000:.1f} ms"),
        ("forward deletion event applied (client slice re-read)", f"{deletion * 1000:.1f} ms"),
    ]


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.directory")
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--users", type=int, default=200)
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args.clients, args.users))
    table = "| measure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
    print(table)
    write_section("directory", "## Directory (configuration cache)\n\n" + table)


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
