"""Digest authentication: RFC test vectors, stateless nonces, header grammar."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivoz.sip import digest
from ivoz.sip.auth import Challenge, Credentials
from ivoz.sip.digest import DigestResult
from ivoz.sip.errors import RemoteError

SECRET = b"server-secret-0123456789"
NOW = 1_700_000_000.0
# No wall-clock deadline: on a busy CI machine one slow example (first hashlib or
# surrogatepass call, a GC pause) overran Hypothesis's 200 ms default and was reported as
# a flaky failure that did not repeat. Correctness, not speed, is under test here.
NO_DEADLINE = settings(deadline=None)


def test_rfc2617_section_3_5_vector() -> None:
    # RFC 2617 3.5: the "Mufasa" example, qop=auth
    ha1 = digest.compute_ha1("Mufasa", "testrealm@host.com", "Circle Of Life")
    response = digest.compute_response(
        ha1=ha1,
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert response == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_section_3_9_1_vectors(algorithm: str, expected: str) -> None:
    header = (
        'Digest username="Mufasa", realm="http-auth@example.org", uri="/dir/index.html", '
        f'algorithm={algorithm}, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", '
        'nc=00000001, cnonce="f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ", qop=auth, '
        f'response="{expected}", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"'
    )
    creds = Credentials.parse(header)
    ha1 = digest.compute_ha1("Mufasa", "http-auth@example.org", "Circle of Life", algorithm)
    response = digest.compute_response(
        ha1=ha1,
        nonce=creds.nonce or "",
        method="GET",
        uri=creds.uri or "",
        algorithm=creds.algorithm,
        qop=creds.qop,
        nc=creds.nc,
        cnonce=creds.cnonce,
    )
    assert response == expected == creds.response
    assert creds.opaque == "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"


def test_sha_512_256_is_the_fips_180_4_hash() -> None:
    # RFC 7616 3.2 / RFC 8760: SHA-512/256 of FIPS 180-4 (not truncated SHA-512);
    # FIPS 180-4 example: SHA-512/256("abc")
    expected = "53048e2681941ef99b2e29b76b4c7dabe4c2d0c634fc6d46e0e2f13107e7af23"
    assert digest.ALGORITHMS["SHA-512-256"](b"abc") == expected


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256", "SHA-512-256", "MD5-sess", "SHA-256-sess"])
@pytest.mark.parametrize("use_ha1", [False, True])
def test_round_trip_ok(algorithm: str, use_ha1: bool) -> None:
    challenge = digest.make_challenge("example.com", SECRET, NOW, algorithm=algorithm)
    # what goes on the wire is parsed back by the other side
    challenge = Challenge.parse(str(challenge))
    creds = digest.answer_challenge(
        challenge, method="REGISTER", uri="sip:example.com", username="alice", password="pw"
    )
    creds = Credentials.parse(str(creds))
    base = algorithm.removesuffix("-sess")
    if use_ha1:
        ha1 = digest.compute_ha1("alice", "example.com", "pw", base)
        result = digest.verify(creds, "REGISTER", SECRET, NOW + 10, realm="example.com", ha1=ha1)
    else:
        result = digest.verify(
            creds, "REGISTER", SECRET, NOW + 10, realm="example.com", password="pw"
        )
    assert result is DigestResult.OK


def _answer(now: float = NOW, **kwargs: str) -> Credentials:
    challenge = digest.make_challenge("example.com", SECRET, now, **kwargs)  # type: ignore[arg-type]
    return digest.answer_challenge(
        challenge, method="INVITE", uri="sip:bob@example.com", username="alice", password="pw"
    )


def test_algorithm_absent_means_md5() -> None:
    challenge = digest.make_challenge("example.com", SECRET, NOW)
    challenge = dataclasses.replace(challenge, algorithm=None)
    creds = digest.answer_challenge(
        challenge, method="INVITE", uri="sip:b@example.com", username="alice", password="pw"
    )
    assert creds.algorithm is None
    assert digest.verify(creds, "INVITE", SECRET, NOW, password="pw") is DigestResult.OK


def test_no_qop_rfc2069_style() -> None:
    challenge = dataclasses.replace(digest.make_challenge("example.com", SECRET, NOW), qop=())
    creds = digest.answer_challenge(
        challenge, method="INVITE", uri="sip:b@example.com", username="alice", password="pw"
    )
    assert creds.qop is None and creds.nc is None and creds.cnonce is None
    assert digest.verify(creds, "INVITE", SECRET, NOW, password="pw") is DigestResult.OK


def test_auth_int_covers_the_body() -> None:
    challenge = dataclasses.replace(
        digest.make_challenge("example.com", SECRET, NOW), qop=("auth-int",)
    )
    creds = digest.answer_challenge(
        challenge, method="INVITE", uri="sip:b", username="a", password="pw", body=b"v=0\r\n"
    )
    assert creds.qop == "auth-int"
    ok = digest.verify(creds, "INVITE", SECRET, NOW, password="pw", body=b"v=0\r\n")
    assert ok is DigestResult.OK
    bad = digest.verify(creds, "INVITE", SECRET, NOW, password="pw", body=b"v=1\r\n")
    assert bad is DigestResult.BAD


def test_expired_nonce_with_right_password_is_stale() -> None:
    creds = _answer()
    later = NOW + digest.NONCE_LIFETIME + 1
    assert digest.verify(creds, "INVITE", SECRET, later, password="pw") is DigestResult.STALE
    # the re-challenge says stale=true on the wire
    again = digest.make_challenge("example.com", SECRET, later, stale=True)
    assert "stale=TRUE" in str(again)
    assert Challenge.parse(str(again)).stale


def test_expired_nonce_with_wrong_password_is_bad() -> None:
    creds = _answer()
    later = NOW + digest.NONCE_LIFETIME + 1
    assert digest.verify(creds, "INVITE", SECRET, later, password="nope") is DigestResult.BAD


def test_wrong_password_method_or_realm_is_bad() -> None:
    creds = _answer()
    assert digest.verify(creds, "INVITE", SECRET, NOW, password="nope") is DigestResult.BAD
    assert digest.verify(creds, "BYE", SECRET, NOW, password="pw") is DigestResult.BAD
    assert (
        digest.verify(creds, "INVITE", SECRET, NOW, password="pw", realm="other.org")
        is DigestResult.BAD
    )


def test_forged_nonce_is_bad() -> None:
    creds = _answer()
    # a nonce made with another secret
    assert digest.verify(creds, "INVITE", b"other", NOW, password="pw") is DigestResult.BAD
    # an attacker extends the expiry: the MAC no longer matches
    far = digest.make_nonce("example.com", b"attacker", NOW + 10**6)
    forged_challenge = Challenge(realm="example.com", nonce=far, algorithm="MD5", qop=("auth",))
    forged = digest.answer_challenge(
        forged_challenge, method="INVITE", uri="sip:b", username="alice", password="pw"
    )
    assert digest.verify(forged, "INVITE", SECRET, NOW, password="pw") is DigestResult.BAD
    # garbage and a nonce bound to another realm
    for nonce in ("", "abc", "!" * 32, digest.make_nonce("other.org", SECRET, NOW)):
        bad = dataclasses.replace(creds, nonce=nonce)
        assert digest.verify(bad, "INVITE", SECRET, NOW, password="pw") is DigestResult.BAD


def test_unsupported_algorithm_and_qop_are_bad() -> None:
    creds = _answer()
    assert (
        digest.verify(
            dataclasses.replace(creds, algorithm="SHA-1"), "INVITE", SECRET, NOW, password="pw"
        )
        is DigestResult.BAD
    )
    assert (
        digest.verify(
            dataclasses.replace(creds, qop="auth-conf"), "INVITE", SECRET, NOW, password="pw"
        )
        is DigestResult.BAD
    )
    md5_only = ("MD5",)
    sha = _answer(algorithm="SHA-256")
    result = digest.verify(sha, "INVITE", SECRET, NOW, password="pw", allowed_algorithms=md5_only)
    assert result is DigestResult.BAD


def test_challenge_parsing() -> None:
    text = (
        'Digest realm="atlanta.com",\r\n domain="sip:boxesbybob.com", qop="auth,auth-int", '
        'nonce="f84f1cec41e6cbe5aea9c8e88d359", opaque="", stale=FALSE, algorithm=MD5'
    )
    c = Challenge.parse(text)
    assert c.realm == "atlanta.com"
    assert c.qop == ("auth", "auth-int")
    assert c.opaque == "" and c.stale is False and c.algorithm == "MD5"
    assert c.domain == "sip:boxesbybob.com"
    assert Challenge.parse(str(c)) == c


def test_credentials_parsing_escapes_and_other_schemes() -> None:
    c = Credentials.parse(
        'Digest username="bo\\"b", realm="biloxi.com", nonce="n", uri="sip:bob@biloxi.com", '
        'response="abc", qop="auth", nc=0000000a, cnonce="x", foo=bar'
    )
    assert c.username == 'bo"b' and c.qop == "auth" and c.nonce_count == 10
    assert c.params == (("foo", "bar"),)
    assert Credentials.parse(str(c)) == c
    other = Credentials.parse("Bearer token=abc")
    assert not other.is_digest and other.params == (("token", "abc"),)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Digest",
        'Digest realm="a"',  # no nonce
        'Digest realm="a", nonce="b", stale=maybe',
        'Digest realm="a, nonce="b"',  # unterminated quote
        'Digest realm="a" nonce="b"',  # missing comma
        'Digest realm="a", realm="b", nonce="c"',  # duplicate
        'Digest realm=, nonce="b"',
        'Digestrealm="a"',
        '"Digest" realm="a"',
    ],
)
def test_bad_challenges_raise_remote_error(text: str) -> None:
    with pytest.raises(RemoteError) as info:
        Challenge.parse(text)
    assert info.value.status == 400


@pytest.mark.parametrize(
    "text",
    [
        'Digest username="a", realm="r", nonce="n", uri="u"',  # no response
        'Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth',
        'Digest username="a", realm="r", nonce="n", uri="u", response="x", qop=auth, '
        'cnonce="c", nc=1',
        'Digest username="a\\',
    ],
)
def test_bad_credentials_raise_remote_error(text: str) -> None:
    with pytest.raises(RemoteError):
        Credentials.parse(text)


_PIECES = st.lists(
    st.sampled_from(
        [
            *'Digest usernamrlocqp=,"\\ \t\r\n0123456789abcdef-\x00\x7f\u00e9\udcff',
            'Digest username="a", realm="r", nonce="n", uri="u", response="x"',
            ", algorithm=",
            "MD5-sess",
            "SHA-256",
            ", qop=auth, nc=00000001, cnonce=",
        ]
    ),
    max_size=40,
).map("".join)


@NO_DEADLINE
@given(st.one_of(st.text(max_size=200), _PIECES))
def test_parsers_raise_only_remote_error(text: str) -> None:
    for parse in (Credentials.parse, Challenge.parse):
        try:
            value = parse(text)
        except RemoteError:
            continue
        # whatever parses serialises to something that parses to the same value
        assert parse(str(value)) == value
        if isinstance(value, Credentials) and value.is_digest:
            # and verifying it gives a verdict, never an exception
            result = digest.verify(value, "INVITE", SECRET, NOW, password="pw")
            assert result is DigestResult.BAD


# Lone surrogates (category Cs) are drawn on purpose: the message layer decodes bytes
# that are not UTF-8 into them (surrogateescape), and digest must hash them, not raise.
_PRINTABLE = st.characters(min_codepoint=0x20, blacklist_characters="\x7f")


@NO_DEADLINE
@given(st.text(_PRINTABLE, min_size=1, max_size=20), st.text(_PRINTABLE, max_size=20))
def test_any_username_and_password_round_trip(username: str, password: str) -> None:
    challenge = digest.make_challenge("r", SECRET, NOW, algorithm="SHA-256")
    creds = digest.answer_challenge(
        challenge, method="REGISTER", uri="sip:r", username=username, password=password
    )
    creds = Credentials.parse(str(creds))
    assert digest.verify(creds, "REGISTER", SECRET, NOW, password=password) is DigestResult.OK


def test_challenge_and_credentials_in_messages() -> None:
    from ivoz import sip
    from ivoz.sip.auth import challenges, credentials_for

    text = (
        "REGISTER sip:example.com SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKr1\r\n"
        "To: <sip:alice@example.com>\r\nFrom: <sip:alice@example.com>;tag=1\r\n"
        "Call-ID: c1\r\nCSeq: 2 REGISTER\r\nContent-Length: 0\r\n\r\n"
    )
    request = sip.parse_message(text.encode())
    assert isinstance(request, sip.Request)
    assert credentials_for(request, "example.com") is None
    response = sip.make_response(request, 401)
    first = digest.make_challenge("example.com", SECRET, NOW, algorithm="SHA-256")
    second = digest.make_challenge("example.com", SECRET, NOW, algorithm="MD5")
    response.headers.add("WWW-Authenticate", str(first))
    response.headers.add("WWW-Authenticate", str(second))
    wire = sip.parse_message(response.to_bytes())
    assert challenges(wire) == [first, second]
    assert challenges(wire, proxy=True) == []
    creds = digest.answer_challenge(
        first, method="REGISTER", uri="sip:example.com", username="alice", password="pw"
    )
    request.headers.add(
        "Authorization", 'Digest username="x", realm="other", nonce="n", uri="u", response="r"'
    )
    request.headers.add("Authorization", str(creds))
    again = sip.parse_message(request.to_bytes())
    found = credentials_for(again, "example.com")
    assert found == creds
    assert digest.verify(found, "REGISTER", SECRET, NOW, password="pw") is DigestResult.OK
    assert credentials_for(again, "example.com", proxy=True) is None
    again.headers.add("Proxy-Authorization", "Digest garbage")
    with pytest.raises(RemoteError):
        credentials_for(again, "example.com", proxy=True)


def test_undecodable_bytes_in_credentials_never_raise() -> None:
    from ivoz import sip
    from ivoz.sip.auth import credentials_for

    challenge = digest.make_challenge("example.com", SECRET, NOW)
    # a client whose username is not UTF-8 (Latin-1 "J\xe4sper") computes over raw bytes
    raw_user = b"J\xe4sper"
    user_text = raw_user.decode("utf-8", "surrogateescape")
    creds = digest.answer_challenge(
        challenge, method="REGISTER", uri="sip:example.com", username=user_text, password="pw"
    )
    wire = (
        b"REGISTER sip:example.com SIP/2.0\r\n"
        b"Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKr1\r\n"
        b"To: <sip:a@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\n"
        b"Call-ID: c1\r\nCSeq: 2 REGISTER\r\n"
        b"Authorization: " + str(creds).encode("utf-8", "surrogateescape") + b"\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    request = sip.parse_message(wire)
    found = credentials_for(request, "example.com")
    assert found is not None and found.username == user_text
    assert digest.verify(found, "REGISTER", SECRET, NOW, password="pw") is DigestResult.OK
    odd = dataclasses.replace(found, username="\ud800x", cnonce="\udcff")
    assert digest.verify(odd, "REGISTER", SECRET, NOW, password="pw") is DigestResult.BAD


def test_nonce_bound_to_a_client_address() -> None:
    challenge = digest.make_challenge("example.com", SECRET, NOW, bind="192.0.2.7:5060")
    creds = digest.answer_challenge(
        challenge, method="REGISTER", uri="sip:example.com", username="a", password="pw"
    )
    ok = digest.verify(creds, "REGISTER", SECRET, NOW, password="pw", bind="192.0.2.7:5060")
    assert ok is DigestResult.OK
    # the same answer replayed from elsewhere, or checked without the binding, fails
    for bind in ("192.0.2.8:5060", ""):
        result = digest.verify(creds, "REGISTER", SECRET, NOW, password="pw", bind=bind)
        assert result is DigestResult.BAD
    # realm and binding cannot be traded against each other
    assert digest.make_nonce("ab", SECRET, NOW, bind="c") != digest.make_nonce(
        "a", SECRET, NOW, bind="bc"
    )
