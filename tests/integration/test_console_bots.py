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
from dataclasses import dataclass
from typing import Any

import aiodocker
import httpx
import pytest

from tests.conftest import STUB_IMAGE, Platform, PlatformFactory, bot_container
from tests.integration.accounts_support import PASSWORD, sign_up
from tests.integration.test_backups import run_in
from tests.integration.test_client_cli import BOOT_LINE

pytestmark = pytest.mark.slow

TEMPLATE = "stable-discord"
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


@dataclass
class Console:
    """A signed-in person's browser on the console: its cookies, and the CSRF token its pages carry."""

    client: httpx.AsyncClient
    csrf: str
    tenant: str

    async def page(self, path: str, status: int = 200) -> str:
        response = await self.client.get(path)
        assert response.status_code == status, (path, response.status_code, response.text[-2000:])
        return response.text

    async def post(self, path: str, fields: dict[str, str], *, csrf: bool = True, **headers: str) -> httpx.Response:
        data = {"csrf": self.csrf, **fields} if csrf else fields
        return await self.client.post(path, data=data, headers=headers)

    async def act(self, path: str, fields: dict[str, str] | None = None, status: int = 200) -> tuple[str, str]:
        """Post a form as its page does and follow the answer's redirect: (where it went, what that page says)."""
        response = await self.post(path, fields or {})
        assert response.status_code == 303, (path, response.status_code, response.text[-2000:])
        target = response.headers["location"]
        return target, await self.page(target, status)


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
        await console.client.aclose()


async def signed_in(platform: Platform, consoles: list[Console], who: str) -> Console:
    """A new user, signed in through the console's own sign-in form."""
    address = await sign_up(platform, who)
    client = httpx.AsyncClient(base_url=platform.url, trust_env=False, timeout=60)
    response = await client.post("/ui/login", data={"email": address, "password": PASSWORD, "next": "/ui/bots"})
    assert response.status_code == 303, response.text
    me = (await client.get("/auth/me")).json()
    page = (await client.get("/ui/bots")).text
    found = CSRF_RE.search(page)
    assert found is not None, page
    console = Console(client, found.group(1), me["tenants"][0]["tenantId"])
    consoles.append(console)
    return console


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
    target, shown = await console.act("/ui/bots", fields)
    found = re.fullmatch(r"/ui/bots/([0-9a-f-]{36})", target)
    assert found is not None, target
    assert f"Bot {fields['name']} created from {TEMPLATE}." in shown
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
    console = await signed_in(platform, consoles, "maker")
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
    assert await bots_of(platform, console.tenant) == []

    bot_id = await made_from_template(console, values, name="from-console")
    bot = await settled(platform, console.tenant, bot_id, state="running")
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
    console = await signed_in(platform, consoles, "power")
    bot_id = await made_from_template(console, secrets())
    page = f"/ui/bots/{bot_id}"
    await settled(platform, console.tenant, bot_id, state="running")

    target, shown = await console.act(f"{page}/stop")
    assert target == page and "Bot stopped." in shown
    stopped = await bot_of(platform, console.tenant, bot_id)
    assert stopped["desiredState"] == "stopped" and stopped["state"] != "running"
    assert "(wanted" not in await console.page(f"{page}/status")

    _, shown = await console.act(f"{page}/start")
    assert "Bot started." in shown
    started = await settled(platform, console.tenant, bot_id, state="running")
    assert started["desiredState"] == "running"

    _, shown = await console.act(f"{page}/restart")
    assert "Bot restarted." in shown
    restarted = await settled(platform, console.tenant, bot_id, state="running")
    assert restarted["startedAt"] != started["startedAt"]

    target, shown = await console.act(f"{page}/delete")
    assert target == "/ui/bots" and "Bot deleted" in shown
    assert await bots_of(platform, console.tenant) == []
    await console.page(page, status=404)


async def test_a_changed_environment_keeps_the_secrets_not_given_and_never_shows_one(
    platform: Platform, consoles: list[Console], docker: aiodocker.Docker
) -> None:
    console = await signed_in(platform, consoles, "env")
    values = secrets()
    bot_id = await made_from_template(console, values)
    before = await settled(platform, console.tenant, bot_id, state="running")
    plain = "\n".join(f"{k}={v}" for k, v in before["env"].items() if k not in before["secretEnv"])
    page = f"/ui/bots/{bot_id}"

    # an image outside the allowlist is refused with the API's reason, and nothing changes
    _, shown = await console.act(f"{page}/settings", {"image": "docker.io/library/busybox:latest", "env": plain})
    assert '<p class="flash error">image is not in the allowlist (image)</p>' in shown
    assert (await bot_of(platform, console.tenant, bot_id))["image"] == STUB_IMAGE

    new_client_id = "client-" + uuid.uuid4().hex
    extra = "extra-" + uuid.uuid4().hex
    _, shown = await console.act(
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
    assert "environment changed" in shown
    after = await settled(platform, console.tenant, bot_id, state="running")
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
    _, shown = await console.act(f"{page}/settings", as_shown | {"drop.EXTRA_TOKEN": "1"})
    dropped = await bot_of(platform, console.tenant, bot_id)
    assert "EXTRA_TOKEN" not in dropped["env"] and "EXTRA_TOKEN" not in dropped["secretEnv"]
    assert {k: v for k, v in dropped["env"].items() if k != "EXTRA_TOKEN"} == {
        k: v for k, v in after["env"].items() if k != "EXTRA_TOKEN"
    }
    _, unchanged = await console.act(f"{page}/settings", as_shown)
    assert "Nothing to change." in unchanged

    everything = {**values, "DISCORD_CLIENT_ID (new)": new_client_id, "EXTRA_TOKEN": extra}
    for text in (shown, unchanged, await console.page(page), await console.page(f"{page}/status")):
        assert_hidden(text, everything)


async def test_another_tenants_bot_and_forged_posts_change_nothing(platform: Platform, consoles: list[Console]) -> None:
    owner = await signed_in(platform, consoles, "owner")
    other = await signed_in(platform, consoles, "other")
    bot_id = await made_from_template(owner, secrets())
    await settled(platform, owner.tenant, bot_id, state="running")
    page = f"/ui/bots/{bot_id}"
    await logs_with(owner, bot_id, BOOT_LINE)

    # another tenant: a 404 page, no logs, and its posts are refused
    await other.page(page, status=404)
    assert BOOT_LINE not in await other.page(f"{page}/logs")
    for verb in ("stop", "delete"):
        target, shown = await other.act(f"{page}/{verb}", status=404)
        assert target == page and 'class="flash error"' in shown
    refused = await other.post(f"{page}/settings", {"image": STUB_IMAGE, "env": "A=1"})
    assert refused.status_code == 303

    # the owner's own page, posted without the form's CSRF field or from another site
    no_csrf = await owner.post(f"{page}/stop", {}, csrf=False)
    assert no_csrf.status_code == 303
    assert "X-CSRF-Token" in await owner.page(no_csrf.headers["location"])
    foreign = await owner.post(f"{page}/delete", {}, origin="https://evil.example")
    assert foreign.status_code == 403

    bot = await bot_of(platform, owner.tenant, bot_id)
    assert bot["state"] == "running" and bot["desiredState"] == "running"
    assert "A" not in bot["env"]


async def test_backups_are_taken_and_restored_and_the_image_updated_from_the_bots_page(
    platform: Platform, consoles: list[Console], docker: aiodocker.Docker
) -> None:
    console = await signed_in(platform, consoles, "backups")
    bot_id = await made_from_template(console, secrets())
    bot = await settled(platform, console.tenant, bot_id, state="running")
    page = f"/ui/bots/{bot_id}"
    await run_in(docker, bot["containerId"], "echo before > /data/note")

    shown = await console.page(page)
    assert "No backup of this bot yet." in shown
    assert 'hx-indicator="#backup-busy"' in shown and 'id="backup-busy" class="busy"' in shown
    _, shown = await console.act(f"{page}/backups")
    backups = (
        await platform.client.get("/backups", params={"botId": bot_id}, headers={"X-Tenant-Id": console.tenant})
    ).json()["backups"]
    assert [b["state"] for b in backups] == ["ready"]
    made = backups[0]["id"]
    assert f"Backup {made} made" in shown
    assert f'action="{page}/backups/{made}/restore"' in shown

    await run_in(docker, bot["containerId"], "echo after > /data/note")
    _, shown = await console.act(f"{page}/backups/{made}/restore")
    assert f"Backup {made} restored." in shown
    restored = await settled(platform, console.tenant, bot_id, state="running")
    assert (await run_in(docker, restored["containerId"], "cat /data/note")).strip() == "before"

    # the image part, and "update now": a locally built image has no registry digest to update from (the API says so)
    assert 'aria-label="Image updates"' in shown and "No update yet." in shown
    _, shown = await console.act(f"{page}/update")
    assert '<p class="flash error">this bot runs a locally built image with no registry digest' in shown
