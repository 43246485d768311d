"""Which application server takes a call, and which ones are alive (sans-IO).

:class:`Dispatcher` keeps, per application server, the calls the proxy has in flight
to it (a call counts from its INVITE until it fails or its dialog ends) and its health.
``choose(servers)`` returns the healthy servers of a client's set, least busy first
(ties keep the directory's order); when none is healthy, all of them in the same
order, so a set whose probes all fail still gets a try rather than a certain 503.

Health comes from SIP OPTIONS probes (what Kamailio's dispatcher module does): every
``interval`` seconds :meth:`Dispatcher.due` lists the servers to probe; the role sends
an OPTIONS to each and reports :meth:`answered` (any response, even 404, proves the
server is alive) or :meth:`failed`. A probe still unanswered after ``timeout`` seconds
counts as failed. A server is skipped from its first failed probe until the next one it
answers; a call that gets no response at all from a server (:meth:`failed` from the
proxy core) takes it out at once too. Time is the caller's clock value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

PROBE_INTERVAL = 2.0  # seconds between two OPTIONS probes of one server
PROBE_TIMEOUT = 1.5  # seconds an OPTIONS probe may stay unanswered


class ServerLike(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


@dataclass(slots=True)
class _State:
    healthy: bool = True
    next_probe: float = 0.0
    probe_sent: float | None = None
    calls: set[str] = field(default_factory=set)


class Dispatcher:
    """Load and health of the application servers, as this proxy sees them."""

    def __init__(self, *, interval: float = PROBE_INTERVAL, timeout: float = PROBE_TIMEOUT) -> None:
        if interval <= 0 or timeout <= 0:
            raise ValueError("probe interval and timeout must be positive")
        self.interval = interval
        self.timeout = timeout
        self._servers: dict[int, _State] = {}
        self._call_server: dict[str, int] = {}

    def _state(self, server_id: int) -> _State:
        state = self._servers.get(server_id)
        if state is None:
            state = self._servers[server_id] = _State()
        return state

    # -- choice ------------------------------------------------------------------------

    def healthy(self, server_id: int) -> bool:
        return self._state(server_id).healthy

    def load(self, server_id: int) -> int:
        """Calls in flight to the server."""
        return len(self._state(server_id).calls)

    def choose(self, servers: Sequence[ServerLike]) -> list[ServerLike]:
        """The servers to try, best first: healthy and least busy."""
        ranked = sorted(
            enumerate(servers),
            key=lambda item: (not self.healthy(item[1].id), self.load(item[1].id), item[0]),
        )
        healthy = [s for _, s in ranked if self.healthy(s.id)]
        return healthy or [s for _, s in ranked]

    # -- load --------------------------------------------------------------------------

    def call_started(self, server_id: int, call_id: str) -> None:
        previous = self._call_server.get(call_id)
        if previous is not None and previous != server_id:
            self._state(previous).calls.discard(call_id)
        self._call_server[call_id] = server_id
        self._state(server_id).calls.add(call_id)

    def call_ended(self, call_id: str) -> None:
        server_id = self._call_server.pop(call_id, None)
        if server_id is not None:
            self._state(server_id).calls.discard(call_id)

    # -- health ------------------------------------------------------------------------

    def watch(self, servers: Iterable[ServerLike]) -> None:
        """Keep probing exactly these servers (the directory's current list)."""
        ids = {s.id for s in servers}
        for server_id in ids:
            self._state(server_id)
        for server_id in list(self._servers):
            if server_id not in ids and not self._servers[server_id].calls:
                del self._servers[server_id]

    def due(self, now: float) -> list[int]:
        """Servers whose probe is due now; each is marked as probed at ``now``."""
        out = []
        for server_id, state in self._servers.items():
            if state.probe_sent is not None and now - state.probe_sent >= self.timeout:
                # the last probe went unanswered
                state.probe_sent = None
                state.healthy = False
            if state.probe_sent is None and now >= state.next_probe:
                state.probe_sent = now
                state.next_probe = now + self.interval
                out.append(server_id)
        return out

    def next_deadline(self) -> float | None:
        deadlines = []
        for state in self._servers.values():
            if state.probe_sent is not None:
                deadlines.append(state.probe_sent + self.timeout)
            else:
                deadlines.append(state.next_probe)
        return min(deadlines, default=None)

    def answered(self, server_id: int, now: float) -> None:
        """A probe (or any request) got a response: the server is alive."""
        state = self._state(server_id)
        state.probe_sent = None
        state.healthy = True

    def failed(self, server_id: int, now: float) -> None:
        """A probe or a call got no response: skip the server until it answers."""
        state = self._state(server_id)
        state.probe_sent = None
        state.healthy = False
        state.next_probe = min(state.next_probe, now + self.interval)
