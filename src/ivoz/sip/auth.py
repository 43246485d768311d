"""Typed values of the authentication headers (RFC 3261 22, 25.1; RFC 7616 3.3-3.4).

:class:`Challenge` is the value of WWW-Authenticate and Proxy-Authenticate;
:class:`Credentials` is the value of Authorization and Proxy-Authorization. Both are
an auth-scheme followed by comma-separated ``name=value`` auth-params, each value a
token or a quoted-string. Digest parameters get typed fields; any other parameter (and
every parameter of a non-Digest scheme) is kept verbatim in ``params``.

``parse`` raises only :class:`ivoz.sip.RemoteError` (status 400) on bad input; ``str()``
serialises back, quoting the parameters RFC 3261 25.1 quotes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from ivoz.sip.errors import RemoteError

if TYPE_CHECKING:
    from ivoz.sip.message import Message

__all__ = ["Challenge", "Credentials", "challenges", "credentials_for", "parse_auth_params"]

# RFC 3261 22.1 / 22.3: which header carries what, for a UAS (401) or a proxy (407)
CHALLENGE_HEADER = {False: "WWW-Authenticate", True: "Proxy-Authenticate"}
CREDENTIALS_HEADER = {False: "Authorization", True: "Proxy-Authorization"}

# RFC 3261 25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# RFC 7616 3.4: nc-value = 8LHEX
_NC = re.compile(r"[0-9a-fA-F]{8}")

_MAX_LENGTH = 8192  # characters; a header value longer than this is refused


# RFC 3261 25.1: LWS = [*WSP CRLF] 1*WSP (folding); any run of SP/HTAB/CR/LF is accepted
_LWS = re.compile(r"[ \t\r\n]*")


def _skip_lws(text: str, pos: int) -> int:
    m = _LWS.match(text, pos)
    return pos if m is None else m.end()


# The common quoted-string: no quoted-pair, no control character but HTAB/CR/LF
_PLAIN_QUOTED = re.compile(r'"([^"\\\x00-\x08\x0b\x0c\x0e-\x1f]*)"')


def _bad(why: str) -> RemoteError:
    return RemoteError(400, f"Bad auth header: {why}")


# Challenge.parse and Credentials.parse share their non-Digest branch
_AuthHeader = TypeVar("_AuthHeader", "Challenge", "Credentials")


def _other_scheme(
    cls: type[_AuthHeader], scheme: str, raw: list[tuple[str, str, bool]], what: str
) -> _AuthHeader:
    """A non-Digest challenge or credentials: the auth-params kept as they are."""
    if not raw:
        raise _bad(f"{what} without auth-params")
    try:
        return cls(scheme=scheme, params=tuple((n, v) for n, v, _ in raw))
    except ValueError as exc:
        raise _bad(str(exc)) from None


def _flag(name: str, value: str) -> bool:
    """A boolean auth-param (``stale``, ``userhash``): "true" or "false", any case."""
    if value.lower() not in ("true", "false"):
        raise _bad(f"{name} must be true or false")
    return value.lower() == "true"


def _parse_quoted(text: str, pos: int) -> tuple[str, int]:
    """Parse a quoted-string starting at text[pos] == '"'; return (unescaped, end)."""
    # RFC 3261 25.1: quoted-string = SWS DQUOTE *(qdtext / quoted-pair) DQUOTE
    fast = _PLAIN_QUOTED.match(text, pos)
    if fast is not None:
        return fast.group(1), fast.end()
    out: list[str] = []
    i = pos + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            # RFC 3261 25.1: quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
            if i + 1 >= n or text[i + 1] in "\r\n" or ord(text[i + 1]) > 0x7F:
                raise _bad("bad escape in quoted-string")
            out.append(text[i + 1])
            i += 2
            continue
        if ord(c) < 0x20 and c not in "\t\r\n":
            raise _bad("control character in quoted-string")
        out.append(c)
        i += 1
    raise _bad("unterminated quoted-string")


def parse_auth_params(text: str) -> tuple[str, list[tuple[str, str, bool]]]:
    """Split ``scheme name=value, ...`` into the scheme and (name, value, was_quoted) triples.

    Names are lower-cased (RFC 3261 25.1: auth-param names are case-insensitive tokens).
    """
    if not isinstance(text, str):
        raise _bad("not text")
    if len(text) > _MAX_LENGTH:
        raise _bad("too long")
    pos = _skip_lws(text, 0)
    m = _TOKEN.match(text, pos)
    if m is None:
        raise _bad("missing auth-scheme")
    scheme = m.group()
    pos = m.end()
    after_scheme = _skip_lws(text, pos)
    params: list[tuple[str, str, bool]] = []
    if after_scheme == len(text):
        return scheme, params
    if after_scheme == pos:
        raise _bad("auth-scheme must be followed by whitespace")
    pos = after_scheme
    n = len(text)
    while True:
        # RFC 7230 7 (#rule): tolerate empty list elements
        while pos < n and text[pos] == ",":
            pos = _skip_lws(text, pos + 1)
        if pos >= n:
            break
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _bad("expected auth-param name")
        name = m.group().lower()
        pos = _skip_lws(text, m.end())
        # RFC 3261 25.1: auth-param = auth-param-name EQUAL ( token / quoted-string )
        if pos >= n or text[pos] != "=":
            raise _bad(f"expected '=' after {name}")
        pos = _skip_lws(text, pos + 1)
        if pos < n and text[pos] == '"':
            value, pos = _parse_quoted(text, pos)
            quoted = True
        else:
            m = _TOKEN.match(text, pos)
            if m is None:
                raise _bad(f"expected a value for {name}")
            value, pos, quoted = m.group(), m.end(), False
        if any(name == existing for existing, _, _ in params):
            # RFC 7616 3.3/3.4: each parameter appears at most once
            raise _bad(f"duplicate parameter {name}")
        params.append((name, value, quoted))
        pos = _skip_lws(text, pos)
        if pos >= n:
            break
        if text[pos] != ",":
            raise _bad("expected ',' between auth-params")
    return scheme, params


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_token(name: str, value: str) -> None:
    if _TOKEN.fullmatch(value) is None:
        raise ValueError(f"{name} must be a token, got {value!r}")


def _check_text(name: str, value: str | None) -> None:
    # RFC 3261 25.1: qdtext excludes CTLs other than LWS; CR and LF would split the header
    if value is not None and any((c < " " and c != "\t") or c == "\x7f" for c in value):
        raise ValueError(f"{name} must not contain control characters")


@dataclass(frozen=True, slots=True, kw_only=True)
class Challenge:
    """A WWW-Authenticate / Proxy-Authenticate value (RFC 3261 25.1 ``challenge``)."""

    scheme: str = "Digest"
    realm: str | None = None
    nonce: str | None = None
    algorithm: str | None = None  # absent means MD5 (RFC 7616 3.3)
    qop: tuple[str, ...] = ()  # qop-options, e.g. ("auth",)
    stale: bool = False
    opaque: str | None = None
    domain: str | None = None
    params: tuple[tuple[str, str], ...] = field(default=())  # other auth-params, verbatim

    def __post_init__(self) -> None:
        _check_token("scheme", self.scheme)
        for name, value in self.params:
            _check_token("parameter name", name)
            _check_text(name, value)
        for name in ("realm", "nonce", "opaque", "domain"):
            _check_text(name, getattr(self, name))
        if self.algorithm is not None:
            _check_token("algorithm", self.algorithm)
        for q in self.qop:
            _check_token("qop", q)
        if self.is_digest and (self.realm is None or self.nonce is None):
            raise ValueError("a Digest challenge needs realm and nonce")

    @property
    def is_digest(self) -> bool:
        return self.scheme.lower() == "digest"

    @classmethod
    def parse(cls, text: str) -> Challenge:
        scheme, raw = parse_auth_params(text)
        if scheme.lower() != "digest":
            return _other_scheme(cls, scheme, raw, "challenge")
        values: dict[str, str | None] = {"realm": None, "nonce": None}
        algorithm: str | None = None
        qop: tuple[str, ...] = ()
        stale = False
        opaque = domain = None
        extra: list[tuple[str, str]] = []
        for name, value, _ in raw:
            if name in ("realm", "nonce"):
                values[name] = value
            elif name == "algorithm":
                algorithm = value
                if _TOKEN.fullmatch(value) is None:
                    raise _bad("bad algorithm")
            elif name == "qop":
                # RFC 3261 25.1: qop-options = "qop" EQUAL LDQUOT qop-value *("," qop-value) RDQUOT
                qop = tuple(q.strip() for q in value.split(",") if q.strip())
                if any(_TOKEN.fullmatch(q) is None for q in qop):
                    raise _bad("bad qop-options")
            elif name == "stale":
                # RFC 3261 25.1: stale = "stale" EQUAL ( "true" / "false" ), case-insensitive
                stale = _flag("stale", value)
            elif name == "opaque":
                opaque = value
            elif name == "domain":
                domain = value
            else:
                extra.append((name, value))
        if values["realm"] is None or values["nonce"] is None:
            raise _bad("Digest challenge without realm or nonce")
        try:
            return cls(
                scheme=scheme,
                realm=values["realm"],
                nonce=values["nonce"],
                algorithm=algorithm,
                qop=qop,
                stale=stale,
                opaque=opaque,
                domain=domain,
                params=tuple(extra),
            )
        except ValueError as exc:
            raise _bad(str(exc)) from None

    def __str__(self) -> str:
        parts: list[str] = []
        if self.realm is not None:
            parts.append(f"realm={_quote(self.realm)}")
        if self.domain is not None:
            parts.append(f"domain={_quote(self.domain)}")
        if self.nonce is not None:
            parts.append(f"nonce={_quote(self.nonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.stale:
            parts.append("stale=TRUE")
        if self.algorithm is not None:
            parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={_quote(','.join(self.qop))}")
        parts.extend(f"{n}={_param_value(v)}" for n, v in self.params)
        return f"{self.scheme} " + ", ".join(parts)


def _param_value(value: str) -> str:
    return value if _TOKEN.fullmatch(value) else _quote(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Credentials:
    """An Authorization / Proxy-Authorization value (RFC 3261 25.1 ``credentials``)."""

    scheme: str = "Digest"
    username: str | None = None
    realm: str | None = None
    nonce: str | None = None
    uri: str | None = None
    response: str | None = None
    algorithm: str | None = None  # absent means MD5 (RFC 7616 3.4)
    cnonce: str | None = None
    opaque: str | None = None
    qop: str | None = None
    nc: str | None = None  # 8 hex digits, kept as text so it serialises exactly
    userhash: bool = False  # RFC 7616 3.4.4
    params: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        _check_token("scheme", self.scheme)
        for name, value in self.params:
            _check_token("parameter name", name)
            _check_text(name, value)
        for name in ("username", "realm", "nonce", "uri", "response", "cnonce", "opaque"):
            _check_text(name, getattr(self, name))
        if self.algorithm is not None:
            _check_token("algorithm", self.algorithm)
        if self.qop is not None:
            _check_token("qop", self.qop)
        if self.nc is not None and _NC.fullmatch(self.nc) is None:
            raise ValueError("nc must be 8 hex digits")
        if self.is_digest:
            missing = [
                n
                for n in ("username", "realm", "nonce", "uri", "response")
                if getattr(self, n) is None
            ]
            if missing:
                raise ValueError(f"Digest credentials lack {', '.join(missing)}")
            # RFC 7616 3.4: cnonce and nc MUST be sent when qop is
            if self.qop is not None and (self.cnonce is None or self.nc is None):
                raise ValueError("qop needs cnonce and nc")

    @property
    def is_digest(self) -> bool:
        return self.scheme.lower() == "digest"

    @property
    def nonce_count(self) -> int | None:
        return None if self.nc is None else int(self.nc, 16)

    @classmethod
    def parse(cls, text: str) -> Credentials:
        scheme, raw = parse_auth_params(text)
        if scheme.lower() != "digest":
            return _other_scheme(cls, scheme, raw, "credentials")
        known: dict[str, str | None] = dict.fromkeys(
            ("username", "realm", "nonce", "uri", "response", "algorithm", "cnonce", "opaque")
        )
        qop: str | None = None
        nc: str | None = None
        userhash = False
        extra: list[tuple[str, str]] = []
        for name, value, _ in raw:
            if name in known:
                known[name] = value
            elif name == "qop":
                qop = value  # RFC 3261 25.1 says token; some UAs quote it: accepted either way
            elif name == "nc":
                if _NC.fullmatch(value) is None:
                    raise _bad("nc must be 8 hex digits")
                nc = value
            elif name == "userhash":
                userhash = _flag("userhash", value)
            else:
                extra.append((name, value))
        try:
            return cls(
                scheme=scheme,
                username=known["username"],
                realm=known["realm"],
                nonce=known["nonce"],
                uri=known["uri"],
                response=known["response"],
                algorithm=known["algorithm"],
                cnonce=known["cnonce"],
                opaque=known["opaque"],
                qop=qop,
                nc=nc,
                userhash=userhash,
                params=tuple(extra),
            )
        except ValueError as exc:
            raise _bad(str(exc)) from None

    def __str__(self) -> str:
        parts: list[str] = []
        for name in ("username", "realm", "nonce", "uri", "response"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}={_quote(value)}")
        if self.algorithm is not None:
            parts.append(f"algorithm={self.algorithm}")
        if self.cnonce is not None:
            parts.append(f"cnonce={_quote(self.cnonce)}")
        if self.opaque is not None:
            parts.append(f"opaque={_quote(self.opaque)}")
        if self.qop is not None:
            parts.append(f"qop={self.qop}")
        if self.nc is not None:
            parts.append(f"nc={self.nc}")
        if self.userhash:
            parts.append("userhash=true")
        parts.extend(f"{n}={_param_value(v)}" for n, v in self.params)
        return f"{self.scheme} " + ", ".join(parts)


def challenges(message: Message, *, proxy: bool = False) -> list[Challenge]:
    """Every challenge of a 401 (or, with ``proxy``, a 407) response, in order.

    RFC 3261 22.3: a forking proxy may have aggregated several; RemoteError when one is
    malformed.
    """
    return [Challenge.parse(v) for v in message.headers.get_lines(CHALLENGE_HEADER[proxy])]


def credentials_for(message: Message, realm: str, *, proxy: bool = False) -> Credentials | None:
    """The Digest credentials of a request for ``realm``, or None (RFC 3261 22.4).

    A request may carry credentials for several realms (RFC 3261 22.3); the one whose
    realm matches is ours. Malformed credentials raise RemoteError (answer 400).
    """
    for value in message.headers.get_lines(CREDENTIALS_HEADER[proxy]):
        credentials = Credentials.parse(value)
        if credentials.is_digest and credentials.realm == realm:
            return credentials
    return None
