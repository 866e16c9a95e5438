"""The `wopr` command line against a real running platform: run as its own process (the platform serves from this
test's event loop), with a config directory of its own and no WOPR_* variables but those a test gives."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import BOOT_LINE, STUB_IMAGE, TOKEN, Platform, PlatformFactory
from tests.fakes.stripe_checkout import FakeStripeCheckout
from tests.fixtures.stripe import SECRET_KEY
from tests.integration.accounts_support import PASSWORD, new_key, new_user, sign_up
from tests.ports import free_port

pytestmark = pytest.mark.slow

WOPR = str(Path(sys.executable).parent / "wopr")
DOLLAR = 1_000_000


@dataclass
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@dataclass
class Cli:
    """`wopr` with its own XDG_CONFIG_HOME."""

    home: Path

    def env(self, **extra: str) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("WOPR_")}
        return inherited | {"XDG_CONFIG_HOME": str(self.home)} | extra

    async def __call__(self, *args: str, **extra: str) -> Ran:
        process = await asyncio.create_subprocess_exec(
            WOPR,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env(**extra),
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=300)
        assert process.returncode is not None
        ran = Ran(process.returncode, out.decode(), err.decode())
        assert "Traceback" not in ran.err, ran.err
        return ran

    @property
    def stored(self) -> Path:
        return self.home / "wopr" / "config.json"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(home=tmp_path / "config")


def _one_error_line(ran: Ran) -> str:
    lines = ran.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("wopr: "), ran.err
    return lines[0]


async def _logged_in(cli: Cli, platform: Platform, key: str = TOKEN, *more: str) -> None:
    ran = await cli("login", "--url", platform.url, "--key", key, *more)
    assert ran.code == 0, ran.err


async def _accounts(make_platform: PlatformFactory) -> Platform:
    """A platform without the API's rate limit (every caller here has one address), whose platform admin exists
    already, so the users a test makes are ordinary ones."""
    platform = await make_platform(FLEET_RATE_LIMIT=0)
    await sign_up(platform, "root")
    return platform


# --- logging in -------------------------------------------------------------------------------------------------


async def test_login_with_a_key_keeps_it_private_and_a_refused_key_keeps_nothing(cli: Cli, platform: Platform) -> None:
    refused = await cli("login", "--url", platform.url, "--key", "not-the-token")
    assert refused.code == 3
    assert "refused the key" in _one_error_line(refused)
    assert not cli.stored.exists()

    await _logged_in(cli, platform)
    assert stat.S_IMODE(cli.stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(cli.stored.parent.stat().st_mode) == 0o700
    assert json.loads(cli.stored.read_text()) == {"url": platform.url, "key": TOKEN}
    listed = await cli("bots", "ls", "--output", "json")
    assert listed.code == 0, listed.err
    assert listed.json() == {"bots": []}

    out = await cli("logout")
    assert out.code == 0, out.err
    assert not cli.stored.exists()
    after = await cli("bots", "ls")
    assert after.code == 3
    assert "not logged in" in _one_error_line(after)


async def test_login_with_email_and_password_makes_a_key_for_the_cli(cli: Cli, make_platform: PlatformFactory) -> None:
    platform = await _accounts(make_platform)
    address = await sign_up(platform, "cli", tenant="acme")

    wrong = await cli("login", "--url", platform.url, "--email", address, WOPR_PASSWORD="not the password")
    assert wrong.code == 3
    assert "wrong email or password" in _one_error_line(wrong)
    assert not cli.stored.exists()

    ran = await cli("login", "--url", platform.url, "--email", address, WOPR_PASSWORD=PASSWORD)
    assert ran.code == 0, ran.err
    stored = json.loads(cli.stored.read_text())
    assert stored["url"] == platform.url and stored["key"].startswith("wopr_")
    assert stat.S_IMODE(cli.stored.stat().st_mode) == 0o600
    keys = (await cli("keys", "ls", "-o", "json")).json()["keys"]
    assert len(keys) == 1
    assert keys[0]["name"].startswith("wopr command line on ")
    assert stored["key"].startswith(keys[0]["prefix"] + "_")
    assert sorted(keys[0]["scopes"]) == ["admin", "deploy", "read", "read:secrets", "write"]
    balance = await cli("billing", "balance", "-o", "json")
    assert balance.json()["tenantId"] == "acme"


# --- bots -------------------------------------------------------------------------------------------------------


async def test_a_bot_is_created_listed_stopped_started_restarted_read_and_removed(cli: Cli, platform: Platform) -> None:
    await _logged_in(cli, platform)
    name = "cli-" + uuid.uuid4().hex[:8]
    created = await cli("bots", "create", "--name", name, "--image", STUB_IMAGE, "--env", "GREETING=a=b", "-o", "json")
    assert created.code == 0, created.err
    bot = created.json()
    assert bot["name"] == name and bot["env"]["GREETING"] == "a=b"
    await platform.wait_for(bot["id"], state="running")

    listed = await cli("bots", "ls", "--output", "json")
    assert [b["id"] for b in listed.json()["bots"]] == [bot["id"]]
    table = await cli("bots", "ls")
    assert table.code == 0 and bot["id"] in table.out and name in table.out and "running" in table.out
    shown = await cli("bots", "get", bot["id"])
    assert shown.code == 0 and name in shown.out and "GREETING=a=b" in shown.out

    stopped = await cli("bots", "stop", bot["id"])
    assert stopped.code == 0, stopped.err
    assert stopped.out.strip() == f"Stopped bot {bot['id']}"
    assert (await platform.bot(bot["id"]))["desiredState"] == "stopped"
    exited = (await cli("bots", "ls", "--state", "exited", "--name-prefix", name[:6], "-o", "json")).json()
    assert [b["id"] for b in exited["bots"]] == [bot["id"]] and exited["counts"] == {"exited": 1}
    assert (await cli("bots", "ls", "--state", "running", "-o", "json")).json()["bots"] == []
    started = await cli("bots", "start", bot["id"], "-o", "json")
    assert started.code == 0 and started.json() == {"ok": True}
    await platform.wait_for(bot["id"], state="running")
    restarted = await cli("bots", "restart", bot["id"])
    assert restarted.code == 0, restarted.err
    await platform.wait_for(bot["id"], state="running")

    deadline = time.monotonic() + 20
    while f"{BOOT_LINE}3" not in (logs := await cli("bots", "logs", bot["id"], "--tail", "50")).out:
        assert time.monotonic() < deadline, logs.out
        await asyncio.sleep(0.2)
    assert logs.code == 0 and f"{BOOT_LINE}1" in logs.out

    refused = await cli("bots", "rm", bot["id"])  # no terminal to ask on, and no --yes
    assert refused.code == 2
    assert (await platform.client.get(f"/fleet/bots/{bot['id']}")).status_code == 200
    removed = await cli("bots", "rm", bot["id"], "--yes")
    assert removed.code == 0, removed.err
    assert (await platform.client.get(f"/fleet/bots/{bot['id']}")).status_code == 404
    assert (await cli("bots", "get", bot["id"])).code == 4


async def test_logs_follow_prints_new_lines_as_they_come_and_each_once(cli: Cli, platform: Platform) -> None:
    await _logged_in(cli, platform)
    bot = await platform.create_bot()
    await platform.wait_for(bot["id"], state="running")
    process = await asyncio.create_subprocess_exec(
        WOPR,
        "bots",
        "logs",
        bot["id"],
        "-f",
        "--interval",
        "0.2",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli.env(),
    )
    stdout = process.stdout
    assert stdout is not None
    printed: list[str] = []

    async def read_until(text: str) -> None:
        while not any(text in line for line in printed):
            line = await asyncio.wait_for(stdout.readline(), timeout=30)
            assert line, printed  # the command ended early: its stderr is in the failure below
            printed.append(line.decode())

    try:
        await read_until(f"{BOOT_LINE}1")
        for boot in (2, 3):
            response = await platform.client.post(f"/fleet/bots/{bot['id']}/restart")
            assert response.status_code == 200, response.text
            await read_until(f"{BOOT_LINE}{boot}")
        await asyncio.sleep(1)  # a few more reads: nothing seen is printed again
    finally:
        process.terminate()
        rest, errors = await asyncio.wait_for(process.communicate(), timeout=30)
    printed += rest.decode().splitlines(keepends=True)
    boots = [line for line in printed if BOOT_LINE in line]
    assert [line.split("#")[1].split(",")[0] for line in boots] == ["1", "2", "3"], printed
    assert b"Traceback" not in errors


async def test_an_unknown_bot_is_exit_4_with_one_line_and_no_traceback(cli: Cli, platform: Platform) -> None:
    await _logged_in(cli, platform)
    for bot_id in (str(uuid.uuid4()), "not-an-id"):
        ran = await cli("bots", "get", bot_id)
        assert ran.code == 4
        assert ran.out == ""
        assert _one_error_line(ran) == f"wopr: bot not found (not_found; botId={bot_id})"


async def test_a_server_that_cannot_be_reached_is_exit_5(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    ran = await cli("bots", "ls", WOPR_URL=url, WOPR_KEY="whatever")
    assert ran.code == 5
    assert _one_error_line(ran).startswith(f"wopr: cannot reach {url}")
    login = await cli("login", "--url", url, "--key", "whatever")
    assert login.code == 5
    assert not cli.stored.exists()


async def test_a_bot_is_made_from_a_template(cli: Cli, platform: Platform) -> None:
    await _logged_in(cli, platform)
    listed = await cli("templates", "ls", "-o", "json")
    assert listed.code == 0, listed.err
    assert "whatsapp-opencode" in [t["name"] for t in listed.json()["templates"]]
    table = await cli("templates", "ls")
    assert "stable-discord" in table.out and "DISCORD_TOKEN" in table.out
    shown = await cli("templates", "get", "whatsapp-opencode")
    assert shown.code == 0 and "OPENCODE_API_KEY" in shown.out
    assert (await cli("templates", "get", "no-such-template")).code == 4

    made = await cli(
        "bots", "create", "--template", "whatsapp-opencode", "--image", STUB_IMAGE, "--var", "OPENCODE_API_KEY=k"
    )
    assert made.code == 0, made.err
    assert made.out.startswith("Created bot whatsapp-opencode (")
    bot = (await cli("bots", "ls", "-o", "json")).json()["bots"][0]
    detail = await platform.wait_for(bot["id"], state="running")
    assert detail["template"]["name"] == "whatsapp-opencode"
    missing = await cli("bots", "create", "--template", "stable-discord", "--name", "other")
    assert missing.code == 1
    assert "missing_variables" in _one_error_line(missing)


# --- accounts, tenants and billing ------------------------------------------------------------------------------


async def test_keys_are_made_listed_and_revoked(cli: Cli, make_platform: PlatformFactory) -> None:
    platform = await _accounts(make_platform)
    owner = await new_user(platform, "owner", tenant="acme")
    try:
        admin_key = await new_key(owner, ["read", "admin"])
    finally:
        await owner.close()
    await _logged_in(cli, platform, admin_key["secret"])

    made = await cli("keys", "create", "--name", "deploy", "--scope", "read")
    assert made.code == 0, made.err
    secret = made.out.strip()
    assert secret.startswith("wopr_") and "\n" not in secret  # the secret alone on stdout, for $(...)
    assert "shown this once" in made.err
    keys = {k["name"]: k for k in (await cli("keys", "ls", "-o", "json")).json()["keys"]}
    assert keys["deploy"]["scopes"] == ["read"]
    assert (await cli("bots", "ls", WOPR_URL=platform.url, WOPR_KEY=secret)).code == 0

    revoked = await cli("keys", "rm", keys["deploy"]["id"], "--yes")
    assert revoked.code == 0, revoked.err
    assert "deploy" not in [k["name"] for k in (await cli("keys", "ls", "-o", "json")).json()["keys"]]
    refused = await cli("bots", "ls", WOPR_URL=platform.url, WOPR_KEY=secret)
    assert refused.code == 3
    too_much = await cli("keys", "create", "--name", "more", "--scope", "write")  # more than the caller holds
    assert too_much.code == 1
    assert "scope_not_held" in _one_error_line(too_much)


async def test_billing_balance_and_transactions(cli: Cli, make_platform: PlatformFactory) -> None:
    platform = await make_platform(BILLING_ENABLED=True, BILLING_MIN_BALANCE=DOLLAR)
    granted = await platform.client.post(
        "/tenants/acme/credits/grants",
        json={"amount": 5 * DOLLAR, "memo": "welcome"},
        headers={"Idempotency-Key": "cli-" + uuid.uuid4().hex},
    )
    assert granted.status_code == 201, granted.text
    await _logged_in(cli, platform, TOKEN, "--tenant", "acme")
    assert json.loads(cli.stored.read_text())["tenant"] == "acme"

    balance = await cli("billing", "balance")
    assert balance.code == 0, balance.err
    assert balance.out.startswith("acme: 5.00 USD (a bot needs 1.00 USD")
    assert (await cli("billing", "balance", "-o", "json")).json()["balance"] == 5 * DOLLAR
    moves = await cli("billing", "transactions")
    assert "grant" in moves.out and "welcome" in moves.out and "5.00" in moves.out
    other = await cli("--tenant", "globex", "billing", "balance", "-o", "json")
    assert other.json()["tenantId"] == "globex" and other.json()["balance"] == 0


async def test_billing_buy_prints_stripes_payment_page_once_per_key(
    cli: Cli, make_platform: PlatformFactory, stripe_checkout: FakeStripeCheckout
) -> None:
    platform = await make_platform(
        BILLING_ENABLED=True,
        STRIPE_SECRET_KEY=SECRET_KEY,
        STRIPE_WEBHOOK_SECRET="whsec_cli",
        STRIPE_API_BASE=stripe_checkout.url,
        STRIPE_CHECKOUT_ORIGIN=stripe_checkout.url,
    )
    stripe_checkout.deliver_to(f"{platform.url}/billing/webhook", "whsec_cli")
    await _logged_in(cli, platform, TOKEN, "--tenant", "acme")
    key = "cli-" + uuid.uuid4().hex
    bought = await cli("billing", "buy", "25", "--key", key)
    assert bought.code == 0, bought.err
    [session] = stripe_checkout.sessions.values()
    assert bought.out.splitlines() == ["pay 25.00 USD on Stripe's page, open in a browser:", session["url"]]
    again = await cli("billing", "buy", "25", "--key", key, "-o", "json")
    assert again.json()["sessionId"] == session["id"] and len(stripe_checkout.sessions) == 1
    async with httpx.AsyncClient(trust_env=False) as browser:
        assert (await browser.post(session["url"], data={"card": "4242424242424242"})).status_code == 303
    assert (await cli("billing", "balance", "-o", "json")).json()["balance"] == 25 * DOLLAR
    paid = await cli("billing", "buy", "25", "--key", key)
    assert paid.code == 0 and "is complete: nothing more to pay" in paid.out, paid.out
    assert (await cli("billing", "buy", "0")).code == 2  # refused before any call
    other_amount = await cli("billing", "buy", "30", "--key", key)
    assert other_amount.code != 0 and "another amount" in other_amount.err, other_amount.err


async def test_a_key_of_one_tenant_cannot_reach_another_tenants_bot(cli: Cli, make_platform: PlatformFactory) -> None:
    platform = await _accounts(make_platform)
    ours, theirs = await new_user(platform, "ours", tenant="acme"), await new_user(platform, "theirs", tenant="globex")
    try:
        our_key = await new_key(ours, ["read", "read:secrets", "write"])
        made = await theirs.client.post("/fleet/bots", json={"name": "theirs", "image": STUB_IMAGE})
        assert made.status_code == 201, made.text
    finally:
        await ours.close()
        await theirs.close()
    their_bot = made.json()["id"]
    await _logged_in(cli, platform, our_key["secret"])

    for command in (["bots", "get", their_bot], ["bots", "logs", their_bot], ["bots", "stop", their_bot]):
        ran = await cli(*command)
        assert ran.code == 4, (command, ran)
        assert _one_error_line(ran) == f"wopr: bot not found (not_found; botId={their_bot})"
    assert (await cli("bots", "ls", "-o", "json")).json() == {"bots": []}
    named = await cli("--tenant", "globex", "bots", "ls")
    assert named.code == 4
    assert "tenant_not_found" in _one_error_line(named)
    assert (await platform.client.get(f"/fleet/bots/{their_bot}", headers={"X-Tenant-Id": "globex"})).json()[
        "desiredState"
    ] == "running"
