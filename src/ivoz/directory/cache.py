"""The configuration cache of the SIP roles: everything routing needs, in memory.

``Directory.load(database)`` reads the companies, terminals, users, extensions, call
forwards, application servers and media relays in one query per table and indexes
them (company by SIP domain, terminal by (company, SIP username), extension by
(company, number), forwards by user). Lookups are dictionary reads: no SIP message
ever causes a query.

``attach(bus)`` subscribes it to ``ConfigChanged``. An event is applied by reading
again only what it names:

- a created or updated row is re-read by id (one query) and its views replaced;
- a deleted terminal, user, extension or forward reloads its client's slice (four
  queries scoped by ``company_id``), because the database's ON DELETE rules may have
  changed other rows of that client without events of their own (a deleted terminal
  leaves its user's ``terminal_id`` NULL);
- a deleted client, or a deleted brand, drops their slices from memory;
- any application-server or media-relay change re-reads those (small) tables;
- ``RELOAD_ALL`` (after the Redis bus lost events) rebuilds everything.

Events are applied one at a time (a lock) in the order they arrive; each re-read
returns the row as it is now, so applying an event twice or late is harmless. A full
load builds a new snapshot aside, yielding to the event loop every few thousand rows,
and swaps it in at once, so lookups never see half a load.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from ivoz.directory.views import (
    CompanyView,
    ExtensionView,
    ForwardKind,
    ForwardTarget,
    ForwardView,
    RelayView,
    ServerView,
    TerminalView,
    UserView,
)
from ivoz.domain import models as m
from ivoz.domain.db import Database
from ivoz.domain.events import ConfigChanged, EventBus

log = logging.getLogger(__name__)

# A result row (sqlalchemy Row) of one of the column lists below.
_Row = Any

YIELD_EVERY = 500  # rows decoded and indexed between two yields to the event loop (full load)

_COMPANY = (
    m.Company.id,
    m.Company.brand_id,
    m.Company.name,
    m.Company.type,
    m.Company.domain,
    m.Company.max_calls,
    m.Company.media_relay_set_id,
    m.Company.application_server_set_id,
)
_TERMINAL = (
    m.Terminal.id,
    m.Terminal.company_id,
    m.Terminal.name,
    m.Terminal.sip_username,
    m.Terminal.sip_password,
    m.Terminal.allowed_codecs,
    m.Terminal.transport,
    m.Terminal.direct_media,
    m.Terminal.nat_force_rport,
    m.Terminal.nat_comedia,
)
_USER = (
    m.User.id,
    m.User.company_id,
    m.User.name,
    m.User.extension_id,
    m.User.terminal_id,
    m.User.do_not_disturb,
    m.User.call_waiting_limit,
    m.User.active,
)
_EXTENSION = (
    m.Extension.id,
    m.Extension.company_id,
    m.Extension.number,
    m.Extension.route_type,
    m.Extension.user_id,
    m.Extension.number_value,
)
_FORWARD = (
    m.CallForwardSetting.id,
    m.CallForwardSetting.user_id,
    m.CallForwardSetting.company_id,
    m.CallForwardSetting.kind,
    m.CallForwardSetting.target_type,
    m.CallForwardSetting.target,
    m.CallForwardSetting.no_answer_timeout,
    m.CallForwardSetting.enabled,
)
_SERVER = (
    m.ApplicationServer.id,
    m.ApplicationServer.ip,
    m.ApplicationServer.port,
    m.ApplicationServer.application_server_set_id,
    m.ApplicationServer.name,
)
_RELAY = (
    m.MediaRelay.id,
    m.MediaRelay.media_relay_set_id,
    m.MediaRelay.ng_host,
    m.MediaRelay.ng_port,
    m.MediaRelay.weight,
    m.MediaRelay.name,
)

# Entities whose rows belong to one client and are re-read one by one.
_CLIENT_ROWS = ("Terminal", "User", "Extension", "CallForwardSetting")


def _company(r: _Row) -> CompanyView:
    return CompanyView(
        id=r.id,
        brand_id=r.brand_id,
        name=r.name,
        type=r.type,
        domain=r.domain.lower() if r.domain else None,
        max_calls=r.max_calls,
        media_relay_set_id=r.media_relay_set_id,
        application_server_set_id=r.application_server_set_id,
    )


def _terminal(r: _Row, user_id: int | None) -> TerminalView:
    return TerminalView(
        id=r.id,
        company_id=r.company_id,
        name=r.name,
        sip_username=r.sip_username,
        sip_password=r.sip_password,
        allowed_codecs=tuple(r.allowed_codecs or ()),
        transport=r.transport,
        user_id=user_id,
        direct_media=bool(r.direct_media),
        nat_force_rport=bool(r.nat_force_rport),
        nat_comedia=bool(r.nat_comedia),
    )


def _user(r: _Row, extension_number: str | None) -> UserView:
    return UserView(
        id=r.id,
        company_id=r.company_id,
        name=r.name,
        extension_number=extension_number,
        terminal_id=r.terminal_id,
        do_not_disturb=bool(r.do_not_disturb),
        call_waiting_limit=r.call_waiting_limit,
        extension_id=r.extension_id,
        active=bool(r.active),
    )


def _extension(r: _Row) -> ExtensionView:
    return ExtensionView(
        id=r.id,
        company_id=r.company_id,
        number=r.number,
        route_type=r.route_type,
        user_id=r.user_id,
        number_value=r.number_value,
    )


def _forward(r: _Row) -> ForwardView:
    return ForwardView(
        id=r.id,
        user_id=r.user_id,
        company_id=r.company_id,
        kind=cast(ForwardKind, r.kind),
        target_type=cast(ForwardTarget, r.target_type),
        target=r.target,
        no_answer_timeout=r.no_answer_timeout,
        enabled=bool(r.enabled),
    )


def _server(r: _Row) -> ServerView:
    return ServerView(
        id=r.id,
        host=r.ip,
        port=r.port,
        transport="udp",
        set_id=r.application_server_set_id,
        name=r.name,
    )


def _relay(r: _Row) -> RelayView:
    return RelayView(
        id=r.id,
        set_id=r.media_relay_set_id,
        host=r.ng_host,
        port=r.ng_port,
        weight=r.weight,
        name=r.name,
    )


@dataclasses.dataclass
class _Slice:
    """The rows of some clients as read from the database, before indexing."""

    terminals: Sequence[_Row] = ()
    users: Sequence[_Row] = ()
    extensions: Sequence[_Row] = ()
    forwards: Sequence[_Row] = ()


class _Snapshot:
    """The indexes. Mutated only by ``Directory`` while it holds its lock."""

    def __init__(self) -> None:
        self.companies: dict[int, CompanyView] = {}
        self.by_domain: dict[str, int] = {}
        self.terminals: dict[int, TerminalView] = {}
        self.by_username: dict[tuple[int, str], int] = {}
        self.users: dict[int, UserView] = {}
        self.terminal_user: dict[int, int] = {}  # terminal id -> user id
        self.extensions: dict[int, ExtensionView] = {}
        self.by_number: dict[tuple[int, str], int] = {}
        self.forwards: dict[int, ForwardView] = {}
        self.user_forwards: dict[int, dict[int, ForwardView]] = {}
        self.servers: dict[int, ServerView] = {}
        self.server_hosts: frozenset[str] = frozenset()
        self.relays: dict[int, RelayView] = {}
        # Reverse indexes: the users whose own extension is X; each client's row ids.
        self.extension_users: dict[int, set[int]] = {}
        self.of_company: dict[str, dict[int, set[int]]] = {
            kind: {} for kind in ("terminal", "user", "extension", "forward")
        }

    def _own(self, kind: str, company_id: int, row_id: int) -> None:
        self.of_company[kind].setdefault(company_id, set()).add(row_id)

    def _disown(self, kind: str, company_id: int, row_id: int) -> None:
        ids = self.of_company[kind].get(company_id)
        if ids is not None:
            ids.discard(row_id)
            if not ids:
                del self.of_company[kind][company_id]

    # -- companies

    def put_company(self, view: CompanyView) -> None:
        old = self.companies.get(view.id)
        if old is not None and old.domain and self.by_domain.get(old.domain) == view.id:
            del self.by_domain[old.domain]
        self.companies[view.id] = view
        if view.domain:
            self.by_domain[view.domain] = view.id

    def drop_company(self, company_id: int) -> None:
        old = self.companies.pop(company_id, None)
        if old is not None and old.domain and self.by_domain.get(old.domain) == company_id:
            del self.by_domain[old.domain]
        self.drop_rows_of(company_id)

    # -- one client's rows

    def drop_rows_of(self, company_id: int) -> None:
        for tid in list(self.of_company["terminal"].get(company_id, ())):
            self.drop_terminal(tid)
        for uid in list(self.of_company["user"].get(company_id, ())):
            self.drop_user(uid)
        for eid in list(self.of_company["extension"].get(company_id, ())):
            self.drop_extension(eid)
        for fid in list(self.of_company["forward"].get(company_id, ())):
            self.drop_forward(fid)

    def put_terminal(self, row: _Row) -> None:
        self.drop_terminal(row.id)
        view = _terminal(row, self.terminal_user.get(row.id))
        self.terminals[view.id] = view
        self.by_username[(view.company_id, view.sip_username)] = view.id
        self._own("terminal", view.company_id, view.id)

    def drop_terminal(self, terminal_id: int) -> None:
        old = self.terminals.pop(terminal_id, None)
        if old is None:
            return
        self._disown("terminal", old.company_id, old.id)
        if self.by_username.get((old.company_id, old.sip_username)) == old.id:
            del self.by_username[(old.company_id, old.sip_username)]

    def _link_terminal(self, terminal_id: int | None) -> None:
        if terminal_id is None:
            return
        view = self.terminals.get(terminal_id)
        if view is not None:
            user_id = self.terminal_user.get(terminal_id)
            if view.user_id != user_id:
                self.terminals[terminal_id] = dataclasses.replace(view, user_id=user_id)

    def put_user(self, row: _Row) -> None:
        self.drop_user(row.id)
        extension = self.extensions.get(row.extension_id) if row.extension_id else None
        view = _user(row, extension.number if extension is not None else None)
        self.users[view.id] = view
        self._own("user", view.company_id, view.id)
        if view.extension_id is not None:
            self.extension_users.setdefault(view.extension_id, set()).add(view.id)
        if view.terminal_id is not None:
            self.terminal_user[view.terminal_id] = view.id
            self._link_terminal(view.terminal_id)

    def drop_user(self, user_id: int) -> None:
        old = self.users.pop(user_id, None)
        if old is None:
            return
        self._disown("user", old.company_id, old.id)
        if old.extension_id is not None:
            users = self.extension_users.get(old.extension_id)
            if users is not None:
                users.discard(old.id)
                if not users:
                    del self.extension_users[old.extension_id]
        if old.terminal_id is not None:
            if self.terminal_user.get(old.terminal_id) == user_id:
                del self.terminal_user[old.terminal_id]
            self._link_terminal(old.terminal_id)

    def put_extension(self, row: _Row) -> None:
        self.drop_extension(row.id)
        view = _extension(row)
        self.extensions[view.id] = view
        self.by_number[(view.company_id, view.number)] = view.id
        self._own("extension", view.company_id, view.id)
        self._renumber_users(view.id, view.number)

    def drop_extension(self, extension_id: int) -> None:
        old = self.extensions.pop(extension_id, None)
        if old is None:
            return
        self._disown("extension", old.company_id, old.id)
        if self.by_number.get((old.company_id, old.number)) == old.id:
            del self.by_number[(old.company_id, old.number)]
        self._renumber_users(old.id, None)

    def _renumber_users(self, extension_id: int, number: str | None) -> None:
        for user_id in self.extension_users.get(extension_id, ()):
            user = self.users[user_id]
            if user.extension_number != number:
                self.users[user_id] = dataclasses.replace(user, extension_number=number)

    def put_forward(self, row: _Row) -> None:
        self.drop_forward(row.id)
        view = _forward(row)
        self.forwards[view.id] = view
        self.user_forwards.setdefault(view.user_id, {})[view.id] = view
        self._own("forward", view.company_id, view.id)

    def drop_forward(self, forward_id: int) -> None:
        old = self.forwards.pop(forward_id, None)
        if old is not None:
            self._disown("forward", old.company_id, old.id)
            mine = self.user_forwards.get(old.user_id)
            if mine is not None:
                mine.pop(forward_id, None)
                if not mine:
                    del self.user_forwards[old.user_id]

    def put_slice(self, rows: _Slice) -> None:
        for row in rows.extensions:
            self.put_extension(row)
        for row in rows.users:
            self.put_user(row)
        for row in rows.terminals:
            self.put_terminal(row)
        for row in rows.forwards:
            self.put_forward(row)

    # -- infrastructure

    def set_servers(self, rows: Iterable[_Row]) -> None:
        self.servers = {r.id: _server(r) for r in rows}
        self.server_hosts = frozenset(s.host for s in self.servers.values())

    def set_relays(self, rows: Iterable[_Row]) -> None:
        self.relays = {r.id: _relay(r) for r in rows}


class Directory:
    """In-memory snapshot of what SIP routing needs; see the module docstring."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._data = _Snapshot()
        self._lock = asyncio.Lock()
        self._unsubscribe: Callable[[], None] | None = None
        # Incremented after every applied change: lets a caller see that one happened.
        self.generation = 0

    # ------------------------------------------------------------------ lookups

    def company_by_domain(self, domain: str) -> CompanyView | None:
        company_id = self._data.by_domain.get(domain.lower())
        return None if company_id is None else self._data.companies.get(company_id)

    def company(self, company_id: int) -> CompanyView | None:
        return self._data.companies.get(company_id)

    def companies(self) -> list[CompanyView]:
        return sorted(self._data.companies.values(), key=lambda c: c.id)

    def terminal(self, company_id: int, sip_username: str) -> TerminalView | None:
        terminal_id = self._data.by_username.get((company_id, sip_username))
        return None if terminal_id is None else self._data.terminals.get(terminal_id)

    def terminal_by_id(self, terminal_id: int) -> TerminalView | None:
        return self._data.terminals.get(terminal_id)

    def user(self, user_id: int) -> UserView | None:
        return self._data.users.get(user_id)

    def extension(self, company_id: int, number: str) -> ExtensionView | None:
        extension_id = self._data.by_number.get((company_id, number))
        return None if extension_id is None else self._data.extensions.get(extension_id)

    def forwards(self, user_id: int) -> list[ForwardView]:
        """All of the user's forward settings (enabled or not), oldest first."""
        mine = self._data.user_forwards.get(user_id)
        return [] if not mine else sorted(mine.values(), key=lambda f: f.id)

    def application_servers(self, set_id: int | None) -> list[ServerView]:
        """The servers of a set (``None``: every server), by id."""
        servers = self._data.servers.values()
        return sorted(
            (s for s in servers if set_id is None or s.set_id == set_id), key=lambda s: s.id
        )

    def media_relays(self, set_id: int | None) -> list[RelayView]:
        """The relays of a set (``None``: every relay), by id."""
        relays = self._data.relays.values()
        return sorted(
            (r for r in relays if set_id is None or r.set_id == set_id), key=lambda r: r.id
        )

    def is_application_server(self, host: str) -> bool:
        return host in self._data.server_hosts

    # ------------------------------------------------------------------ loading

    @classmethod
    async def load(cls, database: Database) -> Directory:
        directory = cls(database)
        await directory.reload()
        return directory

    async def reload(self) -> None:
        """Read everything again and swap the new snapshot in."""
        async with self._lock:
            await self._reload_all()

    async def _reload_all(self) -> None:
        data = _Snapshot()
        # Extensions before users (a user's number), users before terminals (user_id).
        steps: tuple[tuple[tuple[Any, ...], Callable[[_Row], None]], ...] = (
            (_EXTENSION, data.put_extension),
            (_USER, data.put_user),
            (_TERMINAL, data.put_terminal),
            (_FORWARD, data.put_forward),
        )
        async with self.database.sessionmaker() as session:
            for row in (await session.execute(select(*_COMPANY))).all():
                data.put_company(_company(row))
            # Streamed in partitions, with a yield to the event loop after each, so that
            # a large platform does not hold the loop for long (rows are decoded on it).
            for columns, put in steps:
                result = await session.stream(select(*columns))
                async for part in result.partitions(YIELD_EVERY):
                    for row in part:
                        put(row)
                    await asyncio.sleep(0)
            servers = (await session.execute(select(*_SERVER))).all()
            relays = (await session.execute(select(*_RELAY))).all()
        data.set_servers(servers)
        data.set_relays(relays)
        self._data = data
        self.generation += 1
        log.debug(
            "directory loaded: %d clients, %d terminals, %d users",
            len(data.companies),
            len(data.terminals),
            len(data.users),
        )

    @staticmethod
    async def _read_slice(session: AsyncSession, company_id: int | None) -> _Slice:
        def query(columns: tuple[Any, ...], model: Any) -> Any:
            stmt = select(*columns)
            if company_id is not None:
                stmt = stmt.where(model.company_id == company_id)
            return stmt

        return _Slice(
            terminals=(await session.execute(query(_TERMINAL, m.Terminal))).all(),
            users=(await session.execute(query(_USER, m.User))).all(),
            extensions=(await session.execute(query(_EXTENSION, m.Extension))).all(),
            forwards=(await session.execute(query(_FORWARD, m.CallForwardSetting))).all(),
        )

    # ------------------------------------------------------------------ events

    def attach(self, bus: EventBus) -> None:
        """Apply every ``ConfigChanged`` of ``bus`` from now on (once; again replaces)."""
        self.detach()
        self._unsubscribe = bus.subscribe(self.apply)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    async def apply(self, event: ConfigChanged) -> None:
        """Bring the snapshot up to date with one change (see the module docstring)."""
        async with self._lock:
            try:
                await self._apply(event)
            except Exception:
                # Whatever failed, a full read leaves nothing stale behind.
                log.exception("directory: applying %s failed; reloading everything", event)
                await self._reload_all()
                return
            self.generation += 1

    async def _apply(self, event: ConfigChanged) -> None:
        entity = event.entity
        data = self._data
        if entity == "*":
            await self._reload_all()
        elif entity == "Brand":
            if event.op == "deleted":
                for company in [c for c in data.companies.values() if c.brand_id == event.id]:
                    data.drop_company(company.id)
        elif entity == "Company":
            if event.op == "deleted":
                data.drop_company(event.id)
                return
            async with self.database.sessionmaker() as session:
                row = (
                    await session.execute(select(*_COMPANY).where(m.Company.id == event.id))
                ).first()
            if row is None:
                data.drop_company(event.id)
            else:
                data.put_company(_company(row))
        elif entity in _CLIENT_ROWS:
            await self._apply_client_row(event)
        elif entity in ("ApplicationServer", "ApplicationServerSet"):
            async with self.database.sessionmaker() as session:
                data.set_servers((await session.execute(select(*_SERVER))).all())
        elif entity in ("MediaRelay", "MediaRelaySet"):
            async with self.database.sessionmaker() as session:
                data.set_relays((await session.execute(select(*_RELAY))).all())

    async def _apply_client_row(self, event: ConfigChanged) -> None:
        data = self._data
        if event.op == "deleted":
            if event.company_id is None:
                await self._reload_all()
                return
            # ON DELETE rules may have changed sibling rows: re-read the whole client.
            async with self.database.sessionmaker() as session:
                rows = await self._read_slice(session, event.company_id)
            data.drop_rows_of(event.company_id)
            data.put_slice(rows)
            return
        model: Any
        model, columns, put, drop = {
            "Terminal": (m.Terminal, _TERMINAL, data.put_terminal, data.drop_terminal),
            "User": (m.User, _USER, data.put_user, data.drop_user),
            "Extension": (m.Extension, _EXTENSION, data.put_extension, data.drop_extension),
            "CallForwardSetting": (
                m.CallForwardSetting,
                _FORWARD,
                data.put_forward,
                data.drop_forward,
            ),
        }[event.entity]
        async with self.database.sessionmaker() as session:
            row = (await session.execute(select(*columns).where(model.id == event.id))).first()
        if row is None:
            drop(event.id)  # deleted meanwhile: its own event follows
        else:
            put(row)
