"""Which implementation of the sip core's hot path runs: compiled C or plain Python.

`src/ivoz/sip/_scan.c` holds C twins of the pieces of `parse_message` and of the lazy
accessors that every proxied message goes through (cutting the header block, the Via,
a ``<sip:...>`` address, CSeq, From/To tags, one header's value). Each twin handles the
common, clean shape of its input and hands anything else back to the Python code, which
stays the reference: both give the same results, and the test suites run both ways.

The extension is built by ``pip install`` when a C compiler is present (``make`` does
it); without one, everything runs in Python, about half as fast on the lazy path.
"""

from __future__ import annotations

from . import message, values

try:
    from . import _scan
except ImportError:  # pragma: no cover - a build without a C compiler
    _scan = None  # type: ignore[assignment]


def available() -> bool:
    """True when the compiled extension was built and can be used."""
    return _scan is not None


def compiled() -> bool:
    """True when the hot path currently runs the compiled code."""
    return message._scan is not None


def use_compiled(enabled: bool) -> None:
    """Run the hot path compiled (when `available`) or in Python only."""
    on = enabled and _scan is not None
    message._scan = _scan.scan if on else None
    message._c_tag = _scan.tag if on else None
    message._single = _scan.single if on else message._py_single
    values._c_via = _scan.via if on else None
    values._c_address = _scan.address if on else None
    values._c_cseq = _scan.cseq if on else None
