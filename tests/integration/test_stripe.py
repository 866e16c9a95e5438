"""Buying credits through Stripe, with localstripe as Stripe and webhooks signed with Stripe's scheme: checkout,
the payment's webhook, replays and duplicates, refunds and lost disputes, forged and stale signatures, and an
event whose ledger write fails staying in the inbox until it is applied."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import Platform, PlatformFactory
from tests.fixtures.stripe import SECRET_KEY, LocalStripe, event, signed
from wopr_platform.db.engine import create_engine
from wopr_platform.db.models import StripeEvent

CENT = 10_000
WEBHOOK_SECRET = "whsec_" + uuid.uuid4().hex


def _key() -> dict[str, str]:
    return {"Idempotency-Key": "k-" + uuid.uuid4().hex}


async def _platform(make_platform: PlatformFactory, localstripe: LocalStripe, **extra: Any) -> Platform:
    platform = await make_platform(
        BILLING_ENABLED=True,
        BILLING_MIN_BALANCE=1,
        STRIPE_SECRET_KEY=SECRET_KEY,
        STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
        STRIPE_API_BASE=localstripe.url,
        BILLING_INTERVAL=1,
        **extra,
    )
    localstripe.deliver_to(f"{platform.url}/billing/webhook", WEBHOOK_SECRET)
    return platform


async def _balance(platform: Platform, tenant: str = "default") -> int:
    response = await platform.client.get(f"/tenants/{tenant}/credits")
    assert response.status_code == 200, response.text
    return int(response.json()["balance"])


async def _until_balance(platform: Platform, expected: int, tenant: str = "default", timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (balance := await _balance(platform, tenant)) != expected:
        assert time.monotonic() < deadline, f"balance {balance}, expected {expected}"
        await asyncio.sleep(0.1)


async def _post_event(platform: Platform, body: bytes, signature: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False) as stripe_side:  # no platform credentials
        return await stripe_side.post(
            "/billing/webhook",
            content=body,
            headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
        )


async def _buy(platform: Platform, localstripe: LocalStripe, cents: int, tenant: str = "default") -> str:
    """Check out and pay as the customer's browser would; returns the payment intent's id once it is credited."""
    before = await _balance(platform, tenant)
    response = await platform.client.post(
        "/billing/checkout", json={"amountCents": cents}, headers={**_key(), "X-Tenant-Id": tenant}
    )
    assert response.status_code == 201, response.text
    checkout = response.json()
    assert checkout["credits"] == cents * CENT and checkout["clientSecret"].startswith(checkout["paymentIntentId"])
    paid = await asyncio.to_thread(localstripe.pay, checkout["paymentIntentId"])
    assert paid["status"] == "succeeded", paid
    await _until_balance(platform, before + cents * CENT, tenant)  # localstripe's own signed webhook
    return str(checkout["paymentIntentId"])


async def test_buying_credits_end_to_end_credits_the_tenant_once(
    make_platform: PlatformFactory, localstripe: LocalStripe
) -> None:
    platform = await _platform(make_platform, localstripe)
    intent = await _buy(platform, localstripe, 2500, tenant="acme")
    history = (await platform.client.get("/billing/transactions", headers={"X-Tenant-Id": "acme"})).json()
    assert [(t["kind"], t["amount"], t["reference"]) for t in history["transactions"]] == [
        ("purchase", 2500 * CENT, f"stripe:payment:{intent}")
    ]
    # one Stripe customer per tenant, reused by the next checkout
    intent2 = await _buy(platform, localstripe, 700, tenant="acme")
    customers = {localstripe.api("GET", f"payment_intents/{i}")["customer"] for i in (intent, intent2)}
    assert len(customers) == 1
    assert await _balance(platform, "acme") == 3200 * CENT
    assert (await platform.client.get("/billing/ledger-check")).json()["ok"] is True


async def test_checkout_checks_the_amount_and_the_same_key_answers_the_same_intent(
    make_platform: PlatformFactory, localstripe: LocalStripe
) -> None:
    platform = await _platform(make_platform, localstripe)
    for cents in (10, 10**7):
        refused = await platform.client.post("/billing/checkout", json={"amountCents": cents}, headers=_key())
        assert refused.status_code == 400, refused.text
    key = _key()
    first = await platform.client.post("/billing/checkout", json={"amountCents": 1000}, headers=key)
    second = await platform.client.post("/billing/checkout", json={"amountCents": 1000}, headers=key)
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert first.json()["paymentIntentId"] == second.json()["paymentIntentId"]
    other = await platform.client.post("/billing/checkout", json={"amountCents": 2000}, headers=key)
    assert other.status_code == 409, other.text
    assert (await platform.client.post("/billing/checkout", json={"amountCents": 1000})).status_code == 400


async def test_replayed_duplicated_forged_and_stale_events_change_nothing_twice(
    make_platform: PlatformFactory, localstripe: LocalStripe
) -> None:
    platform = await _platform(make_platform, localstripe)
    intent = await _buy(platform, localstripe, 1000)
    stored = localstripe.api("GET", f"payment_intents/{intent}")
    succeeded = event("payment_intent.succeeded", {**stored, "amount_received": 1000})
    body, signature = signed(succeeded, WEBHOOK_SECRET)
    first = await _post_event(platform, body, signature)
    assert first.status_code == 200 and first.json() == {"received": True, "duplicate": False, "applied": True}
    replay = await _post_event(platform, body, signature)  # the very same delivery again
    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    assert await _balance(platform) == 1000 * CENT  # a second event about the same payment: no second credit

    forged = event("payment_intent.succeeded", {**stored, "id": "pi_forged", "amount_received": 99999})
    body, _ = signed(forged, WEBHOOK_SECRET)
    _, wrong = signed(forged, "whsec_not_ours")
    old_body, old_signature = signed(forged, WEBHOOK_SECRET, at=int(time.time()) - 301)
    for payload, header in (
        (body, wrong),
        (body, ""),
        (old_body, old_signature),
        (body + b" ", signed(forged, WEBHOOK_SECRET)[1]),
    ):
        refused = await _post_event(platform, payload, header)
        assert refused.status_code == 400, refused.text
        assert refused.json()["details"]["code"] in ("bad_signature", "validation_failed")
    assert await _balance(platform) == 1000 * CENT


async def test_refunds_and_lost_disputes_take_credits_back_in_any_order(
    make_platform: PlatformFactory, localstripe: LocalStripe
) -> None:
    platform = await _platform(make_platform, localstripe)
    intent = await _buy(platform, localstripe, 3000)
    # the operator refunds 1000 cents through the API: Stripe refunds, the credits leave at once
    refund = await platform.client.post(
        "/tenants/default/credits/refunds", json={"paymentIntentId": intent, "amountCents": 1000}, headers=_key()
    )
    assert refund.status_code == 201, refund.text
    refund_id = refund.json()["refundId"]
    assert localstripe.api("GET", f"refunds/{refund_id}")["amount"] == 1000
    assert await _balance(platform) == 2000 * CENT
    # Stripe's webhook about the same refund, twice, changes nothing
    for _ in range(2):
        body, signature = signed(
            event(
                "refund.created",
                {
                    "id": refund_id,
                    "object": "refund",
                    "amount": 1000,
                    "status": "succeeded",
                    "payment_intent": intent,
                    "currency": "usd",
                },
            ),
            WEBHOOK_SECRET,
        )
        assert (await _post_event(platform, body, signature)).status_code == 200
    assert await _balance(platform) == 2000 * CENT
    # a refund made in Stripe's dashboard reaches us only as charge.refunded
    other = localstripe.api("POST", "refunds", payment_intent=intent, amount=500)
    charge = {
        "id": "ch_x",
        "object": "charge",
        "payment_intent": intent,
        "currency": "usd",
        "refunds": {
            "data": [
                {"id": refund_id, "amount": 1000, "status": "succeeded"},
                {"id": other["id"], "amount": 500, "status": "succeeded"},
            ]
        },
    }
    body, signature = signed(event("charge.refunded", charge), WEBHOOK_SECRET)
    assert (await _post_event(platform, body, signature)).json()["applied"] is True
    assert await _balance(platform) == 1500 * CENT
    # a dispute lost
    dispute = {
        "id": "dp_" + uuid.uuid4().hex[:10],
        "object": "dispute",
        "amount": 700,
        "status": "lost",
        "payment_intent": intent,
        "currency": "usd",
    }
    body, signature = signed(event("charge.dispute.closed", dispute), WEBHOOK_SECRET)
    assert (await _post_event(platform, body, signature)).json()["applied"] is True
    body, signature = signed(event("charge.dispute.closed", dispute), WEBHOOK_SECRET)  # another event, same dispute
    assert (await _post_event(platform, body, signature)).json()["applied"] is True
    assert await _balance(platform) == 800 * CENT
    # a refund of a purchase the ledger does not hold yet waits in the inbox, then applies once the purchase lands
    early = {
        "id": "re_early" + uuid.uuid4().hex[:6],
        "object": "refund",
        "amount": 100,
        "status": "succeeded",
        "payment_intent": "pi_later",
        "currency": "usd",
    }
    body, signature = signed(event("refund.created", early), WEBHOOK_SECRET)
    waiting = await _post_event(platform, body, signature)
    assert waiting.status_code == 200 and waiting.json()["applied"] is False
    assert await _balance(platform) == 800 * CENT
    stored = localstripe.api("GET", f"payment_intents/{intent}")
    body, signature = signed(
        event("payment_intent.succeeded", {**stored, "id": "pi_later", "amount_received": 2000}), WEBHOOK_SECRET
    )
    assert (await _post_event(platform, body, signature)).json()["applied"] is True
    await _until_balance(platform, (800 + 2000 - 100) * CENT)  # the waiting refund, applied by the billing loop
    assert (await platform.client.get("/billing/ledger-check")).json()["ok"] is True


async def test_refunding_more_than_was_bought_or_someone_elses_purchase_is_refused(
    make_platform: PlatformFactory, localstripe: LocalStripe
) -> None:
    platform = await _platform(make_platform, localstripe)
    intent = await _buy(platform, localstripe, 1000, tenant="acme")
    too_much = await platform.client.post(
        "/tenants/acme/credits/refunds", json={"paymentIntentId": intent, "amountCents": 1001}, headers=_key()
    )
    assert too_much.status_code == 400, too_much.text
    not_theirs = await platform.client.post(
        "/tenants/globex/credits/refunds", json={"paymentIntentId": intent}, headers=_key()
    )
    assert not_theirs.status_code == 404, not_theirs.text
    assert await _balance(platform, "acme") == 1000 * CENT


async def test_a_payment_for_a_tenant_its_customer_does_not_belong_to_is_not_credited(
    make_platform: PlatformFactory, localstripe: LocalStripe
) -> None:
    platform = await _platform(make_platform, localstripe)
    intent = await _buy(platform, localstripe, 1000, tenant="acme")
    stored = localstripe.api("GET", f"payment_intents/{intent}")
    tampered = {**stored, "id": "pi_tampered", "metadata": {"tenant_id": "globex"}, "amount_received": 5000}
    body, signature = signed(event("payment_intent.succeeded", tampered), WEBHOOK_SECRET)
    answer = await _post_event(platform, body, signature)
    assert answer.status_code == 200 and answer.json()["applied"] is False
    assert await _balance(platform, "globex") == 0


async def test_an_event_whose_ledger_write_fails_stays_in_the_inbox_and_is_applied_later(
    make_platform: PlatformFactory, localstripe: LocalStripe
) -> None:
    platform = await _platform(make_platform, localstripe)
    intent = await _buy(platform, localstripe, 1000)
    stored = localstripe.api("GET", f"payment_intents/{intent}")
    second = {**stored, "id": "pi_second_" + uuid.uuid4().hex[:6], "amount_received": 400}
    engine = create_engine(platform.settings.database_url)
    try:
        # the ledger cannot be written: a trigger-free way to make every insert into it fail is to rename it
        async with engine.begin() as connection:
            await connection.exec_driver_sql("ALTER TABLE ledger_entries RENAME TO ledger_entries_away")
        body, signature = signed(event("payment_intent.succeeded", second), WEBHOOK_SECRET)
        answer = await _post_event(platform, body, signature)
        assert answer.status_code == 200, answer.text  # Stripe's money is ours to account for: kept, not refused
        assert answer.json() == {"received": True, "duplicate": False, "applied": False}
        async with engine.begin() as connection:
            await connection.exec_driver_sql("ALTER TABLE ledger_entries_away RENAME TO ledger_entries")
        await _until_balance(platform, 1400 * CENT)  # the billing loop applied what the inbox held
        async with engine.connect() as connection:
            rows = (await connection.execute(select(StripeEvent.applied_at, StripeEvent.attempts))).all()
        assert all(applied is not None for applied, _ in rows), rows
        assert any(attempts >= 1 for _, attempts in rows), rows
    finally:
        await engine.dispose()


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"id": 1}'])
async def test_a_signed_body_that_is_not_an_event_is_400(
    make_platform: PlatformFactory, localstripe: LocalStripe, body: bytes
) -> None:
    platform = await _platform(make_platform, localstripe)
    timestamp = int(time.time())
    mac = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    answer = await _post_event(platform, body, f"t={timestamp},v1={mac}")
    assert answer.status_code == 400, answer.text
