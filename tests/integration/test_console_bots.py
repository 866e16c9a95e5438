"""The console's bot pages against a real platform and Docker engine, driven as a browser without scripts would
(an HTTP client keeping the cookies, posting the pages' forms): a bot made from a template, its page, its actions,
its environment with secrets kept and never shown, its logs; and what an attacker would try on them."""

from __future__ import annotations

import asyncio
import html
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiodocker
import pytest

from tests.conftest import BOOT_LINE, STUB_IMAGE, Platform, PlatformFactory, bot_container
from tests.integration.accounts_support import sign_up
from tests.integration.console_support import Console, new_console_user
from tests.integration.engine_support import run_in

pytestmark = pytest.mark.slow

TEMPLATE = "stable-discord"


@pytest.fixture
async def platform(make_platform: PlatformFactory) -> Platform:
    """A platform without the API's rate limit (every caller here has one address), whose platform admin exists
    already, so the people the tests sign in are ordinary users, each in a tenant of their own."""
    platform = await make_platform(FLEET_RATE_LIMIT=0)
    await sign_up(platform, "root")
    return platform


@pytest.fixture
async def consoles(platform: Platform) -> AsyncIterator[list[Console]]:
    opened: list[Console] = []
    yield opened
    for console in opened:
        await console.close()


async def signed_in(platform: Platform, consoles: list[Console], who: str) -> tuple[Console, str]:
    """A new user signed in through the console's own sign-in form (closed after the test), and their tenant."""
    console = await new_console_user(platform, who)
    consoles.append(console)
    return console, await console.own_tenant()


def secrets() -> dict[str, str]:
    return {
        name: f"{name.lower()}-{uuid.uuid4().hex}"
        for name in ("DISCORD_TOKEN", "DISCORD_CLIENT_ID", "ANTHROPIC_API_KEY")
    }


async def bot_of(platform: Platform, tenant: str, bot_id: str) -> dict[str, Any]:
    """The bot as the API says (the operator acting for the tenant)."""
    response = await platform.client.get(f"/fleet/bots/{bot_id}", headers={"X-Tenant-Id": tenant})
    assert response.status_code == 200, response.text
    return dict(response.json())


async def bots_of(platform: Platform, tenant: str) -> list[dict[str, Any]]:
    response = await platform.client.get("/fleet/bots", headers={"X-Tenant-Id": tenant})
    assert response.status_code == 200, response.text
    return list(response.json()["bots"])


async def settled(platform: Platform, tenant: str, bot_id: str, timeout: float = 20, **expected: Any) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        bot = await bot_of(platform, tenant, bot_id)
        if all(bot.get(key) == value for key, value in expected.items()):
            return bot
        assert time.monotonic() < deadline, f"bot never reached {expected}: {bot}"
        await asyncio.sleep(0.1)


async def made_from_template(console: Console, values: dict[str, str], name: str | None = None) -> str:
    """A bot made through the console's form from the template (on the stub image); its id."""
    fields = {"template": TEMPLATE, "name": name or "bot-" + uuid.uuid4().hex[:6], "image": STUB_IMAGE}
    fields |= {f"var.{key}": value for key, value in values.items()}
    shown = await console.act("/ui/bots", fields)
    found = re.fullmatch(r"/ui/bots/([0-9a-f-]{36})", shown.url.path)
    assert found is not None, shown.url
    assert f"Bot {fields['name']} created from {TEMPLATE}." in shown.text
    return found.group(1)


def assert_hidden(text: str, values: dict[str, str]) -> None:
    for name, value in values.items():
        assert value not in text, f"the value of {name} is shown"


async def logs_with(console: Console, bot_id: str, line: str, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        part = await console.page(f"/ui/bots/{bot_id}/logs")
        if line in html.unescape(part):
            return part
        assert time.monotonic() < deadline, f"the logs part never showed {line!r}: {part}"
        await asyncio.sleep(0.2)


# --- the tests ---------------------------------------------------------------------------------------------------


async def test_a_bot_from_a_template_is_made_in_the_console_and_its_page_never_shows_a_secret(
    platform: Platform, consoles: list[Console]
) -> None:
    console, tenant = await signed_in(platform, consoles, "maker")
    values = secrets()

    listed = await console.page("/ui/templates")
    assert f'href="/ui/templates/{TEMPLATE}"' in listed
    one = await console.page(f"/ui/templates/{TEMPLATE}")
    assert "DISCORD_TOKEN" in one and "${DISCORD_TOKEN}" in html.unescape(one)
    assert f'href="/ui/bots/new?template={TEMPLATE}"' in one
    form = await console.page(f"/ui/bots/new?template={TEMPLATE}")
    for name in values:
        assert f'name="var.{name}" type="password"' in form

    # refused: a name the API does not take, an image outside the allowlist; the API's reason, and nothing made
    base = {"template": TEMPLATE, "image": STUB_IMAGE} | {f"var.{k}": v for k, v in values.items()}
    bad_name = await console.post("/ui/bots", base | {"name": "not a name!"})
    assert bad_name.status_code == 400
    assert "name must be 1-63 letters" in html.unescape(bad_name.text)
    assert_hidden(bad_name.text, values)
    foreign = await console.post("/ui/bots", base | {"name": "foreign", "image": "docker.io/library/busybox:latest"})
    assert foreign.status_code == 400
    assert "image is not in the allowlist (image)" in foreign.text
    assert await bots_of(platform, tenant) == []

    bot_id = await made_from_template(console, values, name="from-console")
    bot = await settled(platform, tenant, bot_id, state="running")
    assert bot["template"] == {"name": TEMPLATE, "version": 1}
    assert set(values) <= set(bot["secretEnv"])

    shown = await console.page(f"/ui/bots/{bot_id}")
    assert "<h1>from-console</h1>" in shown
    assert STUB_IMAGE in shown
    assert f'data-events="/fleet/events?botId={bot_id}"' in shown
    assert f'data-refresh="/ui/bots/{bot_id}/status"' in shown
    assert shown.count("secret (hidden)") == len(bot["secretEnv"])
    assert f'hx-get="/ui/bots/{bot_id}/logs" hx-trigger="every 2s"' in shown
    status = await console.page(f"/ui/bots/{bot_id}/status")
    assert 'class="st running"' in status
    part = await logs_with(console, bot_id, BOOT_LINE)
    assert part.startswith('<pre class="logs"')
    for text in (shown, status, part, await console.page("/ui/bots")):
        assert_hidden(text, values)


async def test_start_stop_restart_and_delete_act_on_the_bot(platform: Platform, consoles: list[Console]) -> None:
    console, tenant = await signed_in(platform, consoles, "power")
    bot_id = await made_from_template(console, secrets())
    page = f"/ui/bots/{bot_id}"
    await settled(platform, tenant, bot_id, state="running")

    stopping = await console.act(f"{page}/stop")
    assert stopping.url.path == page and "Bot stopped." in stopping.text
    stopped = await bot_of(platform, tenant, bot_id)
    assert stopped["desiredState"] == "stopped" and stopped["state"] != "running"
    assert "(wanted" not in await console.page(f"{page}/status")

    shown = (await console.act(f"{page}/start")).text
    assert "Bot started." in shown
    started = await settled(platform, tenant, bot_id, state="running")
    assert started["desiredState"] == "running"

    shown = (await console.act(f"{page}/restart")).text
    assert "Bot restarted." in shown
    restarted = await settled(platform, tenant, bot_id, state="running")
    assert restarted["startedAt"] != started["startedAt"]

    deleted = await console.act(f"{page}/delete")
    assert deleted.url.path == "/ui/bots" and "Bot deleted" in deleted.text
    assert await bots_of(platform, tenant) == []
    await console.page(page, status=404)


async def test_a_changed_environment_keeps_the_secrets_not_given_and_never_shows_one(
    platform: Platform, consoles: list[Console], docker: aiodocker.Docker
) -> None:
    console, tenant = await signed_in(platform, consoles, "env")
    values = secrets()
    bot_id = await made_from_template(console, values)
    before = await settled(platform, tenant, bot_id, state="running")
    plain = "\n".join(f"{k}={v}" for k, v in before["env"].items() if k not in before["secretEnv"])
    page = f"/ui/bots/{bot_id}"

    # an image outside the allowlist is refused with the API's reason, and nothing changes
    shown = (await console.act(f"{page}/settings", {"image": "docker.io/library/busybox:latest", "env": plain})).text
    assert '<p class="flash error">image is not in the allowlist (image)</p>' in shown
    assert (await bot_of(platform, tenant, bot_id))["image"] == STUB_IMAGE

    new_client_id = "client-" + uuid.uuid4().hex
    extra = "extra-" + uuid.uuid4().hex
    changed = await console.act(
        f"{page}/settings",
        {
            "image": STUB_IMAGE,
            "env": plain + "\nGREETING=hello there",
            "secret.DISCORD_CLIENT_ID": new_client_id,
            "secret.DISCORD_TOKEN": "",
            "secret.ANTHROPIC_API_KEY": "",
            "secrets": f"EXTRA_TOKEN={extra}",
        },
    )
    shown = changed.text
    assert "environment changed" in shown
    after = await settled(platform, tenant, bot_id, state="running")
    assert after["env"]["GREETING"] == "hello there"
    assert set(after["secretEnv"]) == set(values) | {"EXTRA_TOKEN"}
    env = dict(item.split("=", 1) for item in (await bot_container(docker, after["containerId"]))["Config"]["Env"])
    assert env["DISCORD_TOKEN"] == values["DISCORD_TOKEN"]  # not given again: kept
    assert env["DISCORD_CLIENT_ID"] == new_client_id
    assert env["EXTRA_TOKEN"] == extra
    assert env["GREETING"] == "hello there"

    # the form posted as the page fills it, with a secret key dropped: that key goes, nothing else changes
    lines = re.search(r'<textarea id="b-env" name="env"[^>]*>(.*?)</textarea>', shown, re.S)
    assert lines is not None and "GREETING=hello there" in lines.group(1)
    as_shown = {"image": STUB_IMAGE, "env": html.unescape(lines.group(1))}
    shown = (await console.act(f"{page}/settings", as_shown | {"drop.EXTRA_TOKEN": "1"})).text
    dropped = await bot_of(platform, tenant, bot_id)
    assert "EXTRA_TOKEN" not in dropped["env"] and "EXTRA_TOKEN" not in dropped["secretEnv"]
    assert {k: v for k, v in dropped["env"].items() if k != "EXTRA_TOKEN"} == {
        k: v for k, v in after["env"].items() if k != "EXTRA_TOKEN"
    }
    unchanged = (await console.act(f"{page}/settings", as_shown)).text
    assert "Nothing to change." in unchanged

    everything = {**values, "DISCORD_CLIENT_ID (new)": new_client_id, "EXTRA_TOKEN": extra}
    for text in (shown, unchanged, await console.page(page), await console.page(f"{page}/status")):
        assert_hidden(text, everything)


async def test_another_tenants_bot_and_forged_posts_change_nothing(platform: Platform, consoles: list[Console]) -> None:
    owner, tenant = await signed_in(platform, consoles, "owner")
    other, _ = await signed_in(platform, consoles, "other")
    bot_id = await made_from_template(owner, secrets())
    await settled(platform, tenant, bot_id, state="running")
    page = f"/ui/bots/{bot_id}"
    await logs_with(owner, bot_id, BOOT_LINE)

    # another tenant: a 404 page, no logs, and its posts are refused
    await other.page(page, status=404)
    assert BOOT_LINE not in await other.page(f"{page}/logs")
    for verb in ("stop", "delete"):
        refused = await other.act(f"{page}/{verb}", status=404)
        assert refused.url.path == page and 'class="flash error"' in refused.text
    refused = await other.post(f"{page}/settings", {"image": STUB_IMAGE, "env": "A=1"})
    assert refused.status_code == 303

    # the owner's own page, posted without the form's CSRF field or from another site
    no_csrf = await owner.post(f"{page}/stop", {}, csrf=False)
    assert no_csrf.status_code == 303
    assert "X-CSRF-Token" in await owner.page(no_csrf.headers["location"])
    foreign = await owner.post(f"{page}/delete", {}, origin="https://evil.example")
    assert foreign.status_code == 403

    bot = await bot_of(platform, tenant, bot_id)
    assert bot["state"] == "running" and bot["desiredState"] == "running"
    assert "A" not in bot["env"]


async def test_backups_are_taken_and_restored_and_the_image_updated_from_the_bots_page(
    platform: Platform, consoles: list[Console], docker: aiodocker.Docker
) -> None:
    console, tenant = await signed_in(platform, consoles, "backups")
    bot_id = await made_from_template(console, secrets())
    bot = await settled(platform, tenant, bot_id, state="running")
    page = f"/ui/bots/{bot_id}"
    await run_in(docker, bot["containerId"], "echo before > /data/note")

    shown = await console.page(page)
    assert "No backup of this bot yet." in shown
    assert 'hx-indicator="#backup-busy"' in shown and 'id="backup-busy" class="busy"' in shown
    shown = (await console.act(f"{page}/backups")).text
    listed = await platform.client.get("/backups", params={"botId": bot_id}, headers={"X-Tenant-Id": tenant})
    backups = listed.json()["backups"]
    assert [b["state"] for b in backups] == ["ready"]
    made = backups[0]["id"]
    assert f"Backup {made} made" in shown
    assert f'action="{page}/backups/{made}/restore"' in shown

    await run_in(docker, bot["containerId"], "echo after > /data/note")
    shown = (await console.act(f"{page}/backups/{made}/restore")).text
    assert f"Backup {made} restored." in shown
    restored = await settled(platform, tenant, bot_id, state="running")
    assert (await run_in(docker, restored["containerId"], "cat /data/note")).strip() == "before"

    # the image part, and "update now": a locally built image has no registry digest to update from (the API says so)
    assert 'aria-label="Image updates"' in shown and "No update yet." in shown
    shown = (await console.act(f"{page}/update")).text
    assert '<p class="flash error">this bot runs a locally built image with no registry digest' in shown
