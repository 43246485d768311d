"""Sans-IO SDP (RFC 8866, formerly RFC 4566): parse, inspect, rewrite, serialise.

Names follow the RFC: ``sdp.Session``, ``sdp.Media``, ``sdp.Origin``, ``sdp.Connection``.
Lines this package does not interpret stay verbatim and in place.
"""

from ivoz.sdp.model import (
    DIRECTIONS,
    Connection,
    Line,
    Media,
    Origin,
    SDPError,
    Session,
    parse,
)
from ivoz.sdp.rewrite import MediaEndpoint, RewriteOptions, rewrite

__all__ = [
    "DIRECTIONS",
    "Connection",
    "Line",
    "Media",
    "MediaEndpoint",
    "Origin",
    "RewriteOptions",
    "SDPError",
    "Session",
    "parse",
    "rewrite",
]
