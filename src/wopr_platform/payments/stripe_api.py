"""Stripe, through stripe-python's async client: customers, payment intents, hosted Checkout sessions, refunds,
webhook signatures.

Every call that creates something carries an idempotency key made by the caller from what it stands for, so a
retried request never makes a second customer, payment or refund. The library's errors become the project's
(`PaymentsUnavailable` when Stripe cannot be reached or refuses our key, `PaymentFailed` when it refuses the call).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import stripe

from wopr_platform.core.errors import PaymentFailed, PaymentsUnavailable, ValidationFailed

SIGNATURE_TOLERANCE = 300  # seconds: a signed event older than this is refused (a replay)


@dataclass(frozen=True, slots=True)
class PaymentIntent:
    id: str
    client_secret: str
    amount: int  # cents
    status: str


@dataclass(frozen=True, slots=True)
class CheckoutSession:
    """A Stripe-hosted payment page: the customer pays at `url`, then returns to the platform."""

    id: str
    url: str | None  # None once the session is complete or expired
    status: str  # open, complete, expired
    payment_status: str  # unpaid, paid, no_payment_required
    amount_total: int  # cents
    expires_at: int  # Unix seconds


@dataclass(frozen=True, slots=True)
class Refund:
    id: str
    amount: int  # cents
    status: str


class BadSignature(ValidationFailed):
    """A webhook whose Stripe-Signature does not verify (forged, altered, or older than the tolerance)."""

    code = "bad_signature"


class StripeApi:
    """One Stripe account: its secret key, and the webhook endpoint's signing secret."""

    def __init__(self, *, secret_key: str, webhook_secret: str | None, api_base: str | None = None) -> None:
        self._http = stripe.HTTPXClient(timeout=30)
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base.rstrip("/")} if api_base else None,
            http_client=self._http,
            max_network_retries=2,
        )
        self._webhook_secret = webhook_secret

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def create_customer(self, *, tenant_id: str, idempotency_key: str) -> str:
        """A customer for the tenant; the same key answers the same customer."""
        customer = await self._call(
            self._client.v1.customers.create_async(
                params={"description": f"wopr tenant {tenant_id}", "metadata": {"tenant_id": tenant_id}},
                options={"idempotency_key": idempotency_key},
            )
        )
        return str(customer.id)

    async def create_payment_intent(
        self, *, customer: str, amount_cents: int, currency: str, metadata: dict[str, str], idempotency_key: str
    ) -> PaymentIntent:
        intent = await self._call(
            self._client.v1.payment_intents.create_async(
                params={
                    "amount": amount_cents,
                    "currency": currency,
                    "customer": customer,
                    "metadata": metadata,
                },
                options={"idempotency_key": idempotency_key},
            )
        )
        return PaymentIntent(str(intent.id), str(intent.client_secret), int(intent.amount), str(intent.status))

    async def payment_intent(self, intent_id: str) -> PaymentIntent:
        intent = await self._call(self._client.v1.payment_intents.retrieve_async(intent_id))
        return PaymentIntent(str(intent.id), str(intent.client_secret), int(intent.amount), str(intent.status))

    async def create_checkout_session(
        self,
        *,
        customer: str,
        amount_cents: int,
        currency: str,
        product: str,
        reference: str,
        metadata: dict[str, str],
        success_url: str,
        cancel_url: str,
        idempotency_key: str,
    ) -> CheckoutSession:
        """A hosted payment page for one line of `amount_cents` (`reference`: ours for the buyer); the payment
        intent it makes carries `metadata` too, so either of Stripe's events about the payment names the tenant."""
        session = await self._call(
            self._client.v1.checkout.sessions.create_async(
                params={
                    "mode": "payment",
                    "customer": customer,
                    "client_reference_id": reference,
                    "line_items": [
                        {
                            "price_data": {
                                "currency": currency,
                                "unit_amount": amount_cents,
                                "product_data": {"name": product},
                            },
                            "quantity": 1,
                        }
                    ],
                    "metadata": metadata,
                    "payment_intent_data": {"metadata": metadata},
                    "success_url": success_url,
                    "cancel_url": cancel_url,
                },
                options={"idempotency_key": idempotency_key},
            )
        )
        return _checkout_session(session)

    async def checkout_session(self, session_id: str) -> CheckoutSession:
        return _checkout_session(await self._call(self._client.v1.checkout.sessions.retrieve_async(session_id)))

    async def refund(self, *, payment_intent: str, amount_cents: int, idempotency_key: str) -> Refund:
        refund = await self._call(
            self._client.v1.refunds.create_async(
                params={"payment_intent": payment_intent, "amount": amount_cents},
                options={"idempotency_key": idempotency_key},
            )
        )
        return Refund(str(refund.id), int(refund.amount), str(refund.status))

    def verify(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event a webhook carries, once its signature is Stripe's and recent; BadSignature otherwise."""
        if self._webhook_secret is None:
            raise PaymentsUnavailable("webhooks cannot be verified: STRIPE_WEBHOOK_SECRET is not set")
        if not signature:
            raise BadSignature("the Stripe-Signature header is missing")
        try:
            stripe.WebhookSignature.verify_header(
                payload.decode("utf-8", "replace"), signature, self._webhook_secret, SIGNATURE_TOLERANCE
            )
        except stripe.SignatureVerificationError as err:
            raise BadSignature(f"the webhook's signature does not verify: {err.user_message or err}") from None
        try:
            event = json.loads(payload)
        except ValueError:
            raise ValidationFailed("the webhook's body is not JSON") from None
        if (
            not isinstance(event, dict)
            or not isinstance(event.get("id"), str)
            or not isinstance(event.get("type"), str)
        ):
            raise ValidationFailed("the webhook's body is not a Stripe event")
        return event

    @staticmethod
    async def _call(call: Any) -> Any:
        try:
            return await call
        except stripe.APIConnectionError as err:
            raise PaymentsUnavailable("Stripe cannot be reached", details={"reason": str(err)[:200]}) from err
        except (stripe.AuthenticationError, stripe.PermissionError) as err:
            raise PaymentsUnavailable("Stripe refused the platform's key") from err
        except stripe.RateLimitError as err:
            raise PaymentsUnavailable("Stripe is rate limiting the platform") from err
        except stripe.StripeError as err:
            message = err.user_message or "Stripe refused the request"
            raise PaymentFailed(message, details={"stripeCode": err.code} if err.code else None) from err


def _checkout_session(session: Any) -> CheckoutSession:
    return CheckoutSession(
        id=str(session.id),
        url=str(session.url) if session.url else None,
        status=str(session.status),
        payment_status=str(session.payment_status),
        amount_total=int(session.amount_total or 0),
        expires_at=int(session.expires_at),
    )
