"""Secret env values at rest: sealed in the profile, opened only to build the bot's container.

The secret keys of a bot are the ones its request marked (`secretEnv`) and the ones a template filled from
`${VAR}` placeholders. Their values are stored sealed (`crypto.secretbox`), shown as `***`, and travel in the
clear only inside the container spec handed to the engine. Operation journal rows hold the sealed form too.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

from wopr_platform.core.errors import PlatformError, ServiceUnavailable
from wopr_platform.crypto.secretbox import SecretBox, SecretUnreadable

log = logging.getLogger(__name__)


class PlatformSecretMissing(ServiceUnavailable):
    """Secret env values cannot be stored: production without PLATFORM_SECRET."""

    code = "platform_secret_missing"


class SecretsUnreadable(PlatformError):
    """A stored secret does not open with any configured key (PLATFORM_SECRET changed without
    PLATFORM_SECRET_PREVIOUS, or the row was altered)."""

    status = 503
    code = "secrets_unreadable"


class SecretEnv:
    """Seals a bot's secret env values for storage and opens them for its container."""

    def __init__(self, box: SecretBox | None) -> None:
        self._box = box

    def seal(self, bot_id: str, env: Mapping[str, str], secret_keys: Collection[str]) -> dict[str, str]:
        """`env` as stored: the value of every secret key sealed (values already sealed stay as they are)."""
        keys = set(secret_keys) & env.keys()
        if not keys:
            return dict(env)
        if self._box is None:
            raise PlatformSecretMissing(
                "secret env values cannot be stored: PLATFORM_SECRET is not configured",
                details={"keys": sorted(keys)},
            )
        box = self._box
        return {key: box.seal(value, bot_id=bot_id, key=key) if key in keys else value for key, value in env.items()}

    def open(self, bot_id: str, env: Mapping[str, str]) -> dict[str, str]:
        """`env` as the container gets it: every sealed value opened."""
        if not any(SecretBox.is_sealed(value) for value in env.values()):
            return dict(env)
        if self._box is None:
            raise SecretsUnreadable(
                "the bot's secret env values cannot be opened: PLATFORM_SECRET is not configured",
                details={"botId": bot_id},
            )
        try:
            return {key: self._box.open(value, bot_id=bot_id, key=key) for key, value in env.items()}
        except SecretUnreadable as err:
            raise SecretsUnreadable(str(err), details={"botId": bot_id}) from None

    def refreshed(self, bot_id: str, env: Mapping[str, str], secret_keys: Collection[str]) -> dict[str, str] | None:
        """The stored env again when a secret value is in the clear or sealed with a previous key; else None."""
        box = self._box
        if box is None:
            return None
        keys = set(secret_keys) & env.keys()
        stale = [key for key in keys if not box.is_sealed(env[key]) or box.needs_rotation(env[key])]
        if not stale:
            return None
        opened = {key: box.open(env[key], bot_id=bot_id, key=key) for key in stale}
        return {**env, **{key: box.seal(value, bot_id=bot_id, key=key) for key, value in opened.items()}}
