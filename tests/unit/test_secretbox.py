"""Secret env values at rest: sealed with AES-GCM, bound to their bot and key, readable after a key rotation."""

from __future__ import annotations

import pytest

from wopr_platform.crypto.secretbox import PREFIX, SecretBox, SecretUnreadable

SECRET = "correct horse battery staple 42"
BOT = "5f1c2b9e-0000-4000-8000-000000000001"


def test_a_sealed_value_opens_to_the_original_and_hides_it() -> None:
    box = SecretBox(SECRET)
    sealed = box.seal("discord-token-value", bot_id=BOT, key="DISCORD_TOKEN")
    assert sealed.startswith(PREFIX) and "discord-token-value" not in sealed
    assert box.open(sealed, bot_id=BOT, key="DISCORD_TOKEN") == "discord-token-value"
    assert box.seal("discord-token-value", bot_id=BOT, key="DISCORD_TOKEN") != sealed  # a fresh nonce each time
    assert box.seal(sealed, bot_id=BOT, key="DISCORD_TOKEN") == sealed  # sealing twice changes nothing


def test_unsealed_values_pass_through() -> None:
    assert SecretBox(SECRET).open("plain", bot_id=BOT, key="LOG_LEVEL") == "plain"


@pytest.mark.parametrize(("bot", "key"), [("another-bot", "DISCORD_TOKEN"), (BOT, "OTHER_KEY")])
def test_a_value_moved_to_another_bot_or_key_does_not_open(bot: str, key: str) -> None:
    box = SecretBox(SECRET)
    sealed = box.seal("v", bot_id=BOT, key="DISCORD_TOKEN")
    with pytest.raises(SecretUnreadable):
        box.open(sealed, bot_id=bot, key=key)


def test_a_wrong_secret_or_altered_data_does_not_open() -> None:
    sealed = SecretBox(SECRET).seal("v", bot_id=BOT, key="K")
    with pytest.raises(SecretUnreadable, match="key this platform does not have"):
        SecretBox("another secret of enough length").open(sealed, bot_id=BOT, key="K")
    altered = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SecretUnreadable, match="altered"):
        SecretBox(SECRET).open(altered, bot_id=BOT, key="K")


def test_previous_secrets_still_open_and_are_flagged_for_rotation() -> None:
    old = SecretBox("the old platform secret value")
    sealed = old.seal("v", bot_id=BOT, key="K")
    rotated = SecretBox(SECRET, previous=["the old platform secret value"])
    assert rotated.open(sealed, bot_id=BOT, key="K") == "v"
    assert rotated.needs_rotation(sealed)
    assert not rotated.needs_rotation(rotated.seal("v", bot_id=BOT, key="K"))


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        SecretBox("short")
