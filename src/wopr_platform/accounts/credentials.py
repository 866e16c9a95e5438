"""Secrets people and programs present: passwords (argon2, hashed in a worker thread so the event loop never waits
on it) and random tokens (session cookies, API keys), stored only as their SHA-256."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD = 12
MAX_PASSWORD = 256  # hashing cost grows with the input: bounded
KEY_PREFIX = "wopr_"

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# verified when the account does not exist, so an unknown email costs as much time as a wrong password
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> bool:
    """Whether `password` matches `stored`; with no stored hash, a dummy one is checked (same cost) and False."""

    def verify() -> bool:
        try:
            return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(verify)


def new_token() -> str:
    """A random token of 256 bits, URL-safe."""
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    """What is stored of a token: its SHA-256 in hex (tokens are random, so no salt or slow hash is needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two secrets."""
    return hmac.compare_digest(a.encode(), b.encode())


def new_api_key() -> tuple[str, str]:
    """A new key's secret (`wopr_<8 hex>_<token>`) and its prefix (`wopr_<8 hex>`, shown in lists)."""
    prefix = KEY_PREFIX + secrets.token_hex(4)
    return f"{prefix}_{new_token()}", prefix
