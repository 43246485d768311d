"""The SDP data model: a session is its lines before the first ``m=``, then media sections.

Every line is kept as a :class:`Line` (type letter and raw value), so unknown lines,
``a=rtpmap``/``a=fmtp`` and their order survive a parse/serialise round trip byte for
byte (apart from line endings, which are always written as CRLF, RFC 8866 5). The few
fields the relay needs (``o=``, ``c=``, ``m=``, direction, ``a=rtcp``, ``a=rtcp-mux``)
are parsed on demand from those lines and checked when a value is built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

# RFC 8866 6.7: the four direction attributes; sendrecv is the default.
DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


class SDPError(ValueError):
    """The body is not a session description we can work with (blame the sender)."""


@dataclass(frozen=True, slots=True)
class Line:
    """One ``<type>=<value>`` line, value verbatim."""

    type: str
    value: str

    def __post_init__(self) -> None:
        # RFC 8866 5: the type is exactly one case-significant character.
        if len(self.type) != 1 or not self.type.isalpha():
            raise SDPError(f"bad SDP line type {self.type!r}")
        if "\r" in self.value or "\n" in self.value:
            raise SDPError("SDP line value contains a line break")

    def __str__(self) -> str:
        return f"{self.type}={self.value}"

    @property
    def attribute_name(self) -> str:
        """For ``a=`` lines: the name before ``:`` (RFC 8866 5.13)."""
        return self.value.split(":", 1)[0]

    @property
    def attribute_value(self) -> str | None:
        _, sep, rest = self.value.partition(":")
        return rest if sep else None


@dataclass(frozen=True, slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <unicast-address>``."""

    username: str
    session_id: str
    session_version: int
    nettype: str
    addrtype: str
    address: str

    @classmethod
    def parse(cls, value: str) -> Origin:
        parts = value.split()
        if len(parts) != 6:
            raise SDPError(f"o= needs 6 fields: {value!r}")
        try:
            version = int(parts[2])
        except ValueError:
            raise SDPError(f"o= session version is not a number: {parts[2]!r}") from None
        return cls(parts[0], parts[1], version, parts[3], parts[4], parts[5])

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.session_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """``c=<nettype> <addrtype> <connection-address>`` (RFC 8866 5.7)."""

    nettype: str
    addrtype: str
    address: str

    @classmethod
    def parse(cls, value: str) -> Connection:
        parts = value.split()
        if len(parts) != 3:
            raise SDPError(f"c= needs 3 fields: {value!r}")
        return cls(parts[0], parts[1], parts[2])

    @property
    def host(self) -> str:
        """The address without a multicast TTL or count suffix."""
        return self.address.split("/", 1)[0]

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"


@dataclass(frozen=True, slots=True)
class Media:
    """One media section: its ``m=`` fields, then its other lines in order."""

    media: str
    port: int
    port_count: int | None
    proto: str
    formats: tuple[str, ...]
    lines: tuple[Line, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise SDPError(f"m= port out of range: {self.port}")

    @classmethod
    def parse_m_line(cls, value: str) -> Media:
        return cls(*_m_fields(value))

    @property
    def m_line(self) -> Line:
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        return Line("m", " ".join([self.media, port, self.proto, *self.formats]))

    @property
    def rejected(self) -> bool:
        """RFC 3264 6: port 0 rejects (or disables) the stream."""
        return self.port == 0

    @property
    def connection(self) -> Connection | None:
        for line in self.lines:
            if line.type == "c":
                return Connection.parse(line.value)
        return None

    def attributes(self, name: str) -> list[str]:
        """Values of every ``a=name:value`` line (``""`` for a flag attribute)."""
        return [
            line.attribute_value or ""
            for line in self.lines
            if line.type == "a" and line.attribute_name == name
        ]

    def has_attribute(self, name: str) -> bool:
        return any(line.type == "a" and line.attribute_name == name for line in self.lines)

    @property
    def direction(self) -> str | None:
        """The media-level direction attribute, or None when absent."""
        for line in self.lines:
            if line.type == "a" and line.value in DIRECTIONS:
                return line.value
        return None

    @property
    def rtcp_mux(self) -> bool:
        return self.has_attribute("rtcp-mux")

    @property
    def rtcp_port(self) -> int | None:
        """RFC 3605: ``a=rtcp:<port> [nettype addrtype address]``."""
        for value in self.attributes("rtcp"):
            try:
                return int(value.split()[0])
            except (ValueError, IndexError):
                raise SDPError(f"bad a=rtcp value {value!r}") from None
        return None

    def serialise(self) -> list[str]:
        return [str(self.m_line), *(str(line) for line in self.lines)]


_MFields = tuple[str, int, int | None, str, tuple[str, ...]]


def _m_fields(value: str) -> _MFields:
    """The fields of an ``m=`` value, checked as :class:`Media` checks them."""
    # RFC 8866 5.14: m=<media> <port>[/<number of ports>] <proto> <fmt> ...
    parts = value.split()
    if len(parts) < 3:
        raise SDPError(f"m= needs at least 3 fields: {value!r}")
    port_text, _, count_text = parts[1].partition("/")
    try:
        port = int(port_text)
        count = int(count_text) if count_text else None
    except ValueError:
        raise SDPError(f"m= port is not a number: {parts[1]!r}") from None
    if not 0 <= port <= 65535:
        raise SDPError(f"m= port out of range: {port}")
    return parts[0], port, count, parts[2], tuple(parts[3:])


@dataclass(frozen=True, slots=True)
class Session:
    """A whole description: session-level lines (``v=``, ``o=``, ``s=``...) and media."""

    lines: tuple[Line, ...]
    media: tuple[Media, ...] = ()
    # How the body was decoded, so that serialising gives back the same bytes.
    encoding: str = "utf-8"

    @property
    def origin(self) -> Origin:
        for line in self.lines:
            if line.type == "o":
                return Origin.parse(line.value)
        raise SDPError("no o= line")

    @property
    def connection(self) -> Connection | None:
        for line in self.lines:
            if line.type == "c":
                return Connection.parse(line.value)
        return None

    @property
    def direction(self) -> str | None:
        for line in self.lines:
            if line.type == "a" and line.value in DIRECTIONS:
                return line.value
        return None

    def media_connection(self, index: int) -> Connection | None:
        """RFC 8866 5.7: a media-level c= overrides the session-level one."""
        return self.media[index].connection or self.connection

    def media_direction(self, index: int) -> str:
        return self.media[index].direction or self.direction or "sendrecv"

    def replace_lines(self, lines: tuple[Line, ...]) -> Session:
        return dataclasses.replace(self, lines=lines)

    def serialise(self) -> bytes:
        out = [str(line) for line in self.lines]
        for media in self.media:
            out.extend(media.serialise())
        return ("\r\n".join(out) + "\r\n").encode(self.encoding)

    def __bytes__(self) -> bytes:
        return self.serialise()


def parse(body: bytes | str) -> Session:
    """Parse a session description; raises :class:`SDPError` on what is not SDP."""
    encoding = "utf-8"
    if isinstance(body, bytes):
        try:
            text = body.decode(encoding)
        except UnicodeDecodeError:
            # RFC 8866 6.10: a=charset may name another charset; keep the bytes as they are.
            encoding = "latin-1"
            text = body.decode(encoding)
    else:
        text = body
    session_lines: list[Line] = []
    media: list[Media] = []
    # The m= fields of the section being read (checked when its m= line is read); the
    # Media is built once, when its lines are known.
    current: _MFields | None = None
    current_lines: list[Line] = []
    # RFC 8866 5: lines end in CRLF, but a parser should also accept a bare LF.
    for raw in text.replace("\r\n", "\n").split("\n"):
        if not raw.strip():
            continue
        kind, sep, value = raw.partition("=")
        if not sep or len(kind) != 1:
            raise SDPError(f"not an SDP line: {raw[:60]!r}")
        line = Line(kind, value)
        if kind == "m":
            if current is not None:
                media.append(Media(*current, tuple(current_lines)))
            current = _m_fields(value)
            current_lines = []
        elif current is None:
            session_lines.append(line)
        else:
            current_lines.append(line)
    if current is not None:
        media.append(Media(*current, tuple(current_lines)))
    if not session_lines or session_lines[0].type != "v":
        # RFC 8866 5: "v=" is the first line.
        raise SDPError("SDP does not start with v=")
    session = Session(tuple(session_lines), tuple(media), encoding)
    session.origin  # noqa: B018 - validates the o= line now
    return session
