"""The ``ivoz`` command: run roles, manage the database, set up a demo platform.

``ivoz run`` starts every role in one process (the embedded default); ``--role``
picks some of them, so that each runs alone on its own machine. A role is a module
with ``async def serve(config: Config, services: Services | None = None) -> None``
that runs until cancelled; roles whose module is not there yet are reported and
skipped. The roles of one process share one ``ivoz.services.Services`` (database,
event bus, directory, live state), made here after the database is prepared.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import importlib
import inspect
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from ivoz import __version__
from ivoz.config import ROLES, Config

log = logging.getLogger("ivoz")

# Which module serves each role.
ROLE_MODULES = {
    "proxy-users": "ivoz.proxy.role",
    "appserver": "ivoz.appserver.role",
    "relay": "ivoz.media.role",
    "portal": "ivoz.portal.role",
}

RoleServe = Callable[..., Coroutine[Any, Any, None]]

# Roles that work without the configuration database (a relay on its own machine).
NO_SERVICES = frozenset({"relay"})


def _load_role(role: str) -> RoleServe | None:
    try:
        module = importlib.import_module(ROLE_MODULES[role])
    except ModuleNotFoundError as exc:
        if exc.name and ROLE_MODULES[role].startswith(exc.name):
            return None
        raise
    serve: RoleServe = module.serve
    return serve


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ivoz", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ivoz {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--data-dir", type=Path, help="where generated files live (var/)")
    parser.add_argument("--database-url", help="SQLAlchemy URL (default: SQLite in data dir)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the platform's roles")
    run.add_argument(
        "--role",
        action="append",
        choices=ROLES,
        help="run only this role (repeatable); default: all roles in one process",
    )
    run.add_argument("--demo", action="store_true", help="set up the demo platform on first start")
    run.add_argument("--sip-host", help="address the SIP listeners bind (127.0.0.1)")
    run.add_argument("--sip-udp-port", type=int)
    run.add_argument("--sip-tcp-port", type=int)
    run.add_argument("--sip-tls-port", type=int)
    run.add_argument("--sip-ws-port", type=int)
    run.add_argument("--sip-wss-port", type=int)
    run.add_argument("--tls-cert", type=Path, help="PEM certificate (self-signed when unset)")
    run.add_argument("--tls-key", type=Path, help="PEM private key")
    run.add_argument("--ng-host")
    run.add_argument("--ng-port", type=int)
    run.add_argument("--rtp-host")
    run.add_argument("--rtp-port-min", type=int)
    run.add_argument("--rtp-port-max", type=int)
    run.add_argument("--api-host")
    run.add_argument("--api-port", type=int)
    run.add_argument(
        "--api-tls", action="store_true", default=None, help="serve the API over HTTPS"
    )
    run.add_argument("--appserver-host", help="application server SIP address (127.0.0.1)")
    run.add_argument("--appserver-port", type=int)
    run.add_argument("--redis-url", help="shared live state and events (default: in memory)")

    db = sub.add_parser("db", help="configuration database")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    dbsub.add_parser("upgrade", help="apply migrations")

    admin = sub.add_parser("admin", help="platform administrators")
    adminsub = admin.add_subparsers(dest="admin_command", required=True)
    create = adminsub.add_parser("create", help="create a platform administrator")
    create.add_argument("username")
    create.add_argument("--password", help="(prompted for when not given)")
    create.add_argument("--email", default="")

    sub.add_parser("demo", help="create the demo platform (brand Demo, client Acme, users)")
    return parser


def _config_from_args(args: argparse.Namespace) -> Config:
    config = Config.from_env()
    overrides: dict[str, Any] = {}
    for f in dataclasses.fields(Config):
        value = getattr(args, f.name, None)
        if value is not None:
            overrides[f.name] = value
    if getattr(args, "role", None):
        overrides["roles"] = tuple(args.role)
    return dataclasses.replace(config, **overrides)


# The cyclic garbage collector's thresholds for `ivoz run` (CPython's: 700, 10, 10).
# A call leaves thousands of live objects behind for a while (transactions kept for
# their timers, dialogs, relay sessions), so with the defaults full passes over a heap
# of half a million objects come every few seconds under load: 15% of the CPU in
# bench.proxy's calls. With these, 120 -> 158 calls per core; young collections still
# run every 50,000 allocations, so reference cycles are still reclaimed.
GC_THRESHOLDS = (50_000, 20, 100)


def _tune_gc() -> None:
    gc.set_threshold(*GC_THRESHOLDS)


def _choose_sip_core(config: Config) -> str:
    """Switch the SIP hot path to C or Python as configured; say which one runs."""
    from ivoz.sip import speedups

    speedups.use_compiled(config.sip_compiled)
    if speedups.compiled():
        return "compiled"
    if not speedups.available():
        return "Python (the compiled module was not built: no C compiler?)"
    return "Python (IVOZ_SIP_COMPILED=false)"


async def _run(config: Config, demo: bool) -> int:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    log.info("SIP parser hot path: %s", _choose_sip_core(config))
    _tune_gc()
    serves: list[tuple[str, RoleServe]] = []
    for role in config.roles:
        serve = _load_role(role)
        if serve is None:
            log.warning("role %s is not available in this build; skipped", role)
            continue
        serves.append((role, serve))
    if not serves:
        log.error("no role to run")
        return 1
    if demo or "portal" in config.roles:
        prepare = _optional("ivoz.domain.commands", "prepare")
        if prepare is not None:
            await prepare(config, demo=demo)

    services = None
    if any(role not in NO_SERVICES for role, _ in serves):
        create = _optional("ivoz.services", "Services")
        services = None if create is None else await create.create(config)
    # What start-up built (modules, configuration cache) lives as long as the process:
    # out of the collector's way, so a full pass only walks what calls create.
    gc.freeze()
    try:
        return await _serve_roles(config, serves, services)
    finally:
        if services is not None:
            await services.close()


def _start_role(serve: RoleServe, config: Config, services: Any) -> Coroutine[Any, Any, None]:
    # A role module not yet taking the shared services makes its own.
    if services is not None and len(inspect.signature(serve).parameters) >= 2:
        return serve(config, services)
    return serve(config)


async def _serve_roles(config: Config, serves: list[tuple[str, RoleServe]], services: Any) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks: dict[asyncio.Task[Any], str] = {
        asyncio.create_task(_start_role(serve, config, services), name=role): role
        for role, serve in serves
    }
    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
    status = 0
    for task in done:
        if task is not stopper and not task.cancelled() and task.exception() is not None:
            log.error("role %s failed", tasks.get(task), exc_info=task.exception())
            status = 1
    for task in [*tasks, stopper]:
        task.cancel()
    await asyncio.gather(*tasks, stopper, return_exceptions=True)
    log.info("stopped")
    return status


def _optional(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        raise


def _domain_command(name: str) -> Any:
    command = _optional("ivoz.domain.commands", name)
    if command is None:
        raise SystemExit(f"ivoz: this build has no configuration database ({name})")
    return command


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run
    return uvloop.run


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not args.verbose:
        # Migration chatter (one line per plugin and revision) only with -v.
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        config = _config_from_args(args)
    except ValueError as exc:  # a bad IVOZ_* value: say which, without a traceback
        print(f"ivoz: {exc}", file=sys.stderr)
        return 2
    runner = _event_loop_runner()
    try:
        if args.command == "run":
            return int(runner(_run(config, demo=args.demo)))
        if args.command == "db":
            return runner(_domain_command("db_upgrade")(config)) or 0
        if args.command == "admin":
            command = _domain_command("admin_create")
            return runner(command(config, args.username, args.password, args.email)) or 0
        if args.command == "demo":
            return runner(_domain_command("demo")(config)) or 0
    except KeyboardInterrupt:
        return 130
    return 2
