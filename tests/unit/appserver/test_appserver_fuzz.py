"""Garbage from the proxy side never crashes the B2BUA: every INVITE is answered or
routed, whichever of its trusted headers, Request-URI user, Contact, From or
Max-Forwards holds junk (or is missing)."""

from __future__ import annotations

from appserver_fakes import SDP_B, Harness
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ivoz.sip import RemoteError, Request, parse_message

junk = st.one_of(
    st.none(),
    st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="\r\n"),
        max_size=30,
    ),
    st.integers(-5, 300).map(str),
)
FIELDS = ("none", "company", "caller", "user", "contact", "from", "max_forwards")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    company=st.sampled_from(["1", "2"]),
    number=st.sampled_from(["1001", "1002", "1003", "1004", "5000", "1999"]),
    spoiled=st.sampled_from(FIELDS),
    garbage=junk,
)
def test_any_invite_is_answered_or_routed(
    company: str, number: str, spoiled: str, garbage: str | None
) -> None:
    h = Harness()
    values: dict[str, str | None] = {
        "company": company,
        "caller": "101" if company == "1" else "105",
        "user": number,
        "contact": "<sip:alice@127.0.0.1:5070>",
        "from": '"A" <sip:alice@acme.ivoz.test>',
        "max_forwards": "69",
    }
    if spoiled != "none":
        values[spoiled] = garbage
    headers = [
        ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKfuzz"),
        ("From", f"{values['from'] or ''};tag=f1"),
        ("To", "<sip:x@acme.ivoz.test>"),
        ("Call-ID", "fuzz"),
        ("CSeq", "1 INVITE"),
    ]
    for name, key in (
        ("Contact", "contact"),
        ("X-Ivoz-Company", "company"),
        ("X-Ivoz-Caller-Terminal", "caller"),
        ("Max-Forwards", "max_forwards"),
    ):
        if values[key]:
            headers.append((name, values[key] or ""))
    user = values["user"]
    uri = f"sip:{user}@acme.ivoz.test" if user else "sip:acme.ivoz.test"
    try:
        request = parse_message(Request("INVITE", uri, headers, b"").to_bytes())
    except Exception:
        event("not a message a proxy could send")
        return
    assert isinstance(request, Request)
    try:
        txn = h.receive(request)
    except RemoteError:
        event("refused by the parser")
        return
    assert txn is not None
    if spoiled == "contact" and txn.final is not None:
        assert txn.final.status in (400, 403, 404)
    if txn.final is None:
        # routed: a B-leg went out, and the call carries on to the answer
        (b,) = h.sip.invites()
        b.respond(180)
        b.respond(200, SDP_B)
        assert txn.final is not None and txn.final.status == 200
        event(f"{spoiled} spoiled: routed and answered")
    else:
        assert txn.final.status >= 400
        event(f"{spoiled} spoiled: refused with {txn.final.status}")
