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

from .errors import LocalError, bad_request
from .grammar import format_params

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
    params: dict[str, str | None] = {}
    if not text:
        return params
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not name:
            raise bad_request(f"Malformed {what} parameter")
        unescape(name, what)
        if eq:
            if not value:
                raise bad_request(f"Empty {what} parameter value")
            unescape(value, what)
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return params


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
        if self.scheme in SIP_SCHEMES and not self.host:
            raise LocalError("a SIP URI needs a host")

    def __hash__(self) -> int:
        return hash(str(self))

    @classmethod
    def parse(cls, text: str) -> URI:
        """Parse `text`; RemoteError 400 when it is not a well-formed absolute URI."""
        colon = text.find(":")
        if colon <= 0 or _URI_CHARS_RE.fullmatch(text) is None:
            raise bad_request("Malformed URI")
        scheme = text[:colon]
        if _SCHEME_RE.fullmatch(scheme) is None:
            raise bad_request("Malformed URI scheme")
        scheme = scheme.lower()
        rest = text[colon + 1 :]
        if scheme in SIP_SCHEMES:
            return cls._parse_sip(scheme, rest)
        if scheme == "tel":
            return cls._parse_tel(rest)
        if not rest:
            raise bad_request("Malformed URI")
        return cls(scheme, opaque=rest)

    @classmethod
    def _parse_sip(cls, scheme: str, rest: str) -> URI:
        # RFC 3261 25.1: SIP-URI = "sip:" [ userinfo ] hostport uri-parameters [ headers ]
        headers: dict[str, str] = {}
        qmark = rest.find("?")
        at = rest.find("@")
        if qmark >= 0 and at > qmark:
            # "?" is allowed in the user part: only a "?" after the host starts headers.
            qmark = rest.find("?", at)
        if qmark >= 0:
            for item in rest[qmark + 1 :].split("&"):
                hname, eq, hvalue = item.partition("=")
                if not hname or not eq:
                    raise bad_request("Malformed URI header")
                unescape(hname)
                unescape(hvalue)
                headers[hname] = hvalue
            rest = rest[:qmark]
        user: str | None = None
        password: str | None = None
        if at >= 0:
            userinfo, rest = rest[:at], rest[at + 1 :]
            u, colon, p = userinfo.partition(":")
            if not u:
                raise bad_request("Malformed URI user")
            user = unescape(u, "URI user")
            if colon:
                password = unescape(p, "URI password")
        hostport, semi, ptext = rest.partition(";")
        if not hostport:
            raise bad_request("Missing URI host")
        host, port = split_hostport(hostport, "URI host")
        params = _uri_params(ptext, "URI") if semi else {}
        if semi and not ptext:
            raise bad_request("Malformed URI parameter")
        return cls(scheme, user, password, host, port, params, headers)

    @classmethod
    def _parse_tel(cls, rest: str) -> URI:
        # RFC 3966 3: telephone-uri = "tel:" telephone-subscriber *par
        number, semi, ptext = rest.partition(";")
        if number.startswith("+"):
            if _TEL_GLOBAL_RE.fullmatch(number) is None:
                raise bad_request("Malformed tel URI number")
        elif _TEL_LOCAL_RE.fullmatch(number) is None:
            raise bad_request("Malformed tel URI number")
        if semi and not ptext:
            raise bad_request("Malformed tel URI parameter")
        params = _uri_params(ptext, "tel URI") if semi else {}
        return cls("tel", user=number, params=params)

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

    def with_params(self, **params: str | None) -> URI:
        """A copy with `params` set (a None value writes a flag parameter like ``;lr``)."""
        merged = dict(self.params)
        merged.update({k.lower(): v for k, v in params.items()})
        return replace(self, params=merged)

    def without_params(self, *names: str) -> URI:
        """A copy without the named parameters."""
        drop = {n.lower() for n in names}
        return replace(self, params={k: v for k, v in self.params.items() if k not in drop})
