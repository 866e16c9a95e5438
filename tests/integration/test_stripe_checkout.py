"""Buying credits on Stripe's hosted Checkout page, with the fake of Checkout in front of localstripe: a session
opened once per idempotency key, paid on its page, credited once whichever of Stripe's two events about the payment
comes first (or if only one comes), refunds of it, and what must credit nothing: a declined card, an unpaid or
expired session, a session whose metadata names a tenant its customer does not belong to."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import Platform, PlatformFactory
from tests.fakes.stripe_checkout import FakeStripeCheckout
from tests.fixtures.stripe import SECRET_KEY, event, signed
from wopr_platform.db.engine import create_engine
from wopr_platform.db.models import StripeEvent

CENT = 10_000
WEBHOOK_SECRET = "whsec_" + uuid.uuid4().hex
SESSIONS = "/billing/checkout/sessions"


def _key() -> dict[str, str]:
    return {"Idempotency-Key": "k-" + uuid.uuid4().hex}


async def _platform(
    make_platform: PlatformFactory, stripe: FakeStripeCheckout, *, payment_intents: bool = True
) -> Platform:
    platform = await make_platform(
        BILLING_ENABLED=True,
        BILLING_MIN_BALANCE=1,
        STRIPE_SECRET_KEY=SECRET_KEY,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=stripe.url,
        STRIPE_CHECKOUT_ORIGIN=stripe.url,
        BILLING_INTERVAL=1,
    )
    stripe.deliver_to(f"{platform.url}/billing/webhook", WEBHOOK_SECRET, payment_intents=payment_intents)
    return platform


async def _balance(platform: Platform, tenant: str) -> int:
    response = await platform.client.get(f"/tenants/{tenant}/credits")
    assert response.status_code == 200, response.text
    return int(response.json()["balance"])


async def _open(platform: Platform, tenant: str, cents: int, key: dict[str, str] | None = None) -> dict[str, Any]:
    response = await platform.client.post(
        SESSIONS, json={"amountCents": cents}, headers={**(key or _key()), "X-Tenant-Id": tenant}
    )
    assert response.status_code == 201, response.text
    opened: dict[str, Any] = response.json()
    return opened


async def _pay(url: str, card: str = "4242424242424242") -> httpx.Response:
    """What the buyer's browser does on Stripe's page: type the card, press Pay."""
    async with httpx.AsyncClient(trust_env=False, timeout=30) as browser:
        return await browser.post(url, data={"card": card})


async def _event_types(platform: Platform) -> list[str]:
    engine = create_engine(platform.settings.database_url)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(select(StripeEvent.type, StripeEvent.applied_at))).all()
    finally:
        await engine.dispose()
    return sorted(kind for kind, applied in rows if applied is not None)


@pytest.mark.slow
async def test_a_hosted_checkout_paid_on_stripes_page_credits_the_tenant_once(
    make_platform: PlatformFactory, stripe_checkout: FakeStripeCheckout
) -> None:
    platform = await _platform(make_platform, stripe_checkout)
    key = _key()
    opened = await _open(platform, "acme", 2500, key)
    assert opened["status"] == "open" and opened["url"].startswith(f"{stripe_checkout.url}/pay/cs_test_")
    assert (opened["amountCents"], opened["credits"], opened["currency"]) == (2500, 2500 * CENT, "usd")
    assert await _open(platform, "acme", 2500, key) == opened  # the same key: the same session
    other = await platform.client.post(SESSIONS, json={"amountCents": 900}, headers={**key, "X-Tenant-Id": "acme"})
    assert other.status_code == 409, other.text
    [made] = stripe_checkout.sessions.values()
    assert made["customer"].startswith("cus_") and made["metadata"]["tenant_id"] == "acme"
    assert made["success_url"] == f"{platform.url}/ui/billing?checkout=paid"
    assert made["cancel_url"] == f"{platform.url}/ui/billing?checkout=canceled"

    paid = await _pay(opened["url"])
    assert (paid.status_code, paid.headers["location"]) == (303, made["success_url"])
    assert await _balance(platform, "acme") == 2500 * CENT  # the session's event came before the redirect
    # localstripe's own payment_intent.succeeded about the same payment arrives too, and credits nothing more
    deadline = time.monotonic() + 15
    while "payment_intent.succeeded" not in await _event_types(platform):
        assert time.monotonic() < deadline, await _event_types(platform)
        await asyncio.sleep(0.1)
    assert await _balance(platform, "acme") == 2500 * CENT
    history = (await platform.client.get("/billing/transactions", headers={"X-Tenant-Id": "acme"})).json()
    intent = made["payment_intent"]
    assert [(t["kind"], t["amount"], t["reference"]) for t in history["transactions"]] == [
        ("purchase", 2500 * CENT, f"stripe:payment:{intent}")
    ]
    again = await _open(platform, "acme", 2500, key)  # the form sent once more after paying: nothing new to pay
    assert (again["sessionId"], again["status"], again["url"]) == (opened["sessionId"], "complete", None)
    assert len(stripe_checkout.sessions) == 1

    # the purchase is one like any other: the operator can refund it
    refund = await platform.client.post(
        "/tenants/acme/credits/refunds", json={"paymentIntentId": intent, "amountCents": 500}, headers=_key()
    )
    assert refund.status_code == 201, refund.text
    assert await _balance(platform, "acme") == 2000 * CENT
    assert (await platform.client.get("/billing/ledger-check")).json()["ok"] is True


@pytest.mark.slow
async def test_the_session_event_alone_credits_and_a_declined_card_or_an_expired_session_credits_nothing(
    make_platform: PlatformFactory, stripe_checkout: FakeStripeCheckout
) -> None:
    platform = await _platform(make_platform, stripe_checkout, payment_intents=False)  # only Checkout's events
    declined = await _open(platform, "acme", 1000)
    refused = await _pay(declined["url"], card="4000000000000341")
    assert refused.status_code == 402 and "declined" in refused.text.lower(), refused.text
    assert stripe_checkout.sessions[declined["sessionId"]]["status"] == "open"  # the buyer may try another card
    assert await _balance(platform, "acme") == 0

    paid = await _pay(declined["url"])  # a good card on the same page
    assert paid.status_code == 303, paid.text
    assert await _balance(platform, "acme") == 1000 * CENT
    assert "payment_intent.succeeded" not in await _event_types(platform)

    expiring = await _open(platform, "acme", 700)
    async with httpx.AsyncClient(base_url=stripe_checkout.url, trust_env=False) as dashboard:
        expired = await dashboard.post(
            f"/v1/checkout/sessions/{expiring['sessionId']}/expire",
            headers={"Authorization": f"Bearer {SECRET_KEY}"},
        )
    assert expired.status_code == 200, expired.text
    late = await _pay(expiring["url"])
    assert late.status_code == 410
    assert await _balance(platform, "acme") == 1000 * CENT
    assert "checkout.session.expired" in await _event_types(platform)


@pytest.mark.slow
async def test_an_unpaid_or_tampered_session_event_credits_nothing(
    make_platform: PlatformFactory, stripe_checkout: FakeStripeCheckout
) -> None:
    platform = await _platform(make_platform, stripe_checkout, payment_intents=False)
    opened = await _open(platform, "acme", 1000)
    assert (await _pay(opened["url"])).status_code == 303
    [completed] = [e for e in stripe_checkout.events_sent if e["type"] == "checkout.session.completed"]
    session = completed["data"]["object"]
    await _open(platform, "globex", 1000)  # globex has a Stripe customer of its own now
    cases = [
        # a bank debit not cleared yet: paid later, with checkout.session.async_payment_succeeded
        {**session, "payment_intent": "pi_unpaid", "payment_status": "unpaid"},
        # acme's customer, a metadata saying globex: not credited to either
        {**session, "payment_intent": "pi_tampered", "metadata": {"tenant_id": "globex"}, "amount_total": 90000},
        # another currency than the platform's
        {**session, "payment_intent": "pi_euros", "currency": "eur"},
        # a subscription's session is not a purchase of credits
        {**session, "payment_intent": "pi_sub", "mode": "subscription"},
    ]
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False) as stripe_side:
        for obj in cases:
            body, signature = signed(event("checkout.session.completed", obj), WEBHOOK_SECRET)
            answer = await stripe_side.post("/billing/webhook", content=body, headers={"Stripe-Signature": signature})
            assert answer.status_code == 200, answer.text
        # the bank debit clears: credited once, however often the event is delivered
        cleared = event("checkout.session.async_payment_succeeded", {**cases[0], "payment_status": "paid"})
        body, signature = signed(cleared, WEBHOOK_SECRET)
        for _ in range(2):
            answer = await stripe_side.post("/billing/webhook", content=body, headers={"Stripe-Signature": signature})
            assert answer.status_code == 200 and answer.json()["applied"] is True, answer.text
    assert await _balance(platform, "acme") == 2000 * CENT
    assert await _balance(platform, "globex") == 0


async def test_opening_a_session_refuses_bad_amounts_a_missing_key_and_a_platform_without_stripe(
    make_platform: PlatformFactory, stripe_checkout: FakeStripeCheckout
) -> None:
    platform = await _platform(make_platform, stripe_checkout)
    for body in ({"amountCents": 10}, {"amountCents": 10**7}, {"amountCents": "25"}, {}):
        refused = await platform.client.post(SESSIONS, json=body, headers=_key())
        assert refused.status_code == 400 and set(refused.json()) == {"error", "details"}, refused.text
    no_key = await platform.client.post(SESSIONS, json={"amountCents": 1000})
    assert no_key.status_code == 400, no_key.text
    assert stripe_checkout.sessions == {}
    unpaid = await make_platform(BILLING_ENABLED=True)
    off = await unpaid.client.post(SESSIONS, json={"amountCents": 1000}, headers=_key())
    assert off.status_code == 503 and off.json()["details"]["code"] == "payments_unavailable", off.text
