"""Locating SIP servers (RFC 3263 section 4), sans-IO: DNS answers in, targets out.

:func:`locate` is a generator. It yields each :class:`Query` it needs (NAPTR, SRV, A,
AAAA) and is sent the :class:`Answer`; when it has enough it returns a
:class:`Located`: the ordered :class:`Target` list (transport, IP address, port) to try
one after the other (RFC 3263 4.3: the next one on a transport error, a timeout or a
503) and the smallest TTL of every answer used, after which the list must be rebuilt.
The caller owns the sockets and the cache (``ivoz.transport.dns`` on asyncio); tests
drive it with dictionaries through :func:`resolve`::

    procedure = locate(URI.parse("sip:example.com"))
    query = next(procedure)
    try:
        while True:
            query = procedure.send(lookup(query))
    except StopIteration as done:
        located = done.value

The steps, for TARGET = the ``maddr`` parameter, else the host:

1. RFC 3263 4.1: a ``transport`` parameter, a numeric TARGET or an explicit port fix
   the transport without NAPTR (UDP, TLS for sips). Otherwise NAPTR: records with flag
   "s", an empty regexp and a replacement, whose service (SIP+D2U, SIP+D2T, SIPS+D2T,
   SIP+D2W, SIPS+D2W; only SIPS+ ones for sips) names a transport the client supports,
   in order then preference (RFC 3403 4.1). No usable NAPTR: SRV queries for
   ``_sips._tcp``, ``_sip._tcp``, ``_sip._udp`` (only ``_sips._tcp`` for sips).
   Nothing at all: A/AAAA with UDP (TLS for sips).
2. RFC 3263 4.2: a numeric TARGET is used as it is; a name with a port gets A/AAAA;
   otherwise the SRV records (RFC 2782: by priority, weighted random within one) give
   names and ports whose A/AAAA answers give the addresses. A lone SRV target "."
   means the service is decidedly not offered. Without SRV records: A/AAAA of TARGET
   at the transport's default port (5060, 5061 for TLS).

Malformed records (wrong flags, a regexp, a replacement of ".", an address that does
not parse, a record of another type) are skipped, never fatal. When nothing is left,
:class:`LocateError` says why; nothing else escapes.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field

from .errors import LocalError, SIPError
from .uri import URI

__all__ = [
    "DEFAULT_PORTS",
    "MAX_QUERIES",
    "SERVICES",
    "SUPPORTED",
    "AddressRecord",
    "Answer",
    "LocateError",
    "Located",
    "NAPTRRecord",
    "Query",
    "Record",
    "SRVRecord",
    "Target",
    "locate",
    "order_srv",
    "resolve",
]

# RFC 3263 4.1 and RFC 7118 7: NAPTR service field -> (transport, secure)
SERVICES: dict[str, tuple[str, bool]] = {
    "SIP+D2U": ("UDP", False),
    "SIP+D2T": ("TCP", False),
    "SIPS+D2T": ("TLS", True),
    "SIP+D2W": ("WS", False),
    "SIPS+D2W": ("WSS", True),
}
# What ivoz.transport can open toward a server (a WebSocket server is never dialled).
SUPPORTED = frozenset({"UDP", "TCP", "TLS"})
# RFC 3263 4.1: without NAPTR, the SRV queries in the order they are tried
_SRV_PREFIXES = {"TLS": "_sips._tcp", "TCP": "_sip._tcp", "UDP": "_sip._udp"}
# RFC 3261 19.1.2 / RFC 7118 (HTTP's): the port when neither URI nor SRV gives one
DEFAULT_PORTS = {"UDP": 5060, "TCP": 5060, "TLS": 5061, "WS": 80, "WSS": 443}
# The transport parameter values (RFC 3261 19.1.1, RFC 7118 5.2; "tls" is RFC 2543's)
_TRANSPORT_PARAMS = {"udp": "UDP", "tcp": "TCP", "tls": "TLS", "ws": "WS", "wss": "WSS"}
# A bound on the queries of one procedure, so that a hostile zone (hundreds of NAPTR or
# SRV records) cannot make one request cost unbounded DNS traffic.
MAX_QUERIES = 32


class LocateError(SIPError):
    """No target could be found for a URI (the reason says which step failed)."""


@dataclass(frozen=True, slots=True)
class Query:
    """One DNS question: ``name`` (absolute, no trailing dot) and ``rdtype``."""

    name: str
    rdtype: str  # "NAPTR", "SRV", "A" or "AAAA"

    def __post_init__(self) -> None:
        if self.rdtype not in ("NAPTR", "SRV", "A", "AAAA"):
            raise ValueError(f"unknown query type {self.rdtype!r}")


def _u16(value: int, what: str) -> None:
    if not 0 <= value <= 0xFFFF:
        raise ValueError(f"{what} {value} is not a 16-bit value")


@dataclass(frozen=True, slots=True)
class NAPTRRecord:
    """RFC 3403 4.1 NAPTR RDATA."""

    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str

    def __post_init__(self) -> None:
        _u16(self.order, "NAPTR order")
        _u16(self.preference, "NAPTR preference")


@dataclass(frozen=True, slots=True)
class SRVRecord:
    """RFC 2782 SRV RDATA."""

    priority: int
    weight: int
    port: int
    target: str

    def __post_init__(self) -> None:
        _u16(self.priority, "SRV priority")
        _u16(self.weight, "SRV weight")
        _u16(self.port, "SRV port")


@dataclass(frozen=True, slots=True)
class AddressRecord:
    """An A or AAAA record: the address as text."""

    address: str


Record = NAPTRRecord | SRVRecord | AddressRecord


@dataclass(frozen=True, slots=True)
class Answer:
    """What the DNS said to one :class:`Query`.

    ``records`` empty is a negative answer (NXDOMAIN or no data); ``ttl`` is the RRset's
    TTL, or for a negative answer its RFC 2308 TTL (SOA), or None when unknown (a
    failure: timeout, SERVFAIL; ``failure`` then says which).
    """

    records: tuple[Record, ...] = ()
    ttl: int | None = None
    failure: str | None = None

    def __post_init__(self) -> None:
        if self.ttl is not None and self.ttl < 0:
            raise ValueError(f"negative TTL {self.ttl}")


@dataclass(frozen=True, slots=True)
class Target:
    """One place to send a request: transport (Via spelling), IP address and port.

    ``name`` is the domain the URI named (TARGET), which a TLS client checks the
    server's certificate against (RFC 5922 4), not the SRV target.
    """

    transport: str
    host: str
    port: int
    name: str = ""


@dataclass(frozen=True, slots=True)
class Located:
    """The result: targets in the order to try them, valid for ``ttl`` seconds (None:
    no DNS was involved, the URI named an address)."""

    targets: tuple[Target, ...]
    ttl: int | None = None


Procedure = Generator[Query, Answer, Located]


@dataclass(slots=True)
class _Run:
    """Book-keeping of one procedure: TTLs seen, failures, queries left."""

    ttl: int | None = None
    failures: list[str] = field(default_factory=list)
    budget: int = MAX_QUERIES

    def saw(self, query: Query, answer: Answer) -> None:
        if answer.ttl is not None:
            self.ttl = answer.ttl if self.ttl is None else min(self.ttl, answer.ttl)
        if answer.failure is not None:
            self.failures.append(f"{query.rdtype} {query.name}: {answer.failure}")


def _name(text: str) -> str:
    return text.rstrip(".").lower()


def _numeric(host: str) -> str | None:
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return None


def locate(
    uri: URI,
    *,
    supported: Iterable[str] = SUPPORTED,
    rng: random.Random | None = None,
    ipv6: bool = True,
) -> Procedure:
    """The RFC 3263 section 4 procedure for ``uri``; see the module docstring.

    ``supported`` are the transports the client can use (Via spelling); ``rng`` orders
    SRV records of equal priority (RFC 2782); ``ipv6`` adds AAAA after A queries.
    """
    can = frozenset(t.upper() for t in supported)
    rng = rng if rng is not None else random.Random()
    secure = uri.is_secure
    if uri.scheme not in ("sip", "sips"):
        raise LocateError(f"cannot locate a {uri.scheme}: URI")
    maddr = uri.params.get("maddr")
    # RFC 3263 4: TARGET is maddr when present, else the host part
    target = maddr if maddr else uri.host
    if not target:
        raise LocateError(f"{uri} has no host")
    run = _Run()
    numeric = _numeric(target)
    domain = _name(target)

    # RFC 3263 4.1: an explicit transport parameter is used as it is
    transport: str | None = None
    if uri.transport is not None:
        transport = _TRANSPORT_PARAMS.get(uri.transport)
        if transport is None:
            raise LocateError(f"unknown transport {uri.transport!r} in {uri}")
        if secure and transport == "TCP":
            transport = "TLS"  # RFC 3261 26.2.2: sips over TCP is TLS
        if secure and transport in ("UDP", "WS"):
            raise LocateError(f"sips URI with an insecure transport {transport}: {uri}")
        if transport not in can:
            raise LocateError(f"transport {transport} of {uri} is not supported")
    elif numeric is not None or uri.port is not None:
        # RFC 3263 4.1: numeric TARGET or explicit port: UDP for sip, TCP (TLS) for sips
        transport = "TLS" if secure else "UDP"
        if transport not in can:
            raise LocateError(f"transport {transport} for {uri} is not supported")

    # RFC 3263 4.2: a numeric TARGET is the address, at the URI's port or the default
    if numeric is not None:
        assert transport is not None
        port = uri.port if uri.port is not None else DEFAULT_PORTS[transport]
        return Located((Target(transport, numeric, port, numeric),), None)

    # RFC 3263 4.2: a name with an explicit port: A/AAAA, no SRV
    if uri.port is not None:
        assert transport is not None
        hosts = yield from _addresses(domain, run, ipv6)
        return _done(uri, run, [Target(transport, h, uri.port, domain) for h in hosts])

    if transport is not None:
        # RFC 3263 4.2: transport given explicitly: SRV for that transport only
        # ("_sips" for sips or TLS, else "_sip"; RFC 7118 names no SRV label for
        # WebSocket, "_ws"/"_wss" follows the pattern)
        label = "_sips" if secure or transport in ("TLS", "WSS") else "_sip"
        proto = {"UDP": "_udp", "TCP": "_tcp", "TLS": "_tcp", "WS": "_ws", "WSS": "_ws"}
        found, unavailable = yield from _srv(
            f"{label}.{proto[transport]}.{domain}", transport, domain, run, rng, ipv6
        )
        if found or unavailable:
            return _done(uri, run, found)
        hosts = yield from _addresses(domain, run, ipv6)
        return _done(
            uri, run, [Target(transport, h, DEFAULT_PORTS[transport], domain) for h in hosts]
        )

    # RFC 3263 4.1: NAPTR
    answer = yield from _ask(Query(domain, "NAPTR"), run)
    naptrs = _usable_naptrs(answer.records, secure, can)
    targets: list[Target] = []
    if naptrs:
        any_unavailable = False
        for naptr in naptrs:
            transport = SERVICES[naptr.service.upper()][0]
            # RFC 3263 4.2: the SRV query is on the NAPTR's replacement
            found, unavailable = yield from _srv(
                _name(naptr.replacement), transport, domain, run, rng, ipv6
            )
            targets += found
            any_unavailable = any_unavailable or unavailable
        if targets or any_unavailable:
            return _done(uri, run, targets)
        # RFC 3263 4.2: no SRV records: A/AAAA with the transport NAPTR chose
        first = SERVICES[naptrs[0].service.upper()][0]
        hosts = yield from _addresses(domain, run, ipv6)
        return _done(uri, run, [Target(first, h, DEFAULT_PORTS[first], domain) for h in hosts])

    # RFC 3263 4.1: no NAPTR: SRV for each transport we support, in order. NAPTR records
    # that are all unusable to us (other services, malformed) count as none, as in
    # Kamailio and PJSIP: the RFC says nothing of that case, and SRV may still answer.
    any_unavailable = False
    for kind in ("TLS",) if secure else ("TLS", "TCP", "UDP"):
        if kind not in can:
            continue
        found, unavailable = yield from _srv(
            f"{_SRV_PREFIXES[kind]}.{domain}", kind, domain, run, rng, ipv6
        )
        targets += found
        any_unavailable = any_unavailable or unavailable
    if targets or any_unavailable:
        return _done(uri, run, targets)
    # RFC 3263 4.1/4.2: no SRV either: A/AAAA, UDP for sip, TCP (TLS) for sips
    transport = "TLS" if secure else "UDP"
    if transport not in can:
        raise LocateError(f"no NAPTR or SRV for {domain} and {transport} is not supported")
    hosts = yield from _addresses(domain, run, ipv6)
    return _done(uri, run, [Target(transport, h, DEFAULT_PORTS[transport], domain) for h in hosts])


def _done(uri: URI, run: _Run, targets: Sequence[Target]) -> Located:
    unique = tuple(dict.fromkeys(targets))  # the first occurrence keeps its rank
    if not unique:
        why = "; ".join(run.failures) if run.failures else "no usable DNS records"
        raise LocateError(f"no target for {uri}: {why}")
    return Located(unique, run.ttl)


def _ask(query: Query, run: _Run) -> Generator[Query, Answer, Answer]:
    if run.budget <= 0:
        run.failures.append(f"{query.rdtype} {query.name}: query budget spent")
        return Answer()
    run.budget -= 1
    answer = yield query
    if not isinstance(answer, Answer):
        raise LocalError(f"the answer to {query.rdtype} {query.name} is not an Answer")
    run.saw(query, answer)
    return answer


def _usable_naptrs(
    records: Iterable[Record], secure: bool, can: frozenset[str]
) -> list[NAPTRRecord]:
    usable: list[NAPTRRecord] = []
    for record in records:
        if not isinstance(record, NAPTRRecord):
            continue
        service = SERVICES.get(record.service.upper())
        if service is None:
            continue  # RFC 3263 4.1: discard services the client does not support
        transport, is_secure = service
        # RFC 3263 4.1: a client resolving a SIPS URI MUST discard non-SIPS services
        if (secure and not is_secure) or transport not in can:
            continue
        # RFC 3263 4.1: the SIP records carry flag "s" (the next lookup is SRV), an
        # empty regexp and a replacement; RFC 3403 4.1: regexp and replacement are
        # mutually exclusive. Anything else is malformed for SIP and skipped.
        if record.flags.lower() != "s" or record.regexp or _name(record.replacement) == "":
            continue
        usable.append(record)
    # RFC 3403 4.1: lowest order first, then lowest preference
    usable.sort(key=lambda r: (r.order, r.preference))
    return usable


def order_srv(records: Sequence[SRVRecord], rng: random.Random) -> list[SRVRecord]:
    """RFC 2782 "Usage rules": by priority, and within one priority weighted random.

    Each round puts the remaining records of the group with weight 0 first, draws a
    uniform integer between 0 and the sum of weights (inclusive) and takes the first
    record whose running sum reaches it. A weight-0 record is thus drawn only when the
    number is 0, which gives it "a very small chance of being selected" when others
    have weight; the group is shuffled before each round's arrangement, so records
    that all have weight 0 have equal chances.
    """
    ordered: list[SRVRecord] = []
    for priority in sorted({r.priority for r in records}):
        group = [r for r in records if r.priority == priority]
        # RFC 2782: "arrange all SRV RRs ... in any order, except that all those with
        # weight 0 are placed at the beginning of the list". Shuffled first, so that
        # records of weight 0 take turns instead of the first one always winning.
        rng.shuffle(group)
        group.sort(key=lambda r: r.weight != 0)
        while group:
            total = sum(r.weight for r in group)
            pick = rng.randint(0, total)
            running = 0
            for index, record in enumerate(group):
                running += record.weight
                if running >= pick:
                    ordered.append(group.pop(index))
                    break
    return ordered


def _srv(
    name: str, transport: str, domain: str, run: _Run, rng: random.Random, ipv6: bool
) -> Generator[Query, Answer, tuple[list[Target], bool]]:
    """Targets of one SRV name, and whether it said "decidedly not available"."""
    answer = yield from _ask(Query(name, "SRV"), run)
    records = [r for r in answer.records if isinstance(r, SRVRecord)]
    # RFC 2782: a Target of "." means the service is decidedly not available
    real = [r for r in records if _name(r.target) != ""]
    if not real:
        return [], bool(records)
    targets: list[Target] = []
    for record in order_srv(real, rng):
        hosts = yield from _addresses(_name(record.target), run, ipv6)
        targets += [Target(transport, host, record.port, domain) for host in hosts]
    return targets, False


def _addresses(name: str, run: _Run, ipv6: bool) -> Generator[Query, Answer, list[str]]:
    """A then AAAA of ``name``: the addresses, each checked, in answer order."""
    numeric = _numeric(name)
    if numeric is not None:
        return [numeric]  # an SRV target that is an address literal (seen in the field)
    hosts: list[str] = []
    for rdtype, version in (("A", 4), ("AAAA", 6)) if ipv6 else (("A", 4),):
        answer = yield from _ask(Query(name, rdtype), run)
        for record in answer.records:
            if not isinstance(record, AddressRecord):
                continue
            try:
                address = ipaddress.ip_address(record.address)
            except ValueError:
                continue  # garbage in an address record: skipped
            if address.version == version:
                hosts.append(str(address))
    return hosts


def resolve(
    uri: URI,
    lookup: Callable[[Query], Answer],
    *,
    supported: Iterable[str] = SUPPORTED,
    rng: random.Random | None = None,
    ipv6: bool = True,
) -> Located:
    """Run :func:`locate` with a synchronous ``lookup`` (tests, or a cache known warm)."""
    procedure = locate(uri, supported=supported, rng=rng, ipv6=ipv6)
    try:
        query = next(procedure)
        while True:
            query = procedure.send(lookup(query))
    except StopIteration as done:
        result: Located = done.value
        return result
