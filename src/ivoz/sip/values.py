"""Typed header values: name-addr, Via, CSeq, Contact (RFC 3261 sections 20 and 25).

Each value is a frozen dataclass with ``parse(text)`` (RemoteError 400 on bad input) and
``__str__`` that serialises it. Parameter names are lower-cased, values kept verbatim
(quoted values keep their quotes). Change a value with `dataclasses.replace` or the
``with_*`` helpers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from .errors import LocalError, RemoteError, bad_request
from .grammar import (
    TOKEN_RE,
    WS,
    check_token,
    find_unquoted,
    format_params,
    parse_params,
    quote,
    skip_quoted,
    slots_twin,
    unquote,
)
from .uri import FAST_SIP_PATTERN, URI, from_fast_match, from_parts, split_hostport

# The compiled fast paths (src/ivoz/sip/_scan.c), None when the extension was not built.
_c_via: Callable[[str], tuple[str, str, int | None, dict[str, str | None]] | None] | None
_c_address: Callable[[str], tuple[str, str | None, str, int | None, Any, Any] | None] | None
_c_cseq: Callable[[str], tuple[int, str] | None] | None
try:
    from ._scan import address as _c_address
    from ._scan import cseq as _c_cseq
    from ._scan import via as _c_via
except ImportError:  # pragma: no cover - a build without a C compiler
    _c_via = _c_address = _c_cseq = None

# RFC 3261 8.1.1.5: the CSeq number MUST be expressible as a 32-bit unsigned integer.
CSEQ_MAX = 2**32 - 1
# RFC 3261 10.2.1.1 and 20.19: expires is delta-seconds; 2**32-1 is the largest we accept.
EXPIRES_MAX = 2**32 - 1
# Methods known to be tokens (RFC 3261 and extensions): no regex needed for them.
_COMMON_METHODS = frozenset(
    {"INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE"}
    | {"NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE"}
)
# RFC 3261 8.1.1.7: the branch of an RFC 3261 element starts with this magic cookie.
MAGIC_COOKIE = "z9hG4bK"


@dataclass(frozen=True, slots=True)
class NameAddr:
    """``"display" <uri>;params`` or a bare addr-spec (RFC 3261 20.10, 25.1 name-addr)."""

    uri: URI
    display: str | None = None
    params: dict[str, str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.display is not None and ("\r" in self.display or "\n" in self.display):
            raise LocalError("a display name cannot hold CR or LF")
        check_local_params(self.params)

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip(WS)
        if not text:
            raise bad_request("Empty address")
        display: str | None = None
        if text[0] == "<":
            if _c_address is not None:
                found = _c_address(text)
                if found is not None:
                    # The _FAST_ADDR_RE shape below, cut in C (src/ivoz/sip/_scan.c).
                    scheme, user, host, port, uparams, hparams = found
                    address = _NAME_ADDR_TWIN()
                    address.uri = from_parts(scheme, user, host, port, uparams)
                    address.display = None
                    address.params = hparams
                    address.__class__ = cls
                    built: NameAddr = address
                    return built
            fast = _FAST_ADDR_RE.fullmatch(text)
            if fast is not None and text[fast.end(3) - 1] != "-":
                # The commonest shape in one regex: "<sip:...>;tag=x" (Route, From, To).
                scheme, user, host, port_text, uparams, hparams = fast.groups()
                address = _NAME_ADDR_TWIN()
                address.uri = from_fast_match(scheme, user, host, port_text, uparams)
                address.display = None
                params: dict[str, str | None] = {}
                if hparams:
                    for item in hparams[1:].split(";"):
                        pname, eq, pvalue = item.partition("=")
                        params[pname.lower()] = pvalue if eq else None
                address.params = params
                address.__class__ = cls
                built = address
                return built
            # Fast path: "<uri>;params" (Route, Record-Route, most Contacts).
            gt = text.find(">")
            if gt > 0:
                uri = URI.parse(text[1:gt])
                tail = text[gt + 1 :]
                address = _NAME_ADDR_TWIN()
                address.uri = uri
                address.display = None
                address.params = parse_params(tail.lstrip(WS), "address") if tail else {}
                address.__class__ = cls
                built = address
                return built
        if text[0] == '"':
            end = skip_quoted(text, 0)
            display = unquote(text[:end])
            rest = text[end:].lstrip(WS)
            if not rest.startswith("<"):
                raise bad_request("Malformed address: display name without <URI>")
        else:
            lt = text.find("<")
            semi = text.find(";")
            if lt >= 0 and (semi < 0 or lt < semi):
                words = text[:lt].strip(WS)
                if words:
                    # RFC 3261 25.1: display-name = *(token LWS) / quoted-string
                    for word in words.split():
                        if TOKEN_RE.fullmatch(word) is None:
                            raise bad_request("Malformed display name")
                    display = " ".join(words.split())
                rest = text[lt:]
            else:
                # RFC 3261 20.10: in an addr-spec, parameters after ";" belong to the header.
                uri_text, _, ptext = text.partition(";")
                uri_text = uri_text.rstrip(WS)
                if "?" in uri_text or "," in uri_text:
                    # RFC 3261 20.10 and RFC 4475 3.1.2.13: such a URI needs <>.
                    raise bad_request("URI with ? or , must be enclosed in <>")
                params = parse_params(";" + ptext, "address") if ptext or ";" in text else {}
                return cls(URI.parse(uri_text), None, params)
        gt = rest.find(">")
        if gt < 0:
            raise bad_request("Malformed address: missing >")
        uri = URI.parse(rest[1:gt])
        tail = rest[gt + 1 :].strip(WS)
        params = parse_params(tail, "address") if tail else {}
        address = _NAME_ADDR_TWIN()
        address.uri = uri
        address.display = display
        address.params = params
        address.__class__ = cls
        built = address
        return built

    def __str__(self) -> str:
        if self.display is not None:
            shown = self.display
            if not shown or any(TOKEN_RE.fullmatch(w) is None for w in shown.split(" ")):
                shown = quote(shown)
            head = f"{shown} <{self.uri}>"
        else:
            head = f"<{self.uri}>"
        return head + format_params(self.params)

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (RFC 3261 19.3)."""
        return self.params.get("tag")

    def with_tag(self, tag: str) -> NameAddr:
        check_local_token(tag, "tag")
        return replace(self, params={**self.params, "tag": tag})


def check_local_token(value: str, what: str) -> None:
    if TOKEN_RE.fullmatch(value) is None:
        raise LocalError(f"{what} must be a token, got {value!r}")


def check_local_params(params: dict[str, str | None]) -> None:
    """Header parameters built by our own code must serialise back to themselves."""
    for name, value in params.items():
        check_local_token(name, "parameter name")
        if value is None:
            continue
        try:
            parsed = parse_params(f";{name}={value}", "parameter")
        except RemoteError:
            raise LocalError(f"bad parameter value {name}={value!r}") from None
        if parsed.get(name.lower()) != value:
            raise LocalError(f"bad parameter value {name}={value!r}")


# RFC 3261 25.1 transport names (and RFC 7118's WS/WSS) that skip the token regex.
_TRANSPORTS = {t: t.upper() for t in ("UDP", "TCP", "TLS", "SCTP", "WS", "WSS")}
_TRANSPORTS.update({t.lower(): t for t in list(_TRANSPORTS)})
_TOKEN_CLASS = r"[A-Za-z0-9\-.!%*_+`'~]"
# The usual spelling of a via-parm in one regex (hot path): upper-case transport, a
# hostname or IPv4 address, optional port, token parameters without whitespace.
_FAST_VIA_RE = re.compile(
    r"SIP/2\.0/(UDP|TCP|TLS|SCTP|WS|WSS) "
    r"([A-Za-z0-9_][A-Za-z0-9\-_.]*+)(?::([0-9]{1,5}))?"
    rf"((?:;{_TOKEN_CLASS}++(?:={_TOKEN_CLASS}++)?)*+)"
)


# RFC 3261 25.1 name-addr without display name, in its commonest shape: a fast-path SIP
# URI in <> followed by token parameters without whitespace (groups 1-5 are the URI's).
_FAST_ADDR_RE = re.compile(rf"<{FAST_SIP_PATTERN}>((?:;{_TOKEN_CLASS}++(?:={_TOKEN_CLASS}++)?)*+)")


@dataclass(frozen=True, slots=True)
class Via:
    """One via-parm (RFC 3261 20.42): sent-protocol, sent-by and parameters."""

    transport: str
    host: str
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    def __post_init__(self) -> None:
        check_local_token(self.transport, "Via transport")
        try:
            split_hostport(self.host, "Via host")
        except RemoteError:
            raise LocalError(f"bad Via host {self.host!r}") from None
        check_local_params(self.params)

    @classmethod
    def parse(cls, text: str) -> Via:
        # RFC 3261 25.1: via-parm = sent-protocol LWS sent-by *( SEMI via-params )
        if _c_via is not None:
            found = _c_via(text)
            if found is not None:
                # The _FAST_VIA_RE shape below, cut in C (src/ivoz/sip/_scan.c).
                via = _VIA_TWIN()
                via.transport, via.host, via.port, via.params = found
                via.protocol = "SIP/2.0"
                via.__class__ = cls
                built: Via = via
                return built
        fast = _FAST_VIA_RE.fullmatch(text)
        if fast is not None and text[fast.end(2) - 1] != "-":
            transport, host, port_text, ptext = fast.groups()
            port = None
            if port_text is not None:
                port = int(port_text)
                if port > 65535:
                    raise bad_request("Port out of range in Via sent-by")
            params: dict[str, str | None] = {}
            if ptext:
                for item in ptext[1:].split(";"):
                    name, eq, value = item.partition("=")
                    params[name.lower()] = value if eq else None
            via = _VIA_TWIN()
            via.transport = transport
            via.host = host
            via.port = port
            via.params = params
            via.protocol = "SIP/2.0"
            via.__class__ = cls
            built = via
            return built
        if text.startswith("SIP/2.0/"):
            # Fast path for the usual spelling: "SIP/2.0/UDP host:port;params".
            semi = text.find(";")
            head = text[8:] if semi < 0 else text[8:semi]
            transport, space, sent_by = head.partition(" ")
            transport = _TRANSPORTS.get(transport, "")
            if transport and space and sent_by and " " not in sent_by and "\t" not in sent_by:
                host, port = split_hostport(sent_by, "Via sent-by")
                params = parse_params(text[semi:], "Via") if semi >= 0 else {}
                via = _VIA_TWIN()
                via.transport = transport
                via.host = host
                via.port = port
                via.params = params
                via.protocol = "SIP/2.0"
                via.__class__ = cls
                built = via
                return built
        semi = find_unquoted(text, ";")
        head = text if semi < 0 else text[:semi]
        parts = head.split("/", 2)
        if len(parts) != 3:
            raise bad_request("Malformed Via")
        name = parts[0].strip(WS)
        version = parts[1].strip(WS)
        rest = parts[2].lstrip(WS)
        pieces = rest.split(None, 1)
        if len(pieces) != 2:
            raise bad_request("Malformed Via: missing sent-by")
        transport, sent_by = pieces
        if (
            TOKEN_RE.fullmatch(name) is None
            or TOKEN_RE.fullmatch(version) is None
            or TOKEN_RE.fullmatch(transport) is None
        ):
            raise bad_request("Malformed Via sent-protocol")
        # RFC 3261 25.1: sent-by = host [ COLON port ], COLON allows whitespace around ":".
        sent_by = sent_by.strip(WS)
        if " " in sent_by or "\t" in sent_by:
            sent_by = "".join(sent_by.split())
        host, port = split_hostport(sent_by, "Via sent-by")
        params = parse_params(text[semi:], "Via") if semi >= 0 else {}
        return cls(transport.upper(), host, port, params, f"{name.upper()}/{version}")

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.protocol}/{self.transport} {self.host}{port}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> int | Literal[True] | None:
        """RFC 3581: True for a bare ``;rport`` (a request), the port once filled in."""
        if "rport" not in self.params:
            return None
        value = self.params["rport"]
        if value is None:
            return True
        if not value.isdigit() or not value.isascii() or int(value) > 65535:
            raise bad_request("Malformed Via rport")
        return int(value)

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    @property
    def is_rfc3261(self) -> bool:
        """RFC 3261 8.1.1.7: the branch starts with the magic cookie."""
        # RFC 4475 3.2.1: a bare magic cookie carries no identifier; use RFC 2543 matching.
        branch = self.branch
        return branch is not None and len(branch) > 7 and branch.startswith(MAGIC_COOKIE)

    def with_params(self, **params: str | None) -> Via:
        return replace(self, params={**self.params, **{k.lower(): v for k, v in params.items()}})


@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: 4711 INVITE`` (RFC 3261 20.16)."""

    seq: int
    method: str

    def __post_init__(self) -> None:
        if not 0 <= self.seq <= CSEQ_MAX:
            raise LocalError(f"CSeq number out of range: {self.seq}")
        check_local_token(self.method, "CSeq method")

    @classmethod
    def parse(cls, text: str) -> CSeq:
        if _c_cseq is not None:
            found = _c_cseq(text)
            if found is not None:
                # The plain "digits SP token" shape, cut in C (src/ivoz/sip/_scan.c).
                cseq = _CSEQ_TWIN()
                cseq.seq, cseq.method = found
                cseq.__class__ = cls
                built: CSeq = cseq
                return built
        parts = text.split()
        if len(parts) != 2:
            raise bad_request("Malformed CSeq")
        number, method = parts
        if not number.isdigit() or not number.isascii() or len(number) > 10:
            raise bad_request("Malformed CSeq number")
        seq = int(number)
        if seq > CSEQ_MAX:
            raise bad_request("CSeq number out of range")
        if method not in _COMMON_METHODS:
            check_token(method, "CSeq method")
        cseq = _CSEQ_TWIN()
        cseq.seq = seq
        cseq.method = method
        cseq.__class__ = cls
        built = cseq
        return built

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


@dataclass(frozen=True, slots=True)
class Contact:
    """One Contact value (RFC 3261 20.10): an address with parameters, or ``*``."""

    address: NameAddr | None
    star: bool = False

    def __post_init__(self) -> None:
        if self.star == (self.address is not None):
            raise LocalError("a Contact is either * or an address")

    @classmethod
    def parse(cls, text: str) -> Contact:
        text = text.strip(WS)
        if text == "*":
            return cls(None, star=True)
        return cls(NameAddr.parse(text))

    def __str__(self) -> str:
        return "*" if self.address is None else str(self.address)

    @property
    def params(self) -> dict[str, str | None]:
        return {} if self.address is None else self.address.params

    @property
    def uri(self) -> URI | None:
        return None if self.address is None else self.address.uri

    @property
    def expires(self) -> int | None:
        """The ``expires`` parameter in seconds (RFC 3261 10.2.1.1).

        None when absent, and also when malformed or above 2**32-1: RFC 4475 3.1.2.4 lets
        the registrar treat such a value as absent and apply its default.
        """
        value = self.params.get("expires")
        if value is None or not value.isdigit() or not value.isascii():
            return None
        seconds = int(value)
        return seconds if seconds <= EXPIRES_MAX else None

    @property
    def q(self) -> float | None:
        """The ``q`` preference (RFC 3261 20.10), None when absent or malformed."""
        value = self.params.get("q")
        if value is None:
            return None
        try:
            q = float(value)
        except ValueError:
            return None
        return q if 0.0 <= q <= 1.0 else None


_NAME_ADDR_TWIN = slots_twin(NameAddr)
_VIA_TWIN = slots_twin(Via)
_CSEQ_TWIN = slots_twin(CSeq)
