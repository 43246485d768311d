"""The registrar (RFC 3261 10.3) against a fake directory, a memory store and a fake clock."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field

import pytest

from ivoz.proxy import nat
from ivoz.proxy.nat import KeepAlive
from ivoz.proxy.registrar import RFC8760_ALGORITHMS, Registrar
from ivoz.sip import Request, Response, parse_message
from ivoz.sip.auth import challenges
from ivoz.sip.digest import answer_challenge
from ivoz.state import Binding, MemoryLocationStore
from ivoz.transport import Address, Kind, Origin

SECRET = b"registrar-test-secret"
NOW = 1_800_000_000.0
ACME = "acme.ivoz.test"
ALICE = f"alice@{ACME}"


@dataclass(frozen=True)
class FakeCompany:
    id: int
    domain: str | None


@dataclass(frozen=True)
class FakeTerminal:
    id: int
    company_id: int
    sip_username: str
    sip_password: str


@dataclass
class FakeDirectory:
    companies: dict[str, FakeCompany] = field(default_factory=dict)
    terminals: dict[tuple[int, str], FakeTerminal] = field(default_factory=dict)

    def company_by_domain(self, domain: str) -> FakeCompany | None:
        return self.companies.get(domain)

    def terminal(self, company_id: int, sip_username: str) -> FakeTerminal | None:
        return self.terminals.get((company_id, sip_username))


def demo_directory() -> FakeDirectory:
    directory = FakeDirectory()
    directory.companies = {ACME: FakeCompany(1, ACME), "other.test": FakeCompany(2, "other.test")}
    for terminal in (
        FakeTerminal(11, 1, "alice", "alice-secret"),
        FakeTerminal(12, 1, "bob", "bob-secret"),
        FakeTerminal(21, 2, "carol", "carol-secret"),
        FakeTerminal(22, 2, "alice", "other-alice-secret"),
    ):
        directory.terminals[(terminal.company_id, terminal.sip_username)] = terminal
    return directory


def udp_origin(host: str = "192.0.2.10", port: int = 5060) -> Origin:
    return Origin(Kind.UDP, Address(Kind.UDP, host, port), Address(Kind.UDP, "127.0.0.1", 5060))


def tcp_origin(host: str = "192.0.2.10", port: int = 40123, connection: int = 7) -> Origin:
    local = Address(Kind.TCP, "127.0.0.1", 5060)
    return Origin(Kind.TCP, Address(Kind.TCP, host, port), local, connection)


_branches = itertools.count(1)


def register(
    *,
    user: str = "alice",
    domain: str = ACME,
    contacts: tuple[str, ...] = ("<sip:alice@192.0.2.10:5060>",),
    cseq: int = 1,
    call_id: str = "reg-1@192.0.2.10",
    ruri: str | None = None,
    transport: str = "UDP",
    extra: tuple[str, ...] = (),
) -> Request:
    lines = [
        f"REGISTER {ruri or 'sip:' + domain} SIP/2.0",
        f"Via: SIP/2.0/{transport} 192.0.2.10:5060;branch=z9hG4bK-{next(_branches)}",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{domain}>;tag=ft1",
        f"To: <sip:{user}@{domain}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        *[f"Contact: {c}" for c in contacts],
        "User-Agent: test-phone/1.0",
        *extra,
        "Content-Length: 0",
        "",
        "",
    ]
    message = parse_message("\r\n".join(lines).encode())
    assert isinstance(message, Request)
    return message


def authorize(
    challenge_response: Response,
    request: Request,
    *,
    username: str = "alice",
    password: str = "alice-secret",
    algorithm: str = "SHA-256",
) -> Request:
    """``request`` with an Authorization answering the 401's challenge for ``algorithm``."""
    (challenge,) = [c for c in challenges(challenge_response) if c.algorithm == algorithm]
    credentials = answer_challenge(
        challenge, method="REGISTER", uri=request.request_uri, username=username, password=password
    )
    request.headers.add("Authorization", str(credentials))
    return request


class Phone:
    """Drives the two-step digest exchange like a UA: REGISTER, 401, REGISTER with auth."""

    def __init__(self, registrar: Registrar, origin: Origin | None = None, **defaults: object):
        self.registrar = registrar
        self.origin = origin or udp_origin()
        self.defaults = defaults
        self.cseq = 0
        self.password = str(defaults.pop("password", "alice-secret"))
        self.username = str(defaults.pop("username", defaults.get("user", "alice")))

    async def send(self, now: float = NOW, **fields: object) -> Response:
        merged = {**self.defaults, **fields}
        self.cseq += 1
        first = await self.registrar.handle(register(cseq=self.cseq, **merged), self.origin, now)  # type: ignore[arg-type]
        if first.status != 401:
            return first
        self.cseq += 1
        request = authorize(
            first,
            register(cseq=self.cseq, **merged),  # type: ignore[arg-type]
            username=self.username,
            password=self.password,
        )
        return await self.registrar.handle(request, self.origin, now)


@pytest.fixture
def store() -> MemoryLocationStore:
    return MemoryLocationStore(clock=lambda: NOW)


@pytest.fixture
def registrar(store: MemoryLocationStore) -> Registrar:
    return Registrar(
        store, demo_directory(), SECRET, clock=lambda: NOW, algorithms=RFC8760_ALGORITHMS
    )


def contact_values(response: Response) -> list[str]:
    return response.headers.get_all("Contact")


# -- authentication ---------------------------------------------------------------------


async def test_challenge_offers_sha256_then_md5(registrar: Registrar, store: MemoryLocationStore):
    response = await registrar.handle(register(), udp_origin(), NOW)
    assert response.status == 401
    assert response.to_tag is not None
    offered = challenges(response)
    assert [c.algorithm for c in offered] == ["SHA-256", "MD5"]
    assert {c.realm for c in offered} == {ACME}
    assert all(c.qop == ("auth",) and not c.stale for c in offered)
    assert await store.bindings(ALICE, NOW) == []


async def test_default_offers_md5_alone(store: MemoryLocationStore) -> None:
    # baresip 1.0.0, SIPp 3.6.1 and sipsak 0.9.8 refuse a 401 holding a SHA-256 challenge
    registrar = Registrar(store, demo_directory(), SECRET)
    response = await registrar.handle(register(), udp_origin(), NOW)
    assert [c.algorithm for c in challenges(response)] == ["MD5"]
    request = authorize(response, register(cseq=2), algorithm="MD5")
    assert (await registrar.handle(request, udp_origin(), NOW)).status == 200
    # a SHA-256 answer to a registrar that does not offer it is refused
    sha = Registrar(store, demo_directory(), SECRET, algorithms=("sha-256",))
    challenge = await sha.handle(register(), udp_origin(), NOW)
    request = authorize(challenge, register(cseq=3, call_id="x"), algorithm="SHA-256")
    assert (await registrar.handle(request, udp_origin(), NOW)).status == 401
    with pytest.raises(ValueError):
        Registrar(store, demo_directory(), SECRET, algorithms=("SHA-1",))


@pytest.mark.parametrize("algorithm", ["SHA-256", "MD5"])
async def test_auth_success_creates_binding(
    registrar: Registrar, store: MemoryLocationStore, algorithm: str
) -> None:
    challenge = await registrar.handle(register(), udp_origin(), NOW)
    request = authorize(challenge, register(cseq=2), algorithm=algorithm)
    response = await registrar.handle(request, udp_origin(), NOW)
    assert response.status == 200
    assert contact_values(response) == ["<sip:alice@192.0.2.10:5060>;expires=3600"]
    assert (response.headers.get("Date") or "").endswith("GMT")
    (binding,) = await store.bindings(ALICE, NOW)
    assert binding == Binding(
        aor=ALICE,
        contact="sip:alice@192.0.2.10:5060",
        expires_at=NOW + 3600,
        received="udp:192.0.2.10:5060",
        connection_id=None,
        call_id="reg-1@192.0.2.10",
        cseq=2,
        user_agent="test-phone/1.0",
        q=1.0,
        transport="UDP",
        terminal_id=11,
        company_id=1,
        nat=False,
        registered_at=NOW,
    )


async def test_wrong_password_never_binds(registrar: Registrar, store: MemoryLocationStore):
    challenge = await registrar.handle(register(), udp_origin(), NOW)
    request = authorize(challenge, register(cseq=2), password="guess")
    response = await registrar.handle(request, udp_origin(), NOW)
    assert response.status == 401
    assert not any(c.stale for c in challenges(response))
    assert await store.bindings(ALICE, NOW) == []


async def test_unknown_user_looks_like_wrong_password(registrar: Registrar):
    challenge = await registrar.handle(register(user="mallory"), udp_origin(), NOW)
    request = authorize(challenge, register(user="mallory", cseq=2), username="mallory")
    assert (await registrar.handle(request, udp_origin(), NOW)).status == 401


async def test_stale_nonce_rechallenges_with_stale_true(
    registrar: Registrar, store: MemoryLocationStore
) -> None:
    challenge = await registrar.handle(register(), udp_origin(), NOW)
    request = authorize(challenge, register(cseq=2))
    response = await registrar.handle(request, udp_origin(), NOW + 3600)  # nonce long expired
    assert response.status == 401
    assert [c.stale for c in challenges(response)] == [True, True]
    assert await store.bindings(ALICE, NOW + 3600) == []
    # the phone retries with the fresh nonce and succeeds
    retry = authorize(response, register(cseq=3))
    assert (await registrar.handle(retry, udp_origin(), NOW + 3600)).status == 200


async def test_forged_nonce_is_refused(registrar: Registrar, store: MemoryLocationStore):
    challenge = await registrar.handle(register(), udp_origin(), NOW)
    other = Registrar(store, demo_directory(), b"another secret", algorithms=RFC8760_ALGORITHMS)
    forged = await other.handle(register(), udp_origin(), NOW)
    request = authorize(forged, register(cseq=2))
    assert challenge.status == 401
    assert (await registrar.handle(request, udp_origin(), NOW)).status == 401
    assert await store.bindings(ALICE, NOW) == []


async def test_digest_uri_must_be_the_request_uri(registrar: Registrar, store):
    challenge = await registrar.handle(register(), udp_origin(), NOW)
    (sha,) = [c for c in challenges(challenge) if c.algorithm == "SHA-256"]
    credentials = answer_challenge(
        sha, method="REGISTER", uri="sip:elsewhere.test", username="alice", password="alice-secret"
    )
    request = register(cseq=2)
    request.headers.add("Authorization", str(credentials))
    assert (await registrar.handle(request, udp_origin(), NOW)).status == 400
    assert await store.bindings(ALICE, NOW) == []


# -- domains and AORs -------------------------------------------------------------------


async def test_unknown_domain_is_404(registrar: Registrar) -> None:
    response = await registrar.handle(register(domain="nowhere.test"), udp_origin(), NOW)
    assert response.status == 404


async def test_request_uri_of_another_client_is_403(registrar: Registrar, store) -> None:
    phone = Phone(registrar, ruri="sip:other.test")
    response = await phone.send()
    assert response.status == 403
    assert await store.bindings(ALICE, NOW) == []


async def test_request_uri_may_be_the_proxy_address(registrar: Registrar) -> None:
    assert (await Phone(registrar, ruri="sip:127.0.0.1:5060").send()).status == 200


async def test_another_users_aor_is_403(registrar: Registrar, store) -> None:
    # Alice authenticates correctly but asks to bind Bob's AOR
    bob = f"bob@{ACME}"
    challenge = await registrar.handle(register(user="bob"), udp_origin(), NOW)
    request = authorize(challenge, register(user="bob", cseq=2), username="alice")
    response = await registrar.handle(request, udp_origin(), NOW)
    assert response.status == 403
    assert await store.bindings(bob, NOW) == []


async def test_another_clients_domain_is_403(registrar: Registrar, store) -> None:
    # Alice's phone answers with her own realm's credentials for an AOR of other.test
    challenge = await registrar.handle(register(), udp_origin(), NOW)
    request = authorize(challenge, register(domain="other.test", cseq=2, ruri=f"sip:{ACME}"))
    response = await registrar.handle(request, udp_origin(), NOW)
    assert response.status == 403
    # ... and with the Request-URI naming other.test (digest uri then differs: 400)
    request = authorize(challenge, register(domain="other.test", cseq=3))
    assert (await registrar.handle(request, udp_origin(), NOW)).status == 403
    assert await store.bindings("alice@other.test", NOW) == []


async def test_unsupported_require_is_420(registrar: Registrar) -> None:
    response = await registrar.handle(register(extra=("Require: foo, path",)), udp_origin(), NOW)
    assert response.status == 420
    assert response.headers.get("Unsupported") == "foo"


async def test_require_of_the_supported_tags_is_served(registrar: Registrar, store) -> None:
    # RFC 3261 10.3 step 2: path and outbound are the tags this registrar implements
    path = "<sip:edge.example.net;lr>"
    extra = ("Require: path, outbound", "Supported: path, outbound", f"Path: {path}")
    response = await Phone(registrar, extra=extra).send()
    assert response.status == 200
    assert response.headers.get("Supported") == "path, outbound"
    assert response.headers.get_all("Path") == [path]
    assert len(await store.bindings(ALICE, NOW)) == 1


# -- contacts and expiry ----------------------------------------------------------------


async def test_several_contacts_per_aor(registrar: Registrar, store) -> None:
    desk = Phone(registrar, call_id="desk")
    soft = Phone(registrar, call_id="soft", contacts=("<sip:alice@192.0.2.20:5070>;q=0.5",))
    assert (await desk.send()).status == 200
    response = await soft.send()
    assert response.status == 200
    assert contact_values(response) == [
        "<sip:alice@192.0.2.10:5060>;expires=3600",
        "<sip:alice@192.0.2.20:5070>;expires=3600;q=0.5",
    ]
    assert len(await store.bindings(ALICE, NOW)) == 2


async def test_lookup_by_request_uri(registrar: Registrar) -> None:
    from ivoz.sip import URI

    await Phone(registrar).send()
    (binding,) = await registrar.lookup(URI.parse("sip:alice@ACME.ivoz.test;user=phone"))
    assert binding.contact == "sip:alice@192.0.2.10:5060"
    assert await registrar.lookup(URI.parse("sip:bob@acme.ivoz.test"), NOW) == []
    assert await registrar.lookup(URI.parse("sip:alice@acme.ivoz.test"), NOW + 3600) == []


async def test_query_lists_bindings_with_remaining_expiry(registrar: Registrar) -> None:
    phone = Phone(registrar)
    await phone.send()
    response = await phone.send(now=NOW + 100, contacts=())
    assert response.status == 200
    assert contact_values(response) == ["<sip:alice@192.0.2.10:5060>;expires=3500"]


async def test_refresh_replaces_equivalent_contact(registrar: Registrar, store) -> None:
    phone = Phone(registrar, contacts=("<sip:alice@Phone.Example:5060;transport=UDP>",))
    await phone.send()
    # the same URI by RFC 3261 19.1.4 (host and parameter case differ): one binding
    later = ("<sip:alice@phone.example:5060;transport=udp>",)
    response = await phone.send(now=NOW + 10, contacts=later)
    assert contact_values(response) == ["<sip:alice@phone.example:5060;transport=udp>;expires=3600"]
    (binding,) = await store.bindings(ALICE, NOW + 10)
    assert binding.expires_at == NOW + 3610


async def test_min_expires_423(registrar: Registrar, store) -> None:
    response = await Phone(registrar, extra=("Expires: 30",)).send()
    assert response.status == 423
    assert response.headers.get("Min-Expires") == "60"
    assert await store.bindings(ALICE, NOW) == []


async def test_contact_expires_wins_and_max_is_clamped(registrar: Registrar) -> None:
    phone = Phone(
        registrar,
        contacts=("<sip:alice@192.0.2.10:5060>;expires=120", "<sip:alice@192.0.2.11>"),
        extra=("Expires: 7200",),
    )
    response = await phone.send()
    assert contact_values(response) == [
        "<sip:alice@192.0.2.10:5060>;expires=120",
        "<sip:alice@192.0.2.11>;expires=3600",
    ]


async def test_unregister_one_contact(registrar: Registrar, store) -> None:
    phone = Phone(registrar, call_id="same")
    await phone.send()
    await phone.send(contacts=("<sip:alice@192.0.2.11>",))
    response = await phone.send(contacts=("<sip:alice@192.0.2.10:5060>;expires=0",))
    assert response.status == 200
    assert contact_values(response) == ["<sip:alice@192.0.2.11>;expires=3600"]
    response = await phone.send(contacts=("<sip:alice@192.0.2.11>",), extra=("Expires: 0",))
    assert contact_values(response) == []
    assert await store.bindings(ALICE, NOW) == []


async def test_star_removes_all(registrar: Registrar, store) -> None:
    await Phone(registrar, call_id="a").send()
    await Phone(registrar, call_id="b", contacts=("<sip:alice@192.0.2.11>",)).send()
    response = await Phone(registrar, call_id="c", contacts=("*",), extra=("Expires: 0",)).send()
    assert response.status == 200
    assert contact_values(response) == []
    assert await store.bindings(ALICE, NOW) == []


@pytest.mark.parametrize(
    ("contacts", "extra"),
    [
        (("*",), ()),  # no Expires
        (("*",), ("Expires: 10",)),
        (("*", "<sip:alice@192.0.2.10>"), ("Expires: 0",)),
    ],
)
async def test_star_misuse_is_400(registrar: Registrar, store, contacts, extra) -> None:
    await Phone(registrar, call_id="keep").send()
    response = await Phone(registrar, call_id="x", contacts=contacts, extra=extra).send()
    assert response.status == 400
    assert len(await store.bindings(ALICE, NOW)) == 1


async def test_cseq_ordering_rule(registrar: Registrar, store) -> None:
    phone = Phone(registrar, call_id="ordered")
    assert (await phone.send()).status == 200  # CSeq 1 challenged, CSeq 2 bound
    # an older request of the same Call-ID (reordered by the network) fails: 500
    challenge = await registrar.handle(register(), udp_origin(), NOW)
    stale = authorize(
        challenge,
        register(call_id="ordered", cseq=2, contacts=("<sip:alice@192.0.2.10:5060>;expires=0",)),
    )
    response = await registrar.handle(stale, udp_origin(), NOW)
    assert response.status == 500
    assert len(await store.bindings(ALICE, NOW)) == 1  # nothing changed
    # the whole request is atomic: a new contact beside the stale one is not added
    mixed = authorize(
        challenge,
        register(
            call_id="ordered",
            cseq=1,
            contacts=("<sip:alice@192.0.2.99>", "<sip:alice@192.0.2.10:5060>"),
        ),
    )
    assert (await registrar.handle(mixed, udp_origin(), NOW)).status == 500
    assert [b.contact for b in await store.bindings(ALICE, NOW)] == ["sip:alice@192.0.2.10:5060"]
    # a star with the same Call-ID but an old CSeq fails too
    star = authorize(
        challenge, register(call_id="ordered", cseq=2, contacts=("*",), extra=("Expires: 0",))
    )
    assert (await registrar.handle(star, udp_origin(), NOW)).status == 500
    # another Call-ID with a low CSeq is a new registration: it updates
    other = authorize(challenge, register(call_id="rebooted", cseq=1))
    assert (await registrar.handle(other, udp_origin(), NOW + 5)).status == 200
    (binding,) = await store.bindings(ALICE, NOW)
    assert binding.call_id == "rebooted"


# -- RFC 5626 outbound, instance, Path --------------------------------------------------

INSTANCE = '"<urn:uuid:00000000-0000-1000-8000-000a95a0e128>"'


def flow(port: int, reg_id: int = 1) -> str:
    return f"<sip:alice@192.0.2.10:{port};transport=tcp>;+sip.instance={INSTANCE};reg-id={reg_id}"


async def test_outbound_reg_id_replaces_flow(registrar: Registrar, store) -> None:
    supported = ("Supported: outbound, path",)
    first = Phone(registrar, tcp_origin(port=40001), call_id="boot1", transport="TCP")
    response = await first.send(contacts=(flow(40001),), extra=supported)
    assert response.status == 200
    assert response.headers.get("Require") == "outbound"
    # the phone reconnects (new port, new Call-ID): same instance and reg-id replace
    second = Phone(registrar, tcp_origin(port=40002, connection=8), call_id="boot2")
    response = await second.send(contacts=(flow(40002),), extra=supported, transport="TCP")
    (binding,) = await store.bindings(ALICE, NOW)
    assert binding.contact == "sip:alice@192.0.2.10:40002;transport=tcp"
    assert (binding.instance, binding.reg_id, binding.connection_id) == (INSTANCE, 1, 8)
    assert contact_values(response) == [
        f"<sip:alice@192.0.2.10:40002;transport=tcp>;expires=3600;+sip.instance={INSTANCE};reg-id=1"
    ]
    # a second flow (reg-id 2) of the same instance is kept beside the first
    third = Phone(registrar, tcp_origin(port=40003, connection=9), call_id="boot2b")
    await third.send(contacts=(flow(40003, 2),), extra=supported, transport="TCP")
    assert sorted(b.reg_id or 0 for b in await store.bindings(ALICE, NOW)) == [1, 2]


async def test_reg_id_without_outbound_support_is_plain(registrar: Registrar, store) -> None:
    # without Supported: outbound, reg-id is ignored (RFC 5626 6); the instance alone
    # still names one device, whose newest contact replaces the older
    await Phone(registrar, call_id="x1").send(contacts=(flow(5060),))
    await Phone(registrar, call_id="x2").send(contacts=(flow(5070),))
    (binding,) = await store.bindings(ALICE, NOW)
    assert (binding.reg_id, binding.contact) == (None, "sip:alice@192.0.2.10:5070;transport=tcp")


async def test_two_reg_ids_in_one_request_is_400(registrar: Registrar) -> None:
    phone = Phone(registrar, extra=("Supported: outbound",))
    assert (await phone.send(contacts=(flow(1), flow(2, 2)))).status == 400


async def test_path_stored_and_echoed_when_supported(registrar: Registrar, store) -> None:
    path = "<sip:edge.example.net;lr>"
    response = await Phone(registrar, extra=(f"Path: {path}", "Supported: path")).send()
    assert response.headers.get_all("Path") == [path]
    (binding,) = await store.bindings(ALICE, NOW)
    assert binding.path == (path,)
    assert nat.destination(binding) == nat.Target(
        Address(Kind.UDP, "edge.example.net", 5060), None, (path,)
    )
    response = await Phone(registrar, call_id="p2", extra=(f"Path: {path}",)).send()
    assert response.headers.get_all("Path") == []


# -- NAT ----------------------------------------------------------------------------------


async def test_nat_udp_binding_records_source(registrar: Registrar, store) -> None:
    origin = udp_origin("203.0.113.7", 40000)
    response = await Phone(registrar, origin, contacts=("<sip:alice@10.0.0.5:5060>",)).send()
    assert response.status == 200
    (binding,) = await store.bindings(ALICE, NOW)
    assert binding.nat and binding.received == "udp:203.0.113.7:40000"
    assert binding.contact == "sip:alice@10.0.0.5:5060"  # stored as sent
    assert nat.destination(binding) == nat.Target(Address(Kind.UDP, "203.0.113.7", 40000))


async def test_rport_marks_nat(registrar: Registrar, store) -> None:
    request_via = "SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK-rp"
    phone = Phone(registrar)
    first = register(cseq=1)
    first.headers.set("Via", request_via)
    challenge = await registrar.handle(first, phone.origin, NOW)
    second = register(cseq=2)
    second.headers.set("Via", request_via)
    await registrar.handle(authorize(challenge, second), phone.origin, NOW)
    (binding,) = await store.bindings(ALICE, NOW)
    assert binding.nat


async def test_plain_udp_binding_goes_to_contact(registrar: Registrar, store) -> None:
    await Phone(registrar).send()
    (binding,) = await store.bindings(ALICE, NOW)
    assert not binding.nat
    assert nat.destination(binding) == nat.Target(Address(Kind.UDP, "192.0.2.10", 5060))


async def test_tcp_binding_records_connection(registrar: Registrar, store) -> None:
    origin = tcp_origin(port=40123, connection=7)
    contact = "<sip:alice@192.0.2.10:5060;transport=tcp>"
    await Phone(registrar, origin, contacts=(contact,), transport="TCP").send()
    (binding,) = await store.bindings(ALICE, NOW)
    assert (binding.connection_id, binding.transport) == (7, "TCP")
    assert binding.received == "tcp:192.0.2.10:40123" and binding.nat
    source = Address(Kind.TCP, "192.0.2.10", 40123)
    assert nat.destination(binding, alive=lambda c: c == 7) == nat.Target(source, 7)
    # the connection is gone and the phone is not behind a NAT (its Contact host is the
    # source host): a new connection goes to the port it listens on
    listening = Address(Kind.TCP, "192.0.2.10", 5060)
    assert nat.destination(binding, alive=lambda c: False) == nat.Target(listening)


async def test_tcp_binding_behind_nat(registrar: Registrar, store) -> None:
    origin = tcp_origin(host="203.0.113.7", port=40123, connection=7)
    contact = "<sip:alice@10.0.0.5:5060;transport=tcp>"
    await Phone(registrar, origin, contacts=(contact,), transport="TCP").send()
    (binding,) = await store.bindings(ALICE, NOW)
    source = Address(Kind.TCP, "203.0.113.7", 40123)
    assert nat.destination(binding, alive=lambda c: c == 7) == nat.Target(source, 7)
    # the connection is gone: the NAT mapping it used is the best remaining bet
    assert nat.destination(binding, alive=lambda c: False) == nat.Target(source)


async def test_websocket_binding_uses_its_connection(registrar: Registrar, store) -> None:
    # RFC 7118: a WebSocket phone's Contact host is a made-up name; only its connection
    # reaches it
    local = Address(Kind.WSS, "127.0.0.1", 10081)
    origin = Origin(Kind.WSS, Address(Kind.WSS, "198.51.100.4", 51000), local, 12)
    contact = "<sip:k3js8d@df7jal23ls0d.invalid;transport=ws>;expires=300"
    await Phone(registrar, origin, contacts=(contact,), transport="WSS").send()
    (binding,) = await store.bindings(ALICE, NOW)
    assert (binding.transport, binding.connection_id, binding.nat) == ("WSS", 12, True)
    source = Address(Kind.WSS, "198.51.100.4", 51000)
    assert nat.destination(binding, alive=lambda c: True) == nat.Target(source, 12)


async def test_keepalive_follows_registrations(store: MemoryLocationStore) -> None:
    keepalive = KeepAlive(30.0, sent_by=("127.0.0.1", 5060))
    registrar = Registrar(
        store, demo_directory(), SECRET, keepalive=keepalive, algorithms=RFC8760_ALGORITHMS
    )
    natted = Phone(
        registrar, udp_origin("203.0.113.7", 40000), contacts=("<sip:alice@10.0.0.5:5060>",)
    )
    await natted.send(extra=("Expires: 90",))
    tcp = Phone(registrar, tcp_origin(), call_id="t", transport="TCP")
    await tcp.send(contacts=("<sip:alice@192.0.2.10;transport=tcp>",))
    await Phone(registrar, call_id="plain", contacts=("<sip:alice@192.0.2.10:5060>",)).send()
    assert len(keepalive) == 1  # only the UDP binding behind NAT
    assert keepalive.next_deadline() == NOW + 30
    assert keepalive.due(NOW + 29) == []
    (ping,) = keepalive.due(NOW + 30)
    assert ping.destination == Address(Kind.UDP, "203.0.113.7", 40000)
    options = parse_message(ping.data)
    assert isinstance(options, Request) and options.method == "OPTIONS"
    assert options.request_uri == "sip:alice@10.0.0.5:5060"
    options.check()
    # the binding is unregistered: pings stop
    await natted.send(now=NOW + 31, contacts=("<sip:alice@10.0.0.5:5060>;expires=0",))
    assert keepalive.due(NOW + 60) == []
    assert keepalive.next_deadline() is None


def test_keepalive_schedule_and_expiry() -> None:
    keepalive = KeepAlive(30.0, mode="crlf")
    binding = Binding(
        aor=ALICE,
        contact="sip:alice@10.0.0.5",
        expires_at=100.0,
        received="udp:203.0.113.7:40000",
        nat=True,
    )
    assert keepalive.track(binding, now=0.0)
    assert [p.data for p in keepalive.due(30.0)] == [b"\r\n\r\n"]
    assert keepalive.next_deadline() == 60.0
    # a late timer sends one ping, not a burst, and reschedules from now
    assert len(keepalive.due(95.0)) == 1
    assert keepalive.next_deadline() == 125.0
    assert keepalive.due(125.0) == []  # the binding expired at 100: dropped
    assert len(keepalive) == 0
    # refreshing a tracked binding pushes its next ping back
    keepalive.track(binding, now=0.0)
    keepalive.track(binding, now=20.0)
    assert keepalive.due(30.0) == [] and keepalive.next_deadline() == 50.0
    keepalive.forget(ALICE, "sip:alice@10.0.0.5")
    assert keepalive.next_deadline() is None


def test_keepalive_ignores_what_needs_no_ping() -> None:
    keepalive = KeepAlive()
    plain = Binding(aor=ALICE, contact="sip:a@192.0.2.1", expires_at=100.0, received=None)
    tcp = Binding(
        aor=ALICE, contact="sip:a@10.0.0.1", expires_at=100.0, received="tcp:1.2.3.4:5", nat=True
    )
    assert not keepalive.track(plain, 0.0) and not keepalive.track(tcp, 0.0)
    with pytest.raises(ValueError):
        KeepAlive(0)
    with pytest.raises(ValueError):
        KeepAlive(mode="stun")


def test_nat_helpers() -> None:
    from ivoz.sip import URI

    origin = udp_origin("203.0.113.7", 40000)
    assert nat.behind_nat(URI.parse("sip:a@10.0.0.5:5060"), origin)
    assert not nat.behind_nat(URI.parse("sip:a@203.0.113.7:40000"), origin)
    assert nat.behind_nat(URI.parse("sip:a@203.0.113.7:40000"), origin, rport=True)
    fixed = nat.fix_contact(URI.parse("sip:a@10.0.0.5:5060;maddr=10.0.0.5;ob"), origin)
    assert str(fixed) == "sip:a@203.0.113.7:40000;ob"
    fixed_tcp = nat.fix_contact(URI.parse("sip:a@10.0.0.5"), tcp_origin())
    assert str(fixed_tcp) == "sip:a@192.0.2.10:40123;transport=tcp"
    assert nat.uri_address(URI.parse("sips:a@example.net")) == Address(
        Kind.TLS, "example.net", 5061
    )
    assert nat.uri_address(URI.parse("sip:a@[::1]:5070;transport=ws")) == Address(
        Kind.WS, "::1", 5070
    )
    assert nat.parse_received("udp:[::1]:5060") == Address(Kind.UDP, "::1", 5060)
    for bad in ("udp", "foo:1.2.3.4:5", "udp:1.2.3.4:x", "udp::5"):
        with pytest.raises(ValueError):
            nat.parse_received(bad)


async def test_keepalive_loop_with_fake_clock_and_sleep() -> None:
    keepalive = KeepAlive(30.0, mode="crlf")
    clock = [0.0]
    sent: list[tuple[bytes, Address]] = []
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock[0] += seconds
        if clock[0] >= 70.0:
            raise asyncio.CancelledError

    def send(data: bytes, address: Address) -> None:
        sent.append((data, address))
        if len(sent) == 1:
            raise OSError("first send fails")  # logged; the loop goes on

    natted = Binding(
        aor=ALICE,
        contact="sip:alice@10.0.0.5",
        expires_at=1000.0,
        received="udp:203.0.113.7:40000",
        nat=True,
    )
    keepalive.track(natted, 0.0)
    with pytest.raises(asyncio.CancelledError):
        await nat.keepalive_loop(keepalive, send, clock=lambda: clock[0], tick=10.0, sleep=sleep)
    assert [address.port for _, address in sent] == [40000, 40000]  # at 30 and 60
    assert max(waits) <= 10.0
