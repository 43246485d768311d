"""Shared scanning of RFC 3261 section 25 lexical elements.

Tokens, quoted strings (with backslash escapes), comma-separated lists that respect
quotes and angle brackets, and ``;name=value`` parameter lists. Every helper raises
`RemoteError` (400) on malformed input and never anything else; values are kept verbatim
(quoted parameter values keep their quotes) so that serialising gives back what came in.
"""

from __future__ import annotations

import re
from itertools import repeat
from typing import Any

from .errors import LocalError, RemoteError, bad_request

# RFC 3261 25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")
TOKEN_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# RFC 3261 25.1: word additionally allows ( ) < > : \ DQUOTE / [ ] ? { }
WORD_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}]+")
# RFC 3261 25.1: LWS is linear white space; after unfolding only SP and HTAB remain.
WS = " \t"


def is_token(text: str) -> bool:
    """True when `text` is an RFC 3261 token."""
    return TOKEN_RE.fullmatch(text) is not None


def check_token(text: str, what: str) -> str:
    """`text` when it is a token, else RemoteError 400 naming `what`."""
    if TOKEN_RE.fullmatch(text) is None:
        raise bad_request(f"Malformed {what}")
    return text


def skip_quoted(text: str, start: int) -> int:
    """Index just after the quoted-string opening at ``text[start] == '"'``.

    RFC 3261 25.1: quoted-pair = "\\" (%x00-09 / %x0B-0C / %x0E-7F); CR and LF may not
    appear in a quoted string.
    """
    end = text.find('"', start + 1)
    if end >= 0:
        inner = text[start + 1 : end]
        if "\\" not in inner and "\r" not in inner and "\n" not in inner:
            return end + 1
    i = start + 1
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            return i + 1
        if c == "\\":
            if i + 1 >= n or text[i + 1] in "\r\n":
                break
            i += 2
            continue
        if c in "\r\n":
            break
        i += 1
    raise bad_request("Unterminated quoted string")


def unquote(text: str) -> str:
    """The content of a quoted-string, escapes resolved; other text is returned as is."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        if "\\" not in inner:
            return inner
        out: list[str] = []
        i = 0
        while i < len(inner):
            c = inner[i]
            if c == "\\" and i + 1 < len(inner):
                out.append(inner[i + 1])
                i += 2
            else:
                out.append(c)
                i += 1
        return "".join(out)
    return text


def quote(text: str) -> str:
    """`text` as an RFC 3261 quoted-string (escaping backslash and double quote)."""
    if "\r" in text or "\n" in text:
        raise LocalError("a quoted string cannot hold CR or LF")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def find_unquoted(text: str, chars: str, start: int = 0) -> int:
    """Index of the first of `chars` outside quoted strings and <...>, or -1."""
    if '"' not in text and "<" not in text:
        best = -1
        for c in chars:
            found = text.find(c, start)
            if found >= 0 and (best < 0 or found < best):
                best = found
        return best
    i = start
    n = len(text)
    depth = 0
    while i < n:
        c = text[i]
        if c == '"':
            i = skip_quoted(text, i)
            continue
        if c == "<":
            depth += 1
        elif c == ">":
            if depth:
                depth -= 1
        elif depth == 0 and c in chars:
            return i
        i += 1
    return -1


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value (RFC 3261 7.3.1), respecting quotes and <>.

    Empty elements (``a,,b``) are dropped, as the ABNF #rule allows.
    """
    if "," not in value:
        stripped = value.strip(WS)
        return [stripped] if stripped else []
    if '"' not in value and "<" not in value:
        # No quoted string or <URI> that could hold a comma: every comma separates.
        return [part for part in map(str.strip, value.split(","), repeat(WS)) if part]
    parts: list[str] = []
    start = 0
    while True:
        comma = find_unquoted(value, ",", start)
        part = value[start:] if comma < 0 else value[start:comma]
        part = part.strip(WS)
        if part:
            parts.append(part)
        if comma < 0:
            return parts
        start = comma + 1


def first_element(value: str) -> str:
    """The first element of a comma-separated list (cheap when there is a single one)."""
    if "," not in value:
        return value.strip(WS)
    for part in split_list(value):
        return part
    return ""


def parse_params(text: str, what: str) -> dict[str, str | None]:
    """Parse ``;name[=value]`` parameters (RFC 3261 25.1 generic-param).

    `text` starts at the first ``;`` (or is empty). Names are lower-cased (they compare
    case-insensitively); values are kept verbatim, quoted-strings with their quotes.
    """
    params: dict[str, str | None] = {}
    if not text:
        return params
    if text[0] != ";":
        raise bad_request(f"Malformed {what} parameters")
    if _SIMPLE_PARAMS_RE.fullmatch(text) is not None:
        # The common case, checked by one regex: tokens only, no spaces.
        for item in text[1:].split(";"):
            name, eq, value = item.partition("=")
            params[name.lower()] = value if eq else None
        return params
    if '"' in text:
        parts: list[str] = []
        i = 1
        while True:
            end = find_unquoted(text, ";", i)
            parts.append(text[i:] if end < 0 else text[i:end])
            if end < 0:
                break
            i = end + 1
    else:
        parts = text[1:].split(";")
    for item in parts:
        name, eq, value = item.partition("=")
        name = name.strip(WS)
        if TOKEN_RE.fullmatch(name) is None:
            raise bad_request(f"Malformed {what} parameter")
        if eq:
            value = value.strip(WS)
            if not value:
                raise bad_request(f"Empty {what} parameter value")
            if value[0] == '"':
                if skip_quoted(value, 0) != len(value):
                    raise bad_request(f"Malformed {what} parameter value")
            elif value[0] == "[":
                # RFC 3261 25.1: gen-value may be a host, IPv6 references included.
                if value[-1] != "]" or not _IPV6_RE.fullmatch(value[1:-1]):
                    raise bad_request(f"Malformed {what} parameter value")
            elif TOKEN_RE.fullmatch(value) is None and (
                # RFC 3261 25.1: via-received = "received" EQUAL (IPv4address / IPv6address)
                ":" not in value or _IPV6_RE.fullmatch(value) is None
            ):
                raise bad_request(f"Malformed {what} parameter value")
            params[name.lower()] = value
        else:
            params[name.lower()] = None
    return params


_TOKEN_CLASS = r"[A-Za-z0-9\-.!%*_+`'~]"
# RFC 3261 25.1 generic-param without LWS, quoted strings or IPv6 values.
_SIMPLE_PARAMS_RE = re.compile(rf"(?:;{_TOKEN_CLASS}+(?:={_TOKEN_CLASS}+)?)+")


def format_params(params: dict[str, str | None]) -> str:
    """``;name=value`` text for `params` (values written as stored)."""
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


_IPV6_RE = re.compile(r"[0-9A-Fa-f:.]+")


def parse_int(text: str, what: str, maximum: int, status: int = 400) -> int:
    """A decimal integer of 1*DIGIT not above `maximum`, else RemoteError."""
    text = text.strip(WS)
    if not text.isdigit() or not text.isascii() or len(text) > 20:
        raise RemoteError(status, f"Malformed {what}")
    value = int(text)
    if value > maximum:
        raise RemoteError(status, f"{what} out of range")
    return value


def slots_twin(cls: type) -> Any:
    """A plain class with the slots of the frozen, slotted dataclass `cls`, for hot paths.

    The parser checks its input once; building the value through the dataclass would
    check it again (``__post_init__``) and set each field through ``object.__setattr__``.
    Instead it fills an instance of this twin with plain attribute stores and re-classes
    it (``twin.__class__ = cls``), which CPython allows because the two layouts are the
    same. The result is an ordinary, frozen instance of `cls`.
    """
    return type(f"_{cls.__name__}Twin", (), {"__slots__": cls.__slots__})  # type: ignore[attr-defined]
