"""Secret env values in answers: the values of a bot's secret keys (and any sealed value) are shown as `***`."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from wopr_platform.crypto.secretbox import SecretBox

REDACTED = "***"


def redact_env(env: Mapping[str, str], secret_keys: Collection[str] | None) -> dict[str, str]:
    """`env` as an answer may show it: the value of every secret key replaced by `***`."""
    secret = set(secret_keys or ())
    return {key: REDACTED if key in secret or SecretBox.is_sealed(value) else value for key, value in env.items()}


def keep_redacted(
    new_env: Mapping[str, str], old_env: Mapping[str, str], secret_keys: Collection[str] | None
) -> dict[str, str]:
    """A PATCHed env that sends `***` back for a secret key keeps the stored value (a read-modify-write client)."""
    secret = set(secret_keys or ())
    return {
        key: old_env[key] if key in secret and value == REDACTED and key in old_env else value
        for key, value in new_env.items()
    }
