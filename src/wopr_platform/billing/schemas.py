"""What the billing routes take and answer. Amounts are integers in micro-dollars (1 USD = 1,000,000), except
where a name says cents (what Stripe charges a card)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic.alias_generators import to_camel

MAX_AMOUNT = 10**12  # micro-dollars: a million USD in one movement
Memo = Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00-\x08\x0b-\x1f\x7f]*$")]
StripeId = Annotated[str, StringConstraints(min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_]+$")]


class _In(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, strict=True, extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class GrantIn(_In):
    """Credits the platform gives a tenant."""

    amount: Annotated[int, Field(gt=0, le=MAX_AMOUNT)]
    memo: Memo = ""


class CorrectionIn(_In):
    """A correction of a tenant's credits by the platform's operator: positive adds, negative takes away."""

    amount: Annotated[int, Field(ge=-MAX_AMOUNT, le=MAX_AMOUNT)]
    memo: Annotated[Memo, StringConstraints(min_length=1)]

    @field_validator("amount")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("a correction of 0 changes nothing")
        return value


class CheckoutIn(_In):
    """Buy credits: the amount the card is charged, in cents (credited as micro-dollars: 1 cent = 10,000)."""

    amount_cents: Annotated[int, Field(gt=0, le=10**8)]


class RefundIn(_In):
    """Give a purchase back to the card it came from (all of it, or `amountCents` of it); the credits go with it."""

    payment_intent_id: StripeId
    amount_cents: Annotated[int, Field(gt=0, le=10**8)] | None = None


class Standing(_Out):
    """Where a tenant stands: `active`; `grace` (out of credits, suspended at `suspendsAt` unless topped up);
    `suspended` (its bots stopped, data kept; removed at `removalAt` unless topped up); `removed`."""

    state: Literal["active", "grace", "suspended", "removed"]
    empty_since: datetime | None = None
    suspends_at: datetime | None = None
    suspended_at: datetime | None = None
    removal_at: datetime | None = None


class PlanIn(_In):
    """A tenant's plan: one of BILLING_PLANS, or null for the platform's default plan."""

    plan: Annotated[str, StringConstraints(max_length=50, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] | None


class PlanOut(_Out):
    name: str
    max_bots: int | None = Field(description="null: the platform's default quota")
    max_memory_mb: int | None
    max_cpus: float | None
    tiers: list[str] | None = Field(description="the resource tiers its bots may use; null: every tier")
    channels: list[str] | None = Field(description="the release channels its bots may follow; null: every one")


class PlanList(_Out):
    plans: list[PlanOut]
    default: str | None = Field(description="the plan of a tenant given none; null: no restrictions")


class TenantPlan(_Out):
    tenant_id: str
    plan: PlanOut | None = Field(description="null: no plan, so no restrictions beyond the quotas")


class Balance(_Out):
    tenant_id: str
    balance: int
    currency: str
    minimum: int = Field(description="the balance that creating or starting a bot needs")
    buy_url: str
    standing: Standing


class Transaction(_Out):
    id: str
    kind: Literal["purchase", "refund", "dispute", "runtime", "usage", "storage", "grant", "correction"]
    amount: int = Field(description="what it did to the balance: positive added credits, negative spent them")
    memo: str
    actor: str
    reference: str
    created_at: datetime


class TransactionPage(_Out):
    transactions: list[Transaction]
    next: str | None = Field(description="the cursor of the next (older) page; null on the last one")


class BotUsage(_Out):
    bot_id: str
    amount: int = Field(description="what the bot's charges came to, in micro-dollars")


class DayUsage(_Out):
    day: str = Field(description="a UTC day, YYYY-MM-DD")
    amount: int


class UsageSummary(_Out):
    tenant_id: str
    since: datetime = Field(description="the start of the first hour counted")
    total: int
    by_bot: list[BotUsage]
    by_day: list[DayUsage]


class LimitsIn(_In):
    """A tenant's spending caps, in micro-dollars; null (or left out) is no cap."""

    daily_cap: Annotated[int, Field(gt=0, le=MAX_AMOUNT)] | None = None
    monthly_cap: Annotated[int, Field(gt=0, le=MAX_AMOUNT)] | None = None


class Notice(_Out):
    scope: Literal["daily", "monthly"]
    period: str = Field(description="the day (YYYY-MM-DD) or month (YYYY-MM), UTC")
    percent: Literal[80, 100]
    spent: int
    cap: int
    created_at: datetime


class SpendingLimits(_Out):
    tenant_id: str
    daily_cap: int | None
    monthly_cap: int | None
    spent_today: int = Field(description="charges of the current UTC day")
    spent_this_month: int = Field(description="charges of the current UTC month")
    notices: list[Notice] = Field(description="caps reached 80% or 100%, newest first")


class Checkout(_Out):
    payment_intent_id: str
    client_secret: str = Field(description="what Stripe.js confirms the payment with, in the browser")
    amount_cents: int
    credits: int = Field(description="what the payment adds to the balance, in micro-dollars")
    currency: str


class HostedCheckout(_Out):
    session_id: str
    url: str | None = Field(description="Stripe's page where the buyer pays; null once the session is over")
    status: str = Field(description="open, complete or expired")
    amount_cents: int
    credits: int = Field(description="what the payment adds to the balance, in micro-dollars")
    currency: str
    expires_at: datetime


class RefundOut(_Out):
    refund_id: str
    amount_cents: int
    status: str
    transaction: Transaction


class Mismatch(_Out):
    kind: Literal["account", "entry"]
    id: str
    recorded: int
    computed: int


class LedgerCheck(_Out):
    ok: bool
    accounts: int
    entries: int
    lines: int
    mismatches: list[Mismatch]


class WebhookReceived(_Out):
    received: bool = True
    duplicate: bool = Field(description="the event was received before (nothing done again)")
    applied: bool = Field(description="it is applied to the ledger (false: kept in the inbox and retried)")
