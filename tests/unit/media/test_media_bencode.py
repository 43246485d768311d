"""Bencode: round trips, canonical form, and garbage that must be refused, never crash."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivoz.media import bencode

values = st.recursive(
    st.binary(max_size=40) | st.integers(),
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.binary(max_size=10), children, max_size=5)
    ),
    max_leaves=30,
)


@given(values)
def test_round_trip(value: bencode.Value) -> None:
    assert bencode.decode(bencode.encode(value)) == value


@given(st.binary(max_size=200))
def test_garbage_is_refused_or_decoded(data: bytes) -> None:
    try:
        value = bencode.decode(data)
    except bencode.BencodeError:
        return
    assert bencode.encode(value) == data  # strict decoding accepts only canonical input


def test_known_encoding_sorted_keys() -> None:
    encoded = bencode.encode({"result": "pong", "a": [1, -2, b"x"]})
    assert encoded == b"d1:ali1ei-2e1:xe6:result4:ponge"


@pytest.mark.parametrize(
    "data",
    [b"", b"i12", b"i-0e", b"i03e", b"ie", b"5:abc", b"l", b"d3:abc", b"di1ei2ee", b"x", b"i1ei2e"],
)
def test_malformed(data: bytes) -> None:
    with pytest.raises(bencode.BencodeError):
        bencode.decode(data)


def test_depth_is_bounded() -> None:
    with pytest.raises(bencode.BencodeError):
        bencode.decode(b"l" * 10_000 + b"e" * 10_000)


def test_encode_rejects_unknown_types() -> None:
    with pytest.raises(TypeError):
        bencode.encode({"x": object()})
    with pytest.raises(TypeError):
        bencode.encode(True)


def _checked(data: bytes) -> tuple[str, object]:
    """What the plain recursive decoder (the reference) makes of `data`."""
    try:
        value, end = bencode._decode(data, 0, 0)
    except bencode.BencodeError as exc:
        return "error", str(exc)
    if end != len(data):
        return "error", f"trailing data at offset {end}"
    return "ok", value


def _decoded(data: bytes) -> tuple[str, object]:
    try:
        return "ok", bencode.decode(data)
    except bencode.BencodeError as exc:
        return "error", str(exc)


# Near-bencode: valid tokens and the usual mistakes, glued together at random.
tokens = st.sampled_from(
    [
        *(b"i0e", b"i-3e", b"i03e", b"i-0e", b"ie", b"i1", b"0:", b"1:a", b"3:ab", b"01:a"),
        *(b"2:", b"l", b"d", b"e", b":", b"-", b"x", b"i" + b"9" * 41 + b"e", b"9" * 41 + b":"),
    ]
)


@given(st.lists(tokens, max_size=30).map(b"".join) | st.binary(max_size=200))
def test_fast_decoder_matches_the_checking_one(data: bytes) -> None:
    assert _decoded(data) == _checked(data)


@given(values)
def test_fast_decoder_matches_on_valid_input(value: bencode.Value) -> None:
    data = bencode.encode(value)
    assert _decoded(data) == _checked(data) == ("ok", value)


@pytest.mark.parametrize("depth", [63, 64, 65, 66])
def test_depth_limit_is_the_same_on_both_paths(depth: int) -> None:
    for data in (
        b"l" * depth + b"e" * depth,
        b"l" * depth + b"i1e" + b"e" * depth,
        b"d1:k" * depth + b"0:" + b"e" * depth,
    ):
        assert _decoded(data) == _checked(data)


def test_encode_general_types() -> None:
    assert bencode.encode((1, bytearray(b"ab"), 1.5)) == b"li1e2:ab8:1.500000e"
    assert bencode.encode({b"b": [], "a": {}}) == b"d1:ade1:blee"
    with pytest.raises(TypeError):
        bencode.encode({1: b"x"})
    with pytest.raises(TypeError):
        bencode.encode([b"x", False])
