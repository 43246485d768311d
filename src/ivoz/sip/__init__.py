"""Sans-IO SIP: messages, headers, URIs and typed values (RFC 3261), and the layers above.

Nothing here does I/O. Parse with `parse_message`, read typed values through the lazy
accessors of `Request` and `Response`, and build answers with `make_response`. Malformed
input raises `RemoteError` carrying the status to answer. See docs/sip-messages.md.
"""

from .errors import LocalError, RemoteError, SIPError
from .headers import COMPACT, LIST_HEADERS, Headers, canonical
from .message import (
    REASONS,
    SIP_VERSION,
    Message,
    Request,
    Response,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    parse_message,
    reason_phrase,
)
from .uri import URI
from .values import MAGIC_COOKIE, Contact, CSeq, NameAddr, Via

__all__ = [
    "COMPACT",
    "LIST_HEADERS",
    "MAGIC_COOKIE",
    "REASONS",
    "SIP_VERSION",
    "URI",
    "CSeq",
    "Contact",
    "Headers",
    "LocalError",
    "Message",
    "NameAddr",
    "RemoteError",
    "Request",
    "Response",
    "SIPError",
    "Via",
    "canonical",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_message",
    "reason_phrase",
]
