"""HTTP routes of billing: a tenant's credits and buying them, Stripe's webhook, and what the platform's operator
does with a tenant's credits (grants, corrections, refunds, the ledger's proof).

Every call that moves money or starts a payment carries an `Idempotency-Key` header: the same key repeats the
first answer's effect, never a second movement.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response

from wopr_platform.api.auth import Operator, PlatformAdmin
from wopr_platform.api.deps import Billing, Webhooks
from wopr_platform.api.routes.tenants import TenantId
from wopr_platform.billing.schemas import (
    Balance,
    Checkout,
    CheckoutIn,
    CorrectionIn,
    GrantIn,
    HostedCheckout,
    LedgerCheck,
    LimitsIn,
    PlanIn,
    PlanList,
    RefundIn,
    RefundOut,
    SpendingLimits,
    TenantPlan,
    Transaction,
    TransactionPage,
    UsageSummary,
    WebhookReceived,
)
from wopr_platform.core.errors import ValidationFailed

router = APIRouter(tags=["billing"])
KEY_RE = re.compile(r"^[A-Za-z0-9_.:-]{8,100}$")


async def _idempotency_key(
    key: Annotated[str | None, Header(alias="Idempotency-Key", description="8-100 of A-Z a-z 0-9 _ . : -")] = None,
) -> str:
    if key is None or not KEY_RE.match(key):
        raise ValidationFailed(
            "calls that move money need an Idempotency-Key header (8-100 of A-Z a-z 0-9 _ . : -)",
            details={"header": "Idempotency-Key"},
        )
    return key


IdempotencyKey = Annotated[str, Depends(_idempotency_key)]


def _posted(posted: tuple[Transaction, bool], response: Response) -> Transaction:
    """201 for a movement posted now, 200 for one its idempotency key posted before."""
    made, created = posted
    if not created:
        response.status_code = 200
    return made


# the caller's tenant -------------------------------------------------------------------------------------------


@router.get("/billing/balance", response_model=Balance)
async def balance(principal: Operator, billing: Billing) -> Balance:
    """The tenant's credits, in micro-dollars, and the least a bot needs to be created or started."""
    return await billing.balance(principal.tenant_id)


@router.get("/billing/transactions", response_model=TransactionPage)
async def transactions(
    principal: Operator,
    billing: Billing,
    after: Annotated[str | None, Query(max_length=200, description="the `next` of the page before")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> TransactionPage:
    """The tenant's movements of credits, newest first."""
    return await billing.transactions(principal.tenant_id, after=after, limit=limit)


@router.get("/billing/usage", response_model=UsageSummary)
async def usage(
    principal: Operator,
    billing: Billing,
    days: Annotated[int, Query(ge=1, le=366, description="UTC days back, today included")] = 30,
) -> UsageSummary:
    """What the tenant's bots cost, by bot and by day."""
    return await billing.usage(principal.tenant_id, days)


@router.get("/billing/limits", response_model=SpendingLimits)
async def limits(principal: Operator, billing: Billing) -> SpendingLimits:
    """The tenant's spending caps, what it spent today and this month, and the caps it reached 80% or 100% of."""
    return await billing.caps.limits(principal.tenant_id)


@router.put("/billing/limits", response_model=SpendingLimits)
async def set_limits(principal: Operator, body: LimitsIn, billing: Billing) -> SpendingLimits:
    """Set the tenant's daily and monthly spending caps (null: none); at a cap no bot is created or started."""
    return await billing.caps.set_limits(principal.tenant_id, body.daily_cap, body.monthly_cap)


@router.get("/billing/plans", response_model=PlanList)
async def plans(_principal: Operator, billing: Billing) -> PlanList:
    """The plans a tenant can be on, and the default one."""
    return billing.plans()


@router.get("/billing/plan", response_model=TenantPlan)
async def plan(principal: Operator, billing: Billing) -> TenantPlan:
    """The tenant's plan: its quotas, and the tiers and channels its bots may use."""
    return await billing.plan(principal.tenant_id)


@router.put("/tenants/{tenant_id}/plan", response_model=TenantPlan)
async def set_plan(_admin: PlatformAdmin, tenant_id: TenantId, body: PlanIn, billing: Billing) -> TenantPlan:
    """Put a tenant on a plan (null: the default); its quotas become the plan's."""
    return await billing.set_plan(tenant_id, body.plan)


@router.post("/billing/checkout", response_model=Checkout, status_code=201)
async def checkout(principal: Operator, body: CheckoutIn, key: IdempotencyKey, billing: Billing) -> Checkout:
    """Start buying credits: a Stripe payment intent to confirm in the browser; the credits arrive when Stripe
    reports the payment (its webhook)."""
    return await billing.checkout(principal.tenant_id, body.amount_cents, key=key)


@router.post("/billing/checkout/sessions", response_model=HostedCheckout, status_code=201)
async def hosted_checkout(
    principal: Operator, body: CheckoutIn, key: IdempotencyKey, billing: Billing
) -> HostedCheckout:
    """Start buying credits on Stripe's hosted payment page: send the buyer to `url`; Stripe brings them back to
    the buy page, and the credits arrive when Stripe reports the payment (its webhook)."""
    return await billing.hosted_checkout(principal.tenant_id, body.amount_cents, key=key)


@router.post("/billing/webhook", response_model=WebhookReceived)
async def webhook(
    request: Request,
    webhooks: Webhooks,
    signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> WebhookReceived:
    """Stripe's events: verified by their signature (no other credential), stored once, applied to the ledger."""
    return await webhooks.receive(await request.body(), signature)


# the platform's operator ---------------------------------------------------------------------------------------


@router.get("/tenants/{tenant_id}/credits", response_model=Balance)
async def tenant_balance(_admin: PlatformAdmin, tenant_id: TenantId, billing: Billing) -> Balance:
    """A tenant's credits."""
    return await billing.balance(tenant_id)


@router.post("/tenants/{tenant_id}/credits/grants", response_model=Transaction, status_code=201)
async def grant(
    admin: PlatformAdmin, tenant_id: TenantId, body: GrantIn, key: IdempotencyKey, billing: Billing, response: Response
) -> Transaction:
    """Give a tenant credits (201; 200 when the key was used before: nothing given again)."""
    return _posted(await billing.grant(tenant_id, body.amount, body.memo, key=key, actor=admin.subject), response)


@router.post("/tenants/{tenant_id}/credits/corrections", response_model=Transaction, status_code=201)
async def correct(
    admin: PlatformAdmin,
    tenant_id: TenantId,
    body: CorrectionIn,
    key: IdempotencyKey,
    billing: Billing,
    response: Response,
) -> Transaction:
    """Correct a tenant's credits up or down, with a memo saying why (201; 200 for a key used before)."""
    return _posted(await billing.correct(tenant_id, body.amount, body.memo, key=key, actor=admin.subject), response)


@router.post("/tenants/{tenant_id}/credits/refunds", response_model=RefundOut, status_code=201)
async def refund(
    admin: PlatformAdmin, tenant_id: TenantId, body: RefundIn, key: IdempotencyKey, billing: Billing
) -> RefundOut:
    """Give (part of) a tenant's purchase back to its card through Stripe; its credits leave the balance."""
    return await billing.refund(tenant_id, body.payment_intent_id, body.amount_cents, key=key, actor=admin.subject)


@router.get("/billing/ledger-check", response_model=LedgerCheck)
async def ledger_check(_admin: PlatformAdmin, billing: Billing) -> LedgerCheck:
    """Prove the ledger: every balance equals the sum of its lines, and every entry's lines sum to zero."""
    return await billing.check()
