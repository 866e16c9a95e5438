"""Runtime charges: what running bots cost, from the intervals they really ran, charged once per bot and hour.

The meter keeps `bot_runs` in step with what runs: at every event of a bot it looks at the bot's containers as the
engine last reported them (in memory) and opens or closes its run, and each round it sweeps every bot the same way
(events can be missed: a restart, a lost leadership). A run carries the hourly price of the bot's tier when it
started; a change of limits recreates the container and starts a new run at the new price.

Each hour is charged once it has ended (and `SETTLE` has passed, so the last stop events are in): one transaction
posts an entry per bot that ran in it, referenced `runtime:<bot>:<hour>`, and moves the cursor past it. A crash in
the middle leaves nothing (the transaction is undone) and the hour is charged on the next round; a second replica
charging the same hour finds the references taken and the cursor moved (no hour charged twice, none skipped).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from wopr_platform.billing.caps import SpendingCaps
from wopr_platform.billing.ledger import PLATFORM_REVENUE, Ledger, Posting
from wopr_platform.billing.repository import RunRepository
from wopr_platform.billing.standing import Suspensions
from wopr_platform.billing.storage import StorageCharges
from wopr_platform.billing.webhooks import StripeWebhooks
from wopr_platform.core.faults import CrashPoints
from wopr_platform.core.prices import RuntimePrices
from wopr_platform.core.rounds import catch_up, run_rounds
from wopr_platform.db.unit import Database
from wopr_platform.fleet.lifecycle.service import FleetService
from wopr_platform.fleet.observation.events import EventBus, Subscription

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
SETTLE = timedelta(minutes=2)  # an hour is charged this long after it ended
MAX_HOURS_PER_ROUND = 48  # catching up after a long outage: this many hours a round
CURSOR = "runtime"
METERED = ("started", "stopped", "died", "removed", "recreated", "created", "drift_repaired")


def hour_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


class RuntimeBilling:
    """The billing loop of the leader: meters what runs, charges the hours that ended, applies the webhook
    events a failure left in the inbox."""

    name = "billing"

    def __init__(
        self,
        *,
        db: Database,
        fleet: FleetService,
        events: EventBus,
        prices: RuntimePrices,
        webhooks: StripeWebhooks,
        caps: SpendingCaps,
        suspensions: Suspensions,
        clock: Callable[[], datetime],
        interval: float,
        crash: CrashPoints,
        storage: StorageCharges | None = None,
    ) -> None:
        self._storage = storage  # backup storage, charged by the day
        self._db = db
        self._fleet = fleet
        self._events = events
        self._prices = prices
        self._webhooks = webhooks
        self._caps = caps
        self.suspensions = suspensions
        self._now = clock
        self._interval = interval
        self.charges = HourlyCharges(db=db, clock=clock, crash=crash)
        self._wake = asyncio.Event()

    def kick(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        events = self._events.subscribe(bot_id=None, tenant_id=None, platform_wide=True)
        listening = asyncio.create_task(self._listen(events))
        try:
            await run_rounds(stop, self._wake, self._interval, self.round, "billing round")
        finally:
            events.close()
            listening.cancel()

    async def _listen(self, events: Subscription) -> None:
        async for event in events:
            if event.kind in METERED and event.bot_id:
                try:
                    await self.settle([event.bot_id])
                except Exception:
                    log.exception(
                        "metering a bot's run failed; the next sweep puts it right", extra={"bot_id": event.bot_id}
                    )

    async def round(self) -> None:
        await self.sweep()
        charged = await self.charges.charge_due()
        if self._storage is not None:
            charged += await self._storage.charge_due()
        if charged:
            await self._caps.notify()
        await self.suspensions.round()
        await self._webhooks.apply_pending()

    # metering -----------------------------------------------------------------------------------------------

    async def sweep(self) -> None:
        """Open a run for every bot that runs without one, close every run of a bot that no longer runs."""
        async with self._db.read() as session:
            open_bots = await RunRepository(session).open_bots()
        running = self._fleet.running_bots()
        if running is None:
            return  # the engine's state is not known: nothing is opened or closed on a guess
        differing = (set(running) - open_bots) | (open_bots - set(running))  # only these need a write
        if differing:
            await self.settle(differing, running=running)

    async def settle(self, bot_ids: list[str] | set[str], *, running: dict[str, str] | None = None) -> None:
        """Bring these bots' runs in line with whether they run now."""
        running = running if running is not None else self._fleet.running_bots()
        if running is None:
            return
        starting = [bot_id for bot_id in bot_ids if bot_id in running]
        memory = await self._fleet.memory_of(starting)
        now = self._now()
        async with self._db.unit() as session:
            runs = RunRepository(session)
            for bot_id in bot_ids:
                if bot_id in running and bot_id in memory:
                    price = self._prices.tier(memory[bot_id]).per_hour
                    if await runs.open(bot_id, running[bot_id], price, now):
                        log.info("bot run opened", extra={"bot_id": bot_id, "price_per_hour": price})
                elif await runs.close(bot_id, now):
                    log.info("bot run closed", extra={"bot_id": bot_id})


class HourlyCharges:
    """Charges the hours that ended, once each (see the module's docstring)."""

    def __init__(self, *, db: Database, clock: Callable[[], datetime], crash: CrashPoints) -> None:
        self._db = db
        self._now = clock
        self._crash = crash

    async def charge_due(self) -> int:
        """Charge every hour that ended (up to MAX_HOURS_PER_ROUND); returns how many hours were charged."""
        return await catch_up(self.charge_next, MAX_HOURS_PER_ROUND)

    async def charge_next(self) -> int | None:
        """Charge the hour after the cursor if it is due: the number of entries posted, None when none is due."""
        now = self._now()
        async with self._db.unit() as session:
            runs = RunRepository(session)
            cursor = await runs.cursor(CURSOR)  # held (on PostgreSQL) until this hour is charged
            if cursor is None:
                earliest = await runs.earliest_start()
                if earliest is None:
                    return None
                cursor = hour_of(earliest)
            end = cursor + HOUR
            if end + SETTLE > now:
                return None
            postings = self._postings(await runs.overlapping(cursor, end), cursor, end)
            posted = await Ledger(session).post_many(postings, now)
            self._crash.reached("billing.runtime.after_entries")
            await runs.set_cursor(CURSOR, end)
        log.info(
            "runtime charged",
            extra={"hour": cursor.isoformat(), "bots": len(postings), "entries": len(posted)},
        )
        return len(posted)

    @staticmethod
    def _postings(rows: Sequence[Any], start: datetime, end: datetime) -> list[Posting]:
        """One posting per bot: the sum over its runs in [start, end) of price times seconds, in whole
        micro-dollars (rows are (bot, tenant, price per hour, started, stopped))."""
        price_seconds: dict[str, int] = defaultdict(int)
        seconds: dict[str, int] = defaultdict(int)
        tenants: dict[str, str] = {}
        for bot_id, tenant_id, price, started, stopped in rows:
            begin = max(started, start)
            finish = min(stopped or end, end)
            ran = int((finish - begin).total_seconds())
            if ran <= 0:
                continue
            price_seconds[bot_id] += price * ran
            seconds[bot_id] += ran
            tenants[bot_id] = tenant_id
        label = start.strftime("%Y-%m-%dT%H")
        return [
            Posting(
                f"runtime:{bot_id}:{label}",
                "runtime",
                tenants[bot_id],
                -(total // 3600),
                PLATFORM_REVENUE,
                "runtime",
                f"bot {bot_id} ran {seconds[bot_id]} s in the hour from {label}:00Z",
                subject=bot_id,
                period=start,
            )
            for bot_id, total in sorted(price_seconds.items())
            if total // 3600 > 0
        ]
