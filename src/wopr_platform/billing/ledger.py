"""The double-entry ledger: every movement of money is one entry whose lines sum to zero.

Amounts are integers in micro-dollars (1 USD = 1,000,000; a Stripe cent is 10,000). A tenant's credits are the
account `tenant:<id>:credits`; the platform's side of each movement is one of its own accounts (`PLATFORM_*`).
Each entry has a unique `reference`, derived from what caused it (a Stripe object's id, an hour of a bot's run,
a caller's idempotency key): posting the same reference again changes nothing, so every writer may retry.
Balances change in the same transaction as the lines, by `balance = balance + delta` (a row lock on PostgreSQL,
the single writer on SQLite), so concurrent posts never lose an update; `check` proves each balance is the sum
of its lines.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.billing.repository import LedgerRepository, Mismatch, SpendRepository
from wopr_platform.db.models import LedgerEntry

MICROS_PER_CENT = 10_000
MICROS_PER_DOLLAR = 1_000_000

PLATFORM_REVENUE = "platform:revenue"  # what tenants spent on running bots and metered usage
PLATFORM_STRIPE = "platform:stripe"  # money taken (or given back) through Stripe
PLATFORM_GRANTS = "platform:grants"  # credits the platform gave away
PLATFORM_CORRECTIONS = "platform:corrections"  # corrections by the platform's operator

SPENDING = ("runtime", "usage", "storage")  # what counts against a tenant's spending caps
EntryKind = Literal["purchase", "refund", "dispute", "runtime", "usage", "storage", "grant", "correction"]


def credits(tenant_id: str) -> str:
    """The account of a tenant's credits."""
    return f"tenant:{tenant_id}:credits"


@dataclass(frozen=True, slots=True)
class Posting:
    """One movement of `amount` into the tenant's credits (negative: out of them), from or to `counter`."""

    reference: str
    kind: EntryKind
    tenant_id: str
    amount: int
    counter: str
    actor: str
    memo: str = ""
    subject: str | None = None  # the bot a charge is for
    period: datetime | None = None  # the hour a charge is for


@dataclass(frozen=True, slots=True)
class Posted:
    entry: LedgerEntry
    created: bool  # False: the reference was posted before, and `entry` is that earlier entry


class Ledger:
    """Posts entries and reads balances, in the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session
        self._repo = LedgerRepository(session)

    async def post(self, posting: Posting, at: datetime) -> Posted:
        """Post one movement once: a reference posted before returns the earlier entry, changing nothing."""
        created = await self.post_many([posting], at)
        entry = await self._repo.entry(posting.reference)
        assert entry is not None
        return Posted(entry, bool(created))

    async def post_many(self, postings: Sequence[Posting], at: datetime) -> list[Posting]:
        """Post movements in bulk (a few statements, whatever their number); returns those that were new."""
        if not postings:
            return []
        accounts: dict[str, str | None] = {}
        for posting in postings:
            accounts[credits(posting.tenant_id)] = posting.tenant_id
            accounts[posting.counter] = None
        await self._repo.ensure_accounts(accounts)
        ids = {posting.reference: str(uuid.uuid4()) for posting in postings}
        new = await self._repo.insert_entries(
            [
                {
                    "id": ids[p.reference],
                    "reference": p.reference,
                    "kind": p.kind,
                    "tenant_id": p.tenant_id,
                    "amount": p.amount,
                    "memo": p.memo[:500],
                    "actor": p.actor[:100],
                    "subject": p.subject,
                    "period": p.period,
                    "created_at": at,
                }
                for p in postings
            ]
        )
        posted = [p for p in postings if p.reference in new]
        deltas: dict[str, int] = defaultdict(int)
        lines: list[tuple[str, str, int]] = []
        for p in posted:
            lines += [(ids[p.reference], credits(p.tenant_id), p.amount), (ids[p.reference], p.counter, -p.amount)]
            deltas[credits(p.tenant_id)] += p.amount
            deltas[p.counter] -= p.amount
        await self._repo.add_lines(lines)
        await self._repo.add_to_balances(deltas)
        spent: dict[tuple[str, str], int] = defaultdict(int)
        for p in posted:
            if p.kind in SPENDING and p.amount < 0:
                spent[(p.tenant_id, (p.period or at).astimezone(UTC).date().isoformat())] -= p.amount
        await SpendRepository(self._session).add(spent)
        return posted

    async def balance(self, tenant_id: str) -> int:
        return await self._repo.balance(credits(tenant_id))

    async def hold(self, tenant_id: str, amount: int) -> int | None:
        """Reserve `amount` of the tenant's credits for a charge to come; what the tenant has reserved now, this
        included (None: the unreserved balance does not cover it). A reservation moves no money: `release` it when
        the real charge is posted."""
        return await self._repo.hold(credits(tenant_id), amount)  # no account yet: no credits to reserve

    async def release(self, tenant_id: str, amount: int) -> None:
        await self._repo.release(credits(tenant_id), amount)

    async def check(self) -> list[Mismatch]:
        """Every account whose balance is not the sum of its lines, and every entry that does not balance."""
        return await self._repo.mismatches()
