"""SIP requests and responses: lazy parsing and serialisation (RFC 3261 sections 7 and 25).

`parse_message` does the least work that makes a message usable: it splits the start
line, cuts the header block into (name, raw value) pairs once and takes the body by
Content-Length. Every typed accessor (`Message.via`, `cseq`, `from_tag`, `contacts`...)
parses only the header it needs, on first use, and caches the result in the `Headers`.
A malformed message raises `RemoteError` carrying the status to answer, never anything
else; `Message.check` parses every header the core understands, for callers that want
the whole message validated up front. The cut of the header block and the common shapes
of the hot accessors have C twins (`_scan.c`, see `ivoz.sip.speedups`) that give the
same results; this module's code handles everything they hand back.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from itertools import repeat
from operator import itemgetter
from typing import cast

from .errors import LocalError, RemoteError, bad_request
from .grammar import TOKEN_RE, WS, first_element, split_list
from .headers import _KNOWN, COMPACT, Headers
from .uri import SUPPORTED_SCHEMES, URI
from .values import Contact, CSeq, NameAddr, Via

SIP_VERSION = "SIP/2.0"  # RFC 3261 7.1
# RFC 3261 25.1: SIP-Version = "SIP" "/" 1*DIGIT "." 1*DIGIT (case-insensitive, 7.1)
_VERSION_RE = re.compile(r"[Ss][Ii][Pp]/[0-9]+\.[0-9]+")
# RFC 3261 25.1: Content-Length is 1*DIGIT; more than this many octets is nonsense.
MAX_CONTENT_LENGTH = 2**31 - 1
# RFC 3261 20.22: Max-Forwards is an integer in the range 0-255.
MAX_FORWARDS_MAX = 255
# RFC 3261 25.1: callid = word [ "@" word ]
_WORD = r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+"
_CALL_ID_RE = re.compile(rf"{_WORD}(?:@{_WORD})?")
# RFC 3261 7.3.1: a line that starts with whitespace continues the previous one.
_FOLD_RE = re.compile(r"\r?\n[ \t]+")
# Items of a ``str.partition`` result: the header name and the ":" separator.
_NAME = itemgetter(0)
_SEPARATOR = itemgetter(1)


def _key(name: str) -> str:
    key = name.lower()
    return COMPACT.get(key, key)


def _split_slowly(
    head: str,
) -> tuple[list[str], list[tuple[str, str, str]], RemoteError | None]:
    """Line by line for unusual spellings, folding and errors.

    Keeps the good lines and the first error, so that a 400 can still be answered.
    """
    if "\n " in head or "\n\t" in head:
        # RFC 3261 7.3.1: a line starting with whitespace continues the previous one.
        head = _FOLD_RE.sub(" ", head)
    keys: list[str] = []
    lines: list[tuple[str, str, str]] = []
    error: RemoteError | None = None
    for line in head.split("\r\n")[1:]:
        name, colon, value = line.partition(":")
        name = name.rstrip(WS)
        if not colon or TOKEN_RE.fullmatch(name) is None:
            error = error or bad_request("Malformed header line")
            continue
        if "\r" in value or "\n" in value:
            error = error or bad_request("Bare CR or LF in a header")
            continue
        keys.append(_KNOWN.get(name) or _key(name))
        lines.append((name, ":", value))
    return keys, lines, error


# RFC 3261 21: default reason phrases.
REASONS: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    199: "Early Dialog Terminated",
    200: "OK",
    202: "Accepted",
    204: "No Notification",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    305: "Use Proxy",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    412: "Conditional Request Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Long",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    417: "Unknown Resource-Priority",
    420: "Bad Extension",
    421: "Extension Required",
    422: "Session Interval Too Small",
    423: "Interval Too Brief",
    428: "Use Identity Header",
    429: "Provide Referrer Identity",
    433: "Anonymity Disallowed",
    436: "Bad Identity-Info",
    437: "Unsupported Certificate",
    438: "Invalid Identity Header",
    439: "First Hop Lacks Outbound Support",
    440: "Max-Breadth Exceeded",
    469: "Bad Info Package",
    470: "Consent Needed",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    485: "Ambiguous",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    493: "Undecipherable",
    494: "Security Agreement Required",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    580: "Precondition Failure",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
    607: "Unwanted",
}


def reason_phrase(status: int) -> str:
    """The RFC 3261 section 21 phrase for `status`, or its class's generic one."""
    phrase = REASONS.get(status)
    if phrase is not None:
        return phrase
    return REASONS.get(status // 100 * 100, "Unknown")


def _as_headers(headers: Headers | Iterable[tuple[str, str]] | None) -> Headers:
    if headers is None:
        return Headers()
    if isinstance(headers, Headers):
        return headers
    return Headers(headers)


class Message:
    """What requests and responses share: headers, body and the lazy typed accessors."""

    __slots__ = ("body", "headers")

    headers: Headers
    body: bytes

    def __init__(
        self, headers: Headers | Iterable[tuple[str, str]] | None = None, body: bytes = b""
    ) -> None:
        self.headers = _as_headers(headers)
        self.body = body

    # -- serialisation -------------------------------------------------------------

    @property
    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The message on the wire; Content-Length is set to ``len(body)``."""
        body = self.body
        lines = [self.start_line]
        length_done = False
        h = self.headers
        for key, (name, _, raw) in zip(h._keys, h._lines, strict=True):
            if key == "content-length":
                if length_done:
                    continue
                value = str(len(body))
                length_done = True
            else:
                value = raw.strip(WS)
            lines.append(f"{name}: {value}")
        if not length_done:
            # RFC 3261 20.14: mandatory on streams, harmless on datagrams.
            lines.append(f"Content-Length: {len(body)}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + body

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    # -- lazy typed accessors --------------------------------------------------------

    def _one(self, key: str, name: str) -> str:
        """The raw value of the single-valued header `key` (400 if missing or repeated)."""
        headers = self.headers
        keys = headers._keys
        count = keys.count(key)
        if count == 1:
            return headers._lines[keys.index(key)][2].strip(WS)
        if count:
            # RFC 3261 7.3.1 and RFC 4475 3.3.8: these header fields appear at most once.
            raise _flag(self, bad_request(f"Multiple {name} header fields"))
        raise _flag(self, bad_request(f"Missing {name} header"))

    def _essential(self, exc: RemoteError) -> RemoteError:
        """The same error, flagged with whether a response can still be built."""
        return _flag(self, exc)

    @property
    def via(self) -> Via:
        """The top Via (RFC 3261 8.2.6.2, 18.2.1); only its first element is parsed."""
        headers = self.headers
        cache = headers._cache
        value = cache.get("via")
        if value is None:
            keys = headers._keys
            if "via" not in keys:
                raise _flag(self, bad_request("Missing Via header"))
            raw = _single(keys, headers._lines, "via")
            if raw is None:
                raw = headers._lines[keys.index("via")][2].strip(WS)
            try:
                value = cache["via"] = Via.parse(first_element(raw) if "," in raw else raw)
            except RemoteError as exc:
                raise self._essential(exc) from None
        return value  # type: ignore[return-value]

    @property
    def vias(self) -> list[Via]:
        cache = self.headers._cache
        value = cache.get("vias")
        if value is None:
            try:
                items = self.headers.get_all("Via")
                if not items:
                    raise bad_request("Missing Via header")
                value = cache["vias"] = [Via.parse(v) for v in items]
            except RemoteError as exc:
                raise self._essential(exc) from None
        return list(cast(list[Via], value))

    @property
    def call_id(self) -> str:
        """RFC 3261 20.8: Call-ID = word [ "@" word ]."""
        headers = self.headers
        cache = headers._cache
        value = cache.get("call-id")
        if value is None:
            raw = _single(headers._keys, headers._lines, "call-id")
            if raw is None:
                raw = self._one("call-id", "Call-ID")
            if _CALL_ID_RE.fullmatch(raw) is None:
                raise _flag(self, bad_request("Malformed Call-ID"))
            value = cache["call-id"] = raw
        return value  # type: ignore[return-value]

    @property
    def cseq(self) -> CSeq:
        return self._cseq()

    def _cseq(self) -> CSeq:
        headers = self.headers
        cache = headers._cache
        value = cache.get("cseq")
        if value is None:
            raw = _single(headers._keys, headers._lines, "cseq")
            if raw is None:
                raw = self._one("cseq", "CSeq")
            try:
                value = cache["cseq"] = CSeq.parse(raw)
            except RemoteError as exc:
                raise self._essential(exc) from None
        return value  # type: ignore[return-value]

    def _name_addr(self, key: str, name: str) -> NameAddr:
        cache = self.headers._cache
        value = cache.get(key)
        if value is None:
            raw = self._one(key, name)
            try:
                value = cache[key] = NameAddr.parse(raw)
            except RemoteError as exc:
                raise self._essential(exc) from None
        return value  # type: ignore[return-value]

    @property
    def from_(self) -> NameAddr:
        return self._name_addr("from", "From")

    @property
    def to(self) -> NameAddr:
        return self._name_addr("to", "To")

    @property
    def from_tag(self) -> str | None:
        """The From tag, read without parsing the rest of From (`from_` validates it)."""
        return self._tag("from", "from-tag", "From")

    @property
    def to_tag(self) -> str | None:
        """The To tag, read without parsing the rest of To (`to` validates it)."""
        return self._tag("to", "to-tag", "To")

    def _tag(self, key: str, tag_key: str, name: str) -> str | None:
        headers = self.headers
        cache = headers._cache
        tag = cache.get(tag_key, _SLOW)
        if tag is not _SLOW:
            return tag  # type: ignore[return-value]
        address = cache.get(key)
        if address is not None:
            return cast(NameAddr, address).params.get("tag")
        raw = _single(headers._keys, headers._lines, key)
        if raw is None:
            raw = self._one(key, name)
        tag = _SLOW if _c_tag is None else _c_tag(raw, _SLOW)
        if tag is _SLOW:
            tag = _fast_tag(raw)
        if tag is _SLOW:
            tag = self._name_addr(key, name).params.get("tag")
        cache[tag_key] = tag
        return tag  # type: ignore[return-value]

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (RFC 3261 20.22, 0-255), None when absent."""
        headers = self.headers
        cache = headers._cache
        cached = cache.get("max-forwards", _SLOW)
        if cached is not _SLOW:
            return cast("int | None", cached)
        value: int | None = None
        raw = _single(headers._keys, headers._lines, "max-forwards")
        if raw is not None or "max-forwards" in headers._keys:
            if raw is None:
                raw = self._one("max-forwards", "Max-Forwards")
            if not raw.isdigit() or not raw.isascii():
                raise bad_request("Malformed Max-Forwards")
            value = int(raw)
            if value > MAX_FORWARDS_MAX:
                raise bad_request("Max-Forwards out of range")
        cache["max-forwards"] = value
        return value

    def _addresses(self, key: str, name: str) -> list[NameAddr]:
        headers = self.headers
        cache = headers._cache
        value = cache.get(key)
        if value is None:
            raw = _single(headers._keys, headers._lines, key)
            if raw is not None:
                if "," in raw:
                    value = [NameAddr.parse(v) for v in split_list(raw)]
                else:
                    value = [NameAddr.parse(raw)] if raw else []
            elif key in headers._keys:
                value = [NameAddr.parse(v) for v in headers.get_all(name)]
            else:
                value = []
            cache[key] = value
        return value.copy()  # type: ignore[attr-defined,no-any-return]

    @property
    def routes(self) -> list[NameAddr]:
        """Route values in order (RFC 3261 20.34)."""
        return self._addresses("route", "Route")

    @property
    def record_routes(self) -> list[NameAddr]:
        """Record-Route values in order (RFC 3261 20.30)."""
        return self._addresses("record-route", "Record-Route")

    @property
    def contacts(self) -> list[Contact]:
        """Contact values (RFC 3261 20.10); ``*`` only alone (RFC 3261 10.2.2)."""
        cache = self.headers._cache
        value = cache.get("contact")
        if value is None:
            contacts = [Contact.parse(v) for v in self.headers.get_all("Contact")]
            if len(contacts) > 1 and any(c.star for c in contacts):
                raise bad_request("Contact * mixed with other contacts")
            value = cache["contact"] = contacts
        return list(cast(list[Contact], value))

    @property
    def content_type(self) -> str | None:
        """The media type, lower-cased, without parameters (RFC 3261 20.15)."""
        raw = self.headers.get("Content-Type")
        if raw is None:
            return None
        media = raw.split(";", 1)[0].strip(WS).lower()
        kind, slash, sub = media.partition("/")
        if (
            not slash
            or TOKEN_RE.fullmatch(kind) is None
            or TOKEN_RE.fullmatch(sub.strip(WS)) is None
        ):
            raise bad_request("Malformed Content-Type")
        return f"{kind.strip(WS)}/{sub.strip(WS)}"

    @property
    def expires(self) -> int | None:
        """The Expires header in seconds (RFC 3261 20.19), None when absent or too large."""
        raw = self.headers.get("Expires")
        if raw is None:
            return None
        raw = raw.strip(WS)
        if not raw.isdigit() or not raw.isascii():
            raise bad_request("Malformed Expires")
        value = int(raw)
        # RFC 4475 3.1.2.4: an overlarge expiry may be treated as absent (default applies).
        return value if value <= 2**32 - 1 else None

    def option_tags(self, name: str) -> list[str]:
        """The option tags of Require, Proxy-Require, Supported or Unsupported."""
        tags = self.headers.get_all(name)
        for tag in tags:
            if TOKEN_RE.fullmatch(tag) is None:
                raise bad_request(f"Malformed {name}")
        return tags

    def check(self) -> None:
        """Parse every header the core understands; RemoteError on the first bad one."""
        self.vias  # noqa: B018
        self.call_id  # noqa: B018
        self.cseq  # noqa: B018
        self.from_  # noqa: B018
        self.to  # noqa: B018
        self.max_forwards  # noqa: B018
        self.contacts  # noqa: B018
        self.routes  # noqa: B018
        self.record_routes  # noqa: B018
        self.content_type  # noqa: B018
        self.expires  # noqa: B018
        for name in ("Require", "Proxy-Require", "Supported", "Unsupported"):
            self.option_tags(name)


class Request(Message):
    """A SIP request (RFC 3261 7.1). ``request_uri`` is the raw text, `uri` parses it."""

    __slots__ = ("_uri", "method", "request_uri", "version")

    def __init__(
        self,
        method: str,
        uri: URI | str,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
        *,
        version: str = SIP_VERSION,
    ) -> None:
        super().__init__(headers, body)
        if TOKEN_RE.fullmatch(method) is None:
            raise LocalError(f"bad method {method!r}")
        self.method = method
        self.version = version
        if isinstance(uri, URI):
            self._uri: URI | None = uri
            self.request_uri = str(uri)
        else:
            if not uri or any(c in uri for c in " \t\r\n"):
                raise LocalError(f"bad Request-URI {uri!r}")
            self._uri = None
            self.request_uri = uri

    @property
    def uri(self) -> URI:
        """The Request-URI parsed; 416 for a scheme we do not serve (RFC 3261 8.2.2.1)."""
        uri = self._uri
        if uri is None:
            uri = URI.parse(self.request_uri)
            if uri.scheme not in SUPPORTED_SCHEMES:
                raise RemoteError(416, "Unsupported URI Scheme")
            if uri.headers:
                # RFC 3261 19.1.1 (table) and RFC 4475 3.1.2.11: no headers in a Request-URI.
                raise bad_request("Headers in the Request-URI")
            self._uri = uri
        return uri

    @uri.setter
    def uri(self, value: URI) -> None:
        self._uri = value
        self.request_uri = str(value)

    @property
    def start_line(self) -> str:
        return f"{self.method} {self.request_uri} {self.version}"

    @property
    def cseq(self) -> CSeq:
        cseq = self._cseq()
        # RFC 3261 8.1.1.5 and RFC 4475 3.1.2.17: the CSeq method matches the request's.
        if cseq.method != self.method:
            raise bad_request("CSeq method does not match the request method")
        return cseq

    def check(self) -> None:
        self.uri  # noqa: B018
        super().check()

    def __repr__(self) -> str:
        return f"<sip.Request {self.method} {self.request_uri}>"


class Response(Message):
    """A SIP response (RFC 3261 7.2)."""

    __slots__ = ("reason", "status", "version")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] | None = None,
        body: bytes = b"",
        *,
        version: str = SIP_VERSION,
    ) -> None:
        super().__init__(headers, body)
        # RFC 3261 7.2: Status-Code is a 3-digit integer; 1xx to 6xx are defined.
        if not 100 <= status <= 699:
            raise LocalError(f"status out of range: {status}")
        self.status = status
        self.reason = reason_phrase(status) if reason is None else reason
        if "\r" in self.reason or "\n" in self.reason:
            raise LocalError("reason phrase holds a line break")
        self.version = version

    @property
    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<sip.Response {self.status} {self.reason}>"


# -- parsing ---------------------------------------------------------------------------


def parse_message(
    data: bytes, *, datagram: bool = True, max_size: int | None = None
) -> Request | Response:
    """Parse one SIP message; raises only `RemoteError`.

    datagram=True: the body runs to the datagram's end and Content-Length, when present,
    must not exceed it (RFC 3261 18.3: extra octets are discarded). datagram=False:
    `data` is exactly one framed message whose body the stream framer cut already.
    max_size: a message longer than this many octets is refused with 513 (RFC 3261
    21.5.14), answerable when its headers allow.
    """
    if type(data) is not bytes:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise LocalError("parse_message takes bytes")
        data = bytes(data)
    if _scan is not None:
        scanned = _scan(data, _KNOWN, _key)
        if scanned is not None:
            first, keys, parts, body_start, length = scanned
            if length >= 0 and (max_size is None or len(data) <= max_size):
                # The common case in few steps: one plain Content-Length that fits the
                # data; anything else goes through _finish, which decides the errors.
                end = body_start + length
                if end == len(data) or (datagram and end < len(data)):
                    headers = Headers._raw(keys, parts)
                    message = (
                        _response(first, headers)
                        if first.startswith("SIP/")
                        else _request(first, headers, None)
                    )
                    message.body = data[body_start:end]
                    return message
            return _finish(data, first, keys, parts, None, body_start, datagram, max_size)
    start = 0
    # RFC 3261 7.5: implementations SHOULD ignore CRLFs before the start line.
    if data[:1] in (b"\r", b"\n"):
        while start < len(data) and data[start] in b"\r\n":
            start += 1
    end = data.find(b"\r\n\r\n", start)
    if end >= 0:
        head = data[start:end].decode("utf-8", "surrogateescape")
        body_start = end + 4
    else:
        # Tolerate bare LF line ends (seen from hand-written test tools).
        end = data.find(b"\n\n", start)
        if end < 0:
            raise RemoteError(400, "Missing empty line after the headers", respondable=False)
        head = data[start:end].decode("utf-8", "surrogateescape")
        head = head.replace("\r\n", "\n").replace("\n", "\r\n")
        body_start = end + 2
    lines = head.split("\r\n")
    first = lines.pop(0)
    # Fast path: every line is "Known-Name: value" as commonly spelt, cut by C-level
    # map() calls (no bytecode runs per line). Each split separator holds one CR and one
    # LF, so extra ones are bare CR/LF inside a line; a line without ":" has an empty
    # separator.
    parts = list(map(str.partition, lines, repeat(":")))
    keys = cast(list[str], list(map(_KNOWN.get, map(_NAME, parts))))
    header_error: RemoteError | None = None
    count = len(parts)
    if (
        None in keys
        or not all(map(_SEPARATOR, parts))
        or head.count("\n") != count
        or head.count("\r") != count
    ):
        keys, parts, header_error = _split_slowly(head)
    return _finish(data, first, keys, parts, header_error, body_start, datagram, max_size)


def _finish(
    data: bytes,
    first: str,
    keys: list[str],
    parts: list[tuple[str, str, str]],
    header_error: RemoteError | None,
    body_start: int,
    datagram: bool,
    max_size: int | None,
) -> Request | Response:
    """The message from its cut start line and header lines, and its body."""
    # Values keep their surrounding whitespace until read (Headers strips on access).
    headers = Headers._raw(keys, parts)

    message: Request | Response
    if first.startswith("SIP/"):
        message = _response(first, headers)
        if header_error is not None:
            raise RemoteError(header_error.status, header_error.reason, respondable=False)
    else:
        message = _request(first, headers, header_error)
    body = data[body_start:]
    length_count = keys.count("content-length")
    if length_count:
        try:
            length = parts[keys.index("content-length")][2].strip(WS)
            if length_count > 1:
                lengths = {
                    v.strip(WS)
                    for k, (_, _, v) in zip(keys, parts, strict=True)
                    if k == "content-length"
                }
                if len(lengths) > 1:
                    # RFC 4475 3.3.9 (mcl01): conflicting Content-Length values.
                    raise bad_request("Multiple Content-Length values")
            if not length.isdigit() or not length.isascii() or len(length) > 10:
                raise bad_request("Malformed Content-Length")
            size = int(length)
            if size > MAX_CONTENT_LENGTH:
                raise bad_request("Content-Length out of range")
            if size > len(body):
                # RFC 3261 18.3: the packet ended before the body; 400 for a request.
                raise bad_request("Content-Length exceeds the message")
            if datagram:
                # RFC 3261 18.3: octets beyond Content-Length are discarded.
                body = body[:size]
            elif size != len(body):
                raise bad_request("Content-Length does not match the framed body")
        except RemoteError as exc:
            raise _flag(message, exc) from None
    message.body = body
    if max_size is not None and len(data) > max_size:
        # RFC 3261 21.5.14: 513 Message Too Large.
        raise _flag(message, RemoteError(513, "Message Too Large"))
    return message


def _py_single(keys: list[str], lines: list[tuple[str, str, str]], key: str) -> str | None:
    """The value of the one line with `key`, stripped; None when absent or repeated."""
    if keys.count(key) != 1:
        return None
    return lines[keys.index(key)][2].strip(WS)


# The compiled twins (src/ivoz/sip/_scan.c, switched by `ivoz.sip.speedups`): the same
# results as the Python code for the common, clean shape of input, None (`_c_tag`:
# _SLOW) for anything else, which the Python code then handles.
_scan: Callable[..., tuple[str, list[str], list[tuple[str, str, str]], int, int] | None] | None
_c_tag: Callable[[str, object], str | object | None] | None
_single: Callable[[list[str], list[tuple[str, str, str]], str], str | None]
try:
    from ._scan import scan as _scan
    from ._scan import single as _single
    from ._scan import tag as _c_tag
except ImportError:  # pragma: no cover - a build without a C compiler
    _scan = _c_tag = None
    _single = _py_single

_SLOW = object()
# RFC 3261 19.3 / 25.1: tag-param = "tag" EQUAL token (EQUAL allows whitespace around "=");
# the tag must end the parameter (";", end, or whitespace).
_TAG_RE = re.compile(r";[ \t]*[Tt][Aa][Gg][ \t]*=[ \t]*([A-Za-z0-9\-.!%*_+`'~]+)[ \t]*(?:;|\Z)")


def _fast_tag(raw: str) -> str | object | None:
    """The ``tag`` parameter of a From/To value, or _SLOW when a full parse is needed.

    RFC 3261 20.10: after a name-addr's ">" (or an addr-spec's first ";") come the
    header parameters. The last ">" ends the URI (a URI holds no ">" and a quoted
    display name comes before it); a quoted string after it takes the slow path, so a
    ";tag=" inside quotes is never mistaken for the tag.
    """
    gt = raw.rfind(">")
    if gt >= 0:
        tail = raw[gt + 1 :]
    elif "<" in raw:
        return _SLOW
    else:
        semi = raw.find(";")
        if semi < 0:
            return None
        tail = raw[semi:]
    if '"' in tail:
        return _SLOW
    found = _TAG_RE.search(tail)
    if found is None:
        return None if "tag" not in tail.lower() else _SLOW
    if tail.lower().count("tag") > 1 and _TAG_RE.search(tail, found.end() - 1) is not None:
        # A repeated tag: let the full parse decide (it keeps the last).
        return _SLOW
    return found.group(1)


def _flag(message: Message, exc: RemoteError) -> RemoteError:
    """`exc` with ``respondable`` telling whether an answer can be built (8.2.6.2)."""
    if isinstance(message, Request) and _answerable(message):
        return RemoteError(exc.status, exc.reason, request=message)
    return RemoteError(exc.status, exc.reason, respondable=False)


def _answerable(message: Message) -> bool:
    if not isinstance(message, Request) or message.method == "ACK":
        # RFC 3261 17: nobody answers a response or an ACK.
        return False
    # RFC 3261 8.2.6.2: a response copies Via, From, To, Call-ID and CSeq verbatim, so
    # they must be present; only the top Via's sent-by must make sense, to route it back
    # (RFC 4475 3.1.2.1 and 3.1.2.4 expect a 400 even when parameters or CSeq are bad).
    headers = message.headers
    for name in ("Call-ID", "CSeq", "From", "To"):
        if not headers.get(name):
            return False
    via = headers.get("Via")
    if not via:
        return False
    try:
        Via.parse(via.split(";", 1)[0].split(",", 1)[0])
    except RemoteError:
        return False
    return True


def _response(first: str, headers: Headers) -> Response:
    # RFC 3261 7.2: Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
    parts = first.split(" ", 2)
    version = parts[0]
    if version != SIP_VERSION:
        if _VERSION_RE.fullmatch(version) is None:
            raise RemoteError(400, "Malformed status line", respondable=False)
        if version.upper() != SIP_VERSION:
            raise RemoteError(505, "Version Not Supported", respondable=False)
    if len(parts) < 2:
        raise RemoteError(400, "Malformed status line", respondable=False)
    code = parts[1]
    # RFC 3261 25.1: Status-Code is exactly three digits, 1xx to 6xx.
    if len(code) != 3 or not code.isdigit() or not code.isascii() or not "1" <= code[0] <= "6":
        raise RemoteError(400, "Malformed status code", respondable=False)
    reason = parts[2] if len(parts) == 3 else ""
    if any(c in reason for c in "\r\n"):
        raise RemoteError(400, "Malformed reason phrase", respondable=False)
    response = Response.__new__(Response)
    response.headers = headers
    response.body = b""
    response.status = int(code)
    response.reason = reason
    response.version = version
    return response


# Methods of RFC 3261 and its extensions, known to be tokens (skips the regex).
_METHODS = frozenset(
    {
        "INVITE",
        "ACK",
        "BYE",
        "CANCEL",
        "OPTIONS",
        "REGISTER",
        "PRACK",
        "SUBSCRIBE",
        "NOTIFY",
        "PUBLISH",
        "INFO",
        "REFER",
        "MESSAGE",
        "UPDATE",
    }
)


def _request(first: str, headers: Headers, header_error: RemoteError | None) -> Request:
    # RFC 3261 7.1: Request-Line = Method SP Request-URI SP SIP-Version CRLF
    # (exactly one SP between the elements: RFC 4475 3.1.2.7 and 3.1.2.8).
    parts = first.split(" ")
    request = Request.__new__(Request)
    request.headers = headers
    request.body = b""
    request._uri = None
    if len(parts) != 3 or not all(parts):
        request.method = parts[0] if parts and TOKEN_RE.fullmatch(parts[0]) else "UNKNOWN"
        request.request_uri = "sip:invalid"
        request.version = SIP_VERSION
        if header_error is None:
            raise _flag(request, bad_request("Malformed Request-Line"))
        raise RemoteError(400, "Malformed Request-Line", respondable=False)
    method, uri, version = parts
    request.method = method
    request.request_uri = uri
    request.version = version
    if method not in _METHODS and TOKEN_RE.fullmatch(method) is None:
        raise RemoteError(400, "Malformed method", respondable=False)
    if header_error is not None:
        raise _flag(request, header_error)
    if version != SIP_VERSION:
        if _VERSION_RE.fullmatch(version) is None:
            raise _flag(request, bad_request("Malformed SIP-Version"))
        if version.upper() != SIP_VERSION:
            # RFC 3261 8.2.2 / RFC 4475 3.1.2.16: other versions get 505.
            raise _flag(request, RemoteError(505, "Version Not Supported"))
        request.version = SIP_VERSION
    return request


# -- building --------------------------------------------------------------------------


def make_response(
    request: Request, status: int, reason: str | None = None, *, to_tag: str | None = None
) -> Response:
    """A response to `request` per RFC 3261 8.2.6.

    Copies every Via (in order, verbatim), From, To, Call-ID and CSeq (8.2.6.2), and
    Timestamp into a 100 (8.2.6.1). `to_tag` is added when the To has no tag yet.
    Record-Route for dialog-creating responses is left to the caller.
    """
    src = request.headers
    headers = Headers()
    for key, line in zip(src._keys, src._lines, strict=True):
        if key == "via":
            headers._keys.append(key)
            headers._lines.append(line)
    for name in ("From", "To", "Call-ID", "CSeq"):
        copied = src.get(name)
        if copied is None:
            raise LocalError(f"cannot answer a request without {name}")
        if name == "To" and to_tag is not None and _lacks_tag(request):
            if TOKEN_RE.fullmatch(to_tag) is None:
                raise LocalError(f"bad To tag {to_tag!r}")
            # RFC 3261 8.2.6.2: the UAS adds a tag to the To of a response.
            copied = f"{copied};tag={to_tag}"
        headers._insert(len(headers._keys), name.lower(), name, copied)
    if status == 100:
        timestamp = src.get("Timestamp")
        if timestamp is not None:
            headers.add("Timestamp", timestamp)
    return Response(status, reason, headers)


def _lacks_tag(request: Request) -> bool:
    try:
        return request.to_tag is None
    except RemoteError:
        # Answering a malformed request (often with 400): its To is copied verbatim and
        # the tag appended, so the client can still match the response.
        return "tag=" not in (request.headers.get("To") or "").lower()


def new_branch() -> str:
    """A fresh Via branch with the RFC 3261 8.1.1.7 magic cookie."""
    return "z9hG4bK" + secrets.token_hex(10)


def new_tag() -> str:
    """A fresh From/To tag: at least 32 bits of randomness (RFC 3261 19.3)."""
    return secrets.token_hex(8)


def new_call_id(host: str | None = None) -> str:
    """A fresh, globally unique Call-ID (RFC 3261 8.1.1.4)."""
    token = secrets.token_hex(16)
    return token if host is None else f"{token}@{host}"


__all__ = [
    "MAX_FORWARDS_MAX",
    "REASONS",
    "SIP_VERSION",
    "Message",
    "Request",
    "Response",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_message",
    "reason_phrase",
    "split_list",
]
