"""SIP, SIPS and tel URIs (RFC 3261 19.1 and 25.1, RFC 3966), plus any other absolute URI.

`URI.parse` splits ``sip:user:password@host:port;params?headers``. The user part is
%-decoded (RFC 3261 19.1.4: an escaped and an unescaped character compare equal) and
re-escaped on output; parameter and header values are kept verbatim. IPv6 references
keep their brackets in ``host``. A ``tel:`` URI keeps its number in ``user`` and has an
empty ``host``. Other schemes (``http:``, ``urn:``...) parse into an opaque URI so that
From/To/Contact values that carry them survive; `Request.uri` refuses them with 416.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from .errors import LocalError, RemoteError, bad_request
from .grammar import format_params, slots_twin

# RFC 3261 25.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+\-.]*")
# RFC 3261 25.1: hostname (letters, digits, "-" and "."; "_" tolerated as seen in the field)
_HOSTNAME_RE = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9\-_.]*[A-Za-z0-9_.])?")
# RFC 3261 25.1: IPv6reference = "[" IPv6address "]"
_IPV6_RE = re.compile(r"\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]")
_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# Characters allowed in a URI's text at all (no space, controls, quotes or angle brackets).
_URI_CHARS_RE = re.compile(r"[\x21\x23-\x3b\x3d\x3f-\x7e]+")

# RFC 3261 25.1: unreserved / user-unreserved ("&" / "=" / "+" / "$" / "," / ";" / "?" / "/")
_USER_SAFE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()&=+$,;?/"
)
# RFC 3261 25.1: password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
_PASSWORD_SAFE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!~*'()&=+$,"
)
# RFC 3966 3: phonedigit-hex and visual separators of a telephone-subscriber
_TEL_GLOBAL_RE = re.compile(r"\+[0-9\-.()]*[0-9][0-9\-.()]*")
_TEL_LOCAL_RE = re.compile(r"[0-9A-Fa-f*#\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*")

SIP_SCHEMES = frozenset({"sip", "sips"})
# Characters that would break a URI parameter out of its place when serialised.
_BAD_PARAM_CHARS = re.compile(r"[;=?&<>\"\s,]")
SUPPORTED_SCHEMES = frozenset({"sip", "sips", "tel"})


def unescape(text: str, what: str = "URI") -> str:
    """Resolve %HH escapes (RFC 3261 25.1 escaped); a stray % is a 400."""
    if "%" not in text:
        return text
    if _ESCAPE_RE.search(text):
        raise bad_request(f"Malformed escape in {what}")
    raw = bytearray()
    i = 0
    data = text.encode("utf-8", "surrogateescape")
    while i < len(data):
        b = data[i]
        if b == 0x25:
            raw.append(int(data[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.append(b)
            i += 1
    return raw.decode("utf-8", "surrogateescape")


def escape(text: str, safe: frozenset[str]) -> str:
    """%-escape every character of `text` not in `safe` (UTF-8 octets, RFC 3261 19.1.2)."""
    if all(c in safe for c in text):
        return text
    out: list[str] = []
    for c in text:
        if c in safe:
            out.append(c)
        else:
            out.extend(f"%{b:02X}" for b in c.encode("utf-8", "surrogateescape"))
    return "".join(out)


def parse_host(text: str, what: str = "host") -> str:
    """Validate an RFC 3261 host (hostname, IPv4address or IPv6reference)."""
    if text.startswith("["):
        if _IPV6_RE.fullmatch(text) is None:
            raise bad_request(f"Malformed IPv6 reference in {what}")
        return text
    if _HOSTNAME_RE.fullmatch(text) is None:
        raise bad_request(f"Malformed {what}")
    return text


def split_hostport(text: str, what: str) -> tuple[str, int | None]:
    """``host[:port]`` into its parts (RFC 3261 25.1 hostport)."""
    if ":" not in text and "[" not in text:
        # The common case: a hostname or IPv4 address without a port.
        if _HOSTNAME_RE.fullmatch(text) is None:
            raise bad_request(f"Malformed {what}")
        return text, None
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise bad_request(f"Malformed IPv6 reference in {what}")
        host, rest = text[: close + 1], text[close + 1 :]
        if rest and rest[0] != ":":
            raise bad_request(f"Malformed {what}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_s = text.partition(":")
        port_text = port_text_s if colon else None
    host = parse_host(host, what)
    if port_text is None:
        return host, None
    if not port_text.isdigit() or not port_text.isascii() or len(port_text) > 5:
        raise bad_request(f"Malformed port in {what}")
    port = int(port_text)
    if port > 65535:
        raise bad_request(f"Port out of range in {what}")
    return host, port


def _uri_params(text: str, what: str) -> dict[str, str | None]:
    # RFC 3261 25.1: uri-parameters = *( ";" uri-parameter ); escapes were checked once
    # for the whole URI by the caller.
    params: dict[str, str | None] = {}
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not name or (eq and not value):
            raise bad_request(f"Malformed {what} parameter")
        params[name.lower()] = value if eq else None
    return params


# The common shape of a SIP URI in one regex (hot path): scheme, unescaped user without
# password, hostname or IPv4 address, port, token-like parameters. Anything else
# (escapes, passwords, IPv6, headers) takes the general path below.
_PCHAR = r"[A-Za-z0-9\-_.!~*'()&+$\[\]/:]"
# Possessive quantifiers (Python 3.11) keep the engine from backtracking.
# Groups: scheme, user, host, port, parameters (values.NameAddr reuses the text for
# "<uri>;params" and `from_fast_match` builds the value from the groups).
FAST_SIP_PATTERN = (
    rf"(sips?):(?:([A-Za-z0-9\-_.!~*'()&=+$,;?/]++)@)?([A-Za-z0-9_][A-Za-z0-9\-_.]*+)"
    rf"(?::([0-9]{{1,5}}))?((?:;{_PCHAR}++(?:={_PCHAR}++)?)*+)"
)
_FAST_SIP_RE = re.compile(FAST_SIP_PATTERN)

# RFC 3261 19.1.4: these parameters must match when present in either URI.
_MUST_MATCH_PARAMS = frozenset({"user", "ttl", "method", "maddr", "transport"})
_ABSENT = "\x00absent"


def _fold(value: str | None) -> str | None:
    return None if value is None else unescape(value).lower()


# Scheme spellings that skip the scheme regex.
_KNOWN_SCHEMES = {
    "sip": "sip",
    "SIP": "sip",
    "sips": "sips",
    "SIPS": "sips",
    "tel": "tel",
    "TEL": "tel",
}


@dataclass(frozen=True, slots=True)
class URI:
    """A parsed URI: sip/sips (RFC 3261 19.1), tel (RFC 3966), or opaque for others."""

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    # Everything after "scheme:" for schemes other than sip, sips and tel.
    opaque: str | None = None

    def __post_init__(self) -> None:
        if _SCHEME_RE.fullmatch(self.scheme) is None or self.scheme != self.scheme.lower():
            raise LocalError(f"bad URI scheme {self.scheme!r}")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise LocalError(f"bad port {self.port!r}")
        if self.scheme in SIP_SCHEMES:
            try:
                parse_host(self.host)
            except RemoteError:
                raise LocalError(f"bad SIP URI host {self.host!r}") from None
        for name, value in self.params.items():
            if not name or _BAD_PARAM_CHARS.search(name + (value or "")):
                raise LocalError(f"bad URI parameter {name!r}={value!r}")

    def __hash__(self) -> int:
        return hash(str(self))

    @classmethod
    def _new(
        cls,
        scheme: str,
        user: str | None,
        password: str | None,
        host: str,
        port: int | None,
        params: dict[str, str | None],
        headers: dict[str, str],
        opaque: str | None = None,
    ) -> URI:
        """Build without re-checking what the parser has just checked (hot path)."""
        uri = _URI_TWIN()
        uri.scheme = scheme
        uri.user = user
        uri.password = password
        uri.host = host
        uri.port = port
        uri.params = params
        uri.headers = headers
        uri.opaque = opaque
        uri.__class__ = cls
        built: URI = uri
        return built

    @classmethod
    def parse(cls, text: str) -> URI:
        """Parse `text`; RemoteError 400 when it is not a well-formed absolute URI."""
        fast = _FAST_SIP_RE.fullmatch(text)
        if fast is not None and text[fast.end(3) - 1] != "-":
            # RFC 3261 25.1: a hostname label does not end with "-" (checked above).
            return from_fast_match(*fast.groups())
        colon = text.find(":")
        if colon <= 0 or _URI_CHARS_RE.fullmatch(text) is None:
            raise bad_request("Malformed URI")
        raw_scheme = text[:colon]
        scheme = _KNOWN_SCHEMES.get(raw_scheme)
        if scheme is None:
            if _SCHEME_RE.fullmatch(raw_scheme) is None:
                raise bad_request("Malformed URI scheme")
            scheme = raw_scheme.lower()
        rest = text[colon + 1 :]
        if "%" in rest and _ESCAPE_RE.search(rest):
            # RFC 3261 25.1: escaped = "%" HEXDIG HEXDIG
            raise bad_request("Malformed escape in URI")
        if scheme in SIP_SCHEMES:
            return cls._parse_sip(scheme, rest)
        if scheme == "tel":
            return cls._parse_tel(rest)
        if not rest:
            raise bad_request("Malformed URI")
        return cls._new(scheme, None, None, "", None, {}, {}, rest)

    @classmethod
    def _parse_sip(cls, scheme: str, rest: str) -> URI:
        # RFC 3261 25.1: SIP-URI = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
        headers: dict[str, str] = {}
        at = rest.find("@")
        qmark = rest.find("?", at if at >= 0 else 0)
        if qmark >= 0:
            # "?" is allowed in the user part: only a "?" after the host starts headers.
            for item in rest[qmark + 1 :].split("&"):
                hname, eq, hvalue = item.partition("=")
                if not hname or not eq:
                    raise bad_request("Malformed URI header")
                headers[hname] = hvalue
            rest = rest[:qmark]
        user: str | None = None
        password: str | None = None
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1 :]
            u, colon, p = userinfo.partition(":")
            if not u:
                raise bad_request("Malformed URI user")
            user = unescape(u, "URI user") if "%" in u else u
            if colon:
                password = unescape(p, "URI password") if "%" in p else p
        hostport, semi, ptext = rest.partition(";")
        if not hostport:
            raise bad_request("Missing URI host")
        host, port = split_hostport(hostport, "URI host")
        params = _uri_params(ptext, "URI") if semi else {}
        return cls._new(scheme, user, password, host, port, params, headers)

    @classmethod
    def _parse_tel(cls, rest: str) -> URI:
        # RFC 3966 3: telephone-uri = "tel:" telephone-subscriber *par
        number, semi, ptext = rest.partition(";")
        if number.startswith("+"):
            if _TEL_GLOBAL_RE.fullmatch(number) is None:
                raise bad_request("Malformed tel URI number")
        elif _TEL_LOCAL_RE.fullmatch(number) is None:
            raise bad_request("Malformed tel URI number")
        params = _uri_params(ptext, "tel URI") if semi else {}
        return cls._new("tel", number, None, "", None, params, {})

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        if self.scheme == "tel":
            return f"tel:{self.user or ''}{format_params(self.params)}"
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(escape(self.user, _USER_SAFE))
            if self.password is not None:
                parts.append(":" + escape(self.password, _PASSWORD_SAFE))
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        parts.append(format_params(self.params))
        if self.headers:
            parts.append("?" + "&".join(f"{k}={v}" for k, v in self.headers.items()))
        return "".join(parts)

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased (RFC 3261 19.1.1)."""
        value = self.params.get("transport")
        return value.lower() if value else None

    @property
    def is_secure(self) -> bool:
        return self.scheme == "sips"

    def equivalent(self, other: URI) -> bool:
        """URI comparison by RFC 3261 19.1.4 (not the field-by-field ``==``).

        Userinfo compares case-sensitively after unescaping, everything else
        case-insensitively; a component left at its default does not match one given
        explicitly (no port versus 5060); user, ttl, method, maddr and transport must
        match when either side has them, other parameters only when both have them;
        URI headers must match on both sides.
        """
        if self.scheme != other.scheme:
            return False
        if self.opaque is not None or other.opaque is not None:
            return self.opaque == other.opaque
        if self.user != other.user or self.password != other.password:
            return False
        if self.host.lower() != other.host.lower() or self.port != other.port:
            return False
        mine = {k: _fold(v) for k, v in self.params.items()}
        theirs = {k: _fold(v) for k, v in other.params.items()}
        for name in mine.keys() | theirs.keys():
            both = name in mine and name in theirs
            if (name in _MUST_MATCH_PARAMS or both) and mine.get(name, _ABSENT) != theirs.get(
                name, _ABSENT
            ):
                return False
        return {k.lower(): unescape(v) for k, v in self.headers.items()} == {
            k.lower(): unescape(v) for k, v in other.headers.items()
        }

    def with_params(self, **params: str | None) -> URI:
        """A copy with `params` set (a None value writes a flag parameter like ``;lr``)."""
        merged = dict(self.params)
        merged.update({k.lower(): v for k, v in params.items()})
        return replace(self, params=merged)

    def without_params(self, *names: str) -> URI:
        """A copy without the named parameters."""
        drop = {n.lower() for n in names}
        return replace(self, params={k: v for k, v in self.params.items() if k not in drop})


_URI_TWIN = slots_twin(URI)


def from_fast_match(
    scheme: str, user: str | None, host: str, port_text: str | None, ptext: str
) -> URI:
    """The URI of a `FAST_SIP_PATTERN` match's groups (nothing is checked again)."""
    port = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise bad_request("Port out of range in URI host")
    params: dict[str, str | None] = {}
    if ptext:
        for item in ptext[1:].split(";"):
            name, eq, value = item.partition("=")
            params[name.lower()] = value if eq else None
    return from_parts(scheme, user, host, port, params)


def from_parts(
    scheme: str, user: str | None, host: str, port: int | None, params: dict[str, str | None]
) -> URI:
    """The URI of a fast path's checked pieces (nothing is checked again)."""
    uri = _URI_TWIN()
    uri.scheme = scheme
    uri.user = user
    uri.password = None
    uri.host = host
    uri.port = port
    uri.params = params
    uri.headers = {}
    uri.opaque = None
    uri.__class__ = URI
    built: URI = uri
    return built
