"""All SQL of billing: ledger accounts, entries and lines, Stripe customers and the webhook inbox, bot runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Date, and_, case, cast, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.db.models import (
    BillingCheckout,
    BillingCheckoutSession,
    BillingCursor,
    BillingCustomer,
    BillingLimits,
    BillingNotice,
    BillingSpend,
    BillingTenant,
    BotRun,
    LedgerAccount,
    LedgerEntry,
    LedgerLine,
    StripeEvent,
)

# rows per multi-row INSERT: within SQLite's and asyncpg's limits on bound parameters (32,766 and 32,767)
CHUNK = 2000


def _upsert(session: AsyncSession) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT."""
    return postgres_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


@dataclass(frozen=True, slots=True)
class Mismatch:
    """An account whose balance is not the sum of its lines, or an entry whose lines do not sum to zero."""

    kind: str  # "account" or "entry"
    id: str
    recorded: int  # the account's balance (0 for an entry)
    computed: int  # the sum of its lines


class LedgerRepository:
    """The ledger's rows of one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def ensure_accounts(self, accounts: Mapping[str, str | None]) -> None:
        """Create the accounts (id → tenant) that do not exist yet; a concurrent create is no error."""
        upsert = _upsert(self._session)
        rows = [{"id": id_, "tenant_id": tenant, "balance": 0} for id_, tenant in accounts.items()]
        for start in range(0, len(rows), CHUNK):
            await self._session.execute(
                upsert(LedgerAccount).values(rows[start : start + CHUNK]).on_conflict_do_nothing(index_elements=["id"])
            )

    async def insert_entries(self, rows: Sequence[Mapping[str, Any]]) -> set[str]:
        """Insert entries; the references of those inserted (one already posted is left as it was)."""
        upsert = _upsert(self._session)
        inserted: set[str] = set()
        for start in range(0, len(rows), CHUNK):
            result = await self._session.execute(
                upsert(LedgerEntry)
                .values(list(rows[start : start + CHUNK]))
                .on_conflict_do_nothing(index_elements=["reference"])
                .returning(LedgerEntry.reference)
            )
            inserted.update(result.scalars().all())
        return inserted

    async def add_lines(self, lines: Iterable[tuple[str, str, int]]) -> None:
        """Lines as (entry id, account id, amount)."""
        rows = [{"entry_id": entry, "account_id": account, "amount": amount} for entry, account, amount in lines]
        if rows:
            await self._session.execute(insert(LedgerLine), rows)

    async def add_to_balances(self, deltas: Mapping[str, int]) -> None:
        """Add to each account's balance, in a stable order (two transactions lock accounts in the same order)."""
        for account in sorted(deltas):
            delta = deltas[account]
            if delta:
                await self._session.execute(
                    update(LedgerAccount)
                    .where(LedgerAccount.id == account)
                    .values(balance=LedgerAccount.balance + delta)
                    .execution_options(synchronize_session=False)
                )

    async def hold(self, account: str, amount: int) -> int | None:
        """Reserve `amount` of the account's balance if what is not yet reserved covers it: one guarded UPDATE of
        the account's row, so concurrent reservations never reserve more than the balance. What the account has
        reserved now, this included (None: not covered, nothing reserved). The row stays locked to the end of the
        transaction, so whatever the transaction checks next sees every earlier reservation of this tenant."""
        result = await self._session.execute(
            update(LedgerAccount)
            .where(LedgerAccount.id == account, LedgerAccount.balance - LedgerAccount.held >= amount)
            .values(held=LedgerAccount.held + amount)
            .returning(LedgerAccount.held)
            .execution_options(synchronize_session=False)
        )
        held = result.scalar_one_or_none()
        return None if held is None else int(held)

    async def release(self, account: str, amount: int) -> None:
        await self._session.execute(
            update(LedgerAccount)
            .where(LedgerAccount.id == account)
            .values(held=LedgerAccount.held - amount)
            .execution_options(synchronize_session=False)
        )

    async def balance_and_plan(self, tenant_id: str) -> tuple[int, str | None]:
        """The tenant's credits and its plan, in one query (what the gate needs on the request path)."""
        balance = select(LedgerAccount.balance).where(LedgerAccount.tenant_id == tenant_id).scalar_subquery()
        plan = select(BillingTenant.plan).where(BillingTenant.tenant_id == tenant_id).scalar_subquery()
        found, name = (await self._session.execute(select(balance, plan))).one()
        return int(found or 0), name

    async def entry(self, reference: str) -> LedgerEntry | None:
        result = await self._session.execute(select(LedgerEntry).where(LedgerEntry.reference == reference))
        return result.scalar_one_or_none()

    async def balance(self, account: str) -> int:
        result = await self._session.execute(select(LedgerAccount.balance).where(LedgerAccount.id == account))
        return int(result.scalar_one_or_none() or 0)

    async def platform_balances(self) -> dict[str, int]:
        """The balances of the platform's own accounts (a handful: no tenant's)."""
        result = await self._session.execute(
            select(LedgerAccount.id, LedgerAccount.balance).where(LedgerAccount.tenant_id.is_(None))
        )
        return {str(account): int(balance) for account, balance in result.all()}

    async def entries(
        self, tenant_id: str, *, before: tuple[datetime, str] | None, limit: int
    ) -> Sequence[LedgerEntry]:
        """The tenant's entries, newest first, after the cursor (the last one of the page before)."""
        query = select(LedgerEntry).where(LedgerEntry.tenant_id == tenant_id)
        if before is not None:
            at, id_ = before
            query = query.where(
                or_(LedgerEntry.created_at < at, and_(LedgerEntry.created_at == at, LedgerEntry.id < id_))
            )
        query = query.order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc()).limit(limit)
        return (await self._session.execute(query)).scalars().all()

    async def entry_by_id(self, tenant_id: str, entry_id: str) -> LedgerEntry | None:
        result = await self._session.execute(
            select(LedgerEntry).where(LedgerEntry.id == entry_id, LedgerEntry.tenant_id == tenant_id)
        )
        return result.scalar_one_or_none()

    async def usage(self, tenant_id: str, since: datetime) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """What the tenant spent on charges for periods from `since`: (by bot, by UTC day), positive amounts."""
        spent = func.sum(-LedgerEntry.amount)
        where = (
            LedgerEntry.tenant_id == tenant_id,
            LedgerEntry.kind.in_(("runtime", "usage")),
            LedgerEntry.period >= since,
        )
        by_bot = await self._session.execute(
            select(LedgerEntry.subject, spent).where(*where).group_by(LedgerEntry.subject).order_by(LedgerEntry.subject)
        )
        if self._session.get_bind().dialect.name == "sqlite":
            day: Any = func.date(LedgerEntry.period)  # stored as UTC text
        else:
            day = cast(func.timezone("UTC", LedgerEntry.period), Date)
        by_day = await self._session.execute(select(day, spent).where(*where).group_by(day).order_by(day))
        return (
            [(str(subject or ""), int(total)) for subject, total in by_bot.all()],
            [(str(when), int(total)) for when, total in by_day.all()],
        )

    async def mismatches(self, limit: int = 100) -> list[Mismatch]:
        """Accounts whose balance differs from the sum of their lines, and entries whose lines do not sum to 0."""
        sums = (
            select(LedgerLine.account_id.label("account"), func.sum(LedgerLine.amount).label("total"))
            .group_by(LedgerLine.account_id)
            .subquery()
        )
        accounts = await self._session.execute(
            select(LedgerAccount.id, LedgerAccount.balance, func.coalesce(sums.c.total, 0))
            .outerjoin(sums, sums.c.account == LedgerAccount.id)
            .where(LedgerAccount.balance != func.coalesce(sums.c.total, 0))
            .limit(limit)
        )
        found = [Mismatch("account", id_, int(balance), int(total)) for id_, balance, total in accounts.all()]
        entries = await self._session.execute(
            select(LedgerLine.entry_id, func.sum(LedgerLine.amount))
            .group_by(LedgerLine.entry_id)
            .having(func.sum(LedgerLine.amount) != 0)
            .limit(limit)
        )
        found += [Mismatch("entry", id_, 0, int(total)) for id_, total in entries.all()]
        return found

    async def counts(self) -> tuple[int, int, int]:
        """How many accounts, entries and lines the ledger holds."""
        numbers = []
        for table in (LedgerAccount, LedgerEntry, LedgerLine):
            numbers.append(int((await self._session.execute(select(func.count()).select_from(table))).scalar_one()))
        return numbers[0], numbers[1], numbers[2]


class CustomerRepository:
    """Which Stripe customer pays for which tenant."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, tenant_id: str) -> str | None:
        result = await self._session.execute(
            select(BillingCustomer.stripe_customer_id).where(BillingCustomer.tenant_id == tenant_id)
        )
        return result.scalar_one_or_none()

    async def tenant_of(self, customer_id: str) -> str | None:
        result = await self._session.execute(
            select(BillingCustomer.tenant_id).where(BillingCustomer.stripe_customer_id == customer_id)
        )
        return result.scalar_one_or_none()

    async def add(self, tenant_id: str, customer_id: str, at: datetime) -> str:
        """Store the tenant's customer unless it has one already; the one stored wins."""
        upsert = _upsert(self._session)
        await self._session.execute(
            upsert(BillingCustomer)
            .values(tenant_id=tenant_id, stripe_customer_id=customer_id, created_at=at)
            .on_conflict_do_nothing(index_elements=["tenant_id"])
        )
        stored = await self.get(tenant_id)
        assert stored is not None
        return stored


class CheckoutRepository:
    """Payment intents made for checkouts, by the request's idempotency key."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, tenant_id: str, key: str) -> BillingCheckout | None:
        result = await self._session.execute(
            select(BillingCheckout).where(
                BillingCheckout.tenant_id == tenant_id, BillingCheckout.idempotency_key == key
            )
        )
        return result.scalar_one_or_none()

    async def add(self, tenant_id: str, key: str, intent_id: str, cents: int, at: datetime) -> BillingCheckout:
        """Store the checkout unless one with this key is stored already; the one stored wins."""
        await self._session.execute(
            _upsert(self._session)(BillingCheckout)
            .values(
                tenant_id=tenant_id, idempotency_key=key, payment_intent_id=intent_id, amount_cents=cents, created_at=at
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"])
        )
        stored = await self.get(tenant_id, key)
        assert stored is not None
        return stored


class CheckoutSessionRepository:
    """Hosted Checkout sessions opened for tenants, by the request's idempotency key."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, tenant_id: str, key: str) -> BillingCheckoutSession | None:
        result = await self._session.execute(
            select(BillingCheckoutSession).where(
                BillingCheckoutSession.tenant_id == tenant_id, BillingCheckoutSession.idempotency_key == key
            )
        )
        return result.scalar_one_or_none()

    async def add(self, tenant_id: str, key: str, session_id: str, cents: int, at: datetime) -> BillingCheckoutSession:
        """Store the session unless one with this key is stored already; the one stored wins."""
        await self._session.execute(
            _upsert(self._session)(BillingCheckoutSession)
            .values(tenant_id=tenant_id, idempotency_key=key, session_id=session_id, amount_cents=cents, created_at=at)
            .on_conflict_do_nothing(index_elements=["tenant_id", "idempotency_key"])
        )
        stored = await self.get(tenant_id, key)
        assert stored is not None
        return stored


class InboxRepository:
    """The Stripe webhook inbox."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, event_id: str, type_: str, payload: str, at: datetime) -> bool:
        """Store an event unless it is there already; True when it was new."""
        upsert = _upsert(self._session)
        result = await self._session.execute(
            upsert(StripeEvent)
            .values(id=event_id, type=type_, payload=payload, received_at=at, attempts=0)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(StripeEvent.id)
        )
        return result.scalar_one_or_none() is not None

    async def claim(self, event_id: str) -> StripeEvent | None:
        """The event, held for this transaction (FOR UPDATE on PostgreSQL), when it is not applied yet."""
        result = await self._session.execute(
            select(StripeEvent)
            .where(StripeEvent.id == event_id, StripeEvent.applied_at.is_(None))
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def pending(self, limit: int) -> list[str]:
        result = await self._session.execute(
            select(StripeEvent.id)
            .where(StripeEvent.applied_at.is_(None))
            .order_by(StripeEvent.attempts, StripeEvent.received_at, StripeEvent.id)
            .limit(limit)
        )
        return list(result.scalars().all())

    async def failed(self, event_id: str, error: str) -> None:
        await self._session.execute(
            update(StripeEvent)
            .where(StripeEvent.id == event_id)
            .values(attempts=StripeEvent.attempts + 1, last_error=error[:500])
            .execution_options(synchronize_session=False)
        )


class RunRepository:
    """The intervals bots ran, and the cursor of the runtime charge."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def open(self, bot_id: str, tenant_id: str, price: int, at: datetime) -> bool:
        """Open a run unless one is open; True when this opened it."""
        upsert = _upsert(self._session)
        result = await self._session.execute(
            upsert(BotRun)
            .values(bot_id=bot_id, tenant_id=tenant_id, price_per_hour=price, started_at=at)
            .on_conflict_do_nothing(index_elements=["bot_id"], index_where=BotRun.stopped_at.is_(None))
            .returning(BotRun.id)
        )
        return result.scalar_one_or_none() is not None

    async def close(self, bot_id: str, at: datetime) -> bool:
        """Close the bot's open run at `at` (at its start, when `at` is earlier); True when one was open."""
        for stopped, condition in ((at, BotRun.started_at <= at), (BotRun.started_at, BotRun.started_at > at)):
            result = await self._session.execute(
                update(BotRun)
                .where(BotRun.bot_id == bot_id, BotRun.stopped_at.is_(None), condition)
                .values(stopped_at=stopped)
                .execution_options(synchronize_session=False)
            )
            if getattr(result, "rowcount", 0):
                return True
        return False

    async def open_bots(self) -> set[str]:
        result = await self._session.execute(select(BotRun.bot_id).where(BotRun.stopped_at.is_(None)))
        return set(result.scalars().all())

    async def overlapping(self, start: datetime, end: datetime) -> Sequence[Any]:
        """(bot, tenant, price, started, stopped) of every run that overlaps [start, end)."""
        result = await self._session.execute(
            select(BotRun.bot_id, BotRun.tenant_id, BotRun.price_per_hour, BotRun.started_at, BotRun.stopped_at).where(
                BotRun.started_at < end, or_(BotRun.stopped_at.is_(None), BotRun.stopped_at > start)
            )
        )
        return result.all()

    async def earliest_start(self) -> datetime | None:
        return (await self._session.execute(select(func.min(BotRun.started_at)))).scalar_one_or_none()

    async def cursor(self, name: str) -> datetime | None:
        result = await self._session.execute(
            select(BillingCursor.at).where(BillingCursor.name == name).with_for_update()
        )
        return result.scalar_one_or_none()

    async def set_cursor(self, name: str, at: datetime) -> None:
        upsert = _upsert(self._session)
        await self._session.execute(
            upsert(BillingCursor)
            .values(name=name, at=at)
            .on_conflict_do_update(index_elements=["name"], set_={"at": at})
        )


class SpendRepository:
    """Each tenant's spending caps, what it spent each UTC day, and the notices of caps nearly or fully reached."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, spent: Mapping[tuple[str, str], int]) -> None:
        """Add to what tenants spent: (tenant, YYYY-MM-DD) → amount."""
        upsert = _upsert(self._session)
        for (tenant_id, day), amount in sorted(spent.items()):
            statement = upsert(BillingSpend).values(tenant_id=tenant_id, day=day, amount=amount)
            await self._session.execute(
                statement.on_conflict_do_update(
                    index_elements=["tenant_id", "day"],
                    set_={"amount": BillingSpend.amount + statement.excluded.amount},
                )
            )

    async def spent(self, tenant_id: str, today: str) -> tuple[int, int]:
        """(today, this month up to today) of the tenant's spending, in one query over at most 31 rows."""
        month_start = today[:8] + "01"
        result = await self._session.execute(
            select(
                func.coalesce(func.sum(case((BillingSpend.day == today, BillingSpend.amount), else_=0)), 0),
                func.coalesce(func.sum(BillingSpend.amount), 0),
            ).where(BillingSpend.tenant_id == tenant_id, BillingSpend.day >= month_start, BillingSpend.day <= today)
        )
        day, month = result.one()
        return int(day), int(month)

    async def limits(self, tenant_id: str) -> BillingLimits | None:
        result = await self._session.execute(select(BillingLimits).where(BillingLimits.tenant_id == tenant_id))
        return result.scalar_one_or_none()

    async def set_limits(self, tenant_id: str, daily: int | None, monthly: int | None) -> None:
        statement = _upsert(self._session)(BillingLimits).values(
            tenant_id=tenant_id, daily_cap=daily, monthly_cap=monthly
        )
        await self._session.execute(
            statement.on_conflict_do_update(
                index_elements=["tenant_id"], set_={"daily_cap": daily, "monthly_cap": monthly}
            )
        )

    async def capped(self, tenant_ids: Iterable[str] | None = None) -> Sequence[BillingLimits]:
        """The limits of the tenants (of these, when given) that have a cap."""
        has_cap = or_(BillingLimits.daily_cap.is_not(None), BillingLimits.monthly_cap.is_not(None))
        if tenant_ids is None:
            return (await self._session.execute(select(BillingLimits).where(has_cap))).scalars().all()
        ids = sorted(set(tenant_ids))
        found: list[BillingLimits] = []
        for start in range(0, len(ids), 500):
            result = await self._session.execute(
                select(BillingLimits).where(BillingLimits.tenant_id.in_(ids[start : start + 500]), has_cap)
            )
            found += result.scalars().all()
        return found

    async def add_notice(
        self, tenant_id: str, scope: str, period: str, percent: int, spent: int, cap: int, at: datetime
    ) -> bool:
        """Record a notice once per tenant, cap, period and threshold; True when it is new."""
        result = await self._session.execute(
            _upsert(self._session)(BillingNotice)
            .values(
                tenant_id=tenant_id, scope=scope, period=period, percent=percent, spent=spent, cap=cap, created_at=at
            )
            .on_conflict_do_nothing(index_elements=["tenant_id", "scope", "period", "percent"])
            .returning(BillingNotice.id)
        )
        return result.scalar_one_or_none() is not None

    async def notices(self, tenant_id: str, limit: int = 50) -> Sequence[BillingNotice]:
        result = await self._session.execute(
            select(BillingNotice)
            .where(BillingNotice.tenant_id == tenant_id)
            .order_by(BillingNotice.created_at.desc(), BillingNotice.id.desc())
            .limit(limit)
        )
        return result.scalars().all()


class StandingRepository:
    """Each tenant's standing: out of credits since, suspended, warned, removed."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def get(self, tenant_id: str) -> BillingTenant | None:
        result = await self._session.execute(
            select(BillingTenant).where(BillingTenant.tenant_id == tenant_id).execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def ensure(self, tenant_id: str) -> BillingTenant:
        await self._session.execute(
            _upsert(self._session)(BillingTenant)
            .values(tenant_id=tenant_id)
            .on_conflict_do_nothing(index_elements=["tenant_id"])
        )
        row = await self.get(tenant_id)
        assert row is not None
        return row

    async def suspended(self) -> set[str]:
        """The tenants suspended now (their bots stopped for want of credits, not removed yet)."""
        result = await self._session.execute(
            select(BillingTenant.tenant_id).where(
                BillingTenant.suspended_at.is_not(None), BillingTenant.removed_at.is_(None)
            )
        )
        return set(result.scalars().all())

    async def to_review(self) -> dict[str, int]:
        """Tenant → balance of every tenant out of credits, or with a standing still to settle (grace, suspended)."""
        empty = await self._session.execute(
            select(LedgerAccount.tenant_id, LedgerAccount.balance).where(
                LedgerAccount.tenant_id.is_not(None), LedgerAccount.balance <= 0
            )
        )
        found = {str(tenant): int(balance) for tenant, balance in empty.all()}
        pending = await self._session.execute(
            select(BillingTenant.tenant_id, func.coalesce(LedgerAccount.balance, 0))
            .outerjoin(LedgerAccount, LedgerAccount.tenant_id == BillingTenant.tenant_id)
            .where(or_(BillingTenant.empty_since.is_not(None), BillingTenant.suspended_at.is_not(None)))
        )
        found.update({str(tenant): int(balance) for tenant, balance in pending.all()})
        return found
