"""Bencode, the ng protocol's encoding (BitTorrent BEP 3 syntax).

Values: ``bytes`` strings (``str`` is accepted on encode, as UTF-8), integers, lists
and dictionaries with byte-string keys, sorted on encode. Decoding is strict: trailing
bytes, leading zeros, ``-0`` and unterminated containers raise :class:`BencodeError`.
The nesting depth is bounded so that hostile input cannot exhaust the stack.

Every ng command and reply goes through here (a ``delete`` reply carries the whole
call report), so both directions have a fast path: the encoder dispatches on the exact
type and writes scalar members inline; the decoder is one loop with an explicit stack
and two compiled patterns for the canonical integer and string-length forms. Whatever
the fast decoder does not recognise as canonical is decoded again by the plain
recursive decoder, which decides and explains the error, so malformed input is refused
exactly as before.
"""

from __future__ import annotations

import re
from typing import Any, TypeAlias

Value: TypeAlias = bytes | int | list["Value"] | dict[bytes, "Value"]

MAX_DEPTH = 64

# The canonical forms _integer accepts: no sign but "-", no leading zero, no "-0",
# at most 40 digits. A string length is the same without the sign.
_INTEGER = re.compile(rb"i(0|-?[1-9][0-9]{0,39})e")
_STRING = re.compile(rb"(0|[1-9][0-9]{0,39}):")


class BencodeError(ValueError):
    """The input is not valid bencode."""


class _Irregular(Exception):
    """The fast decoder met something it leaves to the checking decoder."""


def encode(value: object) -> bytes:
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _encode(value: Any, out: list[bytes]) -> None:
    # Fast path on the exact types the ng code builds; anything else (subclasses,
    # bytearray, tuples, floats, errors) takes the general path below.
    kind = type(value)
    if kind is bytes:
        out.append(b"%d:" % len(value))
        out.append(value)
    elif kind is str:
        raw = value.encode()
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif kind is int:
        out.append(b"i%de" % value)
    elif kind is dict:
        _encode_dict(value, out)
    elif kind is list:
        out.append(b"l")
        for item in value:
            _encode(item, out)
        out.append(b"e")
    else:
        _encode_other(value, out)


def _encode_dict(value: dict[Any, Any], out: list[bytes]) -> None:
    keys: dict[bytes, Any] = {}
    for key, item in value.items():
        if isinstance(key, str):
            key = key.encode()
        if not isinstance(key, bytes):
            raise TypeError(f"bencode dictionary keys are strings, not {type(key).__name__}")
        keys[key] = item
    out.append(b"d")
    for key in sorted(keys):
        # The key and a scalar value in one piece; containers recurse.
        item = keys[key]
        kind = type(item)
        if kind is bytes:
            out.append(b"%d:%s%d:" % (len(key), key, len(item)))
            out.append(item)
        elif kind is str:
            raw = item.encode()
            out.append(b"%d:%s%d:%s" % (len(key), key, len(raw), raw))
        elif kind is int:
            out.append(b"%d:%si%de" % (len(key), key, item))
        else:
            out.append(b"%d:%s" % (len(key), key))
            _encode(item, out)
    out.append(b"e")


def _encode_other(value: object, out: list[bytes]) -> None:
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
        _encode_dict(value, out)
    elif isinstance(value, float):
        # rtpengine sends some statistics as decimal strings; do the same.
        _encode(f"{value:.6f}", out)
    else:
        raise TypeError(f"cannot bencode {type(value).__name__}")


def decode(data: bytes) -> Value:
    """Decode exactly one value that fills `data`."""
    try:
        return _decode_canonical(data)
    except _Irregular:
        pass
    value, end = _decode(data, 0, 0)
    if end != len(data):
        raise BencodeError(f"trailing data at offset {end}")
    return value


def _decode_canonical(data: bytes) -> Value:
    """The whole of `data` as one value, or :class:`_Irregular` for anything that is
    not well-formed canonical bencode within :data:`MAX_DEPTH` (no message: the checking
    decoder explains it). Accepts exactly what :func:`_decode` accepts, with the same
    values."""
    string = _STRING.match
    integer = _INTEGER.match
    size = len(data)
    pos = 0
    # The innermost open container and, in a dictionary, the key awaiting its value;
    # the outer ones wait on the stack.
    top: Any = None
    key: bytes | None = None
    stack: list[tuple[Any, bytes | None]] = []
    value: Value
    while True:
        if pos >= size:
            raise _Irregular
        lead = data[pos]
        if 0x30 <= lead <= 0x39:
            if pos + 1 < size and data[pos + 1] == 0x3A:  # one-digit length: canonical
                start = pos + 2
                pos = start + lead - 0x30
            else:
                found = string(data, pos)
                if found is None:
                    raise _Irregular
                start = found.end()
                pos = start + int(found.group(1))
            if pos > size:
                raise _Irregular
            value = data[start:pos]
        elif lead == 0x69:  # i
            found = integer(data, pos)
            if found is None:
                raise _Irregular
            value = int(found.group(1))
            pos = found.end()
        elif lead == 0x6C or lead == 0x64:  # l, d
            if top is not None:
                if len(stack) >= MAX_DEPTH:
                    raise _Irregular
                stack.append((top, key))
            top, key = ([] if lead == 0x6C else {}), None
            pos += 1
            continue
        elif lead == 0x65 and top is not None and key is None:  # e
            value = top
            pos += 1
            if not stack:
                if pos != size:
                    raise _Irregular
                return value
            top, key = stack.pop()
        else:
            raise _Irregular
        if top is None:
            if pos != size:
                raise _Irregular
            return value
        if type(top) is list:
            if len(stack) >= MAX_DEPTH:
                raise _Irregular
            top.append(value)
        elif key is None:
            if type(value) is not bytes or len(stack) >= MAX_DEPTH:
                raise _Irregular
            key = value
        else:
            if len(stack) >= MAX_DEPTH:
                raise _Irregular
            top[key] = value
            key = None


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
