"""A tenant out of credits: suspended after a grace, resumed by a top-up, its bots removed after a retention.

Each billing round the leader looks at every tenant whose balance is at or below zero, or whose standing is not
settled yet (in grace, suspended):

- at or below zero, it is **out of credits** from that round on (`empty_since`);
- out of credits for `BILLING_GRACE`, it is **suspended**: each of its bots that should run is stopped through the
  fleet (data kept), and the platform remembers which, so that a top-up starts exactly those again;
- suspended and `BILLING_REMOVAL_WARNING` before the end of `BILLING_RETENTION`, the removal is announced (a
  warning in the log and in the tenant's balance, `removalAt`);
- suspended for `BILLING_RETENTION`, its bots are **removed** with their data;
- topped up to at least `BILLING_MIN_BALANCE`, it is **resumed**: the bots its suspension stopped are started.

A step that fails (the engine away) is logged and tried again on the next round; a tenant is marked suspended only
once all its bots are stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from wopr_platform.billing.repository import StandingRepository
from wopr_platform.billing.schemas import Standing
from wopr_platform.core.errors import NotFound, PlatformError
from wopr_platform.core.settings import Settings
from wopr_platform.db.models import BillingTenant
from wopr_platform.db.unit import Database
from wopr_platform.fleet.lifecycle.service import FleetService
from wopr_platform.fleet.observation.events import EventBus

log = logging.getLogger(__name__)


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def standing_of(row: BillingTenant | None, settings: Settings) -> Standing:
    """What the API shows of a tenant's standing."""
    if row is None or (row.empty_since is None and row.suspended_at is None):
        return Standing(state="active")
    if row.suspended_at is None:
        assert row.empty_since is not None
        return Standing(
            state="grace",
            empty_since=row.empty_since,
            suspends_at=row.empty_since + timedelta(seconds=settings.billing_grace),
        )
    removal = row.suspended_at + timedelta(seconds=settings.billing_retention)
    return Standing(
        state="removed" if row.removed_at is not None else "suspended",
        empty_since=row.empty_since,
        suspended_at=row.suspended_at,
        removal_at=removal if row.removed_at is None else row.removed_at,
    )


class Suspensions:
    """The leader's round over tenants out of credits."""

    def __init__(
        self,
        *,
        db: Database,
        fleet: FleetService,
        events: EventBus,
        settings: Settings,
        clock: Callable[[], datetime],
    ) -> None:
        self._events = events
        self._db = db
        self._fleet = fleet
        self._settings = settings
        self._now = clock

    async def suspended_tenants(self) -> set[str]:
        """The tenants suspended now (tenant routing answers their bots' traffic with a 402 page)."""
        async with self._db.read() as session:
            return await StandingRepository(session).suspended()

    async def round(self) -> None:
        async with self._db.read() as session:
            tenants = await StandingRepository(session).to_review()
        for tenant_id, balance in sorted(tenants.items()):
            try:
                await self._review(tenant_id, balance)
            except PlatformError as err:
                log.warning(
                    "a tenant's standing could not be settled; tried again next round",
                    extra={"tenant": tenant_id, "reason": err.message},
                )

    async def _review(self, tenant_id: str, balance: int) -> None:
        now = self._now()
        s = self._settings
        async with self._db.unit() as session:
            row = await StandingRepository(session).ensure(tenant_id)
            if balance > 0:
                if row.suspended_at is not None and row.removed_at is None:
                    if balance < s.billing_min_balance:
                        return  # topped up, not enough to run a bot: still suspended
                    stopped = list(row.stopped_bots or [])
                else:
                    stopped = []
                row.empty_since = row.suspended_at = row.warned_at = row.removed_at = None
                row.stopped_bots = None
            elif row.empty_since is None:
                row.empty_since = now
                log.warning("a tenant is out of credits", extra={"tenant": tenant_id, "balance": balance})
                return
            else:
                stopped = []
        if balance > 0:
            if stopped:
                await self._resume(tenant_id, stopped)
            return
        if row.suspended_at is None:
            assert row.empty_since is not None
            if now - row.empty_since >= timedelta(seconds=s.billing_grace):
                await self._suspend(tenant_id, now)
            return
        if row.removed_at is not None:
            return
        ends = row.suspended_at + timedelta(seconds=s.billing_retention)
        if now >= ends:
            await self._remove(tenant_id, now)
        elif row.warned_at is None and now >= ends - timedelta(seconds=s.billing_removal_warning):
            log.warning(
                "a suspended tenant's bots will be removed with their data",
                extra={"tenant": tenant_id, "removal_at": ends.isoformat()},
            )
            for bot_id in sorted(await self._fleet.desired_states(tenant_id)):
                self._events.publish("removal_warning", bot_id, tenant_id, removalAt=_iso(ends))
            async with self._db.unit() as session:
                (await StandingRepository(session).ensure(tenant_id)).warned_at = now

    async def _suspend(self, tenant_id: str, now: datetime) -> None:
        running = [
            bot for bot, desired in (await self._fleet.desired_states(tenant_id)).items() if desired == "running"
        ]
        for bot_id in running:
            try:
                await self._fleet.stop_bot(tenant_id, bot_id)
            except NotFound:
                continue  # removed meanwhile
        async with self._db.unit() as session:
            row = await StandingRepository(session).ensure(tenant_id)
            row.suspended_at = now
            row.stopped_bots = sorted(set(row.stopped_bots or []) | set(running))
        removal = now + timedelta(seconds=self._settings.billing_retention)
        for bot_id in sorted(await self._fleet.desired_states(tenant_id)):
            self._events.publish("suspended", bot_id, tenant_id, reason="out of credits", removalAt=_iso(removal))
        log.warning(
            "a tenant out of credits is suspended: its bots are stopped",
            extra={"tenant": tenant_id, "bots": len(running)},
        )

    async def _resume(self, tenant_id: str, stopped: list[str]) -> None:
        started = 0
        for bot_id in stopped:
            try:
                await self._fleet.start_bot(tenant_id, bot_id)
                started += 1
                self._events.publish("resumed", bot_id, tenant_id)
            except NotFound:
                continue
            except PlatformError as err:  # a cap reached, the engine away: the tenant starts it itself
                log.warning(
                    "a bot stopped by a suspension could not be started again",
                    extra={"tenant": tenant_id, "bot_id": bot_id, "reason": err.message},
                )
        log.info("a topped-up tenant is resumed", extra={"tenant": tenant_id, "bots": started})

    async def _remove(self, tenant_id: str, now: datetime) -> None:
        bots = sorted(await self._fleet.desired_states(tenant_id))
        for bot_id in bots:
            try:
                await self._fleet.delete_bot(tenant_id, bot_id, remove_volumes=True)
            except NotFound:
                continue
        async with self._db.unit() as session:
            row = await StandingRepository(session).ensure(tenant_id)
            row.removed_at = now
            row.stopped_bots = None
        log.warning(
            "a suspended tenant's bots were removed at the end of the retention",
            extra={"tenant": tenant_id, "bots": len(bots)},
        )
