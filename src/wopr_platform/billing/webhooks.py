"""Stripe's webhooks: each event verified, stored once in the inbox, then applied to the ledger.

Storing comes first and is its own transaction: once Stripe hears 200 the event is ours, and an event whose
applying fails (the database, a crash) stays in the inbox and is applied by the next round of the billing loop,
never lost. Applying is idempotent twice over: the inbox row is taken once, and each movement it posts has a
reference derived from Stripe's own object id (a payment intent, a refund, a dispute), so a replay, a duplicate
delivery or an event that arrives after another about the same money changes nothing twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from wopr_platform.billing.ledger import MICROS_PER_CENT, PLATFORM_STRIPE, Ledger, Posting
from wopr_platform.billing.repository import CustomerRepository, InboxRepository, LedgerRepository
from wopr_platform.billing.schemas import WebhookReceived
from wopr_platform.billing.service import refund_posting
from wopr_platform.core.errors import PaymentsUnavailable
from wopr_platform.core.faults import CrashPoints
from wopr_platform.db.unit import Database

if TYPE_CHECKING:
    from wopr_platform.payments.stripe_api import StripeApi

log = logging.getLogger(__name__)

PENDING_BATCH = 100


class NotApplicable(Exception):
    """An event that cannot be applied as it is (a tenant nobody knows, another currency): kept, with the reason."""


class StripeWebhooks:
    """Receives Stripe's events and applies them to the ledger."""

    def __init__(
        self,
        *,
        db: Database,
        stripe: StripeApi | None,
        currency: str,
        clock: Callable[[], datetime],
        crash: CrashPoints,
    ) -> None:
        self._db = db
        self._stripe = stripe
        self._currency = currency
        self._now = clock
        self._crash = crash

    async def receive(self, payload: bytes, signature: str | None) -> WebhookReceived:
        """Verify and store an event, then try to apply it; a failure to apply is retried later, not answered."""
        if self._stripe is None:
            raise PaymentsUnavailable("payments are not configured (STRIPE_SECRET_KEY is not set)")
        event = self._stripe.verify(payload, signature)
        async with self._db.unit() as session:
            new = await InboxRepository(session).add(
                event["id"][:255], str(event["type"])[:100], payload.decode("utf-8", "replace"), self._now()
            )
        if not new:
            log.info("a Stripe event was delivered again", extra={"event": event["id"], "type": event["type"]})
        applied = await self.apply(event["id"])
        return WebhookReceived(duplicate=not new, applied=applied)

    async def apply_pending(self) -> int:
        """Apply what the inbox still holds (a failure earlier, a crash); returns how many were applied."""
        async with self._db.read() as session:
            pending = await InboxRepository(session).pending(PENDING_BATCH)
        applied = 0
        for event_id in pending:
            applied += await self.apply(event_id)
        return applied

    async def apply(self, event_id: str) -> bool:
        """Apply one stored event (once); True when it is applied now or was before."""
        try:
            async with self._db.unit() as session:
                row = await InboxRepository(session).claim(event_id)
                if row is None:
                    return True  # applied already (by another delivery, replica or round)
                event = json.loads(row.payload)
                self._crash.reached("billing.webhook.before_ledger")
                await self._apply(session, event)
                row.applied_at = self._now()
        except NotApplicable as err:
            await self._failed(event_id, str(err))
            log.warning("a Stripe event cannot be applied", extra={"event": event_id, "reason": str(err)})
            return False
        except Exception as err:  # the database, a bug: kept in the inbox, retried by the billing loop
            await self._failed(event_id, f"{type(err).__name__}: {err}")
            log.exception("applying a Stripe event failed; it stays in the inbox", extra={"event": event_id})
            return False
        return True

    async def _failed(self, event_id: str, reason: str) -> None:
        try:
            async with self._db.unit() as session:
                await InboxRepository(session).failed(event_id, reason)
        except Exception:
            log.exception("noting a failed Stripe event failed too", extra={"event": event_id})

    async def _apply(self, session: Any, event: dict[str, Any]) -> None:
        kind = event.get("type")
        obj = (event.get("data") or {}).get("object") or {}
        if not isinstance(obj, dict):
            raise NotApplicable("the event carries no object")
        ledger = Ledger(session)
        at = self._now()
        if kind == "payment_intent.succeeded":
            tenant = await self._tenant_of(session, obj, "payment intent")
            self._check_currency(obj)
            await ledger.post(_purchase(tenant, obj["id"], _cents(obj.get("amount_received") or obj.get("amount"))), at)
        elif kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
            # a hosted Checkout paid (a card at once; a bank debit later, with the second event); the payment's
            # own `payment_intent.succeeded` posts the same reference, so whichever comes first credits
            if obj.get("mode") != "payment" or obj.get("payment_status") != "paid":
                return
            intent = obj.get("payment_intent")
            if not isinstance(intent, str):
                raise NotApplicable("the paid checkout session names no payment intent")
            tenant = await self._tenant_of(session, obj, "checkout session")
            self._check_currency(obj)
            await ledger.post(_purchase(tenant, intent, _cents(obj.get("amount_total"))), at)
        elif kind in ("refund.created", "refund.updated", "charge.refund.updated"):
            await self._refund(session, ledger, obj, at)
        elif kind == "charge.refunded":
            for refund in (obj.get("refunds") or {}).get("data") or []:
                if isinstance(refund, dict):
                    await self._refund(session, ledger, {**refund, "payment_intent": obj.get("payment_intent")}, at)
        elif kind == "charge.dispute.closed":
            if obj.get("status") != "lost":
                return
            tenant = await self._tenant_of_purchase(session, obj.get("payment_intent"))
            self._check_currency(obj)
            cents = _cents(obj.get("amount"))
            await ledger.post(
                Posting(
                    f"stripe:dispute:{obj['id']}",
                    "dispute",
                    tenant,
                    -cents * MICROS_PER_CENT,
                    PLATFORM_STRIPE,
                    "stripe",
                    f"dispute {obj['id']} lost",
                ),
                at,
            )
        # any other type is kept in the inbox as a record and needs nothing

    async def _refund(self, session: Any, ledger: Ledger, refund: dict[str, Any], at: datetime) -> None:
        """A refund takes its credits out once; one that failed afterwards (or was canceled) gives them back."""
        refund_id = refund.get("id")
        if not isinstance(refund_id, str):
            raise NotApplicable("the refund has no id")
        tenant = await self._tenant_of_purchase(session, refund.get("payment_intent"))
        cents = _cents(refund.get("amount"))
        status = refund.get("status")
        if status in ("succeeded", "pending", "requires_action"):
            await ledger.post(refund_posting(tenant, refund_id, cents, actor="stripe", memo=f"refund {refund_id}"), at)
        elif status in ("failed", "canceled"):
            taken = await LedgerRepository(session).entry(f"stripe:refund:{refund_id}")
            if taken is not None:
                await ledger.post(
                    Posting(
                        f"stripe:refund-reversed:{refund_id}",
                        "refund",
                        tenant,
                        -taken.amount,
                        PLATFORM_STRIPE,
                        "stripe",
                        f"refund {refund_id} {status}",
                    ),
                    at,
                )

    async def _tenant_of(self, session: Any, obj: dict[str, Any], what: str) -> str:
        """The tenant a payment intent or checkout session is for: its metadata, which must agree with the customer
        it was made for."""
        tenant = (obj.get("metadata") or {}).get("tenant_id")
        customer = obj.get("customer")
        owner = await CustomerRepository(session).tenant_of(customer) if isinstance(customer, str) else None
        if not isinstance(tenant, str) or owner is None or owner != tenant:
            raise NotApplicable(f"the {what} is not one of a known tenant's (metadata and customer disagree)")
        return tenant

    async def _tenant_of_purchase(self, session: Any, intent_id: object) -> str:
        if not isinstance(intent_id, str):
            raise NotApplicable("the object names no payment intent")
        purchase = await LedgerRepository(session).entry(f"stripe:payment:{intent_id}")
        if purchase is None:
            # not applied yet (events can come in any order): kept in the inbox, applied by a later round
            raise NotApplicable(f"the purchase {intent_id} is not in the ledger (yet)")
        return purchase.tenant_id

    def _check_currency(self, obj: dict[str, Any]) -> None:
        if str(obj.get("currency", self._currency)).lower() != self._currency:
            raise NotApplicable(f"the currency is {obj.get('currency')}, not {self._currency}")


def _purchase(tenant: str, intent: str, cents: int) -> Posting:
    """Credits bought: referenced by the payment intent, whichever of Stripe's events about it tells of it."""
    reference, memo = f"stripe:payment:{intent}", f"payment {intent}"
    return Posting(reference, "purchase", tenant, cents * MICROS_PER_CENT, PLATFORM_STRIPE, "stripe", memo)


def _cents(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or value > 10**10:
        raise NotApplicable(f"the amount {value!r} is not a positive number of cents")
    return value
