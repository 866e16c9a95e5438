"""The console's main journeys in a real browser (Debian's chromium, driven by Playwright) against a real platform
and Docker engine: no console error, no script error and no Content-Security-Policy violation on any page walked,
and a screenshot of each main page for review (tests/browser.py says where)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from playwright.async_api import expect

from tests.browser import Chromium, Watched, chromium
from tests.conftest import BOOT_LINE, STUB_IMAGE, Platform, PlatformFactory
from tests.fakes.stripe_checkout import FakeStripeCheckout
from tests.fixtures.registry import Registry
from tests.fixtures.stripe import SECRET_KEY
from tests.integration.accounts_support import PASSWORD, email
from tests.integration.updates_support import halting_rollout, rollout_bots, update_settings

pytestmark = pytest.mark.slow
STATE, HEALTH = 1, 2  # columns of the bots table
WEBHOOK_SECRET = "whsec_" + uuid.uuid4().hex


@pytest.fixture
async def browser() -> AsyncIterator[Chromium]:
    async for held in chromium():
        yield held


async def sign_up_and_in(watched: Watched, who: str) -> str:
    """Sign up through the console's pages, then sign in; the answer is the new user's email."""
    page = watched.page
    address = email(who)
    await page.goto("/ui/signup")
    await page.get_by_label("Email").fill(address)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Create the account").click()
    await expect(page.get_by_text("Account ready: sign in with it.")).to_be_visible()
    # htmx focuses the autofocus field once the swapped page settles: typing before that would land in it
    await expect(page.get_by_label("Email")).to_be_focused()
    await page.get_by_label("Email").fill(address)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Bots")).to_be_visible()
    return address


async def tenant_of(watched: Watched) -> str:
    me = await (await watched.page.request.get("/auth/me")).json()
    return str(me["tenants"][0]["tenantId"])


async def test_a_newcomer_signs_up_signs_in_and_out(browser: Chromium, platform: Platform) -> None:
    watched = await browser.open(platform.url)
    page = watched.page
    await page.goto("/ui/bots")
    await expect(page).to_have_url(re.compile(r"/ui/login\?next=%2Fui%2Fbots$"))
    await watched.screenshot("sign-in")
    await page.get_by_role("link", name="Sign up").click()
    await expect(page.get_by_role("heading", name="Sign up")).to_be_visible()
    await watched.screenshot("sign-up")

    # a password the API refuses: its reason is shown, and no account is made
    await page.get_by_label("Email").fill(email("short"))
    await page.locator("#password").fill("short")
    await page.locator("#password").evaluate("(input) => input.removeAttribute('minlength')")
    watched.expect_refusal()
    await page.get_by_role("button", name="Create the account").click()
    await expect(page.locator(".flash.error")).to_contain_text("password")

    await sign_up_and_in(watched, "first")
    # the first person to sign up is the platform's admin
    await expect(page.get_by_role("link", name="Admin")).to_be_visible()
    await expect(page.get_by_text("No bots yet.")).to_be_visible()
    await watched.screenshot("bots-empty")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_text("Signed out.")).to_be_visible()
    await page.goto("/ui/bots")
    await expect(page).to_have_url(re.compile(r"/ui/login"))
    watched.assert_clean()


async def test_the_bots_page_follows_the_fleet_live(browser: Chromium, platform: Platform) -> None:
    watched = await browser.open(platform.url)
    page = watched.page
    await sign_up_and_in(watched, "live")
    tenant = await tenant_of(watched)

    # made elsewhere (the API) while the page is open: its row appears and turns healthy without a reload
    made = await platform.client.post(
        "/fleet/bots", json={"name": "live-one", "image": STUB_IMAGE}, headers={"X-Tenant-Id": tenant}
    )
    assert made.status_code == 201, made.text
    bot_id = made.json()["id"]
    row = page.locator(f"#b-{bot_id}")
    await expect(row).to_contain_text("live-one")
    await expect(row.locator("td").nth(HEALTH)).to_have_text("healthy", timeout=30_000)
    await expect(row.locator("td").nth(STATE)).to_have_text("running")
    await watched.screenshot("bots")

    stopped = await platform.client.post(f"/fleet/bots/{bot_id}/stop", headers={"X-Tenant-Id": tenant})
    assert stopped.status_code == 200, stopped.text
    await expect(row.locator("td").nth(STATE)).not_to_have_text("running", timeout=30_000)
    removed = await platform.client.delete(f"/fleet/bots/{bot_id}", headers={"X-Tenant-Id": tenant})
    assert removed.status_code == 204, removed.text
    await expect(row).to_have_count(0)
    watched.assert_clean()


async def test_the_console_is_usable_by_keyboard_and_at_phone_width(browser: Chromium, platform: Platform) -> None:
    watched = await browser.open(platform.url, phone=True)
    page = watched.page
    await sign_up_and_in(watched, "phone")
    await platform.client.post(
        "/fleet/bots",
        json={"name": "small-screen", "image": STUB_IMAGE},
        headers={"X-Tenant-Id": await tenant_of(watched)},
    )
    await page.reload()
    await expect(page.get_by_role("link", name="small-screen")).to_be_visible()
    overflow = await page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a phone's screen"
    await watched.screenshot("bots-phone")

    # the first Tab reaches the skip link, which takes the keyboard past the navigation
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    # the filters are labelled controls, reachable in order
    await page.get_by_label("Name starts with").fill("small")
    await page.get_by_label("Name starts with").press("Enter")
    await expect(page).to_have_url(re.compile(r"namePrefix=small"))
    await expect(page.get_by_role("link", name="small-screen")).to_be_visible()
    watched.assert_clean()


async def test_a_bot_is_made_from_a_template_watched_until_healthy_read_and_stopped(
    browser: Chromium, platform: Platform
) -> None:
    watched = await browser.open(platform.url)
    page = watched.page
    await sign_up_and_in(watched, "maker")
    await page.get_by_role("link", name="Templates").click()
    await expect(page.get_by_role("heading", name="Templates")).to_be_visible()
    await watched.screenshot("templates")
    await page.goto("/ui/bots/new")
    await page.get_by_label("Template").select_option("whatsapp-opencode")
    await page.get_by_role("button", name="Choose this template").click()
    await page.get_by_label("Name", exact=False).fill("from-template")
    await page.get_by_label("Image").fill(STUB_IMAGE)
    await page.get_by_label("OPENCODE_API_KEY").fill("sk-never-shown")
    await watched.screenshot("bot-new")
    await page.get_by_role("button", name="Create the bot").click()

    await expect(page.get_by_role("heading", name="from-template")).to_be_visible()
    status = page.get_by_label("Live status")
    await expect(status.locator(".h")).to_have_text("healthy", timeout=30_000)
    await expect(page.locator("#logs")).to_contain_text(BOOT_LINE, timeout=15_000)
    assert "sk-never-shown" not in await page.content()
    await watched.screenshot("bot")

    page.once("dialog", lambda dialog: dialog.accept())
    await page.get_by_role("button", name="Stop").click()
    await expect(status.locator(".st")).not_to_have_text("running", timeout=30_000)
    watched.assert_clean()


async def test_an_api_key_is_made_shown_once_and_works(browser: Chromium, platform: Platform) -> None:
    watched = await browser.open(platform.url)
    page = watched.page
    await sign_up_and_in(watched, "keys")
    await page.get_by_role("link", name="API keys").click()
    await page.get_by_label("Name", exact=True).fill("deploy-bot")
    await page.get_by_label("read", exact=True).check()
    await watched.screenshot("keys")
    await page.get_by_role("button", name="Create the key").click()
    secret = (await page.locator(".secret").inner_text()).strip()
    assert secret.startswith("wopr_")
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False) as client:
        answer = await client.get("/fleet/bots", headers={"Authorization": f"Bearer {secret}"})
        assert answer.status_code == 200, answer.text
    await page.goto("/ui/keys")
    await expect(page.get_by_role("cell", name="deploy-bot", exact=True)).to_be_visible()
    assert secret not in await page.content()
    watched.assert_clean()


async def test_credits_are_bought_on_stripes_page_and_show_on_return(
    browser: Chromium, make_platform: PlatformFactory, stripe_checkout: FakeStripeCheckout
) -> None:
    """The buy form leads to Stripe's hosted page (another site: the console's form policy names it) and back."""
    platform = await make_platform(
        BILLING_ENABLED=True,
        STRIPE_SECRET_KEY=SECRET_KEY,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=stripe_checkout.url,
        STRIPE_CHECKOUT_ORIGIN=stripe_checkout.url,
    )
    stripe_checkout.deliver_to(f"{platform.url}/billing/webhook", WEBHOOK_SECRET)
    watched = await browser.open(platform.url)
    page = watched.page
    await sign_up_and_in(watched, "buyer")
    await page.get_by_role("link", name="Billing").click()
    await page.get_by_label("Amount in USD").fill("25")
    await page.get_by_role("button", name="Buy credits").click()
    await expect(page).to_have_url(re.compile(re.escape(stripe_checkout.url) + r"/pay/cs_test_\w+$"))
    await expect(page.get_by_role("heading", name="Pay 25.00 USD")).to_be_visible()
    await watched.screenshot("stripe-checkout-page")
    await page.get_by_role("button", name="Pay 25.00 USD").click()
    await expect(page).to_have_url(f"{platform.url}/ui/billing?checkout=paid")
    await expect(page.get_by_text("Payment made.")).to_be_visible()
    await expect(page.locator("td", has_text=re.compile(r"^purchase$"))).to_have_count(1)
    await expect(page.locator(".facts dd").first).to_contain_text("25,000,000")
    await watched.screenshot("billing-paid")
    watched.assert_clean()


async def test_a_rollout_is_followed_wave_by_wave_until_it_halts(
    browser: Chromium, make_platform: PlatformFactory, registry: Registry
) -> None:
    repo = "wopr-" + uuid.uuid4().hex[:8]
    await registry.push(repo, "latest", message="v1")
    platform = await make_platform(**update_settings(registry))
    watched = await browser.open(platform.url)
    page = watched.page
    await sign_up_and_in(watched, "operator")  # the first person: the platform's admin
    await rollout_bots(platform, registry, repo)

    # a new digest that never turns healthy: the canary's wave is rolled back and the rollout halts
    await halting_rollout(platform, registry, repo)
    await page.get_by_role("link", name="Rollouts").click()
    await page.locator("a[href^='/ui/rollouts/']").first.click()
    await expect(page.locator("progress")).to_be_visible()
    await watched.screenshot("rollout-running")
    # the page follows it by itself until it is over
    await expect(page.locator("tr.wave")).to_have_count(2)
    await expect(page.get_by_text("halted").first).to_be_visible(timeout=60_000)
    await expect(page.locator("progress")).to_have_count(0)
    await expect(page.locator("tr.wave.done")).to_have_count(1)
    await expect(page.locator("tr.wave.cancelled")).to_have_count(1)
    await watched.screenshot("rollout-halted")
    watched.assert_clean()


async def test_every_page_of_the_console_renders_cleanly(browser: Chromium, platform: Platform) -> None:
    """A platform admin walks every page of the navigation (and the account page); each is saved for review."""
    watched = await browser.open(platform.url)
    page = watched.page
    await sign_up_and_in(watched, "tour")
    await platform.create_bot(name="tour-bot")
    for name, heading in (
        ("Routes", "Routes"),
        ("Members", "Members"),
        ("Billing", "Billing"),
        ("AI usage", None),
        ("Audit log", "Audit log"),
        ("Admin", None),
    ):
        await page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()
        await expect(page.locator("h1").first).to_be_visible()
        if heading is not None:
            await expect(page.locator("h1").first).to_contain_text(heading)
        await watched.screenshot(name)
    await page.goto("/ui/admin/users")
    await watched.screenshot("admin-users")
    await page.get_by_role("link", name=re.compile(r"@example\.test$")).first.click()
    await expect(page.locator("h1").first).to_be_visible()
    await watched.screenshot("account")
    # the whole platform's tenant, chosen in the switcher, shows the operator's bots
    await page.get_by_label("Tenant").select_option("default")
    await page.get_by_role("button", name="Switch").click()
    await expect(page.get_by_role("link", name="tour-bot")).to_be_visible()
    watched.assert_clean()
