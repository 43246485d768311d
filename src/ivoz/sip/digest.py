"""Digest access authentication as pure functions (RFC 3261 22.4, RFC 7616, RFC 8760).

No server state and no clock reads: the caller passes ``now`` (seconds, any epoch that
is the same for issuing and verifying) and a server ``secret`` (bytes).

Stateless nonces. A nonce carries its own expiry and proves it was made here::

    nonce = base64url( expiry_ms || HMAC-SHA256(secret, expiry_ms || len(realm) || realm || bind)[:16] )

(``expiry_ms``: 8 bytes big-endian; ``len``: 4 bytes; ``bind``: optional, e.g. the
client's address, empty by default)

so :func:`verify` needs only the secret: a nonce whose MAC does not match (forged,
altered, or made for another realm) is refused as ``BAD``; a genuine one past its expiry
with an otherwise correct response is ``STALE`` and the caller re-challenges with
``stale=true`` (RFC 7616 3.3), so the UA retries without asking the user again.

What statelessness gives up: replay of a captured request within the nonce lifetime is
not detected here (RFC 7616 5.4 would need a per-nonce ``nc`` record); keep the lifetime
short, or add an ``nc`` cache in the caller.

Stored credentials may be plaintext passwords or HA1 values (``H(user:realm:password)``,
see :func:`compute_ha1`); an HA1 is tied to its algorithm, so a store keeps one per
algorithm it offers.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import secrets
import struct
from collections.abc import Callable

from ivoz.sip.auth import Challenge, Credentials

__all__ = [
    "ALGORITHMS",
    "DigestResult",
    "answer_challenge",
    "compute_ha1",
    "compute_response",
    "make_challenge",
    "make_nonce",
    "nonce_expiry",
    "verify",
]

NONCE_LIFETIME = 300.0  # seconds; how long a challenge nonce stays fresh by default

_Hash = Callable[[bytes], str]


def _hasher(name: str) -> _Hash:
    def digest(data: bytes) -> str:
        return hashlib.new(name, data).hexdigest()

    return digest


# RFC 7616 3.2 / RFC 8760 2: the algorithm names and their hash functions. The "-sess"
# variants use the same hash with a session HA1 (RFC 7616 3.4.2).
ALGORITHMS: dict[str, _Hash] = {
    "MD5": _hasher("md5"),
    "SHA-256": _hasher("sha256"),
    "SHA-512-256": _hasher("sha512_256"),
}


def _octets(text: str) -> bytes:
    """The octets a peer hashed: UTF-8 (RFC 7616 4), with undecodable input bytes restored.

    The message layer keeps bytes that are not UTF-8 as lone surrogates
    (``surrogateescape``); they go back to the original bytes here, so that garbage in a
    header can make a digest fail but never raise.
    """
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


class DigestResult(enum.Enum):
    """Outcome of :func:`verify`."""

    OK = "ok"
    STALE = "stale"  # genuine nonce, correct response, but the nonce has expired
    BAD = "bad"  # wrong password, forged nonce, unsupported algorithm, malformed


def _split_algorithm(algorithm: str | None) -> tuple[str, bool] | None:
    """(base algorithm name in canonical case, is -sess) or None if unsupported."""
    # RFC 7616 3.3: if the algorithm parameter is absent, MD5 is assumed
    name = "MD5" if algorithm is None else algorithm.upper()
    sess = name.endswith("-SESS")
    if sess:
        name = name[: -len("-SESS")]
    if name not in ALGORITHMS:
        return None
    return name, sess


def _hash_for(algorithm: str | None) -> tuple[_Hash, bool]:
    split = _split_algorithm(algorithm)
    if split is None:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return ALGORITHMS[split[0]], split[1]


def compute_ha1(username: str, realm: str, password: str, algorithm: str | None = "MD5") -> str:
    """The storable ``H(username ":" realm ":" password)`` (RFC 7616 3.4.2, non-sess)."""
    hash_, _ = _hash_for(algorithm)
    return hash_(_octets(f"{username}:{realm}:{password}"))


def compute_response(
    *,
    ha1: str,
    nonce: str,
    method: str,
    uri: str,
    algorithm: str | None = None,
    qop: str | None = None,
    nc: str | None = None,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The request-digest given the stored (non-session) HA1 (RFC 7616 3.4.1, RFC 2617 3.2.2.1)."""
    hash_, sess = _hash_for(algorithm)
    if sess:
        # RFC 7616 3.4.2: for -sess, A1 = H(user:realm:pw) ":" nonce ":" cnonce
        if cnonce is None:
            raise ValueError("a -sess algorithm needs a cnonce")
        ha1 = hash_(_octets(f"{ha1}:{nonce}:{cnonce}"))
    # RFC 7616 3.4.3: A2 = Method ":" request-uri, plus ":" H(entity-body) for auth-int
    a2 = f"{method}:{uri}:{hash_(body)}" if qop == "auth-int" else f"{method}:{uri}"
    ha2 = hash_(_octets(a2))
    if qop is None:
        # RFC 2617 3.2.2.1 (RFC 2069 compatibility): KD(H(A1), nonce ":" H(A2))
        return hash_(_octets(f"{ha1}:{nonce}:{ha2}"))
    if nc is None or cnonce is None:
        raise ValueError("qop needs nc and cnonce")
    # RFC 7616 3.4.1: KD(H(A1), nonce ":" nc ":" cnonce ":" qop ":" H(A2))
    return hash_(_octets(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}"))


def _nonce_mac(secret: bytes, stamp: bytes, realm: str, bind: str) -> bytes:
    # the realm and the caller's binding (a client address, say) are length-prefixed so
    # that no two (realm, bind) pairs feed the HMAC the same octets
    realm_octets, bind_octets = _octets(realm), _octets(bind)
    data = stamp + struct.pack(">I", len(realm_octets)) + realm_octets + bind_octets
    return hmac.new(secret, data, hashlib.sha256).digest()[:16]


def make_nonce(
    realm: str, secret: bytes, now: float, lifetime: float = NONCE_LIFETIME, *, bind: str = ""
) -> str:
    """A self-validating nonce that expires ``lifetime`` seconds after ``now``.

    ``bind`` ties it to anything else the verifier will know (the client's address, a
    user name): a nonce made for one binding fails for another.
    """
    expiry_ms = max(0, int((now + lifetime) * 1000))
    stamp = struct.pack(">Q", expiry_ms)
    raw = stamp + _nonce_mac(secret, stamp, realm, bind)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def nonce_expiry(nonce: str, realm: str, secret: bytes, *, bind: str = "") -> float | None:
    """The expiry (seconds) a nonce carries, or None when it was not made by us for ``realm``."""
    if len(nonce) != 32:  # 24 bytes in unpadded base64
        return None
    try:
        raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 24:
        return None
    stamp, mac = raw[:8], raw[8:]
    if not hmac.compare_digest(mac, _nonce_mac(secret, stamp, realm, bind)):
        return None
    (expiry_ms,) = struct.unpack(">Q", stamp)
    return float(expiry_ms) / 1000.0


def make_challenge(
    realm: str,
    secret: bytes,
    now: float,
    *,
    algorithm: str = "MD5",
    stale: bool = False,
    qop: tuple[str, ...] = ("auth",),
    opaque: str | None = None,
    lifetime: float = NONCE_LIFETIME,
    bind: str = "",
) -> Challenge:
    """A Digest challenge for WWW-Authenticate (401) or Proxy-Authenticate (407)."""
    _hash_for(algorithm)  # refuse unknown algorithms early
    return Challenge(
        realm=realm,
        nonce=make_nonce(realm, secret, now, lifetime, bind=bind),
        algorithm=algorithm,
        qop=qop,
        stale=stale,
        opaque=opaque,
    )


def verify(
    credentials: Credentials,
    method: str,
    secret: bytes,
    now: float,
    *,
    password: str | None = None,
    ha1: str | None = None,
    realm: str | None = None,
    body: bytes = b"",
    allowed_algorithms: tuple[str, ...] = ("MD5", "SHA-256", "SHA-512-256"),
    bind: str = "",
) -> DigestResult:
    """Check Digest credentials against a password or a stored HA1.

    ``ha1`` must have been computed with ``credentials.algorithm`` (base name, without
    ``-sess``); pass exactly one of ``password`` and ``ha1``. ``realm`` (when given) must
    equal the credentials' realm; ``bind`` must be what the challenge was made with.
    The caller still checks that ``credentials.uri``
    designates the Request-URI and that the username is the one it looked up.
    """
    if (password is None) == (ha1 is None):
        raise ValueError("pass exactly one of password and ha1")
    if not credentials.is_digest:
        return DigestResult.BAD
    assert credentials.username is not None and credentials.realm is not None
    assert credentials.nonce is not None and credentials.uri is not None
    assert credentials.response is not None
    split = _split_algorithm(credentials.algorithm)
    if split is None or split[0] not in allowed_algorithms:
        return DigestResult.BAD
    if realm is not None and credentials.realm != realm:
        return DigestResult.BAD
    # RFC 7616 3.4: qop must be one we offered (we offer auth and auth-int at most)
    if credentials.qop not in (None, "auth", "auth-int"):
        return DigestResult.BAD
    expiry = nonce_expiry(credentials.nonce, credentials.realm, secret, bind=bind)
    if expiry is None:
        return DigestResult.BAD  # forged, altered, or for another realm
    if ha1 is None:
        assert password is not None
        ha1 = compute_ha1(credentials.username, credentials.realm, password, split[0])
    try:
        expected = compute_response(
            ha1=ha1.lower(),
            nonce=credentials.nonce,
            method=method,
            uri=credentials.uri,
            algorithm=credentials.algorithm,
            qop=credentials.qop,
            nc=credentials.nc,
            cnonce=credentials.cnonce,
            body=body,
        )
    except ValueError:
        return DigestResult.BAD
    if not hmac.compare_digest(_octets(expected), _octets(credentials.response.lower())):
        return DigestResult.BAD
    # RFC 7616 3.3: stale=true when the nonce is invalid but the digest is valid
    if now > expiry:
        return DigestResult.STALE
    return DigestResult.OK


def answer_challenge(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str | None = None,
    ha1: str | None = None,
    cnonce: str | None = None,
    nc: int = 1,
    body: bytes = b"",
) -> Credentials:
    """The UAC side: credentials answering ``challenge`` (RFC 3261 22.2, RFC 7616 3.4).

    Picks qop ``auth`` when offered, else ``auth-int``, else none (RFC 2069 style).
    ``cnonce`` defaults to a random value; ``nc`` counts requests made with this nonce.
    """
    if (password is None) == (ha1 is None):
        raise ValueError("pass exactly one of password and ha1")
    if not challenge.is_digest:
        raise ValueError(f"cannot answer a {challenge.scheme} challenge")
    assert challenge.realm is not None and challenge.nonce is not None
    split = _split_algorithm(challenge.algorithm)
    if split is None:
        raise ValueError(f"unsupported digest algorithm {challenge.algorithm!r}")
    if not 0 < nc <= 0xFFFFFFFF:
        raise ValueError("nc out of range")
    offered = [q.lower() for q in challenge.qop]
    qop = "auth" if "auth" in offered else "auth-int" if "auth-int" in offered else None
    if challenge.qop and qop is None:
        raise ValueError(f"no supported qop in {challenge.qop!r}")
    if ha1 is None:
        assert password is not None
        ha1 = compute_ha1(username, challenge.realm, password, split[0])
    nc_text = f"{nc:08x}" if qop is not None else None
    if qop is not None or split[1]:
        cnonce = cnonce if cnonce is not None else secrets.token_hex(8)
    else:
        cnonce = None
    response = compute_response(
        ha1=ha1,
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        algorithm=challenge.algorithm,
        qop=qop,
        nc=nc_text,
        cnonce=cnonce,
        body=body,
    )
    return Credentials(
        username=username,
        realm=challenge.realm,
        nonce=challenge.nonce,
        uri=uri,
        response=response,
        algorithm=challenge.algorithm,
        cnonce=cnonce,
        opaque=challenge.opaque,
        qop=qop,
        nc=nc_text,
    )
