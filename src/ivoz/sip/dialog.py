"""SIP dialogs (RFC 3261 section 12), sans-IO.

A :class:`Dialog` is the peer-to-peer state between two user agents: its id (Call-ID,
local tag, remote tag), the local and remote sequence numbers, the local and remote
URIs, the remote target and the route set. Create one with :meth:`Dialog.from_uac`
(from the request we sent and a 101-199 or 2xx response carrying a To tag, 12.1.2) or
:meth:`Dialog.from_uas` (from the request we received and our response, 12.1.1).

Then:

* :meth:`Dialog.create_request` builds an in-dialog request (12.2.1.1): To/From with
  tags, Call-ID, the next local CSeq, Request-URI and Route from the remote target and
  the route set (loose or strict routing), Contact for target refresh requests;
* :meth:`Dialog.receive_request` checks an in-dialog request we received (12.2.2): a
  CSeq lower than the remote sequence number is refused with ``RemoteError(500)``, a
  target refresh request updates the remote target, BYE ends the dialog;
* :meth:`Dialog.receive_response` applies a response to one of our requests (12.1.2,
  12.2.1.2, 13.2.2.4): the early dialog becomes confirmed on 2xx with its route set
  recomputed, 2xx to a target refresh updates the remote target, 481 and 408 end it;
* :meth:`Dialog.send_response` tells a UAS dialog about the final response it sent.

:class:`AckWait` is the UAS core's duty after it accepted an INVITE (RFC 3261
13.3.1.4): retransmit the 2xx, T1 doubling up to T2, until the ACK comes, and give up
(the caller then sends BYE) after 64*T1.

States are :class:`DialogState`; every legal move is a row of :data:`DIALOG_TABLE`.
Using a terminated dialog raises :class:`ivoz.sip.LocalError` for our own commands and
``RemoteError(481)`` for a request from the network.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ivoz.sip.errors import LocalError, RemoteError
from ivoz.sip.headers import Headers
from ivoz.sip.message import Message, Request, Response, new_branch
from ivoz.sip.timers import TimerConfig
from ivoz.sip.uri import URI
from ivoz.sip.values import CSEQ_MAX, NameAddr, Via

__all__ = [
    "DIALOG_TABLE",
    "TARGET_REFRESH_METHODS",
    "AckWait",
    "Dialog",
    "DialogId",
    "DialogInput",
    "DialogState",
    "dialog_id_of",
]

# RFC 3261 12.2 (INVITE), RFC 3311 (UPDATE), RFC 6665 (SUBSCRIBE, NOTIFY), RFC 3515 (REFER)
TARGET_REFRESH_METHODS = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})

# RFC 3261 19.1.1 table 1: parameters and components not allowed in a Request-URI
_NOT_IN_REQUEST_URI = ("method",)


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class DialogInput(enum.Enum):
    PROVISIONAL = "1xx to the initial INVITE"
    SUCCESS = "2xx to the initial INVITE or to a target refresh"
    FAILURE = "300-699 to the initial INVITE"
    OTHER_RESPONSE = "other response to an in-dialog request"
    ENDING_RESPONSE = "481 or 408 to an in-dialog request"
    REQUEST = "in-dialog request"
    BYE = "BYE sent or received"


_E, _C, _T = DialogState.EARLY, DialogState.CONFIRMED, DialogState.TERMINATED
_IN = DialogInput

DIALOG_TABLE: Mapping[tuple[DialogState, DialogInput], DialogState] = {
    # RFC 3261 12.1: later provisional responses keep the dialog early
    (_E, _IN.PROVISIONAL): _E,
    # RFC 3261 13.2.2.4: a 2xx confirms an early dialog
    (_E, _IN.SUCCESS): _C,
    # RFC 3261 12.3: a non-2xx final response to the initial INVITE ends early dialogs
    (_E, _IN.FAILURE): _T,
    # RFC 3262 / RFC 3311: PRACK and UPDATE travel inside early dialogs
    (_E, _IN.REQUEST): _E,
    (_E, _IN.OTHER_RESPONSE): _E,
    # RFC 3261 12.2.1.2: 481 or 408 to an in-dialog request terminates the dialog
    (_E, _IN.ENDING_RESPONSE): _T,
    # RFC 3261 15: the caller MAY send BYE on an early dialog
    (_E, _IN.BYE): _T,
    (_C, _IN.SUCCESS): _C,  # 2xx retransmission, 2xx to a re-INVITE
    (_C, _IN.REQUEST): _C,
    (_C, _IN.OTHER_RESPONSE): _C,
    (_C, _IN.ENDING_RESPONSE): _T,
    # RFC 3261 15: BYE terminates the session and the dialog
    (_C, _IN.BYE): _T,
}
del _E, _C, _T, _IN


def render_table() -> str:
    """:data:`DIALOG_TABLE` as markdown, the form docs/sip-transactions.md shows."""
    lines = ["| state | input | next state |", "|---|---|---|"]
    for (state, what), after in DIALOG_TABLE.items():
        lines.append(f"| {state.value} | {what.value} | {after.value} |")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class DialogId:
    """RFC 3261 12: Call-ID, local tag and remote tag identify a dialog."""

    call_id: str
    local_tag: str
    remote_tag: str


def dialog_id_of(message: Message, *, received: bool) -> DialogId:
    """The id of the dialog ``message`` belongs to, from our side's point of view.

    For a request we received (or a response we sent) our tag is in To; for a response
    we received (or a request we sent) our tag is in From (RFC 3261 12.2.2, 12.2.1.2).
    """
    is_request = isinstance(message, Request)
    ours_in_to = is_request == received
    local, remote = (message.to_tag, message.from_tag)
    if not ours_in_to:
        local, remote = remote, local
    return DialogId(message.call_id, local or "", remote or "")


def _contact_uri(message: Message) -> URI | None:
    contacts = message.contacts
    if not contacts:
        return None
    uri = contacts[0].uri
    if uri is None or len(contacts) != 1:
        # RFC 3261 8.1.1.8 / 12.1.1: exactly one SIP URI in a dialog's Contact
        raise RemoteError(400, "Contact must hold exactly one URI in a dialog")
    return uri


class Dialog:
    """The state of one dialog; see the module docstring for the life cycle."""

    def __init__(
        self,
        *,
        id: DialogId,
        state: DialogState,
        local_uri: NameAddr,
        remote_uri: NameAddr,
        remote_target: URI,
        route_set: Iterable[NameAddr] = (),
        local_seq: int | None = None,
        remote_seq: int | None = None,
        local_contact: str | None = None,
        secure: bool = False,
        is_uac: bool = True,
        initial_seq: int | None = None,
    ) -> None:
        self.id = id
        self._state = state
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.remote_target = remote_target
        self.route_set: tuple[NameAddr, ...] = tuple(route_set)
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.local_contact = local_contact
        self.secure = secure
        self.is_uac = is_uac
        # the CSeq number of the request that created the dialog (our INVITE as UAC,
        # theirs as UAS): its responses are the ones that confirm or end an early dialog
        self.initial_seq = initial_seq

    @property
    def state(self) -> DialogState:
        return self._state

    @property
    def terminated(self) -> bool:
        return self._state is DialogState.TERMINATED

    def __repr__(self) -> str:
        return f"<sip.Dialog {self._state.value} {self.id}>"

    # -- creation -----------------------------------------------------------------

    @classmethod
    def from_uac(cls, request: Request, response: Response, *, tls: bool = True) -> Dialog:
        """The dialog a UAC gets from a 101-199 or 2xx response with a To tag (12.1.2).

        ``tls`` says whether the request went out over TLS (for the secure flag).
        """
        if not 101 <= response.status <= 299:
            raise LocalError("only 101-299 responses create dialogs (RFC 3261 12.1)")
        remote_tag = response.to_tag
        local_tag = request.from_tag
        if remote_tag is None:
            # RFC 3261 12.1: a response without a To tag creates no dialog
            raise LocalError("a response without a To tag creates no dialog")
        if local_tag is None:
            raise LocalError("our request has no From tag (RFC 3261 8.1.1.3)")
        # RFC 3261 12.1.2: the remote target is the URI of the response's Contact
        target = _contact_uri(response) or request.uri
        # RFC 3261 12.1.2: the route set is the Record-Route list in reverse order
        route_set = tuple(reversed(response.record_routes))
        contact = request.headers.get("Contact")
        return cls(
            id=DialogId(request.call_id, local_tag, remote_tag),
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            local_uri=request.from_,
            remote_uri=response.to,
            remote_target=target,
            route_set=route_set,
            # RFC 3261 12.1.2: local sequence number = CSeq of the request, remote empty
            local_seq=request.cseq.seq,
            remote_seq=None,
            local_contact=contact,
            # RFC 3261 12.1.2: secure when sent over TLS with a SIPS Request-URI
            secure=tls and request.uri.is_secure,
            is_uac=True,
            initial_seq=request.cseq.seq,
        )

    @classmethod
    def from_uas(cls, request: Request, response: Response, *, tls: bool = True) -> Dialog:
        """The dialog a UAS makes when it sends a 101-299 response with a To tag (12.1.1).

        ``tls`` says whether the request arrived over TLS (for the secure flag).
        """
        if not 101 <= response.status <= 299:
            raise LocalError("only 101-299 responses create dialogs (RFC 3261 12.1)")
        local_tag = response.to_tag
        if local_tag is None:
            raise LocalError("a dialog-creating response needs a To tag (RFC 3261 12.1.1)")
        # RFC 3261 12.1.1: the remote target is the URI of the request's Contact
        target = _contact_uri(request)
        if target is None:
            if request.via.is_rfc3261:
                # RFC 3261 8.1.1.8: a dialog-creating request MUST carry a Contact
                raise RemoteError(400, "Missing Contact header")
            # RFC 4475 3.3.15 / RFC 2543 6.13: an RFC 2543 UA without Contact is
            # reached at its From address
            target = request.from_.uri
        contact = response.headers.get("Contact")
        return cls(
            # RFC 3261 12.1.1: remote tag = From tag (may be absent from RFC 2543 UAs)
            id=DialogId(request.call_id, local_tag, request.from_tag or ""),
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
            local_uri=response.to,
            remote_uri=request.from_,
            remote_target=target,
            # RFC 3261 12.1.1: the route set is the Record-Route list, in order
            route_set=tuple(request.record_routes),
            # RFC 3261 12.1.1: remote sequence number = CSeq of the request, local empty
            local_seq=None,
            remote_seq=request.cseq.seq,
            local_contact=contact,
            # RFC 3261 12.1.1: secure when it arrived over TLS with a SIPS Request-URI
            secure=tls and request.uri.is_secure,
            is_uac=False,
            initial_seq=request.cseq.seq,
        )

    # -- the table ----------------------------------------------------------------

    def _move(self, what: DialogInput) -> None:
        row = DIALOG_TABLE.get((self._state, what))
        if row is None:
            raise LocalError(f"dialog: {what.value} is illegal in state {self._state.value}")
        self._state = row

    # -- UAC side of in-dialog requests -------------------------------------------

    def create_request(
        self,
        method: str,
        *,
        via: Via | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        cseq: int | None = None,
    ) -> Request:
        """An in-dialog request (RFC 3261 12.2.1.1).

        ``via`` (the transport's sent-by) gets a fresh branch unless it has one. ACK and
        CANCEL reuse the CSeq number given in ``cseq`` (the INVITE's, 13.2.2.4); other
        methods take the next local sequence number. Sending BYE ends the dialog.
        """
        if self.terminated:
            raise LocalError("the dialog is terminated")
        if method in ("ACK", "CANCEL"):
            if cseq is None:
                raise LocalError(f"{method} needs the CSeq number of the INVITE")
            number = cseq
        else:
            if cseq is not None:
                number = cseq
            elif self.local_seq is None:
                # RFC 3261 12.2.1.1 / 8.1.1.5: an empty local sequence number starts anew
                number = 1
            else:
                # RFC 3261 12.2.1.1: the local sequence number, incremented by one
                number = self.local_seq + 1
            if not 0 <= number <= CSEQ_MAX or (
                self.local_seq is not None and number <= self.local_seq
            ):
                raise LocalError(f"CSeq {number} does not move the local sequence forward")
            self.local_seq = number
        uri, routes = self._request_target()
        hdrs = Headers()
        if via is not None:
            if via.branch is None:
                via = via.with_params(branch=new_branch())
            hdrs.add("Via", str(via))
        hdrs.add("Max-Forwards", "70")
        for route in routes:
            hdrs.add("Route", str(route))
        # RFC 3261 12.2.1.1: To = remote URI and remote tag; From = local URI and tag
        remote = (
            self.remote_uri
            if not self.id.remote_tag
            else self.remote_uri.with_tag(self.id.remote_tag)
        )
        hdrs.add("From", str(self.local_uri.with_tag(self.id.local_tag)))
        hdrs.add("To", str(remote))
        hdrs.add("Call-ID", self.id.call_id)
        hdrs.add("CSeq", f"{number} {method}")
        # RFC 3261 12.2.1.1: a UAC SHOULD include a Contact in target refresh requests
        if method in TARGET_REFRESH_METHODS and self.local_contact is not None:
            hdrs.add("Contact", self.local_contact)
        for name, value in headers:
            hdrs.add(name, value)
        request = Request(method, uri, hdrs, body)
        self._move(DialogInput.BYE if method == "BYE" else DialogInput.REQUEST)
        return request

    def _request_target(self) -> tuple[URI, list[NameAddr]]:
        """Request-URI and Route values (RFC 3261 12.2.1.1)."""
        if not self.route_set:
            # RFC 3261 12.2.1.1: empty route set: Request-URI = remote target, no Route
            return self.remote_target, []
        first = self.route_set[0]
        if "lr" in first.uri.params:
            # RFC 3261 12.2.1.1: loose router first: Request-URI = remote target,
            # Route = the route set
            return self.remote_target, list(self.route_set)
        # RFC 3261 12.2.1.1: strict router first: its URI becomes the Request-URI
        # (stripped of what a Request-URI may not hold), the rest of the route set
        # follows in Route, and the remote target goes last
        uri = first.uri.without_params(*_NOT_IN_REQUEST_URI)
        if uri.headers:
            uri = URI(uri.scheme, uri.user, uri.password, uri.host, uri.port, dict(uri.params), {})
        return uri, [*self.route_set[1:], NameAddr(self.remote_target)]

    def receive_response(self, response: Response) -> None:
        """Apply a response to a request we sent in this dialog (12.1.2, 12.2.1.2)."""
        if self.terminated:
            return  # late responses change nothing
        status = response.status
        method = response.cseq.method
        initial = method == "INVITE" and response.cseq.seq == self.initial_seq and self.is_uac
        if status in (408, 481):
            # RFC 3261 12.2.1.2: 481 or 408 to a request within a dialog ends it
            self._move(DialogInput.ENDING_RESPONSE)
            return
        if self._state is DialogState.EARLY and initial:
            if status < 200:
                self._move(DialogInput.PROVISIONAL)
                self._refresh_target(response)
            elif status < 300:
                self._move(DialogInput.SUCCESS)
                # RFC 3261 13.2.2.4: the route set is recomputed from the 2xx
                self.route_set = tuple(reversed(response.record_routes))
                self._refresh_target(response)
            else:
                self._move(DialogInput.FAILURE)
            return
        if 200 <= status < 300 and method in TARGET_REFRESH_METHODS:
            self._move(DialogInput.SUCCESS)
            # RFC 3261 12.2.1.2: a 2xx to a target refresh request replaces the remote target
            self._refresh_target(response)
            return
        self._move(DialogInput.OTHER_RESPONSE)

    def _refresh_target(self, message: Message) -> None:
        uri = _contact_uri(message)
        if uri is not None:
            self.remote_target = uri

    # -- UAS side -----------------------------------------------------------------

    def receive_request(self, request: Request) -> None:
        """Check and apply an in-dialog request we received (RFC 3261 12.2.2).

        Raises ``RemoteError(500)`` for an out-of-order CSeq and ``RemoteError(481)``
        when the dialog has ended; the TU answers with that status.
        """
        if self.terminated:
            # RFC 3261 12.2.2: no matching dialog: 481 Call/Transaction Does Not Exist
            raise RemoteError(481, "Call/Transaction Does Not Exist")
        seq = request.cseq.seq
        if request.method not in ("ACK", "CANCEL"):
            if self.remote_seq is not None and seq < self.remote_seq:
                # RFC 3261 12.2.2: lower than the remote sequence number: out of order, 500
                raise RemoteError(500, "Server Internal Error")
            # RFC 3261 12.2.2: the remote sequence number takes the request's value
            self.remote_seq = seq
        if request.method == "BYE":
            self._move(DialogInput.BYE)
            return
        self._move(DialogInput.REQUEST)
        if request.method in TARGET_REFRESH_METHODS:
            # RFC 3261 12.2.2: a target refresh request replaces the remote target
            self._refresh_target(request)

    def send_response(self, response: Response) -> None:
        """A UAS tells the dialog which response it sent to the creating INVITE."""
        if self.terminated or self.is_uac:
            return
        if response.cseq.method != "INVITE" or response.cseq.seq != self.initial_seq:
            return
        if self._state is DialogState.EARLY:
            if response.status < 200:
                self._move(DialogInput.PROVISIONAL)
            elif response.status < 300:
                self._move(DialogInput.SUCCESS)
            else:
                self._move(DialogInput.FAILURE)


class AckWait:
    """Retransmits a 2xx to INVITE until its ACK arrives (RFC 3261 13.3.1.4), sans-IO.

    Drive it like a transaction: ``on_timer(now)`` when ``next_timer()`` is due, send
    every response ``responses_to_send()`` returns (through the INVITE server
    transaction, which passes 2xx retransmissions on in its Accepted state, RFC 6026
    7.1), and call ``receive_ack(ack)`` for each ACK of the dialog. ``timed_out``
    becomes true when 64*T1 passed without an ACK: the session SHOULD then be ended
    with a BYE (RFC 3261 13.3.1.4).

    The retransmissions run over reliable transports too: the 2xx must get through
    end to end, across proxies, not just to the next hop (RFC 3261 13.3.1.4).
    """

    def __init__(self, response: Response, now: float, config: TimerConfig | None = None) -> None:
        if not 200 <= response.status < 300 or response.cseq.method != "INVITE":
            raise LocalError("AckWait is for a 2xx to INVITE")
        self.response = response
        self.config = config if config is not None else TimerConfig()
        # RFC 3261 13.3.1.4: the interval starts at T1 ...
        self._interval = self.config.t1
        self._next: float | None = now + self._interval
        # RFC 3261 13.3.1.4: ... and the UAS gives up after 64*T1 seconds
        self._give_up = now + 64 * self.config.t1
        self._out: list[Response] = []
        self.acked = False
        self.timed_out = False

    def next_timer(self) -> float | None:
        return self._next

    def on_timer(self, now: float) -> None:
        while self._next is not None and self._next <= now:
            if self._next >= self._give_up:
                self._next = None
                self.timed_out = True
                return
            self._out.append(self.response)
            # RFC 3261 13.3.1.4: the interval doubles until it reaches T2
            self._interval = min(2 * self._interval, self.config.t2)
            self._next = min(self._next + self._interval, self._give_up)

    def receive_ack(self, ack: Request) -> bool:
        """True (and retransmissions stop) when ``ack`` acknowledges our 2xx."""
        if ack.method != "ACK" or ack.cseq.seq != self.response.cseq.seq:
            return False
        self.acked = True
        self._next = None
        return True

    def responses_to_send(self) -> list[Response]:
        out, self._out = self._out, []
        return out
