"""The application server's B2BUA, sans-IO: SIP in, SIP and call-control events out.

A :class:`Call` is an A-leg (we are the UAS: the caller's INVITE, relayed by the users
proxy) and the B-legs we place one after the other (we are the UAC: INVITEs to the
proxy, which rings the callee's contacts). Each leg keeps its own
:class:`ivoz.sip.dialog.Dialog`. The B2BUA never awaits and never touches a socket: it
is driven by

* ``request_received(request, origin, transaction)`` and ``cancelled(transaction)``
  (the ``RequestHandler`` interface of ``ivoz.transport.node.SipNode``),
* the response / failure callbacks it gives ``SipPort.send_request``,
* ``on_timer(now)`` when ``next_timer()`` is due (no-answer timers, 2xx
  retransmissions),

and acts only through its ``SipPort`` (``respond``, ``send_request``,
``send_stateless``, ``cancel``, ``local_via``). The clock is injected.

What passes across (see docs/application-server.md for the flows):

* SDP goes through unchanged both ways, with the offer in the INVITE or in the 2xx and
  the answer in the ACK (RFC 3264); 180/183 responses (with early media SDP) reach the
  caller; re-INVITE, UPDATE, INFO (DTMF), MESSAGE and OPTIONS inside the dialog go to
  the other leg and their responses come back; BYE on either side is answered and
  sent on the other; CANCEL of the A-leg cancels the ringing B-leg and answers 487.
* A 2xx that crosses our CANCEL (or arrives on a B-leg we abandoned) is ACKed and
  BYEd at once (RFC 3261 9.1, 15).

Trust: requests are served only when they come from a trusted host (the users proxy);
the caller's company and terminal come only from the proxy's ``X-Ivoz-*`` headers.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ivoz.appserver.events import (
    CallAnswered,
    CallEnded,
    CallEvent,
    CallFailed,
    CallProgressed,
    LegId,
    RingingTimedOut,
)
from ivoz.appserver.ports import DirectoryReader, SipPort
from ivoz.appserver.routing import Reject, Ring, RouteContext, Router
from ivoz.sip import (
    URI,
    LocalError,
    NameAddr,
    RemoteError,
    Request,
    Response,
    Via,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
)
from ivoz.sip.dialog import AckWait, Dialog
from ivoz.sip.timers import TimerConfig
from ivoz.transport import Address, Kind, Origin
from ivoz.transport.node import capabilities

log = logging.getLogger(__name__)
T = TypeVar("T")

HEADER_COMPANY = "X-Ivoz-Company"
HEADER_CALLER = "X-Ivoz-Caller-Terminal"
HEADER_CALLEE = "X-Ivoz-Callee-Terminal"
# Methods we serve, advertised in Allow (RFC 3261 20.5).
ALLOWED = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "UPDATE", "INFO", "MESSAGE")
# Option tags we support (RFC 3261 8.2.2.3): none, so a Require gets 420 and OPTIONS
# carries no Supported (RFC 3261 20.37). Not 100rel, timer, replaces...: not implemented.
SUPPORTED: tuple[str, ...] = ()
# In-dialog requests relayed to the other leg as they are.
RELAYED = frozenset({"INVITE", "UPDATE", "INFO", "MESSAGE", "OPTIONS"})
# Headers of a relayed request or response that describe its body or purpose.
CARRIED = (
    "Content-Type",
    "Content-Disposition",
    "Content-Language",
    "Content-Encoding",
    "Info-Package",
    "Event",
)


class LegState(enum.Enum):
    TRYING = "trying"  # INVITE sent or received, nothing more yet
    EARLY = "early"  # a provisional response came (B) or went (A)
    ANSWERED = "answered"  # 2xx to the INVITE
    FAILED = "failed"  # a final non-2xx response to the INVITE
    CANCELLED = "cancelled"  # given up before answer: CANCEL sent (B) or 487 sent (A)
    ENDED = "ended"  # BYE sent or received after answer


class LegInput(enum.Enum):
    PROGRESS = "1xx"
    ANSWER = "2xx"
    FAIL = "300-699"
    CANCEL = "cancel"
    HANG_UP = "BYE"


_T, _E, _A = LegState.TRYING, LegState.EARLY, LegState.ANSWERED
_IN = LegInput

LEG_TABLE: Mapping[tuple[LegState, LegInput], LegState] = {
    # RFC 3261 13.2.2.1 / 13.3.1.1: provisional responses while the INVITE is pending
    (_T, _IN.PROGRESS): _E,
    (_E, _IN.PROGRESS): _E,
    # RFC 3261 13.2.2.4: a 2xx establishes the session
    (_T, _IN.ANSWER): _A,
    (_E, _IN.ANSWER): _A,
    # RFC 3261 13.2.2.3: a final non-2xx ends the attempt
    (_T, _IN.FAIL): LegState.FAILED,
    (_E, _IN.FAIL): LegState.FAILED,
    # RFC 3261 9: CANCEL only makes sense before the final response
    (_T, _IN.CANCEL): LegState.CANCELLED,
    (_E, _IN.CANCEL): LegState.CANCELLED,
    # RFC 3261 15: BYE ends an established session
    (_A, _IN.HANG_UP): LegState.ENDED,
}
del _T, _E, _A, _IN

RINGING = frozenset({LegState.TRYING, LegState.EARLY})
LIVE = frozenset({LegState.TRYING, LegState.EARLY, LegState.ANSWERED})


def render_leg_table() -> str:
    """:data:`LEG_TABLE` as markdown, as docs/application-server.md shows it."""
    lines = ["| state | input | next state |", "|---|---|---|"]
    for (state, what), after in LEG_TABLE.items():
        lines.append(f"| {state.value} | {what.value} | {after.value} |")
    return "\n".join(lines)


@dataclass(eq=False)
class Leg:
    """One side of a call: its dialog and how to reach the peer."""

    id: LegId
    call: Call
    fallback: Address  # where requests go when the dialog has no route set
    dialog: Dialog | None = None
    state: LegState = LegState.TRYING
    # UAS duty after our 2xx to an INVITE on this leg (RFC 3261 13.3.1.4)
    ack_wait: AckWait | None = None
    ack_transaction: Any = None
    # the ACK this leg's peer sends us must be passed to the other leg (offer in 2xx)
    owed_ack: tuple[Leg, int] | None = None
    # ACKs we sent on this leg, by the INVITE's CSeq number, for 2xx retransmissions
    acks: dict[int, tuple[Request, Address]] = field(default_factory=dict)
    # an in-dialog INVITE we sent on this leg awaits its final response
    reinvite_out: bool = False

    def move(self, what: LegInput) -> None:
        after = LEG_TABLE.get((self.state, what))
        if after is None:
            raise LocalError(f"leg {self.id}: {what.value} is illegal in state {self.state.value}")
        self.state = after

    @property
    def ringing(self) -> bool:
        """The INVITE awaits its final response."""
        return self.state in RINGING

    @property
    def answered(self) -> bool:
        return self.state is LegState.ANSWERED


@dataclass(eq=False)
class ALeg(Leg):
    invite: Request | None = None
    transaction: Any = None
    to_tag: str = ""
    contact: str = ""


@dataclass(eq=False)
class BLeg(Leg):
    invite: Request | None = None
    transaction: Any = None
    ring: Ring | None = None
    ctx: RouteContext | None = None
    dialogs: dict[str, Dialog] = field(default_factory=dict)  # early dialogs, by To tag

    @property
    def user_id(self) -> int | None:
        return None if self.ring is None else self.ring.user.id


@dataclass(eq=False)
class Call:
    id: str
    a: ALeg = field(init=False)
    b: BLeg | None = None
    ctx: RouteContext | None = None
    caller_user_id: int | None = None
    legs: int = 0
    ended: bool = False
    keys: list[tuple[str, str]] = field(default_factory=list)  # our index entries

    def other(self, leg: Leg) -> Leg | None:
        return self.b if leg is self.a else self.a


class B2BUA:
    """The call engine; see the module docstring."""

    def __init__(
        self,
        sip: SipPort,
        directory: DirectoryReader,
        *,
        proxy: Address,
        trusted_hosts: Iterable[str],
        clock: Callable[[], float],
        router: Router | None = None,
        timers: TimerConfig | None = None,
    ) -> None:
        self.sip = sip
        self.directory = directory
        self.proxy = proxy
        self.trusted_hosts = frozenset(h.lower() for h in trusted_hosts)
        self.clock = clock
        self.router = router if router is not None else Router()
        self.timers = timers if timers is not None else TimerConfig()
        self.calls: dict[str, Call] = {}
        self._legs: dict[tuple[str, str], Leg] = {}  # (Call-ID, our tag) -> leg
        self._invites: dict[int, ALeg] = {}  # id(INVITE server transaction) -> A-leg
        self._timers: list[tuple[float, int, Callable[[float], None]]] = []
        self._seq = itertools.count()
        self._subscribers: list[Callable[[CallEvent], None]] = []
        # called when next_timer() moved earlier (the asyncio shell re-arms its timer)
        self.timer_changed: Callable[[], None] | None = None

    # -- events and timers ------------------------------------------------------------

    def subscribe(self, listener: Callable[[CallEvent], None]) -> None:
        """Call ``listener`` with every call-control event, in order."""
        self._subscribers.append(listener)

    def _emit(self, event: CallEvent) -> None:
        for listener in self._subscribers:
            try:
                listener(event)
            except Exception:
                log.exception("call-control listener failed on %s", event)

    def next_timer(self) -> float | None:
        return self._timers[0][0] if self._timers else None

    def on_timer(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, _, fire = heapq.heappop(self._timers)
            try:
                fire(now)
            except Exception:
                log.exception("application server timer failed")

    def _at(self, deadline: float, fire: Callable[[float], None]) -> None:
        entry = (deadline, next(self._seq), fire)
        heapq.heappush(self._timers, entry)
        if self._timers[0] is entry and self.timer_changed is not None:
            self.timer_changed()

    def active_calls(self, user_id: int) -> int:
        """The user's calls in progress here, as caller or as callee (ringing or up)."""
        count = 0
        for call in self.calls.values():
            if call.ended:
                continue
            b = call.b
            if call.caller_user_id == user_id or (
                b is not None and b.state in LIVE and b.user_id == user_id
            ):
                count += 1
        return count

    # -- the RequestHandler interface ---------------------------------------------------

    def request_received(self, request: Request, origin: Origin, transaction: Any) -> None:
        method = request.method
        if origin.remote.host.lower() not in self.trusted_hosts:
            # only the users proxy may reach the application server
            if transaction is not None and method != "ACK":
                self._reply(transaction, request, 403, "Only the proxy may call here")
            return
        try:
            if method == "ACK":
                self._ack_received(request)
            elif transaction is None:
                return  # a stray CANCEL the node already answered
            elif request.to_tag is not None:
                self._in_dialog(request, origin, transaction)
            elif method == "INVITE":
                self._new_call(request, origin, transaction)
            elif method == "OPTIONS":
                unsupported = [
                    t for t in request.option_tags("Require") if t.lower() not in SUPPORTED
                ]
                if unsupported:
                    # RFC 3261 8.2.2.3: 420 Bad Extension listing them in Unsupported
                    self._reply(transaction, request, 420, None, Unsupported=", ".join(unsupported))
                    return
                # RFC 3261 11.2: the proxy probes us; answer with our capabilities
                self._reply(transaction, request, 200, None, **capabilities(ALLOWED, SUPPORTED))
            elif method in ("BYE", "UPDATE", "INFO", "PRACK"):
                # RFC 3261 12.2.2: outside of a dialog these match nothing
                self._reply(transaction, request, 481)
            elif method in ALLOWED:
                self._reply(transaction, request, 405, None, Allow=", ".join(ALLOWED))
            else:
                # RFC 3261 8.2.1: a method we do not know
                self._reply(transaction, request, 501, None, Allow=", ".join(ALLOWED))
        except RemoteError as exc:
            if transaction is not None and method != "ACK":
                self._reply(transaction, request, exc.status, exc.reason)

    def cancelled(self, transaction: Any) -> None:
        """RFC 3261 9.2: the caller's CANCEL matched its INVITE; end the ringing call."""
        a = self._invites.get(id(transaction))
        if a is None or not a.ringing or a.invite is None:
            return
        call = a.call
        b = call.b
        if b is not None:
            self._abandon(b)
        # RFC 3261 9.2: the UAS answers the INVITE with 487 Request Terminated
        self._fail_a(call, 487, None)

    # -- new calls --------------------------------------------------------------------

    def _new_call(self, request: Request, origin: Origin, transaction: Any) -> None:
        company_text = request.headers.get(HEADER_COMPANY)
        company = None
        if company_text is not None and company_text.strip().isdigit():
            company = self.directory.company(int(company_text))
        if company is None:
            self._reply(transaction, request, 403, "Unknown company")
            return
        caller_terminal = None
        caller_user = None
        caller_text = request.headers.get(HEADER_CALLER)
        if caller_text is not None:
            if caller_text.strip().isdigit():
                caller_terminal = self.directory.terminal_by_id(int(caller_text))
            if caller_terminal is None or caller_terminal.company_id != company.id:
                # a terminal of another client can never call this one's extensions
                self._reply(transaction, request, 403, "Unknown caller terminal")
                return
            if caller_terminal.user_id is not None:
                caller_user = self.directory.user(caller_terminal.user_id)
        request.from_  # noqa: B018  (RemoteError 400 now rather than later)
        contacts = request.contacts
        if len(contacts) != 1 or contacts[0].uri is None:
            # RFC 3261 8.1.1.8 / 12.1.1: the INVITE's Contact is the caller's dialog target
            self._reply(transaction, request, 400, "Contact must hold exactly one URI")
            return
        unsupported = request.option_tags("Require")
        if unsupported:
            # RFC 3261 8.2.2.3: we support no extension that a caller may require
            # (100rel, timer...): 420 Bad Extension listing them in Unsupported
            self._reply(transaction, request, 420, None, Unsupported=", ".join(unsupported))
            return
        dialled = request.uri.user
        if not dialled:
            self._reply(transaction, request, 404, "No number dialled")
            return
        if request.max_forwards == 0:
            # RFC 3261 16.3 step 2 (we forward the call on a new leg): 483 Too Many Hops
            self._reply(transaction, request, 483)
            return
        if request.call_id in self.calls:
            # the same Call-ID with a new From tag or branch: a loop or a merged request
            # RFC 3261 8.2.2.2: 482 Loop Detected
            self._reply(transaction, request, 482)
            return
        call = Call(request.call_id, caller_user_id=None if caller_user is None else caller_user.id)
        remote = origin.remote
        local = origin.local
        a = ALeg(
            id=LegId(call.id, "a"),
            call=call,
            fallback=Address(remote.transport, remote.host, remote.port),
            invite=request,
            transaction=transaction,
            to_tag=new_tag(),
            # our address on the transport the INVITE came over (a wildcard listener's
            # bound host is no use in a Contact: local_via knows what to advertise)
            contact=self._contact(local.transport, *self.sip.local_via(local.transport.value)),
        )
        call.a = a
        call.ctx = RouteContext(
            company=company,
            caller_terminal=caller_terminal,
            caller_user=caller_user,
            directory=self.directory,
            active_calls=self.active_calls,
        )
        self.calls[call.id] = call
        self._invites[id(transaction)] = a
        self._index(call, a.to_tag, a)
        decision, ctx = self.router.dialled(call.ctx, dialled)
        call.ctx = ctx
        self._apply(call, decision, ctx)

    def _apply(self, call: Call, decision: Ring | Reject, ctx: RouteContext) -> None:
        if isinstance(decision, Reject):
            self._fail_a(call, decision.status, decision.reason, local=True)
        else:
            self._place(call, decision, ctx)

    def _place(self, call: Call, ring: Ring, ctx: RouteContext) -> None:
        """Send a B-leg INVITE to the proxy for ``ring.terminal``."""
        a_invite = call.a.invite
        assert a_invite is not None
        company = ctx.company
        domain = company.domain or self.proxy.host
        call.legs += 1
        b = BLeg(
            id=LegId(call.id, f"b{call.legs}"),
            call=call,
            fallback=self.proxy,
            ring=ring,
            ctx=ctx,
        )
        local_tag = new_tag()
        transport = self.proxy.transport
        host, port = self.sip.local_via(transport.value)
        caller = ctx.caller_user
        a_from = a_invite.from_
        # the callee sees the caller's identity as the proxy authenticated it (its AOR),
        # named after the calling user when the phone gave no display name
        display = a_from.display or (None if caller is None else caller.name)
        from_ = NameAddr(a_from.uri, display)
        # the proxy routes by the callee terminal's AOR (team contract)
        ruri = URI("sip", ring.terminal.sip_username, None, domain)
        to = NameAddr(URI("sip", ring.dialled or ring.terminal.sip_username, None, domain))
        call_id = new_call_id()
        headers = [
            ("Via", str(Via(transport.value, host, port, {"branch": new_branch()}))),
            # RFC 3261 8.1.1.6: Max-Forwards; as a B2BUA we carry the caller's budget on
            ("Max-Forwards", str(max(1, min(70, (a_invite.max_forwards or 70) - 1)))),
            ("From", str(from_.with_tag(local_tag))),
            ("To", str(to)),
            ("Call-ID", call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", self._contact(transport, host, port)),
            ("Allow", ", ".join(ALLOWED)),
            (HEADER_COMPANY, str(company.id)),
            (HEADER_CALLEE, str(ring.terminal.id)),
        ]
        if ctx.caller_terminal is not None:
            headers.append((HEADER_CALLER, str(ctx.caller_terminal.id)))
        for diverted in ctx.diversions:
            # RFC 5806: the extensions this call was forwarded from
            headers.append(("Diversion", f"<sip:{diverted}@{domain}>;reason=unknown"))
        headers += _carried(a_invite)
        invite = Request("INVITE", ruri, headers, a_invite.body)
        b.invite = invite
        call.b = b
        self._index(call, local_tag, b, call_id)
        b.transaction = self.sip.send_request(
            invite,
            self.proxy,
            _guarded(lambda response: self._b_response(b, response)),
            _guarded(lambda status: self._b_failure(b, status)),
        )
        if ring.no_answer_timeout is not None:
            timeout = ring.no_answer_timeout
            self._at(self.clock() + timeout, lambda now: self._ring_timeout(b, timeout))

    # -- B-leg responses ------------------------------------------------------------

    def _b_response(self, b: BLeg, response: Response) -> None:
        status = response.status
        if status == 100:
            return
        call = b.call
        if 200 <= status < 300:
            self._b_success(b, response)
            return
        if not b.ringing or call.ended or call.b is not b:
            return
        tag = response.to_tag
        if status < 200:
            if tag is not None and response.headers.get("Contact") is not None:
                self._b_dialog(b, response)
            b.move(LegInput.PROGRESS)
            self._emit(CallProgressed(b.id, status))
            self._relay_provisional(call, response)
            return
        self._b_failed(b, status)

    def _b_dialog(self, b: BLeg, response: Response) -> Dialog | None:
        """The (early or confirmed) dialog of this response's To tag, created if new."""
        tag = response.to_tag
        if tag is None or b.invite is None:
            return None
        dialog = b.dialogs.get(tag)
        try:
            if dialog is None:
                dialog = Dialog.from_uac(b.invite, response, tls=False)
                b.dialogs[tag] = dialog
            else:
                dialog.receive_response(response)
        except (RemoteError, LocalError) as exc:
            log.warning("B-leg %s: unusable response %s (%s)", b.id, response, exc)
            return None
        return dialog

    def _b_success(self, b: BLeg, response: Response) -> None:
        call = b.call
        seq = response.cseq.seq
        if b.dialog is not None and response.to_tag == b.dialog.id.remote_tag:
            # RFC 3261 13.2.2.4: a 2xx retransmission gets the same ACK again
            sent = b.acks.get(seq)
            if sent is not None:
                self.sip.send_stateless(sent[0], sent[1])
            return
        dialog = self._b_dialog(b, response)
        if dialog is None:
            return
        if b.dialog is not None or not b.ringing or call.ended or call.b is not b:
            # RFC 3261 13.2.2.4 / 15: a 2xx we do not want (crossed our CANCEL, a
            # second fork, a leg given up) is ACKed, then the dialog is ended with BYE
            self._ack(b, dialog, seq, b"", None)
            self._send_bye(b, dialog)
            return
        b.dialog = dialog
        b.move(LegInput.ANSWER)
        self._emit(CallAnswered(b.id))
        a = call.a
        assert a.invite is not None
        ok = self._a_response(a, 200, None, response)
        a.move(LegInput.ANSWER)
        self._emit(CallAnswered(a.id))
        self._wait_ack(a, a.transaction, ok)
        if b.invite is not None and b.invite.body:
            # offer in the INVITE: the 2xx holds the answer; ACK at once (RFC 3264)
            self._ack(b, dialog, seq, b"", None)
        else:
            # offer in the 2xx: the caller's ACK carries the answer to pass on
            a.owed_ack = (b, seq)

    def _b_failure(self, b: BLeg, status: int) -> None:
        """The node gave up on the B-leg INVITE (408 timeout, 503 transport error)."""
        if not b.ringing or b.call.ended or b.call.b is not b:
            return
        self._b_failed(b, status)

    def _b_failed(self, b: BLeg, status: int) -> None:
        call = b.call
        b.move(LegInput.FAIL)
        event = CallFailed(b.id, status)
        self._emit(event)
        assert b.ctx is not None and b.ring is not None
        decision, ctx = self.router.failed(b.ctx, b.ring.user, event)
        if decision is None:
            decision = Reject(status)
        if isinstance(decision, Reject):
            self._fail_a(call, *_caller_status(decision.status, decision.reason))
        else:
            self._place(call, decision, ctx)

    def _ring_timeout(self, b: BLeg, after: float) -> None:
        call = b.call
        if not b.ringing or call.ended or call.b is not b:
            return
        event = RingingTimedOut(b.id, after)
        self._emit(event)
        assert b.ctx is not None and b.ring is not None
        decision, ctx = self.router.failed(b.ctx, b.ring.user, event)
        if decision is None:
            return  # nobody wants the call elsewhere: keep ringing
        self._abandon(b)
        self._apply(call, decision, ctx)

    def _abandon(self, b: BLeg) -> None:
        """Give up a ringing B-leg: CANCEL it (RFC 3261 9.1)."""
        if not b.ringing:
            return
        b.move(LegInput.CANCEL)
        if b.transaction is not None:
            self.sip.cancel(b.transaction)
        # RFC 3261 9.1: the callee answers our CANCELled INVITE with 487
        self._emit(CallFailed(b.id, 487, local=True))

    # -- A-leg responses --------------------------------------------------------------

    def _a_response(
        self, a: ALeg, status: int, reason: str | None, source: Response | None
    ) -> Response:
        """Answer the caller's INVITE, carrying ``source``'s body (SDP) across."""
        assert a.invite is not None
        response = make_response(a.invite, status, reason, to_tag=a.to_tag)
        if status < 300:
            # RFC 3261 12.1.1: a dialog-creating response copies the Record-Route and
            # carries our Contact
            for route in a.invite.headers.get_lines("Record-Route"):
                response.headers.add("Record-Route", route)
            response.headers.add("Contact", a.contact)
            response.headers.add("Allow", ", ".join(ALLOWED))
        if source is not None:
            for name, value in _carried(source):
                response.headers.add(name, value)
            response.body = source.body
        if 100 < status < 300:
            try:
                if a.dialog is None:
                    a.dialog = Dialog.from_uas(a.invite, response, tls=False)
                else:
                    a.dialog.send_response(response)
            except (RemoteError, LocalError) as exc:
                log.warning("A-leg %s: no dialog (%s)", a.id, exc)
        self.sip.respond(a.transaction, response)
        return response

    def _relay_provisional(self, call: Call, response: Response) -> None:
        a = call.a
        if not a.ringing:
            return
        a.move(LegInput.PROGRESS)
        # RFC 3261 13.3.1.1: ringing and session progress (183 with early media SDP)
        self._a_response(a, response.status, response.reason, response)

    def _fail_a(self, call: Call, status: int, reason: str | None, *, local: bool = False) -> None:
        a = call.a
        if a.ringing:
            self._a_response(a, status, reason, None)
            a.move(LegInput.CANCEL if status == 487 else LegInput.FAIL)
            self._emit(CallFailed(a.id, status, local=local))
        self._forget(call)

    # -- ACKs and 2xx retransmissions -------------------------------------------------

    def _wait_ack(self, leg: Leg, transaction: Any, ok: Response) -> None:
        """RFC 3261 13.3.1.4: retransmit our 2xx until the ACK comes."""
        wait = AckWait(ok, self.clock(), self.timers)
        leg.ack_wait = wait
        leg.ack_transaction = transaction
        self._arm_ack_wait(leg, wait)

    def _arm_ack_wait(self, leg: Leg, wait: AckWait) -> None:
        deadline = wait.next_timer()
        if deadline is not None:
            self._at(deadline, lambda now: self._ack_wait_fired(leg, wait, now))

    def _ack_wait_fired(self, leg: Leg, wait: AckWait, now: float) -> None:
        if leg.ack_wait is not wait or wait.acked:
            return
        wait.on_timer(now)
        for response in wait.responses_to_send():
            try:
                self.sip.respond(leg.ack_transaction, response)
            except LocalError:
                break  # the INVITE transaction is gone (Timer L): nothing to resend on
        if wait.timed_out:
            # RFC 3261 13.3.1.4: no ACK after 64*T1: end the session with BYE
            leg.ack_wait = None
            self._end(leg.call, None)
            return
        self._arm_ack_wait(leg, wait)

    def _ack_received(self, ack: Request) -> None:
        leg = self._legs.get((ack.call_id, ack.to_tag or ""))
        if leg is None:
            return
        wait = leg.ack_wait
        if wait is None or not wait.receive_ack(ack):
            return
        leg.ack_wait = None
        owed, leg.owed_ack = leg.owed_ack, None
        if owed is not None:
            other, seq = owed
            if other.dialog is not None and not other.dialog.terminated:
                # RFC 3264: the answer to an offer made in a 2xx travels in the ACK
                self._ack(other, other.dialog, seq, ack.body, ack)

    def _ack(self, leg: Leg, dialog: Dialog, seq: int, body: bytes, source: Request | None) -> None:
        """RFC 3261 13.2.2.4: the ACK for a 2xx, built from the dialog, sent end to end."""
        destination = self._destination(leg, dialog)
        headers = [] if source is None or not body else _carried(source)
        ack = dialog.create_request(
            "ACK", via=self._via(destination), cseq=seq, headers=headers, body=body
        )
        leg.acks[seq] = (ack, destination)
        self.sip.send_stateless(ack, destination)

    # -- in-dialog requests -----------------------------------------------------------

    def _in_dialog(self, request: Request, origin: Origin, transaction: Any) -> None:
        leg = self._legs.get((request.call_id, request.to_tag or ""))
        if leg is None or leg.call.ended:
            # RFC 3261 12.2.2: a request for a dialog we do not know: 481
            self._reply(transaction, request, 481)
            return
        dialog = leg.dialog
        if dialog is None and isinstance(leg, BLeg):
            dialog = leg.dialogs.get(request.from_tag or "")
        if dialog is None:
            self._reply(transaction, request, 481)
            return
        dialog.receive_request(request)  # RemoteError 500/481 -> answered by the caller
        call = leg.call
        if request.method == "BYE":
            self._reply(transaction, request, 200)
            self._end(call, leg)
            return
        if request.method not in RELAYED:
            self._reply(transaction, request, 405, None, Allow=", ".join(ALLOWED))
            return
        other = call.other(leg)
        target = None if other is None else other.dialog
        if target is None and isinstance(other, BLeg) and other.dialogs:
            # RFC 3311: UPDATE and INFO may travel inside an early dialog
            target = list(other.dialogs.values())[-1]
        if other is None or target is None or target.terminated:
            # RFC 3261 14.2 / 12.2.2: nothing on the other side to pass this to
            self._reply(transaction, request, 481 if other is None else 491)
            return
        if request.method == "INVITE":
            if leg.reinvite_out:
                # RFC 3261 14.2: an INVITE arrives while ours on this dialog is pending
                self._reply(transaction, request, 491)
                return
            if other.reinvite_out:
                # RFC 3261 14.2: a second INVITE before the first got its final response
                self._reply(transaction, request, 500, None, Retry_After="2")
                return
            other.reinvite_out = True
        destination = self._destination(other, target)
        relayed = target.create_request(
            request.method,
            via=self._via(destination),
            headers=_carried(request),
            body=request.body,
        )
        self.sip.send_request(
            relayed,
            destination,
            _guarded(
                lambda response: self._relayed_response(leg, transaction, request, other, response)
            ),
            _guarded(lambda status: self._relayed_failure(transaction, request, other, status)),
        )

    def _relayed_response(
        self, leg: Leg, transaction: Any, request: Request, other: Leg, response: Response
    ) -> None:
        status = response.status
        if status == 100:
            return
        dialog = other.dialog
        if dialog is not None:
            dialog.receive_response(response)
        method = request.method
        if method == "INVITE" and status >= 200:
            other.reinvite_out = False
        if method == "INVITE" and 200 <= status < 300:
            seq = response.cseq.seq
            sent = other.acks.get(seq)
            if sent is not None:
                # RFC 3261 13.2.2.4: a 2xx retransmission gets the same ACK
                self.sip.send_stateless(sent[0], sent[1])
                return
            if leg.ack_wait is not None and leg.owed_ack == (other, seq):
                return  # still waiting for our side's ACK
        if 100 < status < 200 and method != "INVITE":
            return  # RFC 4320 4.1: only 100 for non-INVITE requests
        out = make_response(request, status, response.reason)
        if 200 <= status < 300 and method in ("INVITE", "UPDATE") and leg.dialog is not None:
            contact = leg.dialog.local_contact
            if contact is not None:
                out.headers.add("Contact", contact)
        for name, value in _carried(response):
            out.headers.add(name, value)
        out.body = response.body
        self.sip.respond(transaction, out)
        if method == "INVITE" and 200 <= status < 300:
            seq = response.cseq.seq
            self._wait_ack(leg, transaction, out)
            if request.body:
                # the re-INVITE held the offer: ACK the other side at once
                if dialog is not None:
                    self._ack(other, dialog, seq, b"", None)
            else:
                leg.owed_ack = (other, seq)

    def _relayed_failure(self, transaction: Any, request: Request, other: Leg, status: int) -> None:
        if request.method == "INVITE":
            other.reinvite_out = False
        self._reply(transaction, request, status)
        if status == 408 and other.dialog is not None and not other.dialog.terminated:
            # RFC 3261 12.2.1.2: a timed-out in-dialog request ends the dialog
            self._end(other.call, None)

    # -- ending -----------------------------------------------------------------------

    def _end(self, call: Call, by: Leg | None) -> None:
        """End the call: BYE every answered leg except ``by`` (which sent its BYE)."""
        if call.ended:
            return
        for leg in (call.a, call.b):
            if leg is None:
                continue
            leg.ack_wait = None
            if leg.answered:
                leg.move(LegInput.HANG_UP)
                dialog = leg.dialog
                if leg is not by and dialog is not None and not dialog.terminated:
                    self._send_bye(leg, dialog)
                self._emit(CallEnded(leg.id, None if by is None else by.id))
            elif leg.ringing and isinstance(leg, BLeg):
                self._abandon(leg)
            elif leg.ringing and isinstance(leg, ALeg):
                self._a_response(leg, 487, None, None)
                leg.move(LegInput.CANCEL)
                self._emit(CallFailed(leg.id, 487, local=True))
        self._forget(call)

    def _send_bye(self, leg: Leg, dialog: Dialog) -> None:
        destination = self._destination(leg, dialog)
        try:
            bye = dialog.create_request("BYE", via=self._via(destination))
        except LocalError:
            return
        self.sip.send_request(bye, destination, _ignore, None)

    def _index(self, call: Call, tag: str, leg: Leg, call_id: str | None = None) -> None:
        key = (call.id if call_id is None else call_id, tag)
        self._legs[key] = leg
        call.keys.append(key)

    def _forget(self, call: Call) -> None:
        call.ended = True
        self.calls.pop(call.id, None)
        self._invites.pop(id(call.a.transaction), None)
        for key in call.keys:
            self._legs.pop(key, None)

    # -- helpers --------------------------------------------------------------------

    def _reply(
        self,
        transaction: Any,
        request: Request,
        status: int,
        reason: str | None = None,
        **headers: str,
    ) -> None:
        to_tag = None if request.to_tag is not None else new_tag()
        response = make_response(request, status, reason, to_tag=to_tag)
        for name, value in headers.items():
            response.headers.set(name.replace("_", "-"), value)
        self.sip.respond(transaction, response)

    def _contact(self, transport: Kind, host: str, port: int) -> str:
        params: dict[str, str | None] = {}
        if transport is not Kind.UDP:
            params["transport"] = transport.value.lower()
        return f"<{URI('sip', 'ivoz-as', None, host, port, params)}>"

    def _via(self, destination: Address) -> Via:
        host, port = self.sip.local_via(destination.transport.value)
        return Via(destination.transport.value, host, port)

    def _destination(self, leg: Leg, dialog: Dialog) -> Address:
        """Where an in-dialog request goes: the first route (the proxy's Record-Route,
        RFC 3261 12.2.1.1), or the leg's fallback (the proxy, the A-leg's source)."""
        if dialog.route_set:
            return _address_of(dialog.route_set[0].uri, leg.fallback)
        return leg.fallback


def _address_of(uri: URI, fallback: Address) -> Address:
    transport = uri.transport
    kind = Kind.from_via(transport) if transport else None
    if kind is None:
        kind = Kind.TLS if uri.scheme == "sips" else Kind.UDP
    port = uri.port if uri.port is not None else kind.default_port
    host = uri.host.strip("[]") or fallback.host
    return Address(kind, host, port)


def _carried(message: Request | Response) -> list[tuple[str, str]]:
    """The body-describing headers to copy with a relayed body."""
    out: list[tuple[str, str]] = []
    for name in CARRIED:
        out += [(name, value) for value in message.headers.get_lines(name)]
    return out


def _caller_status(status: int, reason: str | None) -> tuple[int, str | None]:
    """What the caller is told when the callee side failed with ``status``."""
    if status < 400:
        # redirections are not followed yet: the callee is unavailable to us
        return 480, None
    if status in (401, 407):
        # the proxy challenged us: a configuration problem, not the caller's
        return 500, "Application server not trusted by the proxy"
    return status, reason


def _ignore(response: Response) -> None:
    return None


def _guarded(callback: Callable[[T], None]) -> Callable[[T], None]:
    """A node callback that logs our errors instead of raising them into the node,
    and answers nothing for a response whose headers turn out malformed."""

    def run(value: T) -> None:
        try:
            callback(value)
        except RemoteError as exc:
            log.warning("application server: malformed message dropped (%s)", exc)
        except Exception:
            log.exception("application server failed on %r", value)

    return run


__all__ = [
    "ALLOWED",
    "B2BUA",
    "HEADER_CALLEE",
    "HEADER_CALLER",
    "HEADER_COMPANY",
    "ALeg",
    "BLeg",
    "Call",
    "Leg",
]
