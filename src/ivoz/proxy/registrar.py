"""The users proxy's registrar (RFC 3261 10.3), with digest authentication, Path
(RFC 3327), outbound flows (RFC 5626) and NAT bookkeeping.

API for the proxy role::

    registrar = Registrar(store, directory, secret, keepalive=KeepAlive(sent_by=...),
                          algorithms=config.sip_digest_algorithms)
    response = await registrar.handle(request, origin, now)   # a REGISTER -> its final response
    bindings = await registrar.lookup(request.uri, now)        # where a call for an AOR goes

``store`` is an :class:`ivoz.state.location.LocationStore` (memory or Redis),
``directory`` anything with ``company_by_domain(domain)`` and ``terminal(company_id,
sip_username)`` (:class:`ivoz.directory.Directory`), ``secret`` the bytes that sign the
stateless nonces (the same on every proxy that shares the store). ``now`` is wall-clock
seconds (``time.time()``): bindings carry absolute expiries that several machines
compare; when omitted, ``clock()`` gives it. ``handle`` never raises for what a phone
sends: a malformed request gets the status of its :class:`ivoz.sip.RemoteError`; only a
request that cannot be answered at all (no Via, From, To, Call-ID or CSeq) re-raises it.
The proxy adds ``Server`` and sends the response through the REGISTER's server
transaction. After a successful registration the :class:`ivoz.proxy.nat.KeepAlive`
given (if any) knows which UDP bindings behind NAT to ping. Reading bindings back
(forking a call, the registration-status API) goes straight to the store; the proxy
finds where each one is with :func:`ivoz.proxy.nat.destination`.

What the registrar decides, in the order of RFC 3261 10.3:

1. the AOR's domain (To; the Request-URI when it names a domain) must be a vPBX
   client's SIP domain, else 404; a Request-URI naming another client's domain is 403;
2. ``Require`` may only ask for ``path`` and ``outbound`` (420 with Unsupported);
3. digest authentication, realm = that domain: 401 with one challenge per algorithm
   of ``algorithms``, most preferred first (RFC 8760 2.4: pass ``("SHA-256", "MD5")``;
   the default is MD5 alone, see ``DEFAULT_ALGORITHMS``), ``stale=true`` for an
   expired nonce (RFC 7616 3.3); unknown user and wrong password look the same (401);
4. the authenticated terminal must be the AOR's user (403 otherwise);
5. ``Contact: *`` only alone and with ``Expires: 0`` (400), removing everything;
6. each contact's expiry from its ``expires`` parameter, else ``Expires``, else 3600;
   below Min-Expires (60 s) is 423 with Min-Expires; above 3600 is clamped; 0 removes;
7. a binding with the same Call-ID and a CSeq not higher than stored aborts the whole
   request with 500 (nothing changes); every change is applied only after all
   contacts passed;
8. 200 listing every live binding with its remaining ``expires``, Path echoed when the
   phone supports it, ``Require: outbound`` when a flow was registered, and a Date.

A binding's identity: with ``Supported: outbound`` and a Contact carrying
``+sip.instance`` and ``reg-id``, the (instance, reg-id) pair (RFC 5626 6: a new flow
replaces the old one whatever its Contact URI); with ``+sip.instance`` alone, the
instance (the phone says it is one device, so its newest contact replaces the older);
otherwise the Contact URI compared by RFC 3261 19.1.4.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ivoz.proxy.nat import KeepAlive, behind_nat
from ivoz.sip import Contact, LocalError, RemoteError, Request, Response, make_response, new_tag
from ivoz.sip.auth import CHALLENGE_HEADER, CREDENTIALS_HEADER, Credentials, credentials_for
from ivoz.sip.digest import ALGORITHMS as DIGEST_ALGORITHMS
from ivoz.sip.digest import NONCE_LIFETIME, DigestResult, make_challenge, verify
from ivoz.sip.uri import URI
from ivoz.state.location import Binding, LocationStore
from ivoz.transport.address import Origin

__all__ = [
    "DEFAULT_ALGORITHMS",
    "DEFAULT_EXPIRES",
    "MAX_EXPIRES",
    "MIN_EXPIRES",
    "RFC8760_ALGORITHMS",
    "Registrar",
    "RegistrarDirectory",
    "aor_of",
]

MIN_EXPIRES = 60  # seconds; RFC 3261 10.3 step 7: shorter is 423 Interval Too Brief
MAX_EXPIRES = 3600  # seconds; RFC 3261 10.3 step 7: the registrar MAY shorten longer ones
DEFAULT_EXPIRES = 3600  # seconds; RFC 3261 10.2.1.1 suggests one hour when none is asked
# RFC 8760 2.4 / RFC 7616 3.7: one challenge per algorithm, most preferred first
RFC8760_ALGORITHMS = ("SHA-256", "MD5")
# What the registrar offers unless told otherwise (Config.sip_digest_algorithms): MD5
# alone, because baresip 1.0.0, SIPp 3.6.1 and sipsak 0.9.8 (Debian 12) give up on a
# 401 that carries a SHA-256 challenge, even after an MD5 one (tested; docs/registrar.md)
DEFAULT_ALGORITHMS = ("MD5",)
# option tags this registrar supports (RFC 3261 10.3 step 2, RFC 3327 5.3, RFC 5626 6)
SUPPORTED = ("path", "outbound")
REG_ID_MAX = 2**31 - 1  # RFC 5626 12: reg-id = "reg-id" EQUAL 1*DIGIT ; 1 to (2^31 - 1)


class CompanyLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def domain(self) -> str | None: ...


class TerminalLike(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def company_id(self) -> int: ...
    @property
    def sip_username(self) -> str: ...
    @property
    def sip_password(self) -> str: ...


class RegistrarDirectory(Protocol):
    """What the registrar reads from :class:`ivoz.directory.Directory`."""

    def company_by_domain(self, domain: str) -> CompanyLike | None: ...
    def terminal(self, company_id: int, sip_username: str) -> TerminalLike | None: ...


def aor_of(uri: URI) -> str:
    """The location-store key of an address-of-record: ``user@domain`` (domain lower-case)."""
    return f"{uri.user or ''}@{uri.host.lower()}"


@dataclass(frozen=True, slots=True)
class _Change:
    """One contact of the REGISTER: the bindings it replaces and what it becomes."""

    replaced: tuple[Binding, ...]
    binding: Binding | None  # None: expires=0, removal only


class _Failed(Exception):
    """Abort with this response (nothing has been changed yet)."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


class Registrar:
    def __init__(
        self,
        store: LocationStore,
        directory: RegistrarDirectory,
        secret: bytes,
        clock: Callable[[], float] = time.time,
        *,
        min_expires: int = MIN_EXPIRES,
        max_expires: int = MAX_EXPIRES,
        default_expires: int = DEFAULT_EXPIRES,
        nonce_lifetime: float = NONCE_LIFETIME,
        keepalive: KeepAlive | None = None,
        date: bool = True,
        algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS,
    ) -> None:
        if not 0 < min_expires <= default_expires <= max_expires:
            raise ValueError("need 0 < min_expires <= default_expires <= max_expires")
        if not algorithms or any(a.upper() not in DIGEST_ALGORITHMS for a in algorithms):
            raise ValueError(f"unsupported digest algorithms {algorithms!r}")
        self.store = store
        self.directory = directory
        self.secret = secret
        self.clock = clock
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.default_expires = default_expires
        self.nonce_lifetime = nonce_lifetime
        self.keepalive = keepalive
        self.date = date
        self.algorithms = tuple(a.upper() for a in algorithms)

    async def handle(self, request: Request, origin: Origin, now: float | None = None) -> Response:
        """The final response to ``request`` (a REGISTER), after updating the store."""
        if request.method != "REGISTER":
            raise LocalError(f"the registrar handles REGISTER, not {request.method}")
        now = self.clock() if now is None else now
        try:
            return await self._handle(request, origin, now)
        except _Failed as failed:
            return failed.response
        except RemoteError as exc:
            if not exc.respondable:
                raise
            try:
                return make_response(request, exc.status, exc.reason, to_tag=new_tag())
            except (LocalError, RemoteError):
                raise exc from None

    async def lookup(self, uri: URI, now: float | None = None) -> list[Binding]:
        """The live bindings of the AOR ``uri`` names (a call's Request-URI), best first."""
        return await self.store.bindings(aor_of(uri), self.clock() if now is None else now)

    # -- the steps of RFC 3261 10.3 -------------------------------------------------

    async def _handle(self, request: Request, origin: Origin, now: float) -> Response:
        def fail(status: int, reason: str | None = None, **headers: str) -> _Failed:
            response = make_response(request, status, reason, to_tag=new_tag())
            for name, value in headers.items():
                response.headers.set(name.replace("_", "-"), value)
            return _Failed(response)

        request.call_id, request.cseq, request.from_  # noqa: B018  (400 when malformed)
        request_uri = request.uri  # 416 for a scheme other than sip/sips/tel
        # RFC 3261 10.3 step 2: every Require option tag must be understood
        unsupported = [t for t in request.option_tags("Require") if t.lower() not in SUPPORTED]
        if unsupported:
            raise fail(420, Unsupported=", ".join(unsupported))
        # RFC 3261 10.3 steps 1 and 5: the AOR must belong to a domain we serve
        to = request.to.uri
        if to.scheme not in ("sip", "sips") or not to.user:
            raise fail(404, "Not a valid address-of-record")
        company = self.directory.company_by_domain(to.host.lower())
        if company is None or not company.domain:
            raise fail(404, "Domain not served here")
        if request_uri.scheme in ("sip", "sips") and not request_uri.user:
            named = self.directory.company_by_domain(request_uri.host.lower())
            if named is not None and named.id != company.id:
                raise fail(403, "AOR outside the Request-URI domain")
        realm = company.domain
        # RFC 3261 10.3 step 3 / 22.4: authenticate, realm = the client's SIP domain
        credentials = credentials_for(request, realm)
        if credentials is None:
            if self._authenticated_elsewhere(request, realm, now):
                # a terminal of another client, proven by its own realm's digest
                raise fail(403, "Not allowed to register in this domain")
            raise self._challenge(request, realm, now, stale=False)
        assert credentials.username is not None and credentials.uri is not None
        terminal = self.directory.terminal(company.id, credentials.username)
        if terminal is None:
            raise self._challenge(request, realm, now, stale=False)
        if not _same_uri(credentials.uri, request):
            # RFC 7616 3.4.6 (RFC 2617 3.2.2.5): the digest-uri must be the Request-URI
            raise fail(400, "Authorization URI does not match the Request-URI")
        result = verify(
            credentials,
            "REGISTER",
            self.secret,
            now,
            password=terminal.sip_password,
            realm=realm,
            allowed_algorithms=self.algorithms,
        )
        if result is not DigestResult.OK:
            # RFC 7616 3.3: stale=true when only the nonce has expired
            raise self._challenge(request, realm, now, stale=result is DigestResult.STALE)
        # RFC 3261 10.3 step 4: the authenticated user may only change its own AOR
        if terminal.sip_username != to.user:
            raise fail(403, "Not allowed to register this address-of-record")

        aor = aor_of(to)
        existing = await self.store.bindings(aor, now)
        contacts = request.contacts
        expires_header = request.expires
        call_id, cseq = request.call_id, request.cseq.seq
        supported = {t.lower() for t in request.option_tags("Supported")}
        outbound_used = False
        if contacts and contacts[0].star:
            # RFC 3261 10.3 step 6: "*" only alone (the parser refuses a mix) and with
            # an Expires of 0
            if expires_header != 0:
                raise fail(400, "Contact * needs Expires: 0")
            for binding in existing:
                # RFC 3261 10.3 step 6: same Call-ID with a CSeq not higher aborts
                if binding.call_id == call_id and cseq <= binding.cseq:
                    raise fail(500, "Out of order REGISTER")
            await self.store.remove_all(aor)
            if self.keepalive is not None:
                self.keepalive.forget_aor(aor)
            existing = []
        elif contacts:
            changes = self._plan(
                request, origin, now, aor, contacts, existing, supported, terminal, fail
            )
            outbound_used = any(c.binding is not None and c.binding.reg_id for c in changes)
            await self._apply(changes, now)
            existing = await self.store.bindings(aor, now)
        return self._ok(request, existing, now, supported, outbound_used)

    def _plan(
        self,
        request: Request,
        origin: Origin,
        now: float,
        aor: str,
        contacts: list[Contact],
        existing: list[Binding],
        supported: set[str],
        terminal: TerminalLike,
        fail: Callable[..., _Failed],
    ) -> list[_Change]:
        """Check every contact (RFC 3261 10.3 step 7) before anything is changed."""
        expires_header = request.expires
        call_id, cseq = request.call_id, request.cseq.seq
        path = tuple(request.headers.get_all("Path"))
        via = request.via
        user_agent = (request.headers.get("User-Agent") or "")[:200]
        outbound = "outbound" in supported
        with_reg_id = [c for c in contacts if "reg-id" in c.params]
        if outbound and len(with_reg_id) > 1:
            # RFC 5626 6: one flow per REGISTER
            raise fail(400, "More than one Contact with reg-id")
        changes: list[_Change] = []
        planned: list[Binding] = list(existing)
        for contact in contacts:
            uri = contact.uri
            if uri is None or uri.scheme not in ("sip", "sips"):
                raise fail(400, "Contact must be a SIP URI")
            # RFC 3261 10.2.1.1 / 10.3 step 7: the parameter wins over the header
            expires = contact.expires
            if expires is None:
                expires = expires_header if expires_header is not None else self.default_expires
            if 0 < expires < self.min_expires:
                raise fail(423, Min_Expires=str(self.min_expires))
            expires = min(expires, self.max_expires)
            instance = contact.params.get("+sip.instance")
            reg_id = _reg_id(contact.params.get("reg-id")) if outbound and instance else None
            replaced = tuple(
                b for b in planned if _same_binding(b, uri, instance, reg_id, outbound)
            )
            for old in replaced:
                # RFC 3261 10.3 step 7: same Call-ID needs a higher CSeq, or all aborts
                if old.call_id == call_id and cseq <= old.cseq:
                    raise fail(500, "Out of order REGISTER")
            planned = [b for b in planned if b not in replaced]
            binding: Binding | None = None
            if expires > 0:
                q = contact.q
                binding = Binding(
                    aor=aor,
                    contact=str(uri),
                    expires_at=now + expires,
                    received=str(origin.remote),
                    connection_id=origin.connection,
                    path=path,
                    instance=instance,
                    reg_id=reg_id,
                    call_id=call_id,
                    cseq=cseq,
                    user_agent=user_agent,
                    q=1.0 if q is None else q,
                    transport=origin.transport.value,
                    terminal_id=terminal.id,
                    company_id=terminal.company_id,
                    nat=behind_nat(uri, origin, rport=via.rport is not None),
                    registered_at=now,
                )
                planned.append(binding)
            changes.append(_Change(replaced, binding))
        return changes

    async def _apply(self, changes: list[_Change], now: float) -> None:
        for change in changes:
            for old in change.replaced:
                await self.store.remove(old.aor, old.contact)
                if self.keepalive is not None:
                    self.keepalive.forget(old.aor, old.contact)
            if change.binding is not None:
                await self.store.save(change.binding)
                if self.keepalive is not None:
                    self.keepalive.track(change.binding, now)

    def _ok(
        self,
        request: Request,
        bindings: list[Binding],
        now: float,
        supported: set[str],
        outbound_used: bool,
    ) -> Response:
        # RFC 3261 10.3 step 8: the 200 lists every current binding with its expiry
        response = make_response(request, 200, to_tag=new_tag())
        headers = response.headers
        for binding in bindings:
            value = f"<{binding.contact}>;expires={binding.expires_in(now)}"
            if binding.q != 1.0:
                value += f";q={binding.q:g}"
            if binding.instance is not None:
                value += f";+sip.instance={binding.instance}"
            if binding.reg_id is not None:
                value += f";reg-id={binding.reg_id}"
            headers.add("Contact", value)
        path = request.headers.get_all("Path")
        if path and "path" in supported:
            # RFC 3327 5.3: the stored Path goes back to a UA that supports it
            for value in path:
                headers.add("Path", value)
        if outbound_used:
            # RFC 5626 6: the registrar says that it applied outbound to this flow
            headers.add("Require", "outbound")
        headers.add("Supported", ", ".join(SUPPORTED))
        if self.date:
            # RFC 3261 10.3 step 8: a Date header lets simple UAs set their clock
            headers.add("Date", email.utils.formatdate(time.time(), usegmt=True))
        return response

    def _authenticated_elsewhere(self, request: Request, realm: str, now: float) -> bool:
        """Whether the request carries valid credentials for another client's realm."""
        for value in request.headers.get_lines(CREDENTIALS_HEADER[False]):
            credentials = Credentials.parse(value)
            if not credentials.is_digest or credentials.realm in (None, realm):
                continue
            assert credentials.realm is not None and credentials.username is not None
            company = self.directory.company_by_domain(credentials.realm.lower())
            if company is None or company.domain != credentials.realm:
                continue
            terminal = self.directory.terminal(company.id, credentials.username)
            if terminal is None or not _same_uri(credentials.uri or "", request):
                continue
            result = verify(
                credentials,
                "REGISTER",
                self.secret,
                now,
                password=terminal.sip_password,
                realm=credentials.realm,
                allowed_algorithms=self.algorithms,
            )
            if result is DigestResult.OK:
                return True
        return False

    def _challenge(self, request: Request, realm: str, now: float, *, stale: bool) -> _Failed:
        # RFC 3261 22.1 / 10.3 step 3: 401 with WWW-Authenticate, one per algorithm
        response = make_response(request, 401, to_tag=new_tag())
        for algorithm in self.algorithms:
            challenge = make_challenge(
                realm,
                self.secret,
                now,
                algorithm=algorithm,
                stale=stale,
                lifetime=self.nonce_lifetime,
            )
            response.headers.add(CHALLENGE_HEADER[False], str(challenge))
        return _Failed(response)


def _reg_id(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= REG_ID_MAX:
        raise RemoteError(400, "Malformed reg-id")
    return int(value)


def _same_binding(
    old: Binding, uri: URI, instance: str | None, reg_id: int | None, outbound: bool
) -> bool:
    if instance is not None and old.instance == instance:
        if reg_id is not None:
            # RFC 5626 6: with outbound, (instance, reg-id) identifies the flow
            if old.reg_id == reg_id:
                return True
        elif old.reg_id is None or not outbound:
            # one device, one binding: the newest contact of an instance wins
            return True
    try:
        # RFC 3261 10.3 step 7: contacts compare by the URI rules of 19.1.4
        return URI.parse(old.contact).equivalent(uri)
    except RemoteError:
        return old.contact == str(uri)


def _same_uri(text: str, request: Request) -> bool:
    if text == request.request_uri:
        return True
    try:
        return URI.parse(text).equivalent(request.uri)
    except RemoteError:
        return False
