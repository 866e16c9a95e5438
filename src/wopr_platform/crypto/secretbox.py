"""Secret env values at rest: AES-256-GCM with a key derived from the platform's secret.

A stored value looks like `wopr:enc:v1:<key id>:<base64url(nonce + ciphertext + tag)>`. The bot id and the
env key are bound in as associated data, so a value copied to another bot or key does not decrypt. Older keys
(`PLATFORM_SECRET_PREVIOUS`) still decrypt, and `needs_rotation` tells which values to encrypt again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from wopr_platform.core.settings import MIN_SECRET_BYTES

# every sealed value, of any format version, starts with MARK: no value from outside may (it would pass as sealed)
MARK = "wopr:enc:"
PREFIX = MARK + "v1:"
NONCE_BYTES = 12


class SecretUnreadable(ValueError):
    """A stored secret cannot be decrypted with any configured key (wrong secret, or tampered data)."""


def _derive(secret: str) -> bytes:
    material = secret.encode()
    if len(material) < MIN_SECRET_BYTES:
        raise ValueError(f"the platform secret must be at least {MIN_SECRET_BYTES} bytes")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"wopr-platform", info=b"secrets at rest v1").derive(
        material
    )


def _key_id(key: bytes) -> str:
    return hashlib.sha256(b"key id" + key).hexdigest()[:8]


class SecretBox:
    """Encrypts with the current key; decrypts with the current or any previous one. Also signs (`mac`) with a key
    of its own derived from the current secret, for credentials the platform derives instead of storing."""

    def __init__(self, secret: str, previous: Iterable[str] = ()) -> None:
        key = _derive(secret)
        self._mac_key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"wopr-platform", info=b"derived credentials v1"
        ).derive(secret.encode())
        self._current = (_key_id(key), AESGCM(key))
        self._keys = {self._current[0]: self._current[1]}
        for old in previous:
            old_key = _derive(old)
            self._keys.setdefault(_key_id(old_key), AESGCM(old_key))

    @staticmethod
    def is_sealed(value: str) -> bool:
        return value.startswith(PREFIX)

    def seal(self, value: str, *, bot_id: str, key: str) -> str:
        """The stored form of `value` (already sealed values are returned as they are)."""
        if self.is_sealed(value):
            return value
        key_id, cipher = self._current
        nonce = os.urandom(NONCE_BYTES)
        sealed = cipher.encrypt(nonce, value.encode(), self._aad(bot_id, key))
        return f"{PREFIX}{key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode().rstrip('=')}"

    def open(self, value: str, *, bot_id: str, key: str) -> str:
        """The plain value of a stored one (a value that was never sealed is returned as it is)."""
        if not self.is_sealed(value):
            return value
        key_id, _, body = value[len(PREFIX) :].partition(":")
        cipher = self._keys.get(key_id)
        if cipher is None:
            raise SecretUnreadable(f"env {key} was sealed with a key this platform does not have")
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], self._aad(bot_id, key)).decode()
        except (InvalidTag, ValueError):
            raise SecretUnreadable(f"env {key} cannot be decrypted (wrong key or altered data)") from None

    def needs_rotation(self, value: str) -> bool:
        """Sealed with a previous key (open and seal it again to move it to the current one)."""
        return self.is_sealed(value) and not value[len(PREFIX) :].startswith(self._current[0] + ":")

    def mac(self, message: str) -> bytes:
        """HMAC-SHA256 of `message` under the current secret (changing PLATFORM_SECRET changes every one)."""
        return hmac.new(self._mac_key, message.encode(), hashlib.sha256).digest()

    @staticmethod
    def _aad(bot_id: str, key: str) -> bytes:
        return f"{bot_id}\x00{key}".encode()
