"""Spending caps: a tenant's own daily and monthly limits on what its bots may cost.

What a tenant spent is kept per UTC day (`billing_spend`) in the transaction that posts each charge, so checking a
cap reads at most a month of day rows, never the entries. When spending reaches 80% and 100% of a cap, a notice is
recorded once per cap and period (and logged); at 100% the gate refuses to create or start a bot until the day
(or month) is over or the cap is raised. Bots already running keep running: a cap stops new spending, it does not
cut a tenant off.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.billing.repository import SpendRepository
from wopr_platform.billing.schemas import Notice, SpendingLimits
from wopr_platform.core.errors import SpendingCapReached
from wopr_platform.db.unit import Database

log = logging.getLogger(__name__)

THRESHOLDS = (80, 100)


def _today(now: datetime) -> str:
    return now.astimezone(UTC).date().isoformat()


class SpendingCaps:
    def __init__(self, *, db: Database, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._now = clock

    async def limits(self, tenant_id: str) -> SpendingLimits:
        today = _today(self._now())
        async with self._db.read() as session:
            repo = SpendRepository(session)
            row = await repo.limits(tenant_id)
            day, month = await repo.spent(tenant_id, today)
            notices = await repo.notices(tenant_id)
        return SpendingLimits(
            tenant_id=tenant_id,
            daily_cap=row.daily_cap if row is not None else None,
            monthly_cap=row.monthly_cap if row is not None else None,
            spent_today=day,
            spent_this_month=month,
            notices=[
                Notice(
                    scope=n.scope,  # daily or monthly, as stored
                    period=n.period,
                    percent=n.percent,  # one of THRESHOLDS, as stored
                    spent=n.spent,
                    cap=n.cap,
                    created_at=n.created_at,
                )
                for n in notices
            ],
        )

    async def set_limits(self, tenant_id: str, daily: int | None, monthly: int | None) -> SpendingLimits:
        async with self._db.unit() as session:
            await SpendRepository(session).set_limits(tenant_id, daily, monthly)
        log.info("spending caps set", extra={"tenant": tenant_id, "daily": daily, "monthly": monthly})
        await self.notify([tenant_id])  # a cap lowered below what was spent already is noticed at once
        return await self.limits(tenant_id)

    async def admit(self, tenant_id: str) -> None:
        """402 spending_cap_reached when the tenant's spending has reached one of its caps."""
        async with self._db.read() as session:
            await self.admit_within(session, tenant_id, 0)

    async def room(self, session: AsyncSession, tenant_id: str) -> int | None:
        """In the caller's transaction: what the tenant may still spend before it reaches one of its caps (today's
        or this month's, the smaller; not counting what it has reserved), None when it has no cap."""
        repo = SpendRepository(session)
        row = await repo.limits(tenant_id)
        if row is None or (row.daily_cap is None and row.monthly_cap is None):
            return None
        day, month = await repo.spent(tenant_id, _today(self._now()))
        return min(cap - spent for cap, spent in ((row.daily_cap, day), (row.monthly_cap, month)) if cap is not None)

    async def admit_within(self, session: AsyncSession, tenant_id: str, reserved: int) -> None:
        """In the caller's transaction: 402 spending_cap_reached when what the tenant spent, plus what it has
        `reserved` for charges to come, passes one of its caps (with nothing reserved: has reached it). Called
        right after a reservation, whose row lock orders concurrent calls of one tenant, each check sees every
        earlier reservation, so concurrent calls together stay within the cap."""
        repo = SpendRepository(session)
        row = await repo.limits(tenant_id)
        if row is None or (row.daily_cap is None and row.monthly_cap is None):
            return
        day, month = await repo.spent(tenant_id, _today(self._now()))
        for scope, cap, spent in (("daily", row.daily_cap, day), ("monthly", row.monthly_cap, month)):
            if cap is not None and (spent + reserved > cap if reserved else spent >= cap):
                details: dict[str, object] = {"scope": scope, "cap": cap, "spent": spent}
                if reserved:
                    details["reserved"] = reserved
                raise SpendingCapReached(f"the tenant's {scope} spending cap is reached", details=details)

    async def notify(self, tenant_ids: Iterable[str] | None = None) -> int:
        """Record (once) and log the notices of caps reached 80% or 100% (of these tenants, else of every tenant
        with a cap); how many were new."""
        now = self._now()
        today = _today(now)
        new = 0
        async with self._db.unit() as session:
            repo = SpendRepository(session)
            for row in await repo.capped(tenant_ids):
                day, month = await repo.spent(row.tenant_id, today)
                for scope, cap, spent, period in (
                    ("daily", row.daily_cap, day, today),
                    ("monthly", row.monthly_cap, month, today[:7]),
                ):
                    if cap is None:
                        continue
                    for percent in THRESHOLDS:
                        if spent * 100 >= cap * percent and await repo.add_notice(
                            row.tenant_id, scope, period, percent, spent, cap, now
                        ):
                            new += 1
                            log.warning(
                                "a tenant's spending reached a cap",
                                extra={"tenant": row.tenant_id, "scope": scope, "percent": percent, "cap": cap},
                            )
        return new
