"""RFC 4475 torture messages: every one of the 49, with what the RFC expects of it.

Each row names the message, its RFC 4475 section and the outcome the RFC's text asks for:

- ``valid``: must parse; `check()` passes; serialising and parsing again gives the same
  message on every field that matters (start line, headers, typed values, body).
- ``refused``: `parse_message` raises `RemoteError` with that status.
- ``rejected``: parses (the proxy's lazy path must not break) but `check()`, which a UAS
  or proxy runs before acting, raises `RemoteError` with that status.
- ``accepted``: parses and passes `check()`; the status column is then what a UAS (or the
  element named in the note) answers by application-layer rules, computed by
  `uas_verdict` below from the parsed values (0: processed normally).

``respondable`` False means no response can be built (a response, or a request whose Via,
From, To, Call-ID or CSeq is missing): the transport drops the message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from ivoz import sip
from support.tools import RFC4475, require_path

# Every test runs with the compiled sip hot path and in Python only.
pytestmark = pytest.mark.usefixtures("sip_core")


@dataclass(frozen=True)
class Row:
    name: str
    section: str
    outcome: str  # valid | refused | rejected | accepted
    status: int = 0
    respondable: bool = True
    note: str = ""


TABLE: list[Row] = [
    # 3.1.1 Valid messages: must parse and round-trip.
    Row("wsinv", "3.1.1.1", "valid", note="short tortuous INVITE: folding, odd spacing, compact"),
    Row("intmeth", "3.1.1.2", "valid", note="wide range of valid characters"),
    Row("esc01", "3.1.1.3", "valid", note="valid use of % escaping"),
    Row("escnull", "3.1.1.4", "valid", note="escaped NULs in URIs"),
    Row("esc02", "3.1.1.5", "valid", note="% that is not an escape (method, display, branch)"),
    Row("lwsdisp", "3.1.1.6", "valid", note="no LWS between display name and <"),
    Row("longreq", "3.1.1.7", "valid", note="long values in header fields"),
    Row("dblreq", "3.1.1.8", "valid", note="extra trailing octets in a UDP datagram"),
    Row("semiuri", "3.1.1.9", "valid", note="semicolon-separated parameters in URI user part"),
    Row("transports", "3.1.1.10", "valid", note="varied and unknown transport types"),
    Row("mpart01", "3.1.1.11", "valid", note="multipart MIME message"),
    Row("unreason", "3.1.1.12", "valid", note="unusual reason phrase (UTF-8)"),
    Row("noreason", "3.1.1.13", "valid", note="empty reason phrase"),
    # 3.1.2 Invalid messages.
    Row("badinv01", "3.1.2.1", "rejected", 400, note="extraneous header field separators"),
    Row("clerr", "3.1.2.2", "refused", 400, note="Content-Length larger than the datagram"),
    Row("ncl", "3.1.2.3", "refused", 400, note="negative Content-Length"),
    Row("scalar02", "3.1.2.4", "rejected", 400, note="overlarge CSeq (and other scalars)"),
    Row("scalarlg", "3.1.2.5", "rejected", 400, False, "response with overlarge scalars: drop"),
    Row("quotbal", "3.1.2.6", "rejected", 400, note="unterminated quoted string"),
    Row("ltgtruri", "3.1.2.7", "rejected", 400, note="<> around the Request-URI"),
    Row("lwsruri", "3.1.2.8", "refused", 400, note="LWS inside the Request-URI"),
    Row("lwsstart", "3.1.2.9", "refused", 400, note="multiple SP in the Request-Line"),
    Row("trws", "3.1.2.10", "refused", 400, note="SP at the end of the Request-Line"),
    Row("escruri", "3.1.2.11", "rejected", 400, note="escaped headers in the Request-URI"),
    Row(
        "baddate",
        "3.1.2.12",
        "accepted",
        0,
        note="non-GMT Date: rejecting is allowed only if Date matters; we ignore Date",
    ),
    Row("regbadct", "3.1.2.13", "rejected", 400, note="addr-spec with ? not enclosed in <>"),
    Row("badaspec", "3.1.2.14", "rejected", 400, note="spaces within an addr-spec"),
    Row("baddn", "3.1.2.15", "rejected", 400, note="non-token characters in display name"),
    Row("badvers", "3.1.2.16", "refused", 505, note="unknown protocol version"),
    Row("mismatch01", "3.1.2.17", "rejected", 400, note="CSeq method differs from start line"),
    Row(
        "mismatch02",
        "3.1.2.18",
        "rejected",
        400,
        note="unknown method and CSeq mismatch: 501 preferred, 400 acceptable",
    ),
    Row("bigcode", "3.1.2.19", "refused", 400, False, "response code above 699: drop"),
    # 3.2 Transaction layer semantics.
    Row(
        "badbranch",
        "3.2.1",
        "accepted",
        0,
        note="bare magic cookie: not an RFC 3261 branch, fall back to RFC 2543 matching",
    ),
    # 3.3 Application layer semantics.
    Row("insuf", "3.3.1", "rejected", 400, False, "no Call-ID/From/To: cannot answer, drop"),
    Row("unkscm", "3.3.2", "rejected", 416, note="unknown Request-URI scheme"),
    Row("novelsc", "3.3.3", "rejected", 416, note="registered but atypical R-URI scheme"),
    Row(
        "unksm2",
        "3.3.4",
        "accepted",
        400,
        note="non-SIP URIs in To/From/Contact parse; a registrar answers 400 (To not SIP)",
    ),
    Row("bext01", "3.3.5", "accepted", 420, note="Require/Proxy-Require unknown option tags"),
    Row("invut", "3.3.6", "accepted", 415, note="unknown Content-Type: UAS 415, proxy forwards"),
    Row(
        "regaut01",
        "3.3.7",
        "accepted",
        0,
        note="unknown Authorization scheme: kept verbatim; a registrar that cares sends 401",
    ),
    Row("multi01", "3.3.8", "rejected", 400, note="multiple single-value header fields"),
    Row("mcl01", "3.3.9", "refused", 400, note="multiple conflicting Content-Length values"),
    Row(
        "bcast",
        "3.3.10",
        "accepted",
        0,
        False,
        "200 with a broadcast Via sent-by: parses; a proxy must drop it",
    ),
    Row("zeromf", "3.3.11", "accepted", 483, note="Max-Forwards 0: a proxy answers 483"),
    Row("cparam01", "3.3.12", "accepted", 0, note="unknownparam is a contact-param"),
    Row("cparam02", "3.3.13", "accepted", 0, note="unknownparam is a URI parameter"),
    Row("regescrt", "3.3.14", "accepted", 0, note="Contact URI with an escaped Route header"),
    Row("sdp01", "3.3.15", "accepted", 406, note="Accept without application/sdp: 406 (or 400)"),
    # 3.4 Backward compatibility.
    Row("inv2543", "3.4.1", "accepted", 0, note="RFC 2543 syntax: no branch, tag, CL, MF"),
]

# What this test's model UAS supports (the verdicts below follow RFC 3261 8.2).
SUPPORTED_OPTION_TAGS: frozenset[str] = frozenset()
SUPPORTED_TYPES = frozenset({"application/sdp", "multipart/mixed", "text/plain"})


def uas_verdict(msg: sip.Request) -> int:
    """The status an RFC 3261 8.2 UAS (or proxy, for 483) answers; 0 = go ahead."""
    if msg.max_forwards == 0:
        # RFC 3261 16.3 step 2: a proxy answers 483 to Max-Forwards 0.
        return 483
    # RFC 3261 8.2.2.3 / 16.3 step 4: unsupported Require or Proxy-Require: 420.
    required = msg.option_tags("Require") + msg.option_tags("Proxy-Require")
    if any(tag not in SUPPORTED_OPTION_TAGS for tag in required):
        return 420
    # RFC 3261 10.3 step 5 (registrar): the To must be a sip or sips AOR.
    if msg.method == "REGISTER" and msg.to.uri.scheme not in ("sip", "sips"):
        return 400
    # RFC 3261 8.2.3: a body of a type the UAS does not understand: 415.
    if msg.body and msg.content_type not in SUPPORTED_TYPES:
        return 415
    # RFC 3261 8.2.3 and 21.4.7: the answer's body must match Accept: 406.
    accept = msg.headers.get_all("Accept")
    if msg.method == "INVITE" and accept:
        types = {a.split(";", 1)[0].strip().lower() for a in accept}
        if "application/sdp" not in types:
            return 406
    return 0


def load(name: str) -> bytes:
    require_path(RFC4475, "RFC 4475 messages")
    return (RFC4475 / f"{name}.dat").read_bytes()


def test_table_covers_all_49_messages() -> None:
    require_path(RFC4475, "RFC 4475 messages")
    files = sorted(p.stem for p in Path(RFC4475).glob("*.dat"))
    assert len(files) == 49
    assert sorted(row.name for row in TABLE) == files


def summary(msg: sip.Message) -> dict[str, object]:
    """The fields that matter for round-trip equality."""
    out: dict[str, object] = {
        # Content-Length is rewritten (or added) by to_bytes; everything else is verbatim.
        "headers": [(n, v) for n, v in msg.headers.items() if sip.canonical(n) != "content-length"],
        "body": msg.body,
        "vias": msg.vias,
        "call_id": msg.call_id,
        "cseq": msg.cseq,
        "from": msg.from_,
        "to": msg.to,
        "contacts": msg.contacts,
        "routes": msg.routes,
        "record_routes": msg.record_routes,
        "max_forwards": msg.max_forwards,
    }
    if isinstance(msg, sip.Request):
        out["start"] = (msg.method, msg.request_uri, msg.uri)
    else:
        assert isinstance(msg, sip.Response)
        out["start"] = (msg.status, msg.reason)
    return out


@pytest.mark.parametrize("row", TABLE, ids=[f"{r.section}-{r.name}" for r in TABLE])
def test_rfc4475(row: Row) -> None:
    data = load(row.name)
    if row.outcome == "refused":
        with pytest.raises(sip.RemoteError) as err:
            sip.parse_message(data)
        assert err.value.status == row.status, err.value
        assert err.value.respondable == row.respondable
        if row.respondable:
            # The transport answers from what the parser managed to read.
            assert err.value.request is not None
            response = sip.make_response(err.value.request, err.value.status, err.value.reason)
            parsed = sip.parse_message(response.to_bytes())
            assert isinstance(parsed, sip.Response) and parsed.status == row.status
            assert parsed.headers.get_lines("Via") == err.value.request.headers.get_lines("Via")
        else:
            assert err.value.request is None
        return
    msg = sip.parse_message(data)
    if row.outcome == "rejected":
        with pytest.raises(sip.RemoteError) as err:
            msg.check()
        assert err.value.status == row.status, err.value
        assert err.value.respondable == row.respondable
        if row.respondable:
            assert isinstance(msg, sip.Request)
            response = sip.make_response(msg, err.value.status, err.value.reason)
            assert sip.parse_message(response.to_bytes()).headers.get("Call-ID")
        return
    msg.check()
    first = summary(msg)
    again = sip.parse_message(msg.to_bytes(), datagram=False)
    assert summary(again) == first
    assert again.to_bytes() == msg.to_bytes()
    if row.outcome == "accepted":
        if isinstance(msg, sip.Request):
            assert uas_verdict(msg) == row.status
        else:
            assert not row.respondable


def test_wsinv_details() -> None:
    msg = sip.parse_message(load("wsinv"))
    assert isinstance(msg, sip.Request)
    assert msg.to_tag == "1918181833n" and msg.from_tag == "98asjd8"
    assert msg.from_.display == 'J Rosenberg \\"'
    assert msg.max_forwards == 68 and msg.cseq == sip.CSeq(9, "INVITE")
    assert [v.transport for v in msg.vias] == ["UDP", "TCP", "UDP"]
    assert [v.branch for v in msg.vias] == ["390skdjuw", "z9hG4bK9ikj8", "z9hG4bK30239"]
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (contact,) = msg.contacts
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert contact.q == 0.33
    assert msg.routes[0].uri.params["unknownwith"] == "value"
    assert msg.uri.params == {"unknownparam": None}
    assert len(msg.body) == 150


def test_escapes() -> None:
    esc01 = sip.parse_message(load("esc01"))
    assert isinstance(esc01, sip.Request)
    assert esc01.uri.user == "sips:user@example.com"
    assert esc01.from_.uri.user == "I have spaces"
    escnull = sip.parse_message(load("escnull"))
    assert escnull.to.uri.user == "null-\x00-null"
    esc02 = sip.parse_message(load("esc02"))
    assert isinstance(esc02, sip.Request)
    # RFC 4475 3.1.1.5: the method is not unescaped; "C%6Fntact" is not Contact.
    assert esc02.method == "RE%47IST%45R"
    assert esc02.via.branch == "z9hG4bK209%fzsnel234"
    assert len(esc02.contacts) == 2
    assert esc02.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    semi = sip.parse_message(load("semiuri"))
    assert isinstance(semi, sip.Request)
    assert semi.uri.user == "user;par=u@example.net" and semi.uri.host == "example.com"


def test_datagram_and_2543() -> None:
    dbl = sip.parse_message(load("dblreq"))
    # RFC 4475 3.1.1.8: only the first request counts; the rest of the datagram is dropped.
    assert dbl.body == b""
    old = sip.parse_message(load("inv2543"))
    assert old.via.branch is None and not old.via.is_rfc3261
    assert old.from_tag is None and old.max_forwards is None
    assert "Content-Length" not in old.headers and old.body.startswith(b"v=0")
    assert old.record_routes[0].uri.params == {"maddr": "ss1.example.com"}


def test_contact_params_vs_uri_params() -> None:
    p1 = sip.parse_message(load("cparam01")).contacts[0]
    assert p1.params == {"unknownparam": None} and p1.uri is not None and not p1.uri.params
    p2 = sip.parse_message(load("cparam02")).contacts[0]
    assert p2.params == {} and p2.uri is not None and p2.uri.params == {"unknownparam": None}
    rt = sip.parse_message(load("regescrt")).contacts[0]
    assert rt.uri is not None and rt.uri.headers == {"Route": "%3Csip:sip.example.com%3E"}


def test_transaction_and_proxy_cases() -> None:
    badbranch = sip.parse_message(load("badbranch"))
    assert badbranch.via.branch == "z9hG4bK" and not badbranch.via.is_rfc3261
    bcast = sip.parse_message(load("bcast"))
    assert bcast.vias[1].host == "255.255.255.255"
    regaut = sip.parse_message(load("regaut01"))
    assert regaut.headers.get("Authorization") == "NoOneKnowsThisScheme opaque-data=here"
    unksm2 = sip.parse_message(load("unksm2"))
    assert unksm2.to.uri.scheme == "isbn" and unksm2.from_.uri.scheme == "http"
    assert str(unksm2.contacts[0].uri) == "name:John_Smith"
    noreason = sip.parse_message(load("noreason"))
    assert isinstance(noreason, sip.Response) and noreason.reason == ""
    unreason = sip.parse_message(load("unreason"))
    assert isinstance(unreason, sip.Response) and "простое" in unreason.reason


def test_lazy_path_survives_invalid_messages() -> None:
    """A proxy reads the essentials of the rejected messages without breaking."""
    for row in TABLE:
        if row.outcome != "rejected" or not row.respondable:
            continue
        msg = sip.parse_message(load(row.name))
        assert msg.headers.get("Call-ID")
        assert msg.headers.get("Via")
