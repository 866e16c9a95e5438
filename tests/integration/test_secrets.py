"""Secret env values: sealed in the real database, in the clear only inside the real container, never answered."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from sqlalchemy import select

from tests.conftest import STUB_IMAGE, Platform, PlatformFactory
from wopr_platform.core.logging import JsonFormatter
from wopr_platform.crypto.keys import KEY_FILE
from wopr_platform.crypto.secretbox import PREFIX
from wopr_platform.db.models import AuditEvent, Bot, Operation

KEY_ONE = "first-platform-secret-" + uuid.uuid4().hex
KEY_TWO = "second-platform-secret-" + uuid.uuid4().hex


def _token() -> str:
    return "discord-" + uuid.uuid4().hex


async def _stored(platform: Platform, bot_id: str) -> tuple[dict[str, str], list[str] | None]:
    async with platform.app.state.services.database.read() as session:
        row = (await session.execute(select(Bot.env, Bot.secret_env_keys).where(Bot.id == bot_id))).one()
    return dict(row.env), row.secret_env_keys


async def _everything_stored(platform: Platform) -> str:
    """Every row the platform keeps about bots, operations and calls, as text."""
    async with platform.app.state.services.database.read() as session:
        rows: list[Any] = []
        for model in (Bot, Operation, AuditEvent):
            rows += [vars(item) for item in (await session.execute(select(model))).scalars()]
    return repr(rows)


async def _container_env(docker: aiodocker.Docker, container_id: str) -> dict[str, str]:
    info = await docker.containers.container(container_id).show()
    return dict(item.split("=", 1) for item in info["Config"]["Env"])


async def _wait_for_new_container(platform: Platform, bot_id: str, old: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        bot = await platform.bot(bot_id)
        if bot["containerId"] not in (None, old) and bot["state"] == "running":
            return bot
        assert time.monotonic() < deadline, f"never recreated: {bot}"
        await asyncio.sleep(0.1)


async def test_a_secret_is_sealed_at_rest_in_the_clear_only_in_its_container_and_never_answered(
    platform: Platform, docker: aiodocker.Docker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = _token()
    bot = await platform.create_bot(env={"DISCORD_TOKEN": token, "LOG_LEVEL": "debug"}, secretEnv=["DISCORD_TOKEN"])
    assert bot["env"] == {"DISCORD_TOKEN": "***", "LOG_LEVEL": "debug"}
    assert bot["secretEnv"] == ["DISCORD_TOKEN"]

    env, keys = await _stored(platform, bot["id"])
    assert keys == ["DISCORD_TOKEN"]
    assert env["DISCORD_TOKEN"].startswith(PREFIX) and token not in env["DISCORD_TOKEN"]
    assert env["LOG_LEVEL"] == "debug"
    if platform.settings.database_url.startswith("sqlite"):
        database_file = Path(platform.settings.database_url.split("///", 1)[1])
        for path in database_file.parent.glob(database_file.name + "*"):  # the WAL too
            assert token.encode() not in path.read_bytes(), path.name

    assert (await _container_env(docker, bot["containerId"]))["DISCORD_TOKEN"] == token
    detail = await platform.bot(bot["id"])
    assert detail["env"]["DISCORD_TOKEN"] == "***"
    listing = await platform.client.get("/fleet/bots")
    drift = await platform.client.get("/fleet/drift")
    audit = await platform.client.get("/audit")
    for answer in (listing, drift, audit):
        assert answer.status_code == 200 and token not in answer.text
    assert token not in await _everything_stored(platform)
    formatter = JsonFormatter()
    assert all(token not in formatter.format(record) for record in caplog.records)


async def test_patch_keeps_changes_marks_and_unmarks_secrets_without_ever_revealing_one(
    platform: Platform, docker: aiodocker.Docker
) -> None:
    token = _token()
    bot = await platform.create_bot(env={"DISCORD_TOKEN": token, "LOG_LEVEL": "info"}, secretEnv=["DISCORD_TOKEN"])
    bot_id, first = bot["id"], bot["containerId"]
    sealed_before = (await _stored(platform, bot_id))[0]["DISCORD_TOKEN"]

    # a read-modify-write client sends *** back: the secret stays, nothing is recreated
    same = await platform.client.patch(
        f"/fleet/bots/{bot_id}", json={"env": {"DISCORD_TOKEN": "***", "LOG_LEVEL": "info"}}
    )
    assert same.status_code == 200, same.text
    assert same.json()["containerId"] == first
    assert (await _stored(platform, bot_id))[0]["DISCORD_TOKEN"] == sealed_before

    # marking a value that is already set as secret seals it and recreates nothing
    marked = await platform.client.patch(f"/fleet/bots/{bot_id}", json={"secretEnv": ["DISCORD_TOKEN", "LOG_LEVEL"]})
    assert marked.status_code == 200, marked.text
    assert marked.json()["containerId"] == first
    assert marked.json()["env"] == {"DISCORD_TOKEN": "***", "LOG_LEVEL": "***"}
    env, keys = await _stored(platform, bot_id)
    assert keys == ["DISCORD_TOKEN", "LOG_LEVEL"] and env["LOG_LEVEL"].startswith(PREFIX)

    # a stored secret is never revealed: leaving secretEnv needs a new value
    refused = await platform.client.patch(f"/fleet/bots/{bot_id}", json={"secretEnv": ["LOG_LEVEL"]})
    assert refused.status_code == 400, refused.text
    assert refused.json()["details"]["keys"] == ["DISCORD_TOKEN"]
    assert token not in refused.text
    assert await _stored(platform, bot_id) == (env, keys)

    # a new secret value: the container is recreated with it
    new_token = _token()
    changed = await platform.client.patch(
        f"/fleet/bots/{bot_id}",
        json={"env": {"DISCORD_TOKEN": new_token, "LOG_LEVEL": "***"}, "secretEnv": ["DISCORD_TOKEN"]},
    )
    assert changed.status_code == 400, changed.text  # LOG_LEVEL leaves secretEnv with its stored value: refused
    changed = await platform.client.patch(
        f"/fleet/bots/{bot_id}",
        json={"env": {"DISCORD_TOKEN": new_token, "LOG_LEVEL": "warn"}, "secretEnv": ["DISCORD_TOKEN"]},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["env"] == {"DISCORD_TOKEN": "***", "LOG_LEVEL": "warn"}
    assert changed.json()["containerId"] != first
    container_env = await _container_env(docker, changed.json()["containerId"])
    assert container_env["DISCORD_TOKEN"] == new_token and container_env["LOG_LEVEL"] == "warn"
    stored_env, _ = await _stored(platform, bot_id)
    assert new_token not in repr(stored_env) and stored_env["LOG_LEVEL"] == "warn"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"env": {"A": "1"}, "secretEnv": ["B"]}, "secretEnv"),
        ({"env": {"A": "1"}, "secretEnv": ["not a key"]}, "secretEnv"),
        ({"env": {"A": PREFIX + "abc:def"}}, "env"),
        ({"env": {"A": "1"}, "secretEnv": "A"}, "secretEnv"),
    ],
)
async def test_bad_secret_markings_are_refused_and_create_nothing(
    platform: Platform, docker: aiodocker.Docker, body: dict[str, Any], field: str
) -> None:
    response = await platform.client.post(
        "/fleet/bots", json={"name": "s-" + uuid.uuid4().hex[:6], "image": STUB_IMAGE, **body}
    )
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error", "details"}
    assert field in response.text
    assert (await platform.client.get("/fleet/bots")).json()["bots"] == []
    label = f"wopr.platform={platform.settings.platform_id}"
    assert await docker.containers.list(all=True, filters={"label": [label]}) == []


@pytest.mark.parametrize("value", ["wopr:enc:", "wopr:enc:v2:k:abc", "wopr:enc:anything", PREFIX + "abc:def"])
async def test_every_value_with_the_sealed_mark_is_refused_wherever_values_are_given(
    platform: Platform, docker: aiodocker.Docker, value: str
) -> None:
    """`wopr:enc:` marks a sealed value of any version: no env value, template variable or template override may
    start with it (create, PATCH, template, seed), each a 400 naming the mark, and nothing is created or changed."""
    bot = await platform.create_bot(env={"A": "1"})
    variables = {"OPENCODE_API_KEY": value}
    requests: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/fleet/bots", {"name": "s-" + uuid.uuid4().hex[:6], "image": STUB_IMAGE, "env": {"A": value}}),
        (
            "POST",
            "/fleet/bots",
            {"name": "s-" + uuid.uuid4().hex[:6], "image": STUB_IMAGE, "env": {"A": value}, "secretEnv": ["A"]},
        ),
        ("PATCH", f"/fleet/bots/{bot['id']}", {"env": {"A": value}}),
        ("PATCH", f"/fleet/bots/{bot['id']}", {"env": {"A": value}, "secretEnv": ["A"]}),
        ("POST", "/fleet/bots", {"template": "whatsapp-opencode", "image": STUB_IMAGE, "variables": variables}),
        (
            "POST",
            "/fleet/bots",
            {
                "template": "whatsapp-opencode",
                "image": STUB_IMAGE,
                "variables": {"OPENCODE_API_KEY": "k"},
                "env": {"B": value},
            },
        ),
        ("POST", "/fleet/seed", {"image": STUB_IMAGE, "variables": variables}),
    ]
    label = f"wopr.platform={platform.settings.platform_id}"
    containers = [c.id for c in await docker.containers.list(all=True, filters={"label": [label]})]
    for method, url, body in requests:
        response = await platform.client.request(method, url, json=body)
        assert response.status_code == 400, (method, url, response.text)
        assert set(response.json()) == {"error", "details"}
        assert response.json()["details"]["code"] == "validation_failed"
        assert "wopr:enc:" in response.text, response.text
    listed = (await platform.client.get("/fleet/bots")).json()["bots"]
    assert [b["id"] for b in listed] == [bot["id"]]
    assert (await platform.bot(bot["id"]))["env"] == {"A": "1"}
    assert [c.id for c in await docker.containers.list(all=True, filters={"label": [label]})] == containers


async def test_a_new_platform_secret_takes_over_with_the_previous_one_and_a_lost_key_is_a_clear_error(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    token = _token()
    platform_id = "t-" + uuid.uuid4().hex[:10]
    first = await make_platform(PLATFORM_SECRET=KEY_ONE, WOPR_PLATFORM_ID=platform_id)
    bot = await first.create_bot(env={"DISCORD_TOKEN": token}, secretEnv=["DISCORD_TOKEN"])
    sealed_one = (await _stored(first, bot["id"]))[0]["DISCORD_TOKEN"]
    await first.stop()

    # the new secret, with the old one still accepted: values move to the new key at start, the bot keeps running
    second = await make_platform(
        PLATFORM_SECRET=KEY_TWO, PLATFORM_SECRET_PREVIOUS=KEY_ONE, WOPR_PLATFORM_ID=platform_id
    )
    sealed_two = (await _stored(second, bot["id"]))[0]["DISCORD_TOKEN"]
    assert sealed_two.startswith(PREFIX) and sealed_two.split(":")[3] != sealed_one.split(":")[3]
    await second.wait_for(bot["id"], state="running", containerId=bot["containerId"])
    # the reconciler rebuilds a removed container with the secret opened by the new key
    await docker.containers.container(bot["containerId"]).delete(force=True)
    rebuilt = await _wait_for_new_container(second, bot["id"], bot["containerId"])
    assert (await _container_env(docker, rebuilt["containerId"]))["DISCORD_TOKEN"] == token
    await second.stop()

    # without the key that sealed it, the secret is a clear 503 on a change; the bot and its container stay
    third = await make_platform(PLATFORM_SECRET=KEY_ONE, WOPR_PLATFORM_ID=platform_id)
    response = await third.client.patch(f"/fleet/bots/{bot['id']}", json={"env": {"DISCORD_TOKEN": "***", "X": "1"}})
    assert response.status_code == 503, response.text
    assert response.json()["details"]["code"] == "secrets_unreadable"
    assert token not in response.text
    kept = await third.bot(bot["id"])
    assert kept["containerId"] == rebuilt["containerId"] and kept["env"] == {"DISCORD_TOKEN": "***"}
    # other bots are unaffected
    other = await third.create_bot(env={"SLACK_BOT_TOKEN": _token()}, secretEnv=["SLACK_BOT_TOKEN"])
    await third.wait_for(other["id"], state="running")


async def test_production_without_a_platform_secret_refuses_to_store_secrets(
    make_platform: PlatformFactory, docker: aiodocker.Docker, tmp_path: Path
) -> None:
    platform = await make_platform(ENV="production", PLATFORM_SECRET=None, WOPR_DATA_DIR=str(tmp_path / "data"))
    response = await platform.client.post(
        "/fleet/bots",
        json={
            "name": "with-secret",
            "image": STUB_IMAGE,
            "env": {"DISCORD_TOKEN": _token()},
            "secretEnv": ["DISCORD_TOKEN"],
        },
    )
    assert response.status_code == 503, response.text
    assert response.json()["details"]["code"] == "platform_secret_missing"
    label = f"wopr.platform={platform.settings.platform_id}"
    assert await docker.containers.list(all=True, filters={"label": [label]}) == []
    assert not (tmp_path / "data" / KEY_FILE).exists()
    plain = await platform.create_bot(env={"LOG_LEVEL": "info"})  # bots without secrets are fine
    assert plain["secretEnv"] == []


async def test_without_a_platform_secret_a_key_is_generated_in_the_data_dir_and_kept(
    make_platform: PlatformFactory, docker: aiodocker.Docker, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    platform_id = "t-" + uuid.uuid4().hex[:10]
    first = await make_platform(PLATFORM_SECRET=None, WOPR_DATA_DIR=str(data_dir), WOPR_PLATFORM_ID=platform_id)
    key_file = data_dir / KEY_FILE
    assert key_file.exists() and (os.stat(key_file).st_mode & 0o777) == 0o600
    token = _token()
    bot = await first.create_bot(env={"DISCORD_TOKEN": token}, secretEnv=["DISCORD_TOKEN"])
    assert (await _stored(first, bot["id"]))[0]["DISCORD_TOKEN"].startswith(PREFIX)
    await first.stop()

    # the next start reads the same key; setting PLATFORM_SECRET later moves the values to it
    second = await make_platform(PLATFORM_SECRET=KEY_ONE, WOPR_DATA_DIR=str(data_dir), WOPR_PLATFORM_ID=platform_id)
    await docker.containers.container(bot["containerId"]).delete(force=True)
    rebuilt = await _wait_for_new_container(second, bot["id"], bot["containerId"])
    assert (await _container_env(docker, rebuilt["containerId"]))["DISCORD_TOKEN"] == token
