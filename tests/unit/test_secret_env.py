"""Sealing a bot's secret env values for storage, opening them for its container, moving them to a new key."""

from __future__ import annotations

import pytest

from wopr_platform.crypto.secretbox import SecretBox
from wopr_platform.fleet.secrets.sealed_env import PlatformSecretMissing, SecretEnv, SecretsUnreadable

OLD = "an-old-platform-secret-0001"
NEW = "a-new-platform-secret-0002"
BOT = "3b0d0a4e-0000-4000-8000-000000000001"


def test_only_secret_keys_are_sealed_and_open_again() -> None:
    secrets = SecretEnv(SecretBox(NEW))
    stored = secrets.seal(BOT, {"DISCORD_TOKEN": "t0k", "LOG_LEVEL": "info"}, ["DISCORD_TOKEN", "NOT_SET"])
    assert stored["LOG_LEVEL"] == "info" and SecretBox.is_sealed(stored["DISCORD_TOKEN"])
    assert secrets.open(BOT, stored) == {"DISCORD_TOKEN": "t0k", "LOG_LEVEL": "info"}
    assert secrets.seal(BOT, stored, ["DISCORD_TOKEN"]) == stored  # a sealed value is not sealed twice


def test_values_in_the_clear_or_under_a_previous_key_are_refreshed() -> None:
    old = SecretEnv(SecretBox(OLD))
    under_old = old.seal(BOT, {"A": "1", "B": "2", "C": "3"}, ["A"])
    plain_b = {**under_old}  # B is secret but was stored in the clear by an older platform
    new = SecretEnv(SecretBox(NEW, [OLD]))
    refreshed = new.refreshed(BOT, plain_b, ["A", "B"])
    assert refreshed is not None and refreshed["C"] == "3"
    assert SecretBox.is_sealed(refreshed["B"]) and not SecretBox(NEW).needs_rotation(refreshed["A"])
    assert SecretEnv(SecretBox(NEW)).open(BOT, refreshed) == {"A": "1", "B": "2", "C": "3"}
    assert new.refreshed(BOT, refreshed, ["A", "B"]) is None  # nothing left to do


def test_no_key_refuses_to_store_and_a_wrong_key_is_a_clear_error() -> None:
    with pytest.raises(PlatformSecretMissing):
        SecretEnv(None).seal(BOT, {"A": "1"}, ["A"])
    assert SecretEnv(None).seal(BOT, {"A": "1"}, []) == {"A": "1"}
    stored = SecretEnv(SecretBox(OLD)).seal(BOT, {"A": "1"}, ["A"])
    with pytest.raises(SecretsUnreadable) as caught:
        SecretEnv(SecretBox(NEW)).open(BOT, stored)
    assert caught.value.status == 503 and "1" not in caught.value.message
