"""Access and refresh tokens (JWT, HS256), their rotation and revocation, login throttling.

An access token is short-lived and carries the scope it was issued for (level, brand,
client, user), so a request needs no session lookup to know its tenant. A refresh token
lives longer and is good for one use: refreshing revokes it and issues a new pair. Both
tokens of a login share a session id (``sid``); logout revokes the session, which kills
every token issued under it, including those that rotation produced later.

Revocations and failed-login counts live behind two small stores, in memory for one
portal process (the default) or in Redis when the platform runs several
(``config.redis_url``): a logout or a throttle then holds on every portal. Entries are
kept until the revoked token would have expired anyway / the window has passed.
Time is an injected clock, so tests move it instead of sleeping.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import jwt

Clock = Callable[[], float]
Level = Literal["platform", "brand", "client", "user"]
LEVELS: tuple[Level, ...] = ("platform", "brand", "client", "user")

ACCESS_TTL = 15 * 60  # seconds
REFRESH_TTL = 7 * 24 * 3600  # seconds
ALGORITHM = "HS256"


class TokenError(Exception):
    """The token is missing, malformed, expired, revoked or for another level."""


@dataclass(frozen=True)
class Principal:
    """Who a token speaks for: the subject and the scope it acts in."""

    level: Level
    # "admin" (an Administrator row) or "user" (a User row): the subject's table.
    kind: Literal["admin", "user"]
    subject: int
    brand_id: int | None
    company_id: int | None
    user_id: int | None
    session: str
    # Administrator who impersonates (None for a normal login).
    impersonator: int | None = None


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
        }


def load_or_create_secret(data_dir: Path) -> str:
    """The token signing secret kept in ``data_dir/api-secret`` (mode 0600), made once."""
    path = data_dir / "api-secret"
    if path.exists():
        text = path.read_text().strip()
        if text:
            return text
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.chmod(0o600)
    tmp.write_text(secret + "\n")
    tmp.replace(path)
    return secret


class TokenService:
    def __init__(
        self,
        secret: str,
        clock: Clock = time.time,
        access_ttl: int = ACCESS_TTL,
        refresh_ttl: int = REFRESH_TTL,
        revocations: RevocationStore | None = None,
    ) -> None:
        # A fixed-size HMAC key from the configured secret, whatever its length
        # (RFC 7518 3.2 wants at least 256 bits of key for HS256).
        self._secret = hashlib.sha256(b"ivoz-api-token\x00" + secret.encode()).digest()
        self._clock = clock
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self._revocations = revocations or MemoryRevocations(clock)

    def issue(self, principal: Principal) -> TokenPair:
        now = int(self._clock())
        claims: dict[str, Any] = {
            "sub": str(principal.subject),
            "knd": principal.kind,
            "lvl": principal.level,
            "bid": principal.brand_id,
            "cid": principal.company_id,
            "uid": principal.user_id,
            "sid": principal.session,
            "imp": principal.impersonator,
            "iat": now,
        }
        access = self._encode({**claims, "typ": "access", "exp": now + self.access_ttl})
        refresh = self._encode({**claims, "typ": "refresh", "exp": now + self.refresh_ttl})
        return TokenPair(access, refresh, self.access_ttl)

    def new_session(self) -> str:
        return secrets.token_urlsafe(12)

    async def verify(
        self, token: str, typ: Literal["access", "refresh"], level: Level
    ) -> Principal:
        claims = self._decode(token)
        if claims.get("typ") != typ:
            raise TokenError(f"not an {typ} token")
        if claims.get("lvl") != level:
            raise TokenError(f"token is for the {claims.get('lvl')} level, not {level}")
        if await self._revocations.any_revoked([claims["jti"], f"sid:{claims['sid']}"]):
            raise TokenError("token revoked")
        return Principal(
            level=claims["lvl"],
            kind=claims["knd"],
            subject=int(claims["sub"]),
            brand_id=claims.get("bid"),
            company_id=claims.get("cid"),
            user_id=claims.get("uid"),
            session=claims["sid"],
            impersonator=claims.get("imp"),
        )

    async def rotate(self, refresh_token: str, level: Level) -> TokenPair:
        """Use a refresh token once: revoke it and issue a new pair in the same session."""
        principal = await self.verify(refresh_token, "refresh", level)
        claims = self._decode(refresh_token)
        # A racing second use of the same token loses here: revoke is first-come.
        if not await self._revocations.revoke(claims["jti"], float(claims["exp"])):
            raise TokenError("token revoked")
        return self.issue(principal)

    async def revoke_session(self, token: str) -> None:
        """Logout: every token of the token's session stops working."""
        claims = self._decode(token)
        await self._revocations.revoke(f"sid:{claims['sid']}", self._clock() + self.refresh_ttl)

    def _encode(self, claims: dict[str, Any]) -> str:
        claims["jti"] = secrets.token_urlsafe(12)
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def _decode(self, token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "require": ["exp", "sub", "jti", "sid", "lvl"],
                },
            )
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        # Expiry against the injected clock, not the wall clock inside pyjwt.
        if float(claims["exp"]) <= self._clock():
            raise TokenError("token expired")
        if claims.get("lvl") not in LEVELS or claims.get("knd") not in ("admin", "user"):
            raise TokenError("invalid token claims")
        return claims


class RevocationStore(Protocol):
    async def revoke(self, key: str, until: float) -> bool:
        """Mark ``key`` revoked until ``until`` (epoch seconds); False if it already was."""
        ...

    async def any_revoked(self, keys: Sequence[str]) -> bool: ...


class MemoryRevocations:
    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._until: dict[str, float] = {}  # key -> when it may be forgotten

    async def revoke(self, key: str, until: float) -> bool:
        now = self._clock()
        for stale in [k for k, t in self._until.items() if t < now]:
            del self._until[stale]
        if key in self._until:
            return False
        self._until[key] = until
        return True

    async def any_revoked(self, keys: Sequence[str]) -> bool:
        return any(key in self._until for key in keys)


class RedisRevocations:
    """Revocations shared by every portal process: one key each, expiring with the token."""

    def __init__(self, redis: Any, clock: Clock = time.time, prefix: str = "ivoz:portal:revoked:"):
        self._redis = redis
        self._clock = clock
        self._prefix = prefix

    async def revoke(self, key: str, until: float) -> bool:
        ttl = max(1, math.ceil(until - self._clock()))
        created = await self._redis.set(self._prefix + key, b"1", ex=ttl, nx=True)
        return bool(created)

    async def any_revoked(self, keys: Sequence[str]) -> bool:
        values = await self._redis.mget([self._prefix + key for key in keys])
        return any(value is not None for value in values)


class FailureStore(Protocol):
    async def recent(self, key: str, since: float) -> list[float]:
        """Failure times of ``key`` after ``since``, oldest first (older ones dropped)."""
        ...

    async def add(self, key: str, when: float, keep: float) -> None: ...

    async def clear(self, key: str) -> None: ...


class MemoryFailures:
    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}

    async def recent(self, key: str, since: float) -> list[float]:
        times = self._failures.get(key)
        if times is None:
            return []
        while times and times[0] <= since:
            times.popleft()
        if not times:
            del self._failures[key]
        return list(times)

    async def add(self, key: str, when: float, keep: float) -> None:
        if len(self._failures) > 100_000:  # bound memory under a spray of keys
            for stale in [k for k, v in self._failures.items() if not v or v[-1] < when - keep]:
                del self._failures[stale]
        self._failures.setdefault(key, deque()).append(when)

    async def clear(self, key: str) -> None:
        self._failures.pop(key, None)


class RedisFailures:
    """Failures as a sorted set per key (score = time), expiring after the window."""

    def __init__(self, redis: Any, prefix: str = "ivoz:portal:failures:") -> None:
        self._redis = redis
        self._prefix = prefix

    async def recent(self, key: str, since: float) -> list[float]:
        name = self._prefix + key
        await self._redis.zremrangebyscore(name, "-inf", since)
        rows = await self._redis.zrange(name, 0, -1, withscores=True)
        return [float(score) for _member, score in rows]

    async def add(self, key: str, when: float, keep: float) -> None:
        name = self._prefix + key
        await self._redis.zadd(name, {f"{when}:{secrets.token_hex(4)}": when})
        await self._redis.expire(name, max(1, math.ceil(keep)))

    async def clear(self, key: str) -> None:
        await self._redis.delete(self._prefix + key)


class LoginThrottle:
    """At most ``limit`` failed logins per key within ``window`` seconds.

    Keys are the username (within its level and brand) and the source address, so a
    guesser is stopped whether it tries many passwords on one name or one password on
    many names. A success does not clear the address's failures.
    """

    def __init__(
        self,
        clock: Clock = time.time,
        limit: int = 5,
        window: float = 300.0,
        store: FailureStore | None = None,
    ) -> None:
        self._clock = clock
        self.limit = limit
        self.window = window
        self._store = store or MemoryFailures()

    async def retry_after(self, *keys: str) -> int:
        """Seconds until a login may be tried again for these keys; 0 when allowed now."""
        now = self._clock()
        wait = 0.0
        for key in keys:
            times = await self._store.recent(key, now - self.window)
            if len(times) >= self.limit:
                wait = max(wait, times[len(times) - self.limit] + self.window - now)
        return math.ceil(wait) if wait > 0 else 0

    async def failed(self, *keys: str) -> None:
        now = self._clock()
        for key in keys:
            await self._store.add(key, now, self.window)

    async def succeeded(self, user_key: str) -> None:
        await self._store.clear(user_key)
