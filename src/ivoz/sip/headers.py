"""An ordered, case-insensitive header block that keeps values verbatim.

Parsing splits the header block into (name, raw value) pairs once; nothing else is
parsed until someone asks. Names compare case-insensitively and compact forms (RFC 3261
7.3.3, plus the registered ones of later RFCs) map to the full names, while the name as
written is kept for serialisation. `get_all` splits comma-joined values (RFC 3261 7.3.1)
for the headers whose grammar is a list. Typed values parsed from a header are cached
here and the cache is dropped on any change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from .errors import LocalError
from .grammar import TOKEN_RE, WS, split_list

T = TypeVar("T")

# RFC 3261 7.3.3 compact forms; later ones from the IANA SIP header registry
# (RFC 3265 o/u, RFC 3515 r, RFC 3892 b, RFC 4028 x, RFC 3841 a/j/d, RFC 4474 y/n).
COMPACT: dict[str, str] = {
    "v": "via",
    "f": "from",
    "t": "to",
    "i": "call-id",
    "m": "contact",
    "l": "content-length",
    "c": "content-type",
    "k": "supported",
    "s": "subject",
    "e": "content-encoding",
    "o": "event",
    "x": "session-expires",
    "u": "allow-events",
    "r": "refer-to",
    "b": "referred-by",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
    "y": "identity",
    "n": "identity-info",
}

# Headers whose grammar is a comma-separated list (RFC 3261 7.3.1 and section 20).
# WWW-Authenticate, Authorization and friends are not: their values hold commas.
LIST_HEADERS = frozenset(
    {
        "via",
        "route",
        "record-route",
        "contact",
        "allow",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "allow-events",
        "content-encoding",
        "content-language",
        "in-reply-to",
        "alert-info",
        "call-info",
        "error-info",
        "warning",
        "path",
        "service-route",
        "reason",
        "accept-contact",
        "reject-contact",
        "request-disposition",
        "p-associated-uri",
        "history-info",
        "security-client",
        "security-server",
        "security-verify",
        "privacy",
    }
)

# Header names seen on the hot path, in the spellings met on the wire, with their key.
_COMMON = (
    "Via",
    "From",
    "To",
    "Call-ID",
    "CSeq",
    "Contact",
    "Max-Forwards",
    "Route",
    "Record-Route",
    "Content-Type",
    "Content-Length",
    "User-Agent",
    "Allow",
    "Supported",
    "Subject",
    "Expires",
    "Require",
    "Proxy-Require",
    "Authorization",
    "Proxy-Authorization",
    "WWW-Authenticate",
    "Proxy-Authenticate",
    "Accept",
    "Date",
    "Server",
    "Organization",
    "Event",
    "Allow-Events",
    "Session-Expires",
    "Min-SE",
    "P-Asserted-Identity",
    "Timestamp",
    "Unsupported",
    "Privacy",
)
_KNOWN: dict[str, str] = {}
for _name in _COMMON:
    for _spelling in (_name, _name.lower(), _name.upper(), _name.title()):
        _KNOWN[_spelling] = _name.lower()
for _short, _full in COMPACT.items():
    _KNOWN[_short] = _full
    _KNOWN[_short.upper()] = _full
del _name, _spelling, _short, _full


def canonical(name: str) -> str:
    """The lower-case full name that `name` stands for (compact forms expanded)."""
    key = name.lower()
    return COMPACT.get(key, key)


def _check_value(name: str, value: str) -> None:
    if TOKEN_RE.fullmatch(name) is None:
        raise LocalError(f"bad header name {name!r}")
    if "\r" in value or "\n" in value:
        raise LocalError(f"header {name} value holds a line break")


class Headers:
    """Ordered header fields: (name as written, value), looked up case-insensitively.

    Each line is kept as the parser cut it, ``(name, ":", raw value)``, and the value's
    surrounding whitespace (RFC 3261 7.3.1 SWS) is stripped when it is read, so the
    parser never touches a value nobody asks for.
    """

    __slots__ = ("_cache", "_keys", "_lines")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._keys: list[str] = []
        self._lines: list[tuple[str, str, str]] = []
        self._cache: dict[str, object] = {}
        for name, value in items:
            self.add(name, value)

    @classmethod
    def _raw(cls, keys: list[str], lines: list[tuple[str, str, str]]) -> Headers:
        """Build from already-split lines without checks (the parser's fast path)."""
        self = cls.__new__(cls)
        self._keys = keys
        self._lines = lines
        self._cache = {}
        return self

    def copy(self) -> Headers:
        return Headers._raw(list(self._keys), list(self._lines))

    def get(self, name: str) -> str | None:
        """The first value of header `name` (verbatim, not split), or None."""
        key = _KNOWN.get(name) or canonical(name)
        try:
            return self._lines[self._keys.index(key)][2].strip(WS)
        except ValueError:
            return None

    def _first(self, key: str) -> str | None:
        """`get` by canonical key (the accessors' fast path)."""
        try:
            return self._lines[self._keys.index(key)][2].strip(WS)
        except ValueError:
            return None

    def get_all(self, name: str) -> list[str]:
        """Every value of `name` in order; comma-joined lists split for list headers."""
        key = _KNOWN.get(name) or canonical(name)
        keys = self._keys
        if keys.count(key) == 1:
            value = self._lines[keys.index(key)][2]
            if key in LIST_HEADERS:
                return split_list(value)
            return [value.strip(WS)]
        values = [line[2] for k, line in zip(keys, self._lines, strict=True) if k == key]
        if key in LIST_HEADERS:
            return [part for v in values for part in split_list(v)]
        return [v.strip(WS) for v in values]

    def get_lines(self, name: str) -> list[str]:
        """Every header line's value for `name`, not split at commas."""
        key = canonical(name)
        return [
            line[2].strip(WS) for k, line in zip(self._keys, self._lines, strict=True) if k == key
        ]

    def set(self, name: str, value: str) -> None:
        """Replace every `name` header with one holding `value` (at the first's place)."""
        _check_value(name, value)
        key = canonical(name)
        self._cache.clear()
        try:
            index = self._keys.index(key)
        except ValueError:
            self._insert(len(self._keys), key, name, value)
            return
        self._lines[index] = (name, ":", value)
        for i in range(len(self._keys) - 1, index, -1):
            if self._keys[i] == key:
                del self._keys[i], self._lines[i]

    def add(self, name: str, value: str, *, first: bool = False) -> None:
        """Add a `name` header: after the others, or (first=True) above the topmost one."""
        _check_value(name, value)
        key = canonical(name)
        self._cache.clear()
        if first:
            try:
                index = self._keys.index(key)
            except ValueError:
                index = 0
        else:
            index = len(self._keys)
        self._insert(index, key, name, value)

    def _insert(self, index: int, key: str, name: str, value: str) -> None:
        self._keys.insert(index, key)
        self._lines.insert(index, (name, ":", value))

    def remove(self, name: str) -> None:
        """Remove every `name` header (no error when there is none)."""
        key = canonical(name)
        if key not in self._keys:
            return
        self._cache.clear()
        keep = [i for i, k in enumerate(self._keys) if k != key]
        self._keys = [self._keys[i] for i in keep]
        self._lines = [self._lines[i] for i in keep]

    def remove_first(self, name: str) -> str | None:
        """Remove the topmost value of `name` (one list element, e.g. a proxy's own Via).

        Returns the removed element, or None when there was no such header.
        """
        key = canonical(name)
        try:
            index = self._keys.index(key)
        except ValueError:
            return None
        self._cache.clear()
        written, _, raw = self._lines[index]
        value = raw.strip(WS)
        parts = split_list(value) if key in LIST_HEADERS else []
        if len(parts) > 1:
            self._lines[index] = (written, ":", ", ".join(parts[1:]))
            return parts[0]
        del self._keys[index], self._lines[index]
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and canonical(name) in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return self.items()

    def items(self) -> Iterator[tuple[str, str]]:
        """(name as written, value) for every header line, in order."""
        return ((name, raw.strip(WS)) for name, _, raw in self._lines)

    def keys(self) -> list[str]:
        """The canonical (lower-case, full) name of every header line, in order."""
        return list(self._keys)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._keys == other._keys and [v for _, v in self.items()] == [
            v for _, v in other.items()
        ]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({list(self.items())!r})"

    def parsed(self, key: str, parse: Callable[[], T]) -> T:
        """The typed value cached under `key`, computed by `parse` on first use."""
        try:
            return self._cache[key]  # type: ignore[return-value]
        except KeyError:
            value = parse()
            self._cache[key] = value
            return value
