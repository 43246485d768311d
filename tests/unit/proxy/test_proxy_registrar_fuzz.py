"""Hypothesis: whatever a REGISTER's header values hold, the registrar answers it or raises
ivoz.sip.RemoteError (only when no response can be built), and never binds without auth."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_proxy_registrar import ACME, SECRET, demo_directory, udp_origin

from ivoz.proxy.registrar import RFC8760_ALGORITHMS, Registrar
from ivoz.sip import RemoteError, Request, Response, parse_message
from ivoz.sip.digest import answer_challenge, make_challenge
from ivoz.state import MemoryLocationStore

NOW = 1_800_000_000.0

# characters that matter to SIP grammars, plus a few odd ones (no CR/LF: one header line)
_CHARS = st.sampled_from(list('abcAZ019 \t<>;:,="@.-_*+%\\/?&[]~\x00\x7fé'))
noise = st.text(_CHARS, max_size=40)
numbers = st.one_of(
    st.integers(0, 2**33).map(str), st.sampled_from(["", "-1", "0", "60", "59", "1e3", "٣"])
)
params = st.lists(
    st.one_of(
        st.tuples(st.just("expires"), numbers),
        st.tuples(st.just("q"), st.one_of(noise, st.sampled_from(["0.5", "1", "2", "-0"]))),
        st.tuples(st.just("reg-id"), numbers),
        st.tuples(
            st.just("+sip.instance"),
            st.sampled_from(['"<urn:uuid:1>"', '"<urn:uuid:2>"', "<bad", '""']),
        ),
        st.tuples(st.sampled_from(["transport", "ob", "lr", "maddr"]), noise),
    ),
    max_size=4,
)
uris = st.one_of(
    st.sampled_from(
        [
            "sip:alice@192.0.2.10:5060",
            "sip:alice@[::1]:5070;transport=tcp",
            "sips:alice@phone.example",
            "tel:+34123",
            "http://x",
            "sip:alice@10.0.0.1:99999",
            "sip:@",
        ]
    ),
    noise,
)


@st.composite
def contacts(draw: st.DrawFn) -> str:
    if draw(st.integers(0, 9)) == 0:
        return "*"
    uri = draw(uris)
    tail = "".join(f";{k}={v}" if v else f";{k}" for k, v in draw(params))
    return f"<{uri}>{tail}" if draw(st.booleans()) else f"{uri}{tail}"


@st.composite
def registers(draw: st.DrawFn) -> tuple[bytes, bool]:
    ruri = draw(st.sampled_from([f"sip:{ACME}", "sip:127.0.0.1", "sip:other.test", "tel:1"]))
    to_user = draw(st.sampled_from(["alice", "bob", "", "al%69ce"]))
    to_host = draw(st.sampled_from([ACME, "other.test", "nowhere", "ACME.ivoz.test"]))
    to = draw(st.one_of(st.just(f"<sip:{to_user}@{to_host}>"), noise))
    lines = [
        f"REGISTER {ruri} SIP/2.0",
        "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-fuzz"
        + draw(st.sampled_from(["", ";rport", ";rport=x"])),
        f"From: <sip:alice@{ACME}>;tag=f",
        f"To: {to}",
        f"Call-ID: {draw(st.sampled_from(['c1', 'c2']))}",
        f"CSeq: {draw(numbers)} REGISTER",
    ]
    lines += [f"Contact: {c}" for c in draw(st.lists(contacts(), max_size=3))]
    for name in ("Expires", "Supported", "Require", "Path", "User-Agent"):
        if draw(st.booleans()):
            value = draw(
                st.one_of(noise, numbers, st.sampled_from(["path", "outbound", "path, outbound"]))
            )
            lines.append(f"{name}: {value}")
    authorized = False
    auth = draw(st.sampled_from(["valid", "none", "noise", "sha"]))
    if auth in ("valid", "sha"):
        algorithm = "MD5" if auth == "valid" else "SHA-256"
        challenge = make_challenge(ACME, SECRET, NOW, algorithm=algorithm)
        credentials = answer_challenge(
            challenge, method="REGISTER", uri=ruri, username="alice", password="alice-secret"
        )
        lines.append(f"Authorization: {credentials}")
        authorized = True
    elif auth == "noise":
        lines.append(f"Authorization: Digest {draw(noise)}")
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode("utf-8", "surrogateescape"), authorized


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(registers(), st.lists(registers(), max_size=2))
def test_random_registers_only_raise_remote_errors(
    first: tuple[bytes, bool], more: list[tuple[bytes, bool]]
) -> None:
    loop = asyncio.new_event_loop()
    try:
        store = MemoryLocationStore()
        registrar = Registrar(store, demo_directory(), SECRET, algorithms=RFC8760_ALGORITHMS)
        for data, authorized in [first, *more]:
            try:
                request = parse_message(data)
            except RemoteError:
                continue
            assert isinstance(request, Request)
            try:
                response = loop.run_until_complete(registrar.handle(request, udp_origin(), NOW))
            except RemoteError as exc:
                assert not exc.respondable
                continue
            assert isinstance(response, Response)
            parse_message(response.to_bytes())  # what we send parses back
            if not authorized:
                assert response.status != 200 or not request.headers.get_all("Contact")
        if not any(authorized for _, authorized in [first, *more]):
            assert len(store) == 0  # a failed authentication never binds
    finally:
        loop.close()
