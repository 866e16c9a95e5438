"""Env values filled from template variables are shown as `***` and survive a read-modify-write PATCH."""

from __future__ import annotations

from wopr_platform.fleet.secrets.redaction import REDACTED, keep_redacted, redact_env


def test_secret_keys_are_redacted_and_others_shown() -> None:
    env = {"DISCORD_TOKEN": "s3cr3t", "GREETING": "hi"}
    assert redact_env(env, ["DISCORD_TOKEN", "NOT_SET"]) == {"DISCORD_TOKEN": REDACTED, "GREETING": "hi"}
    assert redact_env(env, None) == env


def test_sending_the_redacted_value_back_keeps_the_stored_one() -> None:
    old = {"DISCORD_TOKEN": "s3cr3t", "GREETING": "hi"}
    new = {"DISCORD_TOKEN": REDACTED, "GREETING": REDACTED, "ADDED": "x"}
    assert keep_redacted(new, old, ["DISCORD_TOKEN"]) == {"DISCORD_TOKEN": "s3cr3t", "GREETING": REDACTED, "ADDED": "x"}
    assert keep_redacted({"DISCORD_TOKEN": "rotated"}, old, ["DISCORD_TOKEN"]) == {"DISCORD_TOKEN": "rotated"}
