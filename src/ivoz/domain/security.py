"""Password hashing for portal logins: argon2id (RFC 9106) through argon2-cffi."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# argon2-cffi's defaults follow RFC 9106's second recommended option (argon2id).
_hasher = PasswordHasher()


def hash_password(plain: str) -> str:
    """An argon2id hash (PHC string format) of ``plain``."""
    return _hasher.hash(plain)


def verify_password(hash: str, plain: str) -> bool:
    """Whether ``plain`` matches ``hash``; a malformed hash never matches."""
    try:
        return _hasher.verify(hash, plain)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(hash: str) -> bool:
    """Whether ``hash`` was made with weaker parameters than the current ones."""
    try:
        return _hasher.check_needs_rehash(hash)
    except InvalidHashError:
        return True
