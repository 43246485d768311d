"""The users proxy (role ``proxy-users``): the SIP face of the platform toward phones.

``serve`` opens the five listeners (UDP, TCP, TLS, WS, WSS) on a
:class:`ivoz.transport.node.SipNode` and runs :class:`UsersProxy`, the policy on top of
the stateful engine :class:`ivoz.proxy.core.Proxy`. For each new request:

- **to the proxy itself** (Request-URI without user naming one of our addresses, and
  out-of-dialog requests the proxy does not route): the issue-2 answers, see
  :meth:`UsersProxy.local_answer` (OPTIONS 200 with capabilities; 405/481/501/416/420/483
  as RFC 3261 prescribes);
- **REGISTER**: :class:`ivoz.proxy.registrar.Registrar` (digest, location store, NAT
  bookkeeping); UDP phones behind NAT are then kept open with
  :class:`ivoz.proxy.nat.KeepAlive` pings;
- **INVITE from a phone**: digest authentication (407, realm = the client's SIP domain
  taken from the From URI), every ``X-Ivoz-*`` header stripped, ``X-Ivoz-Company`` and
  ``X-Ivoz-Caller-Terminal`` added, Contact fixed for phones behind NAT, ng ``offer`` on
  the client's relay set, then forwarded with Record-Route to the least busy healthy
  application server of the client's set (:class:`ivoz.proxy.dispatch.Dispatcher`; the
  next one is tried when a server does not answer at all);
- **INVITE from an application server** (its address, with ``X-Ivoz-Callee-Terminal``):
  forked in parallel to every live binding of the Request-URI's AOR, each reached as
  :func:`ivoz.proxy.nat.destination` says (the registration's connection, the NAT's
  address, or the Contact); 480 when there is none; ng ``offer`` for this leg too;
- **in-dialog requests** (To tag): loose routing by our Record-Route (RFC 3261 16.4);
  BYE also frees the relay session; ACK for a 2xx goes statelessly; no Route of ours:
  481.

Responses with SDP to an anchored INVITE get the ng ``answer``; a failed INVITE and a
BYE get ``delete``. CANCEL is answered by the node and cancels every branch
(RFC 3261 16.10).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import ipaddress
import logging
import os
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ivoz.config import Config
from ivoz.proxy import nat
from ivoz.proxy.core import Context, Proxy, Target, validate
from ivoz.proxy.dispatch import Dispatcher
from ivoz.proxy.media import DirectoryRelaySets, MediaAnchor, has_sdp
from ivoz.proxy.registrar import SUPPORTED as REGISTRAR_SUPPORTED
from ivoz.sip import (
    URI,
    Contact,
    NameAddr,
    RemoteError,
    Request,
    Response,
    make_response,
    new_call_id,
    new_tag,
)
from ivoz.sip.auth import Credentials, credentials_for
from ivoz.sip.digest import DigestResult, make_challenge, verify
from ivoz.sip.locate import LocateError
from ivoz.sip.transaction import ServerTransaction
from ivoz.transport import Address, Kind, Origin
from ivoz.transport.dns import Resolver, parse_servers
from ivoz.transport.layer import ConnectionLimits
from ivoz.transport.node import SERVER, Reply, SipNode, capabilities, salvage_response
from ivoz.transport.tls import certificate_files, server_context

if TYPE_CHECKING:
    from ivoz.services import Services

log = logging.getLogger(__name__)

__all__ = ["ALLOWED", "SERVER", "Reply", "UsersProxy", "salvage_response", "serve"]

# Methods the proxy serves itself, advertised in Allow (RFC 3261 20.5).
ALLOWED = ("OPTIONS", "REGISTER")
# Methods we know (RFC 3261, 3262, 3265/6665, 3311, 3428, 3515, 3903, 6086) but do not
# serve out of a dialog: 405 (RFC 3261 8.2.1).
KNOWN_NOT_SERVED = frozenset({"INVITE", "SUBSCRIBE", "NOTIFY", "PUBLISH", "REFER", "MESSAGE"})
# Methods only meaningful inside a dialog: out of one they match nothing (481).
DIALOG_ONLY = frozenset({"BYE", "PRACK", "UPDATE", "INFO"})
# Option tags the proxy supports (RFC 3261 8.2.2.3: a Require naming another gets 420;
# 11.2 / 20.37: listed in Supported of the 200 to OPTIONS). The honest set is its
# registrar's, implemented end to end between the registrar and the routing to phones:
# "path" (RFC 3327 5.3: a binding's Path becomes the Route set of requests to it) and
# "outbound" (RFC 5626 6: flows keyed by +sip.instance and reg-id; 5.3 by analogy: a
# request to the phone goes over its registered connection; 4.4: CRLF and STUN
# keep-alives answered by the transport). Not 100rel (RFC 3262), timer (RFC 4028),
# replaces (RFC 3891) nor gruu (RFC 5627): their behaviour is not implemented.
SUPPORTED: tuple[str, ...] = REGISTRAR_SUPPORTED
# The trusted headers between the proxy and the application server (team contract).
HEADER_COMPANY = "X-Ivoz-Company"
HEADER_CALLER = "X-Ivoz-Caller-Terminal"
HEADER_CALLEE = "X-Ivoz-Callee-Terminal"
TRUSTED_PREFIX = "x-ivoz-"
# seconds an application server has to answer an INVITE at all (its 100 Trying comes
# within 200 ms, RFC 3261 17.2.1) before the next server of the set is tried
SERVER_NO_RESPONSE = 4.0
# seconds after which a call whose BYE never passed is forgotten (its relay session has
# long timed out by then; the application-server load it counted is released)
CALL_TTL = 4 * 3600.0
# RFC 3263 4.3: the next DNS target is tried after a transport error, a timeout or a 503
FAILOVER_STATUSES = (503,)
HOUSEKEEPING = 0.25  # seconds between two runs of the proxy's timers, probes, keep-alives


@dataclass(slots=True)
class Call:
    """What the proxy remembers of a call leg it anchored (by Call-ID)."""

    relay_set: int | None
    media: bool
    server_id: int | None = None
    relay_set_known: bool = True  # False for a placeholder (a call we never saw)
    late_offerer: str | None = None  # the To tag whose 2xx carried the offer
    started: float = 0.0  # the proxy's clock when the INVITE came


def load_or_create_secret(data_dir: Path) -> bytes:
    """The nonce-signing secret in ``data_dir/sip-secret`` (mode 0600), made once."""
    path = data_dir / "sip-secret"
    with contextlib.suppress(FileNotFoundError):
        text = path.read_text().strip()
        if text:
            return text.encode()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_hex(32)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(secret + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return path.read_text().strip().encode()


class UsersProxy:
    """The users proxy's policy; the node's ``RequestHandler``."""

    def __init__(
        self,
        config: Config,
        services: Any,
        *,
        secret: bytes,
        node: Any = None,
        wall_clock: Callable[[], float] = time.time,
        relay_sets: Callable[[int | None], Any] | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.config = config
        # RFC 3263 for next hops that name a host (docs/dns.md)
        self.resolver = (
            resolver
            if resolver is not None
            else Resolver(servers=parse_servers(config.dns_servers))
        )
        self.services = services
        self.directory = services.directory
        self.secret = secret
        self.wall_clock = wall_clock
        self.node: Any = (
            node
            if node is not None
            else SipNode(
                self,
                # RFC 3261 16.2: 100 Trying within 200 ms unless answered first (the
                # transaction's default); the routing paths send it at once themselves
                max_message_size=config.sip_max_message_size,
                advertised_host=config.sip_advertised_host,
                limits=ConnectionLimits(
                    config.sip_max_connections,
                    config.sip_max_connections_per_ip,
                    config.sip_handshake_timeout,
                ),
            )
        )
        hosts = {config.sip_host, "127.0.0.1", "localhost", "::1"}
        if config.sip_advertised_host:
            hosts.add(config.sip_advertised_host)
        self.local_hosts = frozenset(h.lower().strip("[]") for h in hosts)
        self.proxy = Proxy(self.node, clock=self.node.now, local_hosts=self.local_hosts)
        self.dispatcher = Dispatcher()
        if relay_sets is None:
            relay_sets = DirectoryRelaySets(self.directory, services.relay_owners, None)
        self.relay_sets = relay_sets
        self.media = MediaAnchor(relay_sets)
        self.keepalive = nat.KeepAlive(sent_by=("127.0.0.1", config.sip_udp_port))
        from ivoz.proxy.registrar import Registrar

        self.registrar = Registrar(
            services.location,
            self.directory,
            secret,
            clock=wall_clock,
            keepalive=self.keepalive,
            algorithms=config.sip_digest_algorithms,
        )
        self.calls: dict[str, Call] = {}
        self._early_cancel: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the node's RequestHandler ---------------------------------------------------------

    def request_received(
        self, request: Request, origin: Origin, transaction: ServerTransaction | None
    ) -> None:
        try:
            self._request(request, origin, transaction)
        except RemoteError as exc:
            if transaction is not None and request.method != "ACK":
                self._reply(transaction, request, exc.status, exc.reason)

    def cancelled(self, transaction: ServerTransaction) -> None:
        if not self.proxy.cancelled(transaction):
            # not forwarded yet (authentication, location or relay still pending)
            self._early_cancel.add(id(transaction))

    def stray_response(self, response: Response, origin: object) -> None:
        def where(via: Any) -> Address | None:
            kind = Kind.from_via(via.transport) or Kind.UDP
            host = (via.received or via.host).strip("[]")
            rport = via.rport
            port = rport if isinstance(rport, int) else via.port or kind.default_port
            return Address(kind, host, port)

        self.proxy.stray_response(response, where)

    # -- dispatch of a new request ---------------------------------------------------------

    def _request(
        self, request: Request, origin: Origin, transaction: ServerTransaction | None
    ) -> None:
        method = request.method
        if transaction is None:
            self._ack(request, origin)
            return
        if method == "REGISTER":
            self._spawn(self._register(request, origin, transaction), (transaction, request))
            return
        if request.to_tag is not None:
            self._in_dialog(request, origin, transaction)
            return
        uri = request.uri
        addressed_to_us = not uri.user and uri.host.lower().strip("[]") in self.local_hosts
        if method == "INVITE" and not addressed_to_us:
            rejected = validate(request)
            if rejected is not None:
                self.node.respond(transaction, rejected)
                return
            if self._from_application_server(request, origin):
                self._trying(transaction, request)
                self._spawn(self._to_phones(request, origin, transaction), (transaction, request))
            else:
                self._from_phone(request, origin, transaction)
            return
        response = self.local_answer(request)
        if response is not None:
            self.node.respond(transaction, response)

    def _from_application_server(self, request: Request, origin: Origin) -> bool:
        return HEADER_CALLEE in request.headers and self._is_server(origin)

    # -- requests the proxy answers itself ----------------------------------------------

    def local_answer(self, request: Request) -> Response | None:
        """The UAS answer to a request for the proxy itself (RFC 3261 8.2); None for ACK."""
        method = request.method
        if method == "ACK":
            return None  # RFC 3261 17.2.3: an ACK is never answered
        to_tag = _derived_tag(request)

        def reply(status: int, reason: str | None = None, **headers: str) -> Response:
            response = make_response(request, status, reason, to_tag=to_tag)
            response.headers.set("Server", SERVER)
            for name, value in headers.items():
                response.headers.set(name.replace("_", "-"), value)
            return response

        # RFC 3261 16.3 step 2: Max-Forwards 0 on a request to forward gets 483; an
        # OPTIONS may be answered by the element itself (RFC 3261 11).
        if method != "OPTIONS" and request.max_forwards == 0 and self._to_forward(request):
            return reply(483)
        if method == "CANCEL":
            # RFC 3261 9.2 (the node answers every CANCEL it matched; this one did not)
            return reply(481)
        if method != "OPTIONS" and method not in KNOWN_NOT_SERVED and method not in DIALOG_ONLY:
            return reply(501, Allow=", ".join(ALLOWED))
        if request.to_tag is not None or method in DIALOG_ONLY:
            # RFC 3261 12.2.2: a request in a dialog we do not know.
            return reply(481)
        if method in KNOWN_NOT_SERVED:
            # RFC 3261 8.2.1 / 21.4.6: 405 MUST carry Allow.
            return reply(405, Allow=", ".join(ALLOWED))
        # RFC 3261 8.2.2.1: a Request-URI scheme we cannot serve.
        if request.uri.scheme.lower() not in ("sip", "sips"):
            return reply(416)
        # RFC 3261 8.2.2.3: every Require option tag must be supported.
        unsupported = [t for t in request.option_tags("Require") if t.lower() not in SUPPORTED]
        if unsupported:
            return reply(420, Unsupported=", ".join(unsupported))
        # RFC 3261 11.2: the capabilities, as a 200 to OPTIONS.
        return reply(200, **capabilities(ALLOWED, SUPPORTED))

    def _to_forward(self, request: Request) -> bool:
        uri = request.uri
        return bool(uri.user) or uri.host.lower().strip("[]") not in self.local_hosts

    def _trying(self, transaction: ServerTransaction, request: Request) -> None:
        """RFC 3261 16.2: 100 Trying now, since the answer will take a while."""
        self._reply(transaction, request, 100, "Trying")

    def _reply(
        self, transaction: ServerTransaction, request: Request, status: int, reason: str | None
    ) -> None:
        # RFC 3261 8.2.6.2: a response the proxy makes itself (as a UAS) carries a To tag
        to_tag = _derived_tag(request) if status > 100 else None
        with contextlib.suppress(Exception):
            self.node.respond(transaction, make_response(request, status, reason, to_tag=to_tag))

    # -- REGISTER ----------------------------------------------------------------------------

    async def _register(
        self, request: Request, origin: Origin, transaction: ServerTransaction
    ) -> None:
        response = await self.registrar.handle(request, origin, self.wall_clock())
        self.node.respond(transaction, response)

    # -- INVITE from a phone: authenticate, then to an application server ----------------

    def _from_phone(self, request: Request, origin: Origin, transaction: ServerTransaction) -> None:
        domain = request.from_.uri.host.lower()
        company = self.directory.company_by_domain(domain)
        if company is None or not company.domain:
            self._reply(transaction, request, 403, "Unknown Domain")
            return
        terminal = self._authenticate(request, transaction, company)
        if terminal is None:
            return
        servers = self.directory.application_servers(company.application_server_set_id)
        ranked = self.dispatcher.choose(servers)
        if not ranked:
            self._reply(transaction, request, 503, "No Application Server")
            return
        strip_trusted(request)
        # RFC 3261 22.3: the credentials for our realm are consumed here
        _remove_credentials(request, company.domain)
        request.headers.add(HEADER_COMPANY, str(company.id))
        request.headers.add(HEADER_CALLER, str(terminal.id))
        self._fix_contact(request, origin)
        targets = [self._server_target(server) for server in ranked]
        call = Call(company.media_relay_set_id, False)
        self._trying(transaction, request)
        self._spawn(
            self._forward_anchored(request, origin, transaction, targets, call, True),
            (transaction, request),
        )

    def _authenticate(self, request: Request, transaction: ServerTransaction, company: Any) -> Any:
        realm = company.domain
        now = self.wall_clock()
        credentials: Credentials | None = credentials_for(request, realm, proxy=True)
        if credentials is None:
            self._challenge(request, transaction, realm, now, stale=False)
            return None
        terminal = self.directory.terminal(company.id, credentials.username or "")
        if terminal is None:
            self._reply(transaction, request, 403, "Forbidden")
            return None
        result = verify(
            credentials,
            request.method,
            self.secret,
            now,
            password=terminal.sip_password,
            realm=realm,
            body=request.body,
        )
        if result is DigestResult.STALE:
            self._challenge(request, transaction, realm, now, stale=True)
            return None
        if result is not DigestResult.OK:
            self._reply(transaction, request, 403, "Forbidden")
            return None
        return terminal

    def _challenge(
        self,
        request: Request,
        transaction: ServerTransaction,
        realm: str,
        now: float,
        *,
        stale: bool,
    ) -> None:
        # RFC 3261 22.3: a proxy challenges with 407 and Proxy-Authenticate
        response = make_response(request, 407, to_tag=_derived_tag(request))
        for algorithm in self.config.sip_digest_algorithms:
            challenge = make_challenge(realm, self.secret, now, algorithm=algorithm, stale=stale)
            response.headers.add("Proxy-Authenticate", str(challenge))
        self.node.respond(transaction, response)

    def _server_target(self, server: Any) -> Target:
        kind = Kind.from_via(server.transport or "udp") or Kind.UDP
        return Target(None, Address(kind, server.host, server.port), kind, label=server.id)

    # -- INVITE from an application server: to the callee's registered contacts ----------

    async def _to_phones(
        self, request: Request, origin: Origin, transaction: ServerTransaction
    ) -> None:
        uri = request.uri
        aor = f"{uri.user}@{uri.host.lower()}"
        company = self.directory.company_by_domain(uri.host.lower())
        bindings = await self.services.location.bindings(aor, self.wall_clock())
        if self._take_early_cancel(transaction, request):
            return
        if not bindings:
            self._reply(transaction, request, 480, "Temporarily Unavailable")
            return
        strip_trusted(request)
        targets = []
        for binding in sorted(bindings, key=lambda b: -b.q):
            try:
                where = nat.destination(binding, self._connection_alive)
                contact = URI.parse(binding.contact)
            except (ValueError, RemoteError):
                continue
            destination: Address | int = (
                where.connection if where.connection is not None else where.address
            )
            targets.append(
                Target(contact, destination, where.address.transport, where.route, where.address)
            )
        if not targets:
            self._reply(transaction, request, 480, "Temporarily Unavailable")
            return
        set_id = company.media_relay_set_id if company is not None else None
        call = Call(set_id, False)
        await self._forward_anchored(request, origin, transaction, targets, call, False)

    def _connection_alive(self, connection: int) -> bool:
        layer = getattr(self.node, "layer", None)
        origin_of = getattr(layer, "origin", None)
        return origin_of is not None and origin_of(connection) is not None

    # -- forwarding an INVITE with its media anchored ---------------------------------------

    async def _forward_anchored(
        self,
        request: Request,
        origin: Origin,
        transaction: ServerTransaction,
        targets: list[Target],
        call: Call,
        to_server: bool,
    ) -> None:
        # the offer comes from a phone when it goes to a server, else from the server
        source = origin.remote if to_server else None
        if has_sdp(request.body, request.content_type):
            try:
                request.body = await self.media.offer(
                    call.relay_set,
                    request.call_id,
                    request.from_tag or "",
                    request.body,
                    source,
                )
                call.media = True
            except Exception as exc:
                log.warning("no media relay for call %s: %s", request.call_id, exc)
        if self._take_early_cancel(transaction, request):
            if call.media:
                await self.media.delete(call.relay_set, request.call_id)
            return
        call.started = self.node.now()
        self.calls[request.call_id] = call
        first, rest = targets[:1], targets[1:]
        if to_server:
            chosen, alternates = first, rest
            server_id = first[0].label
            if isinstance(server_id, int):
                call.server_id = server_id
                self.dispatcher.call_started(server_id, request.call_id)
        else:
            chosen, alternates = targets, []
        self.proxy.forward(
            request,
            transaction,
            origin,
            chosen,
            alternates=alternates,
            on_response=self._response_hook,
            on_final=self._final,
            data={"call": call, "to_server": to_server},
            no_response=SERVER_NO_RESPONSE if to_server else None,
        )

    def _take_early_cancel(self, transaction: ServerTransaction, request: Request) -> bool:
        if id(transaction) not in self._early_cancel:
            return False
        self._early_cancel.discard(id(transaction))
        # RFC 3261 9.2 / 16.10: the INVITE ends with 487
        self._reply(transaction, request, 487, "Request Terminated")
        return True

    def _response_hook(
        self,
        context: Context,
        branch: Any,
        response: Response,
        deliver: Callable[[Response], None],
    ) -> None:
        call: Call = context.data.get("call") or Call(None, False, relay_set_known=False)
        to_server = bool(context.data.get("to_server"))
        if to_server and branch.target.label is not None and response.status >= 100:
            # the server answered: it is alive (and keeps the call it took)
            server_id = branch.target.label
            if isinstance(server_id, int):
                self.dispatcher.answered(server_id, self.node.now())
                if context.data.get("server") != server_id:
                    context.data["server"] = server_id
                    call.server_id = server_id
                    self.dispatcher.call_started(server_id, context.request.call_id)
        if not to_server and 180 <= response.status < 300 and not branch.local_failure:
            self._fix_response_contact(response, branch.target.label, branch.target.transport)
        sdp = has_sdp(response.body, response.content_type) and 180 <= response.status < 300
        # RFC 3264: an INVITE without SDP gets the offer in the 2xx (late offer), which
        # the proxy anchors with an ng offer; the answer then comes in the ACK
        late = (
            sdp
            and call.relay_set_known
            and context.is_invite
            and response.status >= 200
            and not has_sdp(context.request.body, context.request.content_type)
        )
        needs_answer = sdp and call.media and not late
        previous = context.data.get("chain")
        if not (needs_answer or late) and (previous is None or previous.done()):
            deliver(response)
            return
        source = None if to_server else branch.target.label
        source = source if isinstance(source, Address) else None
        cache: dict[tuple[str, bytes], bytes] = context.data.setdefault("sdp", {})
        key = (response.to_tag or "", response.body)

        async def run() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):
                    await previous
            done = cache.get(key)
            if done is not None:
                response.body = done  # a retransmitted 2xx: the relay already has it
            elif late or needs_answer:
                call_id = context.request.call_id
                try:
                    if late:
                        offerer = response.to_tag or ""
                        body = await self.media.offer(
                            call.relay_set, call_id, offerer, response.body, source
                        )
                        call.media = True
                        call.late_offerer = offerer
                    else:
                        body = await self.media.answer(
                            call.relay_set,
                            call_id,
                            context.request.from_tag or "",
                            response.to_tag or "",
                            response.body,
                            source,
                        )
                    cache[key] = body
                    response.body = body
                except Exception as exc:
                    log.warning(
                        "ng %s failed for %s: %s", "offer" if late else "answer", call_id, exc
                    )
            deliver(response)

        context.data["chain"] = self._spawn(run())

    def _final(self, context: Context, response: Response) -> None:
        call_id = context.request.call_id
        if response.status >= 300:
            for branch in context.branches:
                label = branch.target.label
                if branch.local_failure and isinstance(label, int):
                    self.dispatcher.failed(label, self.node.now())
            self.dispatcher.call_ended(call_id)
            call = self.calls.pop(call_id, None)
            if call is not None and call.media:
                self._spawn(self.media.delete(call.relay_set, call_id))

    # -- in-dialog requests (RFC 3261 16.4) -------------------------------------------------

    def _routed(self, request: Request) -> bool:
        """Whether the request follows a route set through us (RFC 3261 16.4)."""
        routes = request.headers.get_all("Route")
        if not routes:
            return False
        try:
            top = NameAddr.parse(routes[0]).uri
        except RemoteError:
            return False
        # our loose Route on top, or a strict router put our URI in the Request-URI
        return self.proxy.is_ours(top) or self.proxy.is_ours(request.uri)

    def _in_dialog(self, request: Request, origin: Origin, transaction: ServerTransaction) -> None:
        if not self._routed(request):
            response = self.local_answer(request)
            if response is not None:
                self.node.respond(transaction, response)
            return
        rejected = validate(request)
        if rejected is not None:
            self.node.respond(transaction, rejected)
            return
        self.proxy.preprocess_routes(request)
        destination, kind = self._hop(request)
        if destination is None:
            self._reply(transaction, request, 404, "Not Found")
            return
        if _named(destination):
            self._spawn(
                self._in_dialog_located(request, origin, transaction), (transaction, request)
            )
            return
        self._route_in_dialog(
            request,
            origin,
            transaction,
            [Target(None, destination, kind, label=_address_of(destination))],
        )

    async def _in_dialog_located(
        self, request: Request, origin: Origin, transaction: ServerTransaction
    ) -> None:
        targets = await self._locate(request)
        if self._take_early_cancel(transaction, request):
            return
        if not targets:
            self._reply(transaction, request, 503, "Next Hop Not Resolved")
            return
        self._route_in_dialog(request, origin, transaction, targets)

    async def _locate(self, request: Request) -> list[Target]:
        """RFC 3263: the next hop's targets in order (none when DNS has no answer)."""
        uri = self.proxy.next_hop(request)
        try:
            located = await self.resolver.locate(uri)
        except LocateError as exc:
            log.info("next hop %s not resolved: %s", uri, exc)
            return []
        targets = []
        for found in located.targets:
            kind = Kind(found.transport)
            address = Address(kind, found.host, found.port)
            targets.append(Target(None, address, kind, label=address))
        return targets

    def _route_in_dialog(
        self,
        request: Request,
        origin: Origin,
        transaction: ServerTransaction,
        targets: list[Target],
    ) -> None:
        """Forward an in-dialog request to ``targets[0]``, the others as RFC 3263 4.3
        failover targets."""
        if not self._is_server(origin):
            strip_trusted(request)  # the trust boundary holds inside dialogs too
        call_id = request.call_id
        call = self.calls.get(call_id)
        method = request.method
        if method == "BYE":
            self.calls.pop(call_id, None)
            self.dispatcher.call_ended(call_id)
            if call is not None and call.media:
                self._spawn(self.media.delete(call.relay_set, call_id))
            call = None
        if method in ("INVITE", "UPDATE"):
            self._fix_contact(request, origin)
        if (
            call is not None
            and call.media
            and method in ("INVITE", "UPDATE")
            and has_sdp(request.body, request.content_type)
        ):
            self._spawn(
                self._reoffer(request, origin, transaction, targets, call), (transaction, request)
            )
            return
        self._forward_in_dialog(
            request, transaction, origin, targets, call or Call(None, False, relay_set_known=False)
        )

    def _forward_in_dialog(
        self,
        request: Request,
        transaction: ServerTransaction,
        origin: Origin,
        targets: list[Target],
        call: Call,
    ) -> None:
        target, alternates = targets[0], targets[1:]
        self.proxy.forward(
            request,
            transaction,
            origin,
            [target],
            record_route=False,
            alternates=alternates,
            failover_on=FAILOVER_STATUSES if alternates else (),
            on_response=self._response_hook,
            data={"call": call, "to_server": self._is_server_target(target)},
        )

    async def _reoffer(
        self,
        request: Request,
        origin: Origin,
        transaction: ServerTransaction,
        targets: list[Target],
        call: Call,
    ) -> None:
        source = None if self._is_server(origin) else origin.remote
        try:
            request.body = await self.media.offer(
                call.relay_set, request.call_id, request.from_tag or "", request.body, source
            )
        except Exception as exc:
            log.warning("ng re-offer failed for %s: %s", request.call_id, exc)
        self._forward_in_dialog(request, transaction, origin, targets, call)

    def _is_server(self, origin: Origin) -> bool:
        """Whether the packet came from an application server: its host *and* port, so
        that phones on the same host (loopback in the embedded default) are not."""
        source = origin.remote
        for server in self.directory.application_servers(None):
            if server.host == source.host and server.port == source.port:
                return True
        # the embedded default: the application server of this process on loopback
        return source.host in ("127.0.0.1", "::1") and source.port == self.config.appserver_port

    def _is_server_target(self, target: Target) -> bool:
        address = target.label
        return isinstance(address, Address) and self._is_server(
            Origin(address.transport, address, address)
        )

    def _hop(self, request: Request) -> tuple[Address | int | None, Kind]:
        try:
            uri = self.proxy.next_hop(request)
            address = nat.uri_address(uri)
        except (RemoteError, ValueError):
            return None, Kind.UDP
        if self.proxy.is_ours(uri):
            return None, Kind.UDP  # never to ourselves: that would loop
        return address, address.transport

    def _ack(self, request: Request, origin: Origin) -> None:
        """An ACK for a 2xx (RFC 3261 16.11 style: stateless along the route set)."""
        if request.method != "ACK" or not self._routed(request):
            return
        try:
            self.proxy.preprocess_routes(request)
        except RemoteError:
            return
        destination, kind = self._hop(request)
        if destination is None:
            return
        if _named(destination):
            self._spawn(self._ack_located(request, origin))
            return
        self._ack_to(request, origin, destination, kind)

    async def _ack_located(self, request: Request, origin: Origin) -> None:
        # RFC 3263 4.3 has no failover for an ACK (no response tells it failed): first target
        targets = await self._locate(request)
        if targets:
            self._ack_to(request, origin, targets[0].destination, targets[0].transport)

    def _ack_to(
        self, request: Request, origin: Origin, destination: Address | int, kind: Kind
    ) -> None:
        if not self._is_server(origin):
            strip_trusted(request)
        call = self.calls.get(request.call_id)
        if (
            call is not None
            and call.late_offerer is not None
            and has_sdp(request.body, request.content_type)
        ):
            # RFC 3264: the ACK holds the answer to the offer of a late-offer 2xx
            source = None if self._is_server(origin) else origin.remote
            self._spawn(self._ack_answer(request, destination, kind, call, source))
            return
        self.proxy.forward_stateless(request, destination, kind)

    async def _ack_answer(
        self,
        request: Request,
        destination: Address | int,
        kind: Kind,
        call: Call,
        source: Address | None,
    ) -> None:
        try:
            request.body = await self.media.answer(
                call.relay_set,
                request.call_id,
                call.late_offerer or "",
                request.from_tag or "",
                request.body,
                source,
            )
        except Exception as exc:
            log.warning("ng answer in ACK failed for %s: %s", request.call_id, exc)
        self.proxy.forward_stateless(request, destination, kind)

    # -- NAT ----------------------------------------------------------------------------------

    def _fix_contact(self, message: Request | Response, origin: Origin) -> None:
        """RFC 3261 12.1 targets for the other side: a NATed phone's Contact is its source."""
        if self._is_server(origin):
            return
        try:
            contacts = message.contacts
        except RemoteError:
            return
        if len(contacts) != 1 or contacts[0].uri is None:
            return
        uri = contacts[0].uri
        rport = message.via.rport is not None if isinstance(message, Request) else False
        if origin.transport is Kind.UDP and not nat.behind_nat(uri, origin, rport):
            return
        fixed = nat.fix_contact(uri, origin)
        address = contacts[0].address
        assert address is not None
        message.headers.set("Contact", str(Contact(dataclasses.replace(address, uri=fixed))))

    def _fix_response_contact(self, response: Response, source: object, kind: Kind) -> None:
        if not isinstance(source, Address):
            return
        origin = Origin(source.transport, source, source)
        self._fix_contact(response, origin)

    # -- housekeeping: timers, probes, keep-alives -------------------------------------------

    def tick(self) -> None:
        now = self.node.now()
        self.proxy.on_timer(now)
        servers = self.directory.application_servers(None)
        self.dispatcher.watch(servers)
        by_id = {s.id: s for s in servers}
        for server_id in self.dispatcher.due(now):
            server = by_id.get(server_id)
            if server is not None:
                self._probe(server)
        self._forget_stale_calls(now)
        for ping in self.keepalive.due(self.wall_clock()):
            with contextlib.suppress(Exception):
                self.node.layer.send(ping.data, ping.destination)

    def _forget_stale_calls(self, now: float) -> None:
        """Self-healing state: a call nobody ended is dropped after CALL_TTL."""
        if not self.calls:
            return
        oldest = next(iter(self.calls.values()))
        if now - oldest.started < CALL_TTL:
            return  # insertion order: the oldest is first
        for call_id, call in list(self.calls.items()):
            if now - call.started < CALL_TTL:
                break
            del self.calls[call_id]
            self.dispatcher.call_ended(call_id)

    def _probe(self, server: Any) -> None:
        target = self._server_target(server)
        host, port = self.node.local_via(target.transport.value)
        uri = f"sip:{server.host}:{server.port}"
        request = Request(
            "OPTIONS",
            uri,
            [
                ("Max-Forwards", "70"),
                ("From", f"<sip:ping@{host}:{port}>;tag={new_tag()}"),
                ("To", f"<{uri}>"),
                ("Call-ID", new_call_id()),
                ("CSeq", "1 OPTIONS"),
                ("User-Agent", SERVER),
            ],
        )
        server_id = server.id

        def answered(_response: Response) -> None:
            self.dispatcher.answered(server_id, self.node.now())

        def failed(_status: int) -> None:
            self.dispatcher.failed(server_id, self.node.now())

        try:
            self.node.send_request(request, target.destination, answered, failed)
        except Exception:
            log.debug("probe of %s not sent", uri, exc_info=True)

    async def run_housekeeping(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("users proxy housekeeping failed")
            await asyncio.sleep(HOUSEKEEPING)

    # -- tasks ----------------------------------------------------------------------------

    def _spawn(
        self,
        work: Coroutine[Any, Any, None],
        answer: tuple[ServerTransaction, Request] | None = None,
    ) -> asyncio.Task[None]:
        """Run ``work`` in a task; if it fails, ``answer``'s request still gets a 500."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            work.close()  # driven without a loop (a sans-IO test): nothing can wait
            raise

        async def guarded() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("users proxy task failed")
                if answer is not None:
                    transaction, request = answer
                    last = transaction.last_response
                    if last is None or last.status < 200:
                        # RFC 3261 8.2.6 / 16.7: never leave a request without an answer
                        self._reply(transaction, request, 500, "Server Internal Error")

        task = loop.create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task
        await self.node.close()


def strip_trusted(request: Request) -> None:
    """Remove every ``X-Ivoz-*`` header: only the proxy may set them (trust boundary)."""
    names = request.headers.keys()  # canonical lower-case names
    for key in {k for k in names if k.startswith(TRUSTED_PREFIX)}:
        request.headers.remove(key)


def _remove_credentials(request: Request, realm: str) -> None:
    lines = request.headers.get_lines("Proxy-Authorization")
    if not lines:
        return
    keep = []
    for value in lines:
        try:
            if Credentials.parse(value).realm == realm:
                continue
        except RemoteError:
            pass
        keep.append(value)
    request.headers.remove("Proxy-Authorization")
    for value in keep:
        request.headers.add("Proxy-Authorization", value)


def _named(destination: Address | int) -> bool:
    """Whether ``destination`` names a host (RFC 3263 needed) rather than an address."""
    if not isinstance(destination, Address):
        return False
    try:
        ipaddress.ip_address(destination.host)
    except ValueError:
        return True
    return False


def _address_of(destination: Address | int) -> Address | None:
    return destination if isinstance(destination, Address) else None


def _derived_tag(request: Request) -> str:
    # RFC 3261 8.2.6.2: the same tag for every response to the same request, so a
    # stateless answer derives it from the request's identity.
    key = f"{request.call_id}\0{request.from_tag}\0{request.via.branch}\0{request.cseq}"
    return hashlib.blake2s(key.encode("utf-8", "surrogateescape"), digest_size=8).hexdigest()


async def serve(config: Config, services: Services | None = None) -> None:
    """Run the users proxy on every transport until cancelled."""
    own = services is None
    if services is None:
        from ivoz.services import Services

        services = await Services.create(config)
    files = certificate_files(config.data_dir, config.sip_host, config.tls_cert, config.tls_key)
    tls = server_context(files)
    from ivoz.media.client import NgClient

    ng = NgClient()
    await ng.start(config.ng_host if config.ng_host not in ("0.0.0.0", "::") else "127.0.0.1")
    relay_sets = DirectoryRelaySets(services.directory, services.relay_owners, ng)
    proxy = UsersProxy(
        config,
        services,
        secret=load_or_create_secret(config.data_dir),
        relay_sets=relay_sets,
    )
    listeners = (
        (Kind.UDP, config.sip_udp_port),
        (Kind.TCP, config.sip_tcp_port),
        (Kind.TLS, config.sip_tls_port),
        (Kind.WS, config.sip_ws_port),
        (Kind.WSS, config.sip_wss_port),
    )
    housekeeping: asyncio.Task[None] | None = None
    try:
        for kind, port in listeners:
            bound = await proxy.node.listen(
                kind, config.sip_host, port, tls if kind.secure else None
            )
            log.info("SIP %s listening on %s:%d", kind.value, bound.host, bound.port)
        proxy.keepalive.sent_by = proxy.node.local_via("UDP")
        log.info("TLS certificate %s", files.cert)
        housekeeping = asyncio.get_running_loop().create_task(proxy.run_housekeeping())
        await asyncio.Event().wait()
    finally:
        if housekeeping is not None:
            housekeeping.cancel()
            with contextlib.suppress(BaseException):
                await housekeeping
        await proxy.close()
        ng.close()
        if own:
            await services.close()
