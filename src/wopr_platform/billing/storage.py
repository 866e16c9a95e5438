"""Backup storage charges: what a tenant's backups take, charged once per tenant and UTC day.

Each day is charged once it has ended: one transaction reads the bytes every tenant's ready backups take (one
query), posts an entry per tenant referenced `backup-storage:<tenant>:<day>` (its GiB-days times
BILLING_BACKUP_PRICE, in whole micro-dollars), and moves the cursor past the day. As with the runtime hours, a crash
in the middle leaves nothing and a second replica finds the references taken: no day charged twice, none skipped.
What is stored is measured when the day is charged, not averaged over it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from wopr_platform.backups.service import Backups
from wopr_platform.billing.ledger import PLATFORM_REVENUE, Ledger, Posting
from wopr_platform.billing.repository import RunRepository
from wopr_platform.core.rounds import catch_up
from wopr_platform.db.unit import Database

log = logging.getLogger(__name__)

DAY = timedelta(days=1)
GIB = 1024**3
CURSOR = "backup-storage"
MAX_DAYS_PER_ROUND = 31


def day_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class StorageCharges:
    def __init__(
        self, *, db: Database, backups: Backups, price_per_gib_day: int, clock: Callable[[], datetime]
    ) -> None:
        self._db = db
        self._backups = backups
        self._price = price_per_gib_day
        self._now = clock

    async def charge_due(self) -> int:
        """Charge every day that ended (up to MAX_DAYS_PER_ROUND); how many days were charged."""
        return await catch_up(self.charge_next, MAX_DAYS_PER_ROUND)

    async def charge_next(self) -> int | None:
        """Charge the day after the cursor if it ended: the number of entries posted, None when none is due."""
        now = self._now()
        stored = await self._backups.stored_by_tenant()
        async with self._db.unit() as session:
            runs = RunRepository(session)
            cursor = await runs.cursor(CURSOR)  # held (on PostgreSQL) until this day is charged
            if cursor is None:  # storage is counted from the day billing first saw it
                await runs.set_cursor(CURSOR, day_of(now))
                return None
            end = cursor + DAY
            if end > now:
                return None
            label = cursor.strftime("%Y-%m-%d")
            postings = [
                Posting(
                    f"backup-storage:{tenant_id}:{label}",
                    "storage",
                    tenant_id,
                    -(size * self._price // GIB),
                    PLATFORM_REVENUE,
                    "backup-storage",
                    f"backups took {size} bytes on {label}",
                    period=cursor,
                )
                for tenant_id, size in sorted(stored.items())
                if size * self._price // GIB > 0
            ]
            posted = await Ledger(session).post_many(postings, now)
            await runs.set_cursor(CURSOR, end)
        log.info("backup storage charged", extra={"day": label, "entries": len(posted)})
        return len(posted)
