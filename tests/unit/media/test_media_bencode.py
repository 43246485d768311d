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
