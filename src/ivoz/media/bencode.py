"""Bencode, the ng protocol's encoding (BitTorrent BEP 3 syntax).

Values: ``bytes`` strings (``str`` is accepted on encode, as UTF-8), integers, lists
and dictionaries with byte-string keys, sorted on encode. Decoding is strict: trailing
bytes, leading zeros, ``-0`` and unterminated containers raise :class:`BencodeError`.
The nesting depth is bounded so that hostile input cannot exhaust the stack.
"""

from __future__ import annotations

from typing import TypeAlias

Value: TypeAlias = bytes | int | list["Value"] | dict[bytes, "Value"]

MAX_DEPTH = 64


class BencodeError(ValueError):
    """The input is not valid bencode."""


def encode(value: object) -> bytes:
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _encode(value: object, out: list[bytes]) -> None:
    if isinstance(value, bytes | bytearray):
        out.append(b"%d:" % len(value))
        out.append(bytes(value))
    elif isinstance(value, str):
        raw = value.encode()
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    elif isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, list | tuple):
        out.append(b"l")
        for item in value:
            _encode(item, out)
        out.append(b"e")
    elif isinstance(value, dict):
        keys: dict[bytes, object] = {}
        for key, item in value.items():
            if isinstance(key, str):
                key = key.encode()
            if not isinstance(key, bytes):
                raise TypeError(f"bencode dictionary keys are strings, not {type(key).__name__}")
            keys[key] = item
        out.append(b"d")
        for key in sorted(keys):
            _encode(key, out)
            _encode(keys[key], out)
        out.append(b"e")
    elif isinstance(value, float):
        # rtpengine sends some statistics as decimal strings; do the same.
        _encode(f"{value:.6f}", out)
    else:
        raise TypeError(f"cannot bencode {type(value).__name__}")


def decode(data: bytes) -> Value:
    """Decode exactly one value that fills `data`."""
    value, end = _decode(data, 0, 0)
    if end != len(data):
        raise BencodeError(f"trailing data at offset {end}")
    return value


def _decode(data: bytes, pos: int, depth: int) -> tuple[Value, int]:
    if depth > MAX_DEPTH:
        raise BencodeError("nested too deeply")
    if pos >= len(data):
        raise BencodeError("unexpected end of data")
    lead = data[pos]
    if lead == 0x69:  # i
        end = data.find(b"e", pos + 1)
        if end < 0:
            raise BencodeError("unterminated integer")
        return _integer(data[pos + 1 : end]), end + 1
    if lead == 0x6C:  # l
        items: list[Value] = []
        pos += 1
        while True:
            if pos >= len(data):
                raise BencodeError("unterminated list")
            if data[pos] == 0x65:
                return items, pos + 1
            item, pos = _decode(data, pos, depth + 1)
            items.append(item)
    if lead == 0x64:  # d
        result: dict[bytes, Value] = {}
        pos += 1
        while True:
            if pos >= len(data):
                raise BencodeError("unterminated dictionary")
            if data[pos] == 0x65:
                return result, pos + 1
            key, pos = _decode(data, pos, depth + 1)
            if not isinstance(key, bytes):
                raise BencodeError("dictionary key is not a string")
            result[key], pos = _decode(data, pos, depth + 1)
    if 0x30 <= lead <= 0x39:
        colon = data.find(b":", pos)
        if colon < 0:
            raise BencodeError("string length without ':'")
        length = _integer(data[pos:colon])
        if length < 0:
            raise BencodeError("negative string length")
        end = colon + 1 + length
        if end > len(data):
            raise BencodeError("string runs past the end of data")
        return data[colon + 1 : end], end
    raise BencodeError(f"unexpected byte {lead:#04x} at offset {pos}")


def _integer(raw: bytes) -> int:
    digits = raw[1:] if raw.startswith(b"-") else raw
    if not digits or not digits.isdigit():
        raise BencodeError(f"bad integer {raw[:20]!r}")
    if (digits.startswith(b"0") and len(digits) > 1) or raw == b"-0":
        raise BencodeError(f"non-canonical integer {raw[:20]!r}")
    if len(digits) > 40:
        raise BencodeError("integer too long")
    return int(raw)
