"""The console's billing and AI usage pages against a real platform (localstripe as Stripe, a real gateway in front
of the fake provider): buying credits once per form, the balance, grants and pages of transactions, spending limits,
the gateway's usage, models and keys; and what an attacker would try on the money forms."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import httpx
import pytest

from tests.conftest import PlatformFactory
from tests.fakes.stripe_checkout import FakeStripeCheckout
from tests.fixtures.fake_provider import FakeProvider
from tests.fixtures.stripe import SECRET_KEY
from tests.integration.accounts_support import sign_up
from tests.integration.billing_support import BILLING, DOLLAR, balance, grant
from tests.integration.console_support import hidden_fields, new_console_user
from tests.integration.gateway_support import PROMPT, start_gateway

pytestmark = pytest.mark.slow

WEBHOOK_SECRET = "whsec_" + uuid.uuid4().hex


@pytest.mark.slow
async def test_buying_credits_sends_the_buyer_to_one_payment_page_per_form_and_the_paid_credits_show(
    make_platform: PlatformFactory, stripe_checkout: FakeStripeCheckout
) -> None:
    platform = await make_platform(
        **BILLING,
        STRIPE_SECRET_KEY=SECRET_KEY,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=stripe_checkout.url,
        STRIPE_CHECKOUT_ORIGIN=stripe_checkout.url,
    )
    stripe_checkout.deliver_to(f"{platform.url}/billing/webhook", WEBHOOK_SECRET)
    await sign_up(platform, "root")  # the first to sign up is the platform's admin: the buyer is an owner only
    buyer = await new_console_user(platform, "buyer")
    tenant = await buyer.own_tenant()
    page = await buyer.page("/ui/billing")
    assert "Buy credits" in page and "No transactions" in page
    assert (
        f"form-action 'self' {stripe_checkout.url};"
        in (await buyer.get("/ui/billing")).headers["content-security-policy"]
    )
    form = hidden_fields(page, "/ui/billing/checkout")
    assert form["key"] != hidden_fields(await buyer.page("/ui/billing"), "/ui/billing/checkout")["key"]  # fresh

    # a double submit of one form: one payment page, the buyer sent to it both times
    answers = [await buyer.post("/ui/billing/checkout", {**form, "amount": "25"}) for _ in range(2)]
    [session] = stripe_checkout.sessions.values()
    assert [(a.status_code, a.headers["location"]) for a in answers] == [(303, session["url"])] * 2
    assert session["amount_total"] == 2500 and session["metadata"]["tenant_id"] == tenant

    # refused before any payment starts: not a whole amount, no CSRF token, another site's form
    fresh = hidden_fields(await buyer.page("/ui/billing"), "/ui/billing/checkout")
    not_whole = await buyer.post("/ui/billing/checkout", {**fresh, "amount": "2.5"})
    assert (not_whole.status_code, not_whole.headers["location"]) == (303, "/ui/billing")
    assert "whole number" in await buyer.flash()
    no_csrf = await buyer.post("/ui/billing/checkout", {"key": fresh["key"], "amount": "10"}, csrf=False)
    assert no_csrf.status_code == 303
    assert "X-CSRF-Token" in await buyer.flash()
    foreign = await buyer.post("/ui/billing/checkout", {**fresh, "amount": "10"}, origin="https://evil.example")
    assert foreign.status_code == 403
    assert len(stripe_checkout.sessions) == 1

    # paid on Stripe's page: back to the billing page, told so, the credits there once
    async with httpx.AsyncClient(trust_env=False) as browser:
        paid = await browser.post(session["url"], data={"card": "4242424242424242"})
    assert (paid.status_code, paid.headers["location"]) == (303, f"{platform.url}/ui/billing?checkout=paid")
    assert await balance(platform, tenant) == 25 * DOLLAR
    page = await buyer.page("/ui/billing?checkout=paid")
    assert "Payment made." in page and "25.00 USD" in page
    assert re.search(r"<td>purchase</td><td class=\"ok\">25,000,000", page), page
    assert "The payment was canceled" in await buyer.page("/ui/billing?checkout=canceled")

    # the paid form sent again leads nowhere new
    again = await buyer.post("/ui/billing/checkout", {**form, "amount": "25"})
    assert (again.status_code, again.headers["location"]) == (303, "/ui/billing")
    assert "is complete" in await buyer.flash()
    assert len(stripe_checkout.sessions) == 1 and await balance(platform, tenant) == 25 * DOLLAR
    await buyer.close()


@pytest.mark.slow
async def test_the_billing_page_shows_grants_pages_of_transactions_and_sets_spending_limits(
    make_platform: PlatformFactory,
) -> None:
    platform = await make_platform(**BILLING)
    await sign_up(platform, "root")
    owner = await new_console_user(platform, "owner")
    tenant = await owner.own_tenant()
    await grant(platform, tenant, 7 * DOLLAR, "the first grant")
    for n in range(50):
        await grant(platform, tenant, 1, f"grant {n}")
    page = await owner.page("/ui/billing")
    assert "7,000,050" in page and "grant 49" in page
    assert "the first grant" not in page  # on the second page, newest first
    older = re.search(r'href="(/ui/billing\?[^"]*after=[^"]+)" rel="next"', page)
    assert older is not None
    page = await owner.page(older.group(1).replace("&amp;", "&"))
    assert "the first grant" in page and "grant 49" not in page
    assert 'rel="next"' not in page

    # caps in currency units, exactly; an amount that is no amount changes nothing
    form = hidden_fields(page, "/ui/billing/limits")
    saved = await owner.post("/ui/billing/limits", {**form, "dailyCap": "2.5", "monthlyCap": ""})
    assert saved.status_code == 303, saved.text
    assert await owner.flash() == "Spending limits saved."
    limits = (await owner.get("/billing/limits")).json()
    assert (limits["dailyCap"], limits["monthlyCap"]) == (2_500_000, None)
    bad = await owner.post("/ui/billing/limits", {**form, "dailyCap": "0.0000001", "monthlyCap": "9"})
    assert bad.status_code == 303
    assert "dailyCap" in await owner.flash()
    limits = (await owner.get("/billing/limits")).json()
    assert (limits["dailyCap"], limits["monthlyCap"]) == (2_500_000, None)
    assert 'name="dailyCap" inputmode="decimal" value="2.5"' in await owner.page("/ui/billing")
    assert "The AI gateway is off on this platform" in await owner.page("/ui/gateway")
    await owner.close()


@pytest.mark.slow
async def test_the_ai_usage_page_shows_the_tenants_calls_models_and_keys(
    make_platform: PlatformFactory, fake_provider: FakeProvider
) -> None:
    gateway = await start_gateway(make_platform, fake_provider)
    platform = gateway.platform
    await sign_up(platform, "root")
    owner = await new_console_user(platform, "ai")
    tenant = await owner.own_tenant()
    await grant(platform, tenant, 10 * DOLLAR, "for the gateway")
    csrf = hidden_fields(await owner.page("/ui/billing"), "/ui/billing/limits")["csrf"]
    made = await owner.client.post("/gateway/keys", json={"name": "my-script"}, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201, made.text
    async with httpx.AsyncClient(
        base_url=gateway.url, headers={"Authorization": f"Bearer {made.json()['key']}"}, trust_env=False
    ) as http:
        for _ in range(2):
            called = await http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": PROMPT})
            assert called.status_code == 200, called.text
    deadline = time.monotonic() + 10
    while not (await owner.get("/gateway/usage")).json()["usage"]:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    usage = (await owner.get("/gateway/usage")).json()

    page = await owner.page("/ui/gateway")
    assert "my-script" in page and "claude-3-5-haiku-latest" in page  # its keys, the models offered
    [row] = usage["usage"]
    assert re.search(rf"<td>{row['day']}</td><td>gpt-4o-mini</td><td>[^<]*</td><td>2</td>", page), page
    earlier = await owner.page("/ui/gateway?since=2001-01-01&until=2001-01-31")
    assert "No calls" in earlier and 'value="2001-01-01"' in earlier
    refused = await owner.page("/ui/gateway?since=yesterday", status=400)
    assert "since" in refused
    await owner.close()
