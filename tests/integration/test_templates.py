"""Bots from profile templates and seeding of the standard fleet, on the real engine and database."""

from __future__ import annotations

import asyncio
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any

import aiodocker
import pytest

from tests.conftest import STUB_IMAGE, Platform, PlatformFactory, bot_container, both_backends
from wopr_platform.core.logging import JsonFormatter
from wopr_platform.templates.loader import packaged_directory

STANDARD = sorted(
    ["stable-discord", "canary-discord", "staging-discord", "slack-codex", "telegram-anthropic", "whatsapp-opencode"]
)
VARIABLES = [
    "ANTHROPIC_API_KEY",
    "DISCORD_CANARY_CLIENT_ID",
    "DISCORD_CANARY_TOKEN",
    "DISCORD_CLIENT_ID",
    "DISCORD_STAGING_CLIENT_ID",
    "DISCORD_STAGING_TOKEN",
    "DISCORD_TOKEN",
    "OPENAI_API_KEY",
    "OPENCODE_API_KEY",
    "SLACK_APP_TOKEN",
    "SLACK_BOT_TOKEN",
    "TELEGRAM_BOT_TOKEN",
]
DISCORD_PLUGINS = "@wopr-network/wopr-plugin-channel-discord,@wopr-network/wopr-plugin-provider-anthropic"


def _secrets() -> dict[str, str]:
    """A distinct, recognisable value for every variable of the standard templates."""
    return {name: f"secret-{name.lower()}-{uuid.uuid4().hex}" for name in VARIABLES}


async def _container_env(docker: aiodocker.Docker, container_id: str) -> dict[str, str]:
    info = await bot_container(docker, container_id)
    return dict(item.split("=", 1) for item in info["Config"]["Env"])


async def _containers(docker: aiodocker.Docker, platform: Platform) -> list[Any]:
    label = f"wopr.platform={platform.settings.platform_id}"
    return list(await docker.containers.list(all=True, filters={"label": [label]}))


async def _bots(platform: Platform) -> list[dict[str, Any]]:
    response = await platform.client.get("/fleet/bots")
    assert response.status_code == 200, response.text
    return list(response.json()["bots"])


def _assert_no_secret_in_logs(records: list[logging.LogRecord], secrets: dict[str, str]) -> None:
    formatter = JsonFormatter()
    assert records, "nothing was logged"
    for record in records:
        line = formatter.format(record)
        for name, value in secrets.items():
            assert value not in line, f"{name} leaked into a log line: {record.getMessage()}"


# --- the catalog ------------------------------------------------------------------------------------------


async def test_the_standard_templates_are_listed_and_shown_with_placeholders(platform: Platform) -> None:
    response = await platform.client.get("/fleet/templates")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["errors"] == []
    assert [t["name"] for t in body["templates"]] == STANDARD

    one = await platform.client.get("/fleet/templates/slack-codex")
    assert one.status_code == 200, one.text
    template = one.json()
    assert template["version"] == 1
    assert template["release"] == "canary"
    assert template["channel"] == {
        "plugin": "@wopr-network/wopr-plugin-channel-slack",
        "config": {"SLACK_BOT_TOKEN": "${SLACK_BOT_TOKEN}", "SLACK_APP_TOKEN": "${SLACK_APP_TOKEN}"},
    }
    assert template["provider"]["plugin"] == "@wopr-network/wopr-plugin-provider-openai"
    assert template["variables"] == ["OPENAI_API_KEY", "SLACK_APP_TOKEN", "SLACK_BOT_TOKEN"]
    assert template["healthCheck"] == {"endpoint": "/health", "intervalSeconds": 30, "timeoutSeconds": 5, "retries": 3}

    missing = await platform.client.get("/fleet/templates/no-such-template")
    assert missing.status_code == 404
    assert missing.json()["details"]["code"] == "template_not_found"


async def test_template_routes_need_the_operator_token(platform: Platform) -> None:
    for method, path in (
        ("GET", "/fleet/templates"),
        ("GET", "/fleet/templates/stable-discord"),
        ("POST", "/fleet/templates/reload"),
        ("POST", "/fleet/seed"),
    ):
        response = await platform.client.request(method, path, headers={"Authorization": "Bearer wrong"})
        assert response.status_code == 401, (method, path, response.text)
    assert await _bots(platform) == []


# --- one bot from a template ------------------------------------------------------------------------------


@both_backends
async def test_a_bot_from_a_template_runs_with_the_plugin_env_and_never_shows_its_secrets(
    make_platform: PlatformFactory, docker: aiodocker.Docker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = _secrets()
    secrets_file = tmp_path / "secrets.env"
    secrets_file.write_text(
        f"# platform secrets\nANTHROPIC_API_KEY={secrets['ANTHROPIC_API_KEY']}\nDISCORD_TOKEN=overridden-by-request\n"
    )
    secrets_file.chmod(0o600)
    platform = await make_platform(FLEET_TEMPLATE_SECRETS=str(secrets_file))

    response = await platform.client.post(
        "/fleet/bots",
        json={
            "template": "stable-discord",
            "image": STUB_IMAGE,
            "variables": {"DISCORD_TOKEN": secrets["DISCORD_TOKEN"], "DISCORD_CLIENT_ID": secrets["DISCORD_CLIENT_ID"]},
            "env": {"STUB_MESSAGE": "from-a-template"},
            "healthCheck": {"intervalSeconds": 5},
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["name"] == "stable-discord"
    assert created["template"] == {"name": "stable-discord", "version": 1}
    assert created["image"] == STUB_IMAGE
    assert created["releaseChannel"] == "stable"
    assert created["restartPolicy"] == "unless-stopped"
    assert created["healthCheck"] == {"endpoint": "/health", "intervalSeconds": 5, "timeoutSeconds": 5, "retries": 3}
    assert created["env"] == {
        "DISCORD_TOKEN": "***",
        "DISCORD_CLIENT_ID": "***",
        "ANTHROPIC_API_KEY": "***",
        "WOPR_PLUGINS": DISCORD_PLUGINS,
        "WOPR_CHANNEL_PLUGIN": "@wopr-network/wopr-plugin-channel-discord",
        "WOPR_PROVIDER_PLUGIN": "@wopr-network/wopr-plugin-provider-anthropic",
        "STUB_MESSAGE": "from-a-template",
    }
    status = await platform.wait_for(created["id"], state="running", health="healthy")
    assert status["env"] == created["env"]
    assert status["template"] == {"name": "stable-discord", "version": 1}

    env = await _container_env(docker, created["containerId"])
    assert env["DISCORD_TOKEN"] == secrets["DISCORD_TOKEN"]  # the request's value wins over the platform's
    assert env["DISCORD_CLIENT_ID"] == secrets["DISCORD_CLIENT_ID"]
    assert env["ANTHROPIC_API_KEY"] == secrets["ANTHROPIC_API_KEY"]  # from the secrets file
    assert env["WOPR_PLUGINS"] == DISCORD_PLUGINS
    assert env["WOPR_CHANNEL_PLUGIN"] == "@wopr-network/wopr-plugin-channel-discord"
    assert env["WOPR_PROVIDER_PLUGIN"] == "@wopr-network/wopr-plugin-provider-anthropic"
    assert env["STUB_MESSAGE"] == "from-a-template"

    # a client that reads the profile and sends its env back changes only what it meant to
    edited = {**status["env"], "STUB_MESSAGE": "edited"}
    patched = await platform.client.patch(f"/fleet/bots/{created['id']}", json={"env": edited})
    assert patched.status_code == 200, patched.text
    assert patched.json()["env"]["DISCORD_TOKEN"] == "***"
    assert patched.json()["containerId"] != created["containerId"]
    await platform.wait_for(created["id"], state="running", containerId=patched.json()["containerId"])
    env = await _container_env(docker, patched.json()["containerId"])
    assert env["DISCORD_TOKEN"] == secrets["DISCORD_TOKEN"]
    assert env["ANTHROPIC_API_KEY"] == secrets["ANTHROPIC_API_KEY"]
    assert env["STUB_MESSAGE"] == "edited"

    everything = (await platform.client.get(f"/fleet/bots/{created['id']}")).text
    everything += (await platform.client.get("/fleet/bots")).text
    everything += (await platform.client.get("/fleet/templates/stable-discord")).text
    for value in (*secrets.values(), "overridden-by-request"):
        assert value not in everything + response.text + patched.text
    _assert_no_secret_in_logs(caplog.records, secrets)


async def test_missing_variables_are_one_400_naming_every_one_and_nothing_is_created(
    platform: Platform, docker: aiodocker.Docker
) -> None:
    response = await platform.client.post(
        "/fleet/bots",
        json={"template": "slack-codex", "image": STUB_IMAGE, "variables": {"SLACK_APP_TOKEN": "xapp-1"}},
    )
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["details"]["code"] == "missing_variables"
    assert body["details"]["missing"] == ["OPENAI_API_KEY", "SLACK_BOT_TOKEN"]
    assert "OPENAI_API_KEY" in body["error"] and "SLACK_BOT_TOKEN" in body["error"]
    assert "xapp-1" not in response.text
    assert await _bots(platform) == []
    assert await _containers(docker, platform) == []


async def test_template_requests_are_validated(platform: Platform) -> None:
    cases = [
        ({"template": "no-such-template"}, 404),
        ({"template": "whatsapp-opencode", "variables": {"BAD-NAME": "x"}}, 400),
        ({"template": "whatsapp-opencode", "variables": {"OPENCODE_API_KEY": 1}}, 400),
        ({"template": "whatsapp-opencode", "unknown": 1}, 400),
        ({"template": "whatsapp-opencode", "name": "bad name"}, 400),
        ({"template": None}, 400),
        # the template's own image is not in the test allowlist: overrides pass the same checks as a profile
        ({"template": "whatsapp-opencode", "variables": {"OPENCODE_API_KEY": "k"}}, 400),
    ]
    for body, status in cases:
        response = await platform.client.post("/fleet/bots", json=body)
        assert response.status_code == status, (body, response.text)
        assert set(response.json()) == {"error", "details"}
    assert await _bots(platform) == []


# --- seeding ----------------------------------------------------------------------------------------------


async def test_seed_creates_the_standard_fleet_once_also_after_a_restart(
    make_platform: PlatformFactory, docker: aiodocker.Docker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets = _secrets()
    first = await make_platform()

    response = await first.client.post("/fleet/seed", json={"variables": secrets, "image": STUB_IMAGE})
    assert response.status_code == 200, response.text
    assert response.json() == {"created": STANDARD, "skipped": [], "failed": []}

    bots = await _bots(first)
    assert sorted(bot["name"] for bot in bots) == STANDARD
    for bot in bots:
        await first.wait_for(bot["id"], state="running")
    await first.wait_for(bots[0]["id"], health="healthy")
    assert len(await _containers(docker, first)) == 6
    detail = await first.bot(next(bot["id"] for bot in bots if bot["name"] == "slack-codex"))
    assert detail["template"] == {"name": "slack-codex", "version": 1}
    assert detail["releaseChannel"] == "canary"
    assert detail["env"]["SLACK_BOT_TOKEN"] == "***"
    env = await _container_env(docker, detail["containerId"])
    assert env["SLACK_BOT_TOKEN"] == secrets["SLACK_BOT_TOKEN"]
    assert env["WOPR_PROVIDER_PLUGIN"] == "@wopr-network/wopr-plugin-provider-openai"

    again = await first.client.post("/fleet/seed", json={"variables": secrets, "image": STUB_IMAGE})
    assert again.json() == {"created": [], "skipped": STANDARD, "failed": []}

    await first.stop()
    second = await make_platform(WOPR_PLATFORM_ID=first.settings.platform_id)
    after_restart = await second.client.post("/fleet/seed", json={"variables": secrets, "image": STUB_IMAGE})
    assert after_restart.json() == {"created": [], "skipped": STANDARD, "failed": []}
    assert sorted(bot["id"] for bot in await _bots(second)) == sorted(bot["id"] for bot in bots)
    assert len(await _containers(docker, second)) == 6

    # a seeded bot the operator removed stays removed
    removed = next(bot for bot in bots if bot["name"] == "telegram-anthropic")
    assert (await second.client.delete(f"/fleet/bots/{removed['id']}")).status_code == 204
    once_more = await second.client.post("/fleet/seed", json={"variables": secrets, "image": STUB_IMAGE})
    assert once_more.json() == {"created": [], "skipped": STANDARD, "failed": []}
    assert len(await _bots(second)) == 5
    for value in secrets.values():
        assert value not in response.text + again.text + (await second.client.get("/fleet/bots")).text
    _assert_no_secret_in_logs(caplog.records, secrets)


async def test_seed_lists_templates_with_missing_variables_and_never_half_creates(
    platform: Platform, docker: aiodocker.Docker
) -> None:
    response = await platform.client.post(
        "/fleet/seed", json={"variables": {"OPENCODE_API_KEY": "k"}, "image": STUB_IMAGE}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["created"] == ["whatsapp-opencode"]
    assert body["skipped"] == []
    failed = {f["template"]: f for f in body["failed"]}
    assert sorted(failed) == [name for name in STANDARD if name != "whatsapp-opencode"]
    assert failed["slack-codex"]["code"] == "missing_variables"
    assert failed["slack-codex"]["missing"] == ["OPENAI_API_KEY", "SLACK_APP_TOKEN", "SLACK_BOT_TOKEN"]
    assert failed["canary-discord"]["missing"] == [
        "ANTHROPIC_API_KEY",
        "DISCORD_CANARY_CLIENT_ID",
        "DISCORD_CANARY_TOKEN",
    ]
    assert [bot["name"] for bot in await _bots(platform)] == ["whatsapp-opencode"]
    assert len(await _containers(docker, platform)) == 1

    # nothing at all, and the seed's body is optional
    empty = await platform.client.post("/fleet/seed")
    assert empty.status_code == 200, empty.text
    assert empty.json()["skipped"] == ["whatsapp-opencode"]
    assert len(empty.json()["failed"]) == 5

    # the rest, once the values are there; a name already taken by a hand-made bot is a failure, not a skip
    await platform.create_bot(name="telegram-anthropic")
    rest = await platform.client.post("/fleet/seed", json={"variables": _secrets(), "image": STUB_IMAGE})
    assert rest.json()["created"] == ["canary-discord", "slack-codex", "stable-discord", "staging-discord"]
    assert rest.json()["skipped"] == ["whatsapp-opencode"]
    assert [(f["template"], f["code"]) for f in rest.json()["failed"]] == [("telegram-anthropic", "conflict")]


async def test_seed_of_a_subset_and_of_unknown_templates(platform: Platform) -> None:
    secrets = _secrets()
    unknown = await platform.client.post("/fleet/seed", json={"templates": ["stable-discord", "nope"]})
    assert unknown.status_code == 404
    assert unknown.json()["details"]["unknown"] == ["nope"]
    assert await _bots(platform) == []

    subset = await platform.client.post(
        "/fleet/seed", json={"templates": ["telegram-anthropic"], "variables": secrets, "image": STUB_IMAGE}
    )
    assert subset.json() == {"created": ["telegram-anthropic"], "skipped": [], "failed": []}
    # a bot made from a template (not by seeding) counts as that template's bot
    made = await platform.client.post(
        "/fleet/bots", json={"template": "whatsapp-opencode", "variables": secrets, "image": STUB_IMAGE}
    )
    assert made.status_code == 201, made.text
    whole = await platform.client.post("/fleet/seed", json={"variables": secrets, "image": STUB_IMAGE})
    assert whole.json()["skipped"] == ["telegram-anthropic", "whatsapp-opencode"]
    assert len(whole.json()["created"]) == 4


async def test_concurrent_seeds_create_each_bot_exactly_once(platform: Platform, docker: aiodocker.Docker) -> None:
    secrets = _secrets()
    responses = await asyncio.gather(
        *(platform.client.post("/fleet/seed", json={"variables": secrets, "image": STUB_IMAGE}) for _ in range(3))
    )
    created: list[str] = []
    for response in responses:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["failed"] == []
        assert sorted(body["created"] + body["skipped"]) == STANDARD
        created += body["created"]
    assert sorted(created) == STANDARD
    assert sorted(bot["name"] for bot in await _bots(platform)) == STANDARD
    assert len(await _containers(docker, platform)) == 6


# --- the templates folder ---------------------------------------------------------------------------------


async def test_a_broken_template_is_reported_and_a_reload_picks_up_changes(
    make_platform: PlatformFactory, tmp_path: Path
) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    shutil.copy(packaged_directory() / "whatsapp-opencode.yaml", folder)
    (folder / "broken.yaml").write_text(
        (packaged_directory() / "stable-discord.yaml").read_text().replace("retries: 3", "retries: three")
    )
    platform = await make_platform(FLEET_TEMPLATES_DIR=str(folder))

    listed = (await platform.client.get("/fleet/templates")).json()
    assert [t["name"] for t in listed["templates"]] == ["whatsapp-opencode"]
    assert listed["errors"] == [
        {"file": "broken.yaml", "field": "healthCheck.retries", "reason": "Input should be a valid integer"}
    ]
    made = await platform.client.post(
        "/fleet/bots",
        json={"template": "whatsapp-opencode", "variables": {"OPENCODE_API_KEY": "k"}, "image": STUB_IMAGE},
    )
    assert made.status_code == 201, made.text
    await platform.wait_for(made.json()["id"], state="running")

    shutil.copy(packaged_directory() / "telegram-anthropic.yaml", folder)
    reloaded = await platform.client.post("/fleet/templates/reload")
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["loaded"] == ["telegram-anthropic", "whatsapp-opencode"]
    assert [e["file"] for e in reloaded.json()["errors"]] == ["broken.yaml"]
    assert (await platform.client.get("/fleet/templates/telegram-anthropic")).status_code == 200

    (folder / "broken.yaml").unlink()
    (folder / "whatsapp-opencode.yaml").unlink()
    reloaded = await platform.client.post("/fleet/templates/reload")
    assert reloaded.json() == {"loaded": ["telegram-anthropic"], "errors": []}
    assert (await platform.client.get("/fleet/templates/whatsapp-opencode")).status_code == 404
    # the bot made from a template that is gone keeps running and keeps its origin
    assert (await platform.bot(made.json()["id"]))["template"] == {"name": "whatsapp-opencode", "version": 1}


async def test_a_missing_templates_folder_does_not_stop_the_platform(
    make_platform: PlatformFactory, tmp_path: Path
) -> None:
    platform = await make_platform(FLEET_TEMPLATES_DIR=str(tmp_path / "nowhere"))
    listed = (await platform.client.get("/fleet/templates")).json()
    assert listed["templates"] == []
    assert listed["errors"][0]["reason"] == "templates directory does not exist"
    seeded = await platform.client.post("/fleet/seed")
    assert seeded.json() == {"created": [], "skipped": [], "failed": []}
