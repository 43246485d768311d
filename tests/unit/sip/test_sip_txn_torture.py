"""RFC 4475 torture messages through the transaction layer, dialogs and auth headers.

Whatever the message layer accepts must go through matching, server transactions,
responses, dialog creation and credential lookup raising nothing but RemoteError.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ivoz import sip
from ivoz.sip.auth import credentials_for
from ivoz.sip.dialog import Dialog
from ivoz.sip.transaction import (
    RequestReceived,
    ServerInviteTransaction,
    State,
    TransactionLayer,
)
from support.tools import RFC4475, require_path


def torture_files() -> list[Path]:
    if not RFC4475.is_dir():
        return []
    return sorted(RFC4475.glob("*.dat"))


@pytest.mark.parametrize("path", torture_files(), ids=lambda p: p.stem)
def test_torture_message_through_the_layer(path: Path) -> None:
    try:
        message = sip.parse_message(path.read_bytes())
    except sip.RemoteError:
        return  # refused by the parser, as the RFC wants for the invalid ones
    layer = TransactionLayer()
    for attempt in range(2):  # the second time it is a retransmission
        try:
            layer.receive(message, float(attempt), reliable=False, source=("192.0.2.1", 5060))
        except sip.RemoteError:
            return
        for event in layer.next_events():
            if not isinstance(event, RequestReceived) or event.transaction is None:
                continue
            request = event.request
            try:
                credentials_for(request, "example.com")
            except sip.RemoteError:
                pass
            try:
                response = sip.make_response(request, 200, to_tag="tt")
            except (sip.RemoteError, sip.LocalError):
                continue
            if request.method == "INVITE":
                try:
                    Dialog.from_uas(request, response)
                except sip.RemoteError:
                    pass
            layer.send_response(event.transaction, response, float(attempt))
        layer.messages_to_send()
    assert len(layer) <= 1  # the retransmission matched the first transaction


def test_rfc4475_unknown_authorization_scheme_is_no_credentials() -> None:
    # RFC 4475 3.1.1.10 (regaut01): answer as if there were no credentials: 401
    request = sip.parse_message(require_path(RFC4475 / "regaut01.dat", "RFC 4475").read_bytes())
    assert isinstance(request, sip.Request)
    assert credentials_for(request, "example.com") is None


def test_rfc4475_rfc2543_invite_gets_a_transaction_and_a_dialog() -> None:
    # RFC 4475 3.3.15 (inv2543): no branch cookie, no From tag, no Contact
    data = require_path(RFC4475 / "inv2543.dat", "RFC 4475").read_bytes()
    invite = sip.parse_message(data)
    assert isinstance(invite, sip.Request)
    layer = TransactionLayer()
    layer.receive(invite, 0.0, reliable=False)
    [event] = layer.next_events()
    assert isinstance(event, RequestReceived)
    txn = event.transaction
    assert isinstance(txn, ServerInviteTransaction) and txn.key is None
    again = sip.parse_message(data)
    layer.receive(again, 0.1, reliable=False)
    assert layer.next_events() == [] and len(layer) == 1  # RFC 2543 matching
    ok = sip.make_response(invite, 200, to_tag="callee")
    dialog = Dialog.from_uas(invite, ok)
    assert dialog.id.remote_tag == ""
    assert str(dialog.remote_target) == "sip:+13035551111@ift.client.example.net;user=phone"
    layer.send_response(txn, ok, 0.2)
    assert txn.state is State.ACCEPTED


def test_rfc4475_insufficient_headers_get_no_transaction() -> None:
    # RFC 4475 3.1.2.18 (insuf): no From; no transaction may be built for it
    request = sip.parse_message(require_path(RFC4475 / "insuf.dat", "RFC 4475").read_bytes())
    layer = TransactionLayer()
    with pytest.raises(sip.RemoteError):
        layer.receive(request, 0.0, reliable=False)
    assert len(layer) == 0 and layer.next_events() == []
