"""The stateful proxy engine (RFC 3261 section 16), policy-free.

:class:`Proxy` forwards requests through a :class:`SipPort` (what
:class:`ivoz.transport.node.SipNode` offers: ``respond``, ``send_request``,
``send_stateless``, ``cancel``, ``local_via``) and keeps one *response context* per
forwarded request (:class:`Context`, RFC 3261 16.7). The policy above it (the users
proxy role) decides the targets; the engine does the rest:

- validation (16.3): Max-Forwards 0 -> 483, Proxy-Require with anything -> 420;
- forwarding (16.6): a copy per target with its Request-URI, Max-Forwards - 1,
  Record-Route (twice, ``r2=on``, when the outbound transport differs from the inbound,
  RFC 5658), strict-route fix-up (step 6), a new Via with a fresh branch (step 8), a
  client transaction, Timer C for INVITEs (step 11);
- loose routing (16.4): :meth:`Proxy.route` strips our own Route values (both of a
  double Record-Route) and restores the Request-URI a strict router replaced;
- responses (16.7): 100 absorbed, other 1xx and every 2xx forwarded at once, finals
  collected and the best one (6xx, else the lowest class; 503 turned into 500; 401/407
  challenges merged) sent when every branch is done; a 2xx or 6xx cancels the pending
  branches;
- CANCEL (16.10): :meth:`Proxy.cancelled` cancels every pending branch (the node
  already answered the CANCEL 200); the 487s come back as the best response;
- ACK for a 2xx and 2xx retransmissions that match no transaction go statelessly
  (:meth:`Proxy.forward_stateless`, :meth:`Proxy.stray_response`).

A hook (``Context.on_response``) sees each response before it is processed, so the
role can rewrite SDP asynchronously and then call the continuation it is given.
Time comes from the injected ``clock``; :meth:`Proxy.next_timer` and
:meth:`Proxy.on_timer` drive Timer C and the no-response timer.
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ivoz.sip import (
    URI,
    LocalError,
    NameAddr,
    Request,
    Response,
    Via,
    make_response,
    new_branch,
)
from ivoz.transport.address import Address, Kind, Origin
from ivoz.transport.port import SipPort

log = logging.getLogger(__name__)

TIMER_C = 180.0  # seconds; RFC 3261 16.6 step 11: "greater than 3 minutes"
# seconds a branch may stay without any response before it counts as 408 (Kamailio's
# fr_timer): a dead next hop over UDP is noticed long before Timer B's 32 s.
NO_RESPONSE = 32.0
CANCEL_GRACE = 32.0  # seconds (64*T1) a cancelled branch has to send its final response
MAX_FORWARDS = 70  # RFC 3261 16.6 step 3: the value to add when there is none


@dataclass(frozen=True, slots=True)
class Target:
    """One branch to try: the Request-URI (None keeps the request's), where it goes, and
    Route values to put first (a registration's Path, RFC 3327)."""

    uri: URI | None
    destination: Address | int
    transport: Kind = Kind.UDP
    route: tuple[str, ...] = ()
    label: object = None  # what the policy wants back (an application server id...)


@dataclass(eq=False)
class Branch:
    """One client transaction of a response context (RFC 3261 16.6)."""

    context: Context
    target: Target
    request: Request
    transaction: Any = None
    provisional: bool = False
    final: Response | None = None
    local_failure: bool = False
    timer_c: float | None = None
    no_response: float | None = None
    timed_out: bool = False

    @property
    def done(self) -> bool:
        return self.final is not None


ResponseHook = Callable[["Context", Branch, Response, Callable[[Response], None]], None]


@dataclass(eq=False)
class Context:
    """The response context of one forwarded request (RFC 3261 16.7)."""

    request: Request
    transaction: Any
    origin: Origin | None
    branches: list[Branch] = field(default_factory=list)
    alternates: list[Target] = field(default_factory=list)
    best: Response | None = None
    final_sent: bool = False
    success: bool = False
    cancelled: bool = False
    record_route: bool = True
    on_response: ResponseHook | None = None
    on_final: Callable[[Context, Response], None] | None = None
    data: dict[str, Any] = field(default_factory=dict)
    no_response: float = NO_RESPONSE
    failover_on: frozenset[int] = frozenset()  # statuses that also move to an alternate

    @property
    def is_invite(self) -> bool:
        return self.request.method == "INVITE"

    @property
    def pending(self) -> list[Branch]:
        return [b for b in self.branches if not b.done]


def validate(request: Request) -> Response | None:
    """RFC 3261 16.3 request validation: None, or the error response to send.

    Malformed essential headers raise RemoteError (the lazy accessors' 400).
    """
    # RFC 3261 16.3 step 1: syntax of what the proxy reads (lazy accessors raise 400)
    request.via, request.call_id, request.cseq, request.from_, request.to  # noqa: B018
    # RFC 3261 16.3 step 3: Max-Forwards 0 -> 483 (OPTIONS may be answered locally; the
    # caller decides that before calling us)
    if request.max_forwards == 0:
        return make_response(request, 483, "Too Many Hops")
    # RFC 3261 16.3 step 6: Proxy-Require with an extension we do not support -> 420
    required = request.option_tags("Proxy-Require")
    if required:
        response = make_response(request, 420, "Bad Extension")
        response.headers.set("Unsupported", ", ".join(required))
        return response
    return None


def _response_class(status: int) -> int:
    return status // 100


def choose_best(responses: Sequence[Response]) -> Response:
    """RFC 3261 16.7 step 6: a 6xx, else the lowest class (4xx before 5xx, 3xx...)."""
    sixes = [r for r in responses if r.status >= 600]
    if sixes:
        return sixes[0]
    return min(responses, key=lambda r: (_response_class(r.status), r.status == 408))


class Proxy:
    """The engine; see the module docstring."""

    def __init__(
        self,
        port: SipPort,
        *,
        clock: Callable[[], float],
        local_hosts: frozenset[str] = frozenset(),
        timer_c: float = TIMER_C,
        no_response: float = NO_RESPONSE,
    ) -> None:
        self.port = port
        self.clock = clock
        self.local_hosts = frozenset(h.lower().strip("[]") for h in local_hosts)
        self.timer_c = timer_c
        self.no_response = no_response
        self.contexts: dict[int, Context] = {}  # id(server transaction) -> context
        self._heap: list[tuple[float, int, Branch]] = []
        self._seq = itertools.count()
        #: called when a timer deadline may have moved (the role re-arms its loop timer)
        self.timer_changed: Callable[[], None] = lambda: None

    # -- our own addresses --------------------------------------------------------------

    def record_route_uri(self, kind: Kind, *, r2: bool = False) -> URI:
        host, port = self.port.local_via(kind.value)
        params: dict[str, str | None] = {}
        if kind is not Kind.UDP:
            params["transport"] = kind.value.lower()
        params["lr"] = None
        if r2:
            params["r2"] = "on"
        return URI("sip", None, None, host, port, params)

    def is_ours(self, uri: URI) -> bool:
        """Whether ``uri`` names this proxy (a Route or Request-URI we put there)."""
        if uri.user:
            return False
        host = uri.host.lower().strip("[]")
        if host not in self.local_hosts:
            return False
        kind = Kind.from_via(uri.transport or "udp") or Kind.UDP
        _, port = self.port.local_via(kind.value)
        return (uri.port or kind.default_port) == port

    # -- RFC 3261 16.4: route information preprocessing ----------------------------------

    def preprocess_routes(self, request: Request) -> None:
        """Undo a strict router's rewrite and strip our own Route values (16.4)."""
        # RFC 3261 16.4: a Request-URI we placed in a Record-Route means the previous
        # hop was a strict router: the real Request-URI is the last Route value
        if self.is_ours(request.uri):
            lines = request.headers.get_all("Route")
            if lines:
                last = NameAddr.parse(lines[-1]).uri
                rest = lines[:-1]
                request.headers.remove("Route")
                for value in rest:
                    request.headers.add("Route", value)
                request.uri = last
        # RFC 3261 16.4: the first Route naming us is removed (both when doubled, RFC 5658)
        for _ in range(2):
            routes = request.headers.get_all("Route")
            if not routes:
                break
            top = NameAddr.parse(routes[0]).uri
            if not self.is_ours(top):
                break
            request.headers.remove_first("Route")

    def next_hop(self, request: Request) -> URI:
        """RFC 3261 16.6 step 7: the first Route, else the Request-URI."""
        routes = request.headers.get_all("Route")
        if routes:
            return NameAddr.parse(routes[0]).uri
        return request.uri

    # -- forwarding ------------------------------------------------------------------------

    def forward(
        self,
        request: Request,
        transaction: Any,
        origin: Origin | None,
        targets: Sequence[Target],
        *,
        record_route: bool = True,
        alternates: Sequence[Target] = (),
        on_response: ResponseHook | None = None,
        on_final: Callable[[Context, Response], None] | None = None,
        data: dict[str, Any] | None = None,
        no_response: float | None = None,
        failover_on: Sequence[int] = (),
    ) -> Context:
        """Forward ``request`` statefully to every target at once (parallel forking).

        ``alternates`` are tried one after the other when every branch so far got no
        response at all; ``no_response`` (seconds, default the proxy's) is how long a
        branch may stay silent before it counts as 408. A final response whose status
        is in ``failover_on`` moves to the next alternate too (RFC 3263 4.3: 503).
        """
        if not targets:
            raise LocalError("forward needs at least one target")
        context = Context(
            request,
            transaction,
            origin,
            alternates=list(alternates),
            record_route=record_route,
            on_response=on_response,
            on_final=on_final,
            data=data or {},
            no_response=self.no_response if no_response is None else no_response,
            failover_on=frozenset(failover_on),
        )
        if transaction is not None:
            self.contexts[id(transaction)] = context
        for target in targets:
            self._start_branch(context, target)
        self.timer_changed()
        return context

    def _copy(self, context: Context, target: Target) -> Request:
        original = context.request
        # RFC 3261 16.6 step 1: a copy of the received request
        copy = Request(
            original.method, original.request_uri, original.headers.copy(), original.body
        )
        # RFC 3261 16.6 step 2: the Request-URI is the target's
        if target.uri is not None:
            copy.uri = target.uri
        # RFC 3261 16.6 step 3: Max-Forwards decremented, or added as 70
        forwards = original.max_forwards
        copy.headers.set("Max-Forwards", str(MAX_FORWARDS if forwards is None else forwards - 1))
        # RFC 3327 5.3: the Path of the target's registration becomes its Route set
        for value in reversed(target.route):
            copy.headers.add("Route", value, first=True)
        # RFC 3261 16.6 step 4: Record-Route, doubled on a transport change (RFC 5658)
        if context.record_route:
            inbound = context.origin.transport if context.origin is not None else target.transport
            outbound = target.transport
            if inbound is not outbound:
                copy.headers.add(
                    "Record-Route", f"<{self.record_route_uri(inbound, r2=True)}>", first=True
                )
                copy.headers.add(
                    "Record-Route", f"<{self.record_route_uri(outbound, r2=True)}>", first=True
                )
            else:
                copy.headers.add("Record-Route", f"<{self.record_route_uri(outbound)}>", first=True)
        # RFC 3261 16.6 step 6: a strict next hop takes the Request-URI's place
        routes = copy.headers.get_all("Route")
        if routes:
            first = NameAddr.parse(routes[0]).uri
            if "lr" not in first.params:
                copy.headers.remove_first("Route")
                copy.headers.add("Route", f"<{copy.request_uri}>")
                copy.uri = first.without_params("method") if first.params else first
        # RFC 3261 16.6 step 8: our Via with a fresh branch on top
        copy.headers.add("Via", str(self.via(target.transport)), first=True)
        return copy

    def via(self, kind: Kind) -> Via:
        host, port = self.port.local_via(kind.value)
        return Via(kind.value, host, port, {"branch": new_branch(), "rport": None})

    def _start_branch(self, context: Context, target: Target) -> Branch:
        request = self._copy(context, target)
        branch = Branch(context, target, request)
        context.branches.append(branch)
        now = self.clock()
        # RFC 3261 16.6 step 10: forward in a new client transaction
        try:
            branch.transaction = self.port.send_request(
                request,
                target.destination,
                lambda response: self._received(branch, response),
                lambda status: self._failed(branch, status),
            )
        except (LocalError, OSError) as exc:
            log.info("cannot forward to %s: %s", target.destination, exc)
            self._failed(branch, 503)
            return branch
        if context.is_invite:
            # RFC 3261 16.6 step 11: Timer C for an INVITE
            branch.timer_c = now + self.timer_c
            self._push(branch.timer_c, branch)
        branch.no_response = now + context.no_response
        self._push(branch.no_response, branch)
        return branch

    def _push(self, deadline: float, branch: Branch) -> None:
        heapq.heappush(self._heap, (deadline, next(self._seq), branch))

    # -- responses (RFC 3261 16.7) -------------------------------------------------------

    def _received(self, branch: Branch, response: Response) -> None:
        branch.no_response = None
        context = branch.context
        if branch.done and response.status >= 300:
            return  # a retransmitted final: the transaction absorbed it already
        if response.status < 200:
            branch.provisional = True
            if branch.timer_c is not None:
                # RFC 3261 16.7 step 2: a provisional response restarts Timer C
                branch.timer_c = self.clock() + self.timer_c
                self._push(branch.timer_c, branch)
                self.timer_changed()
            if context.cancelled and branch.transaction is not None:
                self.port.cancel(branch.transaction)
        else:
            branch.final = response
            branch.timer_c = None
        hook = context.on_response
        if hook is not None and response.status != 100:
            hook(context, branch, response, lambda r: self._process(branch, r))
        else:
            self._process(branch, response)

    def _failed(self, branch: Branch, status: int) -> None:
        """No response from the branch: 408 (timeout) or 503 (transport), 16.7 step 1."""
        if branch.done:
            return
        branch.local_failure = True
        branch.timer_c = branch.no_response = None
        response = make_response(branch.request, status)
        # the Via we would strip is ours: the locally made response carries it like a
        # received one would
        branch.final = response
        self._process(branch, response)

    def _process(self, branch: Branch, response: Response) -> None:
        context = branch.context
        self._step(branch, response)
        if context.final_sent and not context.pending and context.transaction is not None:
            self.contexts.pop(id(context.transaction), None)

    def _step(self, branch: Branch, response: Response) -> None:
        context = branch.context
        status = response.status
        if status == 100:
            return  # RFC 3261 16.7 step 5: 100 (Trying) is not forwarded
        if status < 200:
            if not context.final_sent:
                self._send_upstream(context, response)
            return
        if 200 <= status < 300:
            # RFC 3261 16.7 step 5: every 2xx is forwarded at once
            first = not context.success
            context.success = True
            if not context.final_sent or context.is_invite:
                context.final_sent = True
                self._send_upstream(context, response)
            if first:
                # RFC 3261 16.7 step 10: cancel the pending branches after a 2xx
                self._cancel_pending(context)
                self._finished(context, response)
            return
        if status >= 600 and not context.final_sent:
            # RFC 3261 16.7 step 5 and 10: a 6xx ends the search, the others are cancelled
            self._cancel_pending(context)
        self._maybe_final(context)

    def _maybe_final(self, context: Context) -> None:
        if context.final_sent or context.pending:
            return
        finals = [b.final for b in context.branches if b.final is not None]
        if (
            context.alternates
            and not context.cancelled
            and all(
                b.local_failure or (b.final is not None and b.final.status in context.failover_on)
                for b in context.branches
            )
        ):
            # serial failover: nothing answered at all (or, RFC 3263 4.3, a 503 for DNS
            # targets), try the next candidate
            self._start_branch(context, context.alternates.pop(0))
            self.timer_changed()
            return
        best = choose_best(finals)
        out = best
        if best.status == 503:
            # RFC 3261 16.7 step 6: a 503 from downstream becomes 500 upstream
            out = self._rewrite_status(best, 500)
        if best.status in (401, 407):
            out = self._merge_challenges(context, best)
        context.final_sent = True
        self._send_upstream(context, out)
        self._finished(context, out)

    def _rewrite_status(self, response: Response, status: int) -> Response:
        return Response(status, None, response.headers.copy(), b"")

    def _merge_challenges(self, context: Context, best: Response) -> Response:
        # RFC 3261 16.7 step 7: every challenge of every 401/407 goes in the response
        merged = Response(best.status, best.reason, best.headers.copy(), best.body)
        for branch in context.branches:
            final = branch.final
            if final is None or final is best or final.status not in (401, 407):
                continue
            for name in ("WWW-Authenticate", "Proxy-Authenticate"):
                for value in final.headers.get_lines(name):
                    merged.headers.add(name, value)
        return merged

    def _send_upstream(self, context: Context, response: Response) -> None:
        # RFC 3261 16.7 step 3: remove our Via (the topmost)
        out = Response(response.status, response.reason, response.headers.copy(), response.body)
        out.headers.remove_first("Via")
        if context.transaction is None:
            return
        try:
            self.port.respond(context.transaction, out)
        except LocalError:
            log.debug("response not sent upstream", exc_info=True)

    def _finished(self, context: Context, response: Response) -> None:
        if context.on_final is not None:
            try:
                context.on_final(context, response)
            except Exception:
                log.exception("on_final hook failed")
        if not context.pending and context.transaction is not None:
            self.contexts.pop(id(context.transaction), None)

    def _cancel_pending(self, context: Context) -> None:
        for branch in context.pending:
            if branch.transaction is not None and context.is_invite:
                self.port.cancel(branch.transaction)

    # -- CANCEL (RFC 3261 16.10) -----------------------------------------------------------

    def cancelled(self, transaction: Any) -> bool:
        """A CANCEL matched this server transaction; False when we know no context."""
        context = self.contexts.get(id(transaction))
        if context is None:
            return False
        context.cancelled = True
        context.alternates.clear()
        # RFC 3261 16.10: cancel every pending client transaction of the context
        self._cancel_pending(context)
        return True

    # -- stateless forwarding ------------------------------------------------------------

    def forward_stateless(self, request: Request, destination: Address | int, kind: Kind) -> None:
        """An ACK for a 2xx (or anything else without a transaction) to the next hop."""
        forwards = request.max_forwards
        if forwards is not None and forwards <= 0:
            return
        request.headers.set("Max-Forwards", str(MAX_FORWARDS if forwards is None else forwards - 1))
        request.headers.add("Via", str(self.via(kind)), first=True)
        self.port.send_stateless(request, destination)

    def stray_response(self, response: Response, destination_of: Callable[[Via], Any]) -> None:
        """RFC 3261 16.7 / 16.11: a response no transaction matched (a 2xx retransmission).

        When the top Via is ours it is removed and the response goes to the next Via
        (``destination_of`` says where, RFC 3261 18.2.2); anything else is dropped.
        """
        vias = response.vias
        if len(vias) < 2:
            return
        top = vias[0]
        host, port = top.host.lower().strip("[]"), top.port
        kind = Kind.from_via(top.transport) or Kind.UDP
        if host not in self.local_hosts or port != self.port.local_via(kind.value)[1]:
            return
        out = Response(response.status, response.reason, response.headers.copy(), response.body)
        out.headers.remove_first("Via")
        destination = destination_of(vias[1])
        if destination is not None:
            self.port.send_stateless(out, destination)

    # -- timers ------------------------------------------------------------------------------

    def next_timer(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, _, branch = heap[0]
            if branch.done or deadline not in (branch.timer_c, branch.no_response):
                heapq.heappop(heap)
                continue
            return deadline
        return None

    def on_timer(self, now: float) -> None:
        while True:
            deadline = self.next_timer()
            if deadline is None or deadline > now:
                return
            _, _, branch = heapq.heappop(self._heap)
            if deadline == branch.no_response and not branch.provisional:
                # nothing at all from the next hop: treat as a timeout (16.7 step 1)
                branch.no_response = None
                self._failed(branch, 408)
            elif deadline == branch.timer_c:
                branch.timer_c = None
                # RFC 3261 16.8: Timer C fired; CANCEL after a provisional, else 408
                if branch.provisional and branch.transaction is not None and not branch.timed_out:
                    branch.timed_out = True
                    self.port.cancel(branch.transaction)
                    # no 487 within 64*T1 either: give the branch up as 408
                    branch.timer_c = now + CANCEL_GRACE
                    self._push(branch.timer_c, branch)
                else:
                    self._failed(branch, 408)
            elif deadline == branch.no_response:
                branch.no_response = None
