"""DNS for SIP on asyncio: runs the queries of :func:`ivoz.sip.locate.locate` and caches.

:class:`Resolver` drives the sans-IO RFC 3263 procedure: each :class:`Query` it yields
is answered from the cache or by the backend, a :class:`DnspythonBackend` (dnspython's
asyncio stub resolver) unless a test gives another. The nameservers are the configured
ones (``IVOZ_DNS_SERVERS``, ``host[:port]`` separated by commas) or else the system's
(``/etc/resolv.conf``).

The cache is keyed by (name, type) and holds each answer for its TTL (capped at
``max_ttl``); answers handed out of it carry the TTL that remains, so that the
:class:`Located` result's TTL is the real time left. Negative answers (NXDOMAIN and
no-data) are cached for their RFC 2308 TTL (the SOA's TTL or MINIMUM, whichever is
smaller, RFC 2308 5), capped at ``max_negative_ttl``; one without SOA (dnsmasq's for
its local names) for ``negative_ttl_without_soa`` seconds. Positive and negative
entries have separate bounds (least recently used out first), so that a flood of
made-up names cannot push the useful answers out. Failures (timeout, SERVFAIL, refused)
are not cached. Concurrent identical questions share one query.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from ivoz.sip.locate import (
    SUPPORTED,
    AddressRecord,
    Answer,
    Located,
    NAPTRRecord,
    Query,
    Record,
    SRVRecord,
    locate,
)
from ivoz.sip.uri import URI

__all__ = [
    "Backend",
    "DnspythonBackend",
    "Nameserver",
    "Resolver",
    "ResolverStats",
    "parse_servers",
]

log = logging.getLogger(__name__)

QUERY_TIMEOUT = 2.0  # seconds for one question, every nameserver and retry included
MAX_ENTRIES = 4096  # positive answers cached
MAX_NEGATIVE_ENTRIES = 1024  # negative answers cached
MAX_TTL = 86400  # seconds; longer TTLs are cut to a day
# RFC 2308 5 suggests one to three hours as the longest negative TTL; a SIP platform
# wants a new DNS record (a new SRV target) to be seen sooner than that.
MAX_NEGATIVE_TTL = 300  # seconds
# RFC 2308 5: negative answers without SOA "SHOULD NOT be cached" (they could loop
# between servers forever); a stub does not pass them on, and a few seconds spare the
# server a question per SIP request.
NEGATIVE_TTL_WITHOUT_SOA = 5  # seconds

Backend = Callable[[Query], Awaitable[Answer]]


@dataclass(frozen=True, slots=True)
class Nameserver:
    """A DNS server to ask: IP address and UDP/TCP port."""

    host: str
    port: int = 53

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"nameserver port {self.port} is out of range")


def parse_servers(items: str | Iterable[str]) -> tuple[Nameserver, ...]:
    """``"10.0.0.2, 10.0.0.3:5353, [2001:db8::53]:53"`` (or its parts) as nameservers."""
    parts = items.split(",") if isinstance(items, str) else list(items)
    servers: list[Nameserver] = []
    for raw in parts:
        text = raw.strip()
        if not text:
            continue
        port = 53
        if text.startswith("["):
            host, sep, rest = text[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ValueError(f"bad nameserver {text!r}")
            if rest:
                port = _port(rest[1:], text)
        elif text.count(":") == 1:
            host, _, port_text = text.partition(":")
            port = _port(port_text, text)
        else:
            host = text  # a bare IPv4 address, or a bare IPv6 one (no port)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"nameserver {text!r} is not an IP address[:port]") from None
        servers.append(Nameserver(host, port))
    return tuple(servers)


def _port(text: str, whole: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port in nameserver {whole!r}")
    return int(text)


def _records(rrset: Iterable[object], rdtype: str) -> tuple[Record, ...]:
    out: list[Record] = []
    for rdata in rrset:
        try:
            if rdtype == "NAPTR":
                out.append(
                    NAPTRRecord(
                        rdata.order,  # type: ignore[attr-defined]
                        rdata.preference,  # type: ignore[attr-defined]
                        rdata.flags.decode("ascii", "replace"),  # type: ignore[attr-defined]
                        rdata.service.decode("ascii", "replace"),  # type: ignore[attr-defined]
                        rdata.regexp.decode("utf-8", "replace"),  # type: ignore[attr-defined]
                        rdata.replacement.to_text(),  # type: ignore[attr-defined]
                    )
                )
            elif rdtype == "SRV":
                out.append(
                    SRVRecord(
                        rdata.priority,  # type: ignore[attr-defined]
                        rdata.weight,  # type: ignore[attr-defined]
                        rdata.port,  # type: ignore[attr-defined]
                        rdata.target.to_text(),  # type: ignore[attr-defined]
                    )
                )
            else:
                out.append(AddressRecord(rdata.address))  # type: ignore[attr-defined]
        except (AttributeError, ValueError):
            continue  # a record of another type in the answer, or out of range
    return tuple(out)


def negative_ttl(response: dns.message.Message | None) -> int | None:
    """RFC 2308 5: the SOA's TTL or its MINIMUM, whichever is less; None without SOA."""
    if response is None:
        return None
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return int(min(rrset.ttl, rrset[0].minimum))
    return None


class DnspythonBackend:
    """One question to the nameservers through dnspython's asyncio resolver, no cache."""

    def __init__(
        self, servers: Sequence[Nameserver] = (), *, timeout: float = QUERY_TIMEOUT
    ) -> None:
        # no servers: /etc/resolv.conf (configure=True reads it)
        resolver = dns.asyncresolver.Resolver(configure=not servers)
        if servers:
            resolver.nameservers = [dns.nameserver.Do53Nameserver(s.host, s.port) for s in servers]
        resolver.cache = None  # ours is above, with the TTL rules of the module docstring
        resolver.lifetime = timeout
        resolver.timeout = timeout
        self.resolver = resolver

    async def __call__(self, query: Query) -> Answer:
        name = dns.name.from_text(query.name)
        try:
            answer = await self.resolver.resolve(
                name, query.rdtype, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN as exc:
            responses = exc.responses()  # type: ignore[no-untyped-call]
            response = next(iter(responses.values()), None) if responses else None
            return _negative(response, "NXDOMAIN")
        except dns.resolver.LifetimeTimeout:
            return Answer((), None, "timeout")
        except dns.resolver.NoNameservers as exc:
            return Answer((), None, f"no nameserver answered ({exc})")
        except dns.exception.DNSException as exc:
            return Answer((), None, f"{type(exc).__name__}: {exc}")
        if answer.rrset is None:
            return _negative(answer.response, "no data")
        # the TTL of the chain: CNAMEs followed and the final RRset (RFC 2181 10.1.2)
        ttl = answer.chaining_result.minimum_ttl
        return Answer(_records(answer.rrset, query.rdtype), ttl)


def _negative(response: dns.message.Message | None, what: str) -> Answer:
    ttl = negative_ttl(response)
    log.debug("DNS %s (negative TTL %s)", what, ttl)
    return Answer((), ttl)


@dataclass(slots=True)
class ResolverStats:
    """Counters since the start: questions sent to the backend, answered from the cache
    (positive, negative), failures."""

    sent: int = 0
    hits: int = 0
    negative_hits: int = 0
    failures: int = 0


class Resolver:
    """RFC 3263 resolution with a TTL cache over a :data:`Backend`."""

    def __init__(
        self,
        backend: Backend | None = None,
        *,
        servers: Sequence[Nameserver] = (),
        timeout: float = QUERY_TIMEOUT,
        max_entries: int = MAX_ENTRIES,
        max_negative_entries: int = MAX_NEGATIVE_ENTRIES,
        max_ttl: int = MAX_TTL,
        max_negative_ttl: int = MAX_NEGATIVE_TTL,
        negative_ttl_without_soa: int = NEGATIVE_TTL_WITHOUT_SOA,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if max_entries < 1 or max_negative_entries < 0:
            raise ValueError("cache bounds must be positive")
        # the default backend is made at the first question: reading /etc/resolv.conf
        # (or failing to, on a machine without one) waits until DNS is really needed
        self.backend: Backend | None = backend
        self.servers = tuple(servers)
        self.timeout = timeout
        self.max_entries = max_entries
        self.max_negative_entries = max_negative_entries
        self.max_ttl = max_ttl
        self.max_negative_ttl = max_negative_ttl
        self.negative_ttl_without_soa = negative_ttl_without_soa
        self.clock = clock
        self.rng = rng or random.Random()
        self.stats = ResolverStats()
        self._positive: OrderedDict[tuple[str, str], tuple[float, Answer]] = OrderedDict()
        self._negative: OrderedDict[tuple[str, str], tuple[float, Answer]] = OrderedDict()
        self._pending: dict[tuple[str, str], asyncio.Task[Answer]] = {}

    def __len__(self) -> int:
        return len(self._positive) + len(self._negative)

    def clear(self) -> None:
        self._positive.clear()
        self._negative.clear()

    async def locate(self, uri: URI, *, supported: Iterable[str] = SUPPORTED) -> Located:
        """The targets of ``uri`` (RFC 3263 4); raises :class:`ivoz.sip.locate.LocateError`."""
        procedure = locate(uri, supported=supported, rng=self.rng)
        try:
            query = next(procedure)
            while True:
                query = procedure.send(await self.query(query))
        except StopIteration as done:
            located: Located = done.value
            return located

    async def query(self, query: Query) -> Answer:
        """The answer to ``query``: cached while its TTL lasts, else asked."""
        key = (query.name.lower(), query.rdtype)
        cached = self._cached(key)
        if cached is not None:
            return cached
        task = self._pending.get(key)
        if task is None:
            task = asyncio.ensure_future(self._ask(key, query))
            self._pending[key] = task
            task.add_done_callback(lambda _t: self._pending.pop(key, None))
        # shielded: one waiter cancelled (its request gave up) leaves the others theirs
        return await asyncio.shield(task)

    def _cached(self, key: tuple[str, str]) -> Answer | None:
        now = self.clock()
        for table, negative in ((self._positive, False), (self._negative, True)):
            entry = table.get(key)
            if entry is None:
                continue
            expires, answer = entry
            if expires <= now:
                del table[key]
                continue
            table.move_to_end(key)
            if negative:
                self.stats.negative_hits += 1
            else:
                self.stats.hits += 1
            # what is left of the TTL, so that the caller's minimum stays true
            return Answer(answer.records, max(0, math.floor(expires - now)), answer.failure)
        return None

    async def _ask(self, key: tuple[str, str], query: Query) -> Answer:
        self.stats.sent += 1
        try:
            if self.backend is None:
                self.backend = DnspythonBackend(self.servers, timeout=self.timeout)
            async with asyncio.timeout(self.timeout):
                answer = await self.backend(query)
        except TimeoutError:
            answer = Answer((), None, "timeout")
        except dns.exception.DNSException as exc:  # no resolv.conf, no nameserver in it
            answer = Answer((), None, f"{type(exc).__name__}: {exc}")
        if answer.failure is not None:
            self.stats.failures += 1
            log.info("DNS %s %s failed: %s", query.rdtype, query.name, answer.failure)
            return answer
        return self._store(key, answer)

    def _store(self, key: tuple[str, str], answer: Answer) -> Answer:
        """Cache ``answer``; returns it with the TTL it is cached for."""
        if answer.records:
            ttl = min(answer.ttl if answer.ttl is not None else 0, self.max_ttl)
            table, bound = self._positive, self.max_entries
            answer = Answer(answer.records, ttl)
        else:
            ttl = answer.ttl if answer.ttl is not None else self.negative_ttl_without_soa
            ttl = min(ttl, self.max_negative_ttl)
            table, bound = self._negative, self.max_negative_entries
            answer = Answer((), ttl)
        if ttl <= 0 or bound == 0:
            return answer  # TTL 0: use once, never cache (RFC 1035 3.2.1)
        self._negative.pop(key, None)
        self._positive.pop(key, None)
        table[key] = (self.clock() + ttl, answer)
        while len(table) > bound:
            table.popitem(last=False)
        return answer
