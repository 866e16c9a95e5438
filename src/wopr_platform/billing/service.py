"""Credits: the balance and history of a tenant, what the platform's operator grants or corrects, buying credits
through Stripe and giving a purchase back, and the payment gate the fleet asks before a bot may run."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from wopr_platform.billing.caps import SpendingCaps
from wopr_platform.billing.ledger import (
    MICROS_PER_CENT,
    PLATFORM_CORRECTIONS,
    PLATFORM_GRANTS,
    PLATFORM_STRIPE,
    EntryKind,
    Ledger,
    Posted,
    Posting,
)
from wopr_platform.billing.repository import (
    CheckoutRepository,
    CheckoutSessionRepository,
    CustomerRepository,
    LedgerRepository,
    StandingRepository,
)
from wopr_platform.billing.schemas import (
    Balance,
    BotUsage,
    Checkout,
    DayUsage,
    HostedCheckout,
    LedgerCheck,
    Mismatch,
    PlanList,
    PlanOut,
    RefundOut,
    TenantPlan,
    Transaction,
    TransactionPage,
    UsageSummary,
)
from wopr_platform.billing.standing import standing_of
from wopr_platform.core.errors import (
    Conflict,
    InsufficientCredits,
    NotFound,
    NotInPlan,
    PaymentsUnavailable,
    ValidationFailed,
)
from wopr_platform.core.plans import Plan
from wopr_platform.core.settings import Settings
from wopr_platform.db.models import LedgerEntry
from wopr_platform.db.unit import Database
from wopr_platform.fleet.quotas.service import Quotas
from wopr_platform.fleet.schemas import QuotaOverrides

if TYPE_CHECKING:
    from wopr_platform.payments.stripe_api import StripeApi

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
MAX_PAGE = 200
CREDITS_PRODUCT = "WOPR platform credits"  # what the buyer sees on Stripe's payment page


def transaction(entry: LedgerEntry) -> Transaction:
    return Transaction(
        id=entry.id,
        kind=entry.kind,  # one of EntryKind, as stored
        amount=entry.amount,
        memo=entry.memo,
        actor=entry.actor,
        reference=entry.reference,
        created_at=entry.created_at,
    )


def _cursor(entry: LedgerEntry) -> str:
    raw = f"{entry.created_at.isoformat()}|{entry.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _parse_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, entry_id = raw.split("|", 1)
        parsed = datetime.fromisoformat(at)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("not a transactions cursor", details={"field": "after"}) from None
    if parsed.tzinfo is None or len(entry_id) > 36:
        raise ValidationFailed("not a transactions cursor", details={"field": "after"})
    return parsed.astimezone(UTC), entry_id


class BillingService:
    """A tenant's credits, and the gate in front of running a bot."""

    def __init__(
        self,
        *,
        db: Database,
        settings: Settings,
        stripe: StripeApi | None,
        clock: Clock,
        caps: SpendingCaps,
        quotas: Quotas,
    ) -> None:
        self.caps = caps
        self._quotas = quotas
        self._plans = settings.billing_plans
        self._db = db
        self._settings = settings
        self._stripe = stripe
        self._now = clock

    @property
    def enabled(self) -> bool:
        return self._settings.billing_enabled

    # reads --------------------------------------------------------------------------------------------------

    async def balance(self, tenant_id: str) -> Balance:
        async with self._db.read() as session:
            balance = await Ledger(session).balance(tenant_id)
            standing = await StandingRepository(session).get(tenant_id)
        return Balance(
            tenant_id=tenant_id,
            balance=balance,
            currency=self._settings.billing_currency,
            minimum=self._settings.billing_min_balance,
            buy_url=self._settings.buy_url,
            standing=standing_of(standing, self._settings),
        )

    async def platform_balances(self) -> dict[str, int]:
        """The balances of the platform's own ledger accounts (revenue, Stripe, grants, corrections)."""
        async with self._db.read() as session:
            return await LedgerRepository(session).platform_balances()

    async def transactions(self, tenant_id: str, *, after: str | None, limit: int) -> TransactionPage:
        """The tenant's movements, newest first, a page at a time."""
        before = _parse_cursor(after) if after else None
        limit = max(1, min(limit, MAX_PAGE))
        async with self._db.read() as session:
            entries = await LedgerRepository(session).entries(tenant_id, before=before, limit=limit + 1)
        page = list(entries[:limit])
        return TransactionPage(
            transactions=[transaction(entry) for entry in page],
            next=_cursor(page[-1]) if len(entries) > limit else None,
        )

    async def usage(self, tenant_id: str, days: int) -> UsageSummary:
        """What the tenant's bots cost over the last `days` UTC days (today included), by bot and by day."""
        today = self._now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        since = today - timedelta(days=days - 1)
        async with self._db.read() as session:
            by_bot, by_day = await LedgerRepository(session).usage(tenant_id, since)
        return UsageSummary(
            tenant_id=tenant_id,
            since=since,
            total=sum(amount for _, amount in by_bot),
            by_bot=[BotUsage(bot_id=bot, amount=amount) for bot, amount in by_bot],
            by_day=[DayUsage(day=day, amount=amount) for day, amount in by_day],
        )

    async def check(self) -> LedgerCheck:
        """Prove the ledger: every balance is the sum of its lines, every entry's lines sum to zero."""
        async with self._db.read() as session:
            mismatches = await Ledger(session).check()
            accounts, entries, lines = await LedgerRepository(session).counts()
        if mismatches:
            log.error("the ledger does not balance", extra={"mismatches": len(mismatches)})
        return LedgerCheck(
            ok=not mismatches,
            accounts=accounts,
            entries=entries,
            lines=lines,
            mismatches=[Mismatch(kind=m.kind, id=m.id, recorded=m.recorded, computed=m.computed) for m in mismatches],
        )

    # the platform's operator ---------------------------------------------------------------------------------

    async def grant(self, tenant_id: str, amount: int, memo: str, *, key: str, actor: str) -> tuple[Transaction, bool]:
        """Give the tenant credits; the same idempotency key gives them once. (transaction, newly posted)"""
        return await self._post_keyed(
            Posting(f"grant:{tenant_id}:{key}", "grant", tenant_id, amount, PLATFORM_GRANTS, actor, memo)
        )

    async def correct(
        self, tenant_id: str, amount: int, memo: str, *, key: str, actor: str
    ) -> tuple[Transaction, bool]:
        """Add to (or take from) the tenant's credits to correct a mistake; once per idempotency key."""
        return await self._post_keyed(
            Posting(f"correction:{tenant_id}:{key}", "correction", tenant_id, amount, PLATFORM_CORRECTIONS, actor, memo)
        )

    async def _post_keyed(self, posting: Posting) -> tuple[Transaction, bool]:
        async with self._db.unit() as session:
            posted = await Ledger(session).post(posting, self._now())
        _same_request(posted, posting)
        if posted.created:
            log.info(
                "credits moved",
                extra={"tenant": posting.tenant_id, "kind": posting.kind, "amount": posting.amount},
            )
        return transaction(posted.entry), posted.created

    # Stripe ---------------------------------------------------------------------------------------------------

    def _payments(self) -> StripeApi:
        if not self.enabled:
            raise PaymentsUnavailable("billing is off (BILLING_ENABLED=false)")
        if self._stripe is None:
            raise PaymentsUnavailable("payments are not configured (STRIPE_SECRET_KEY is not set)")
        return self._stripe

    async def customer(self, tenant_id: str) -> str:
        """The tenant's Stripe customer, made on first use (once, however many requests race to make it)."""
        async with self._db.read() as session:
            known = await CustomerRepository(session).get(tenant_id)
        if known is not None:
            return known
        made = await self._payments().create_customer(
            tenant_id=tenant_id, idempotency_key=f"{self._settings.platform_id}:customer:{tenant_id}"
        )
        async with self._db.unit() as session:
            return await CustomerRepository(session).add(tenant_id, made, self._now())

    def _purchase(self, amount_cents: int) -> StripeApi:
        """Stripe, for a purchase of `amount_cents` within the platform's bounds."""
        low, high = self._settings.billing_min_purchase_cents, self._settings.billing_max_purchase_cents
        if not low <= amount_cents <= high:
            raise ValidationFailed(
                f"a purchase is {low} to {high} cents", details={"field": "amountCents", "min": low, "max": high}
            )
        return self._payments()

    def _metadata(self, tenant_id: str) -> dict[str, str]:
        return {"tenant_id": tenant_id, "platform_id": self._settings.platform_id}

    async def checkout(self, tenant_id: str, amount_cents: int, *, key: str) -> Checkout:
        """Start buying credits: a payment intent the browser confirms with Stripe.js; the credits arrive with
        Stripe's `payment_intent.succeeded` webhook. The same idempotency key answers the same payment intent."""
        stripe = self._purchase(amount_cents)
        async with self._db.read() as session:
            known = await CheckoutRepository(session).get(tenant_id, key)
        if known is None:
            customer = await self.customer(tenant_id)
            intent = await stripe.create_payment_intent(
                customer=customer,
                amount_cents=amount_cents,
                currency=self._settings.billing_currency,
                metadata=self._metadata(tenant_id),
                idempotency_key=f"{self._settings.platform_id}:checkout:{tenant_id}:{key}",
            )
            async with self._db.unit() as session:
                known = await CheckoutRepository(session).add(tenant_id, key, intent.id, amount_cents, self._now())
        _same_amount(known.amount_cents, amount_cents)
        intent = await stripe.payment_intent(known.payment_intent_id)
        log.info("checkout started", extra={"tenant": tenant_id, "payment_intent": intent.id, "cents": amount_cents})
        return Checkout(
            payment_intent_id=intent.id,
            client_secret=intent.client_secret,
            amount_cents=amount_cents,
            credits=amount_cents * MICROS_PER_CENT,
            currency=self._settings.billing_currency,
        )

    async def hosted_checkout(self, tenant_id: str, amount_cents: int, *, key: str) -> HostedCheckout:
        """Start buying credits on Stripe's own payment page: a Checkout session the buyer is sent to, who comes
        back to the buy page after. The credits arrive with Stripe's `checkout.session.completed` webhook (or the
        `payment_intent.succeeded` of the same payment: whichever comes first credits, the other finds the payment
        posted). The same idempotency key answers the same session."""
        stripe = self._purchase(amount_cents)
        async with self._db.read() as session:
            known = await CheckoutSessionRepository(session).get(tenant_id, key)
        if known is None:
            customer = await self.customer(tenant_id)
            made = await stripe.create_checkout_session(
                customer=customer,
                amount_cents=amount_cents,
                currency=self._settings.billing_currency,
                product=CREDITS_PRODUCT,
                reference=tenant_id,
                metadata=self._metadata(tenant_id),
                success_url=self._settings.checkout_return_url("paid"),
                cancel_url=self._settings.checkout_return_url("canceled"),
                idempotency_key=f"{self._settings.platform_id}:checkout-session:{tenant_id}:{key}",
            )
            async with self._db.unit() as session:
                known = await CheckoutSessionRepository(session).add(tenant_id, key, made.id, amount_cents, self._now())
        _same_amount(known.amount_cents, amount_cents)
        hosted = await stripe.checkout_session(known.session_id)
        log.info("hosted checkout started", extra={"tenant": tenant_id, "session": hosted.id, "cents": amount_cents})
        return HostedCheckout(
            session_id=hosted.id,
            url=hosted.url,
            status=hosted.status,
            amount_cents=amount_cents,
            credits=amount_cents * MICROS_PER_CENT,
            currency=self._settings.billing_currency,
            expires_at=datetime.fromtimestamp(hosted.expires_at, UTC),
        )

    async def refund(
        self, tenant_id: str, payment_intent_id: str, amount_cents: int | None, *, key: str, actor: str
    ) -> RefundOut:
        """Give (part of) a tenant's purchase back to its card; its credits leave the balance at once (the
        refund's webhook, when it comes, finds them gone and changes nothing)."""
        async with self._db.read() as session:
            purchase = await LedgerRepository(session).entry(f"stripe:payment:{payment_intent_id}")
        if purchase is None or purchase.tenant_id != tenant_id:
            raise NotFound("no purchase of this tenant has that payment intent", details={"field": "paymentIntentId"})
        cents = amount_cents if amount_cents is not None else purchase.amount // MICROS_PER_CENT
        if cents * MICROS_PER_CENT > purchase.amount:
            raise ValidationFailed("a refund cannot exceed the purchase", details={"field": "amountCents"})
        refund = await self._payments().refund(
            payment_intent=payment_intent_id,
            amount_cents=cents,
            idempotency_key=f"{self._settings.platform_id}:refund:{payment_intent_id}:{key}",
        )
        posting = refund_posting(
            tenant_id, refund.id, refund.amount, actor=actor, memo=f"refund of {payment_intent_id}"
        )
        async with self._db.unit() as session:
            posted = await Ledger(session).post(posting, self._now())
        return RefundOut(
            refund_id=refund.id, amount_cents=refund.amount, status=refund.status, transaction=transaction(posted.entry)
        )

    # the payment gate ----------------------------------------------------------------------------------------

    async def admit(
        self, tenant_id: str, action: str, *, memory_mb: int | None = None, channel: str | None = None
    ) -> None:
        """403 not_in_plan when the tenant's plan does not include the bot's tier or channel; for a create or a
        start, 402 when its credits are below the minimum a bot needs, or its spending reached one of its caps.
        The balance and the plan are one query."""
        if not self.enabled:
            return
        async with self._db.read() as session:
            balance, plan_name = await LedgerRepository(session).balance_and_plan(tenant_id)
        plan = self._plan(plan_name)
        if plan is not None:
            self._entitled(plan, memory_mb, channel)
        if action == "change":
            return
        required = self._settings.billing_min_balance
        if balance < required:
            raise InsufficientCredits(
                f"the tenant's credits do not cover running a bot ({action})",
                details={"balance": balance, "required": required, "buyUrl": self._settings.buy_url},
            )
        await self.caps.admit(tenant_id)

    def _plan(self, name: str | None) -> Plan | None:
        name = name or self._settings.billing_default_plan
        return self._plans.get(name) if name is not None else None

    def _entitled(self, plan: Plan, memory_mb: int | None, channel: str | None) -> None:
        if memory_mb is not None and plan.tiers is not None:
            tier = self._settings.billing_runtime_prices.tier(memory_mb).name
            if tier not in plan.tiers:
                raise NotInPlan(
                    f"the {plan.name} plan does not include the {tier} tier",
                    details={"plan": plan.name, "field": "resources", "tier": tier, "allowed": sorted(plan.tiers)},
                )
        if channel is not None and plan.channels is not None and channel not in plan.channels:
            raise NotInPlan(
                f"the {plan.name} plan does not include the {channel} channel",
                details={"plan": plan.name, "field": "releaseChannel", "allowed": sorted(plan.channels)},
            )

    # plans ----------------------------------------------------------------------------------------------------

    def plans(self) -> PlanList:
        return PlanList(
            plans=[_plan_out(plan) for _, plan in sorted(self._plans.items())],
            default=self._settings.billing_default_plan,
        )

    async def plan(self, tenant_id: str) -> TenantPlan:
        async with self._db.read() as session:
            row = await StandingRepository(session).get(tenant_id)
        plan = self._plan(row.plan if row is not None else None)
        return TenantPlan(tenant_id=tenant_id, plan=_plan_out(plan) if plan is not None else None)

    async def set_plan(self, tenant_id: str, name: str | None) -> TenantPlan:
        """Put the tenant on a plan (None: the default plan): its quotas become the plan's."""
        if name is not None and name not in self._plans:
            raise ValidationFailed("no such plan", details={"field": "plan", "plans": sorted(self._plans)})
        plan = self._plan(name)
        overrides = QuotaOverrides.model_validate(
            {
                "maxBots": plan.max_bots if plan is not None else None,
                "maxMemoryMb": plan.max_memory_mb if plan is not None else None,
                "maxCpus": plan.max_cpus if plan is not None else None,
            }
        )
        async with self._db.unit() as session:
            (await StandingRepository(session).ensure(tenant_id)).plan = name
        await self._quotas.set_overrides(tenant_id, overrides)
        log.info("tenant plan set", extra={"tenant": tenant_id, "plan": name})
        return await self.plan(tenant_id)


def _plan_out(plan: Plan) -> PlanOut:
    return PlanOut(
        name=plan.name,
        max_bots=plan.max_bots,
        max_memory_mb=plan.max_memory_mb,
        max_cpus=plan.max_cpus,
        tiers=sorted(plan.tiers) if plan.tiers is not None else None,
        channels=sorted(plan.channels) if plan.channels is not None else None,
    )


def refund_posting(tenant_id: str, refund_id: str, cents: int, *, actor: str, memo: str) -> Posting:
    return Posting(
        f"stripe:refund:{refund_id}", "refund", tenant_id, -cents * MICROS_PER_CENT, PLATFORM_STRIPE, actor, memo
    )


def _same_amount(known_cents: int, amount_cents: int) -> None:
    """A checkout's idempotency key, used again, must carry the amount it was first used for (409 otherwise)."""
    if known_cents != amount_cents:
        raise Conflict("the idempotency key was used for another amount", details={"field": "Idempotency-Key"})


def _same_request(posted: Posted, posting: Posting) -> None:
    """A replayed idempotency key must carry the request it was first used for (409 otherwise)."""
    entry = posted.entry
    kind: EntryKind = posting.kind
    if (entry.kind, entry.tenant_id, entry.amount, entry.memo) != (
        kind,
        posting.tenant_id,
        posting.amount,
        posting.memo,
    ):
        raise Conflict("the idempotency key was used for another request", details={"field": "Idempotency-Key"})
