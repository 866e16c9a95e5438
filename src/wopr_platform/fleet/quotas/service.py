"""Tenant quotas: the rules, and the usage kept in step with the bots.

Each tenant has one row (`tenant_quotas`) with its overrides and its usage: the number of its bots and the sums
of their effective memory and CPU limits. The usage changes only in the transaction that adds, changes or removes
a bot, through a conditional update of that row (`charge`): the database checks the limit and adds in one
statement, holding the row until the transaction ends, so concurrent creates on any number of replicas cannot
pass a limit (PostgreSQL re-checks the condition on the row a concurrent update committed; SQLite has one writer).
A refused charge raises `QuotaExceeded`, and the whole transaction, bot row and journal row with it, is undone.

Every start recounts each tenant's usage from its bots (`recount`): it fills the rows of tenants that had bots
before quotas existed, and follows a changed `FLEET_DEFAULT_*` (the effective limits of bots without their own
change with it).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.core.errors import QuotaExceeded
from wopr_platform.core.limits import Limits
from wopr_platform.core.settings import Settings
from wopr_platform.db.models import TenantQuota as QuotaRow
from wopr_platform.db.unit import Database
from wopr_platform.fleet.quotas.amounts import NONE, Amounts, cpus, mcpus, of_bot
from wopr_platform.fleet.quotas.repository import QuotaRepository, quota_of
from wopr_platform.fleet.repository import BotRepository
from wopr_platform.fleet.schemas import QuotaLimits, QuotaOverrides, QuotaUsage, TenantQuota

log = logging.getLogger(__name__)

# a conditional update refused, then the row read again to say which limit: if a concurrent change freed room
# meanwhile, the update is tried again, at most this many times in all
CHARGE_ATTEMPTS = 3
WIRE_NAMES = {"bots": "bots", "memory_mb": "memoryMb", "mcpus": "cpus"}


class Quotas:
    """Checks and keeps each tenant's usage against its limits."""

    def __init__(self, *, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    @property
    def defaults(self) -> Amounts:
        """The platform's limits of a tenant without overrides (0: no limit)."""
        s = self._settings
        return Amounts(s.tenant_max_bots, s.tenant_max_memory_mb, mcpus(s.tenant_max_cpus))

    @property
    def network_room(self) -> int:
        """The most bots one tenant network holds: its subnet's addresses but the network, broadcast and gateway."""
        return int(2 ** (32 - self._settings.tenant_subnet_prefix)) - 3

    @property
    def _bot_defaults(self) -> Limits:
        return self._settings.default_limits

    def of_bot(self, own: Mapping[str, Any] | None) -> Amounts:
        """What a bot with these own `resources` counts against its tenant's quotas."""
        return of_bot(own, self._bot_defaults)

    def change(self, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> Amounts:
        """How a change of a bot's own `resources` changes its tenant's usage."""
        return self.of_bot(new) - self.of_bot(old)

    # inside the caller's transaction --------------------------------------------------------------------------

    async def charge(self, session: AsyncSession, tenant_id: str, delta: Amounts) -> None:
        """Add `delta` to the tenant's usage in the caller's transaction; QuotaExceeded (nothing added) when an
        amount that grows would pass its limit. Amounts that shrink are never refused."""
        if delta == NONE:
            return
        repo = QuotaRepository(session)
        await repo.ensure(tenant_id)
        for attempt in range(1, CHARGE_ATTEMPTS + 1):
            if await repo.add_within(tenant_id, delta, self.defaults, bots_room=self.network_room):
                return
            row = await repo.get(tenant_id)
            assert row is not None
            refused = self._refusal(row, delta, force=attempt == CHARGE_ATTEMPTS)
            if refused is not None:
                raise refused

    async def hold(self, session: AsyncSession, tenant_id: str) -> None:
        """Take the tenant's usage row for the rest of the caller's transaction, before reading what a change of
        usage is computed from (a bot's stored `resources`): every change of usage takes it first, so two
        replicas changing one bot cannot both start from the same stored limits."""
        repo = QuotaRepository(session)
        await repo.ensure(tenant_id)
        await repo.lock(tenant_id)

    async def remove_bot(self, session: AsyncSession, tenant_id: str, bot_id: str) -> bool:
        """Delete the bot's row and give its usage back, in the caller's transaction; False when it was gone."""
        await self.hold(session, tenant_id)
        removed = await BotRepository(session).delete(bot_id)
        if removed is None:
            return False
        freed = NONE - self.of_bot(removed.resources)
        await QuotaRepository(session).add_within(  # it shrinks: never refused
            tenant_id, freed, self.defaults, bots_room=self.network_room
        )
        return True

    # units of their own ---------------------------------------------------------------------------------------

    async def check(self, tenant_id: str, delta: Amounts) -> None:
        """A check before any work (a pull, a container): QuotaExceeded when `delta` would not fit now. Not the
        guarantee (`charge` is): it saves the work a refused charge would undo."""
        row = await self._db.core_read(partial(quota_of, tenant_id=tenant_id))
        current = row if row is not None else QuotaRow(tenant_id=tenant_id, bots=0, memory_mb=0, mcpus=0)
        refused = self._refusal(current, delta)
        if refused is not None:
            raise refused

    async def recount(self) -> int:
        """Set every tenant's usage to the sum over its bots now; returns how many tenants' usage had drifted."""
        async with self._db.read() as session:
            tenants = await QuotaRepository(session).tenants()
        drifted = 0
        for tenant_id in tenants:
            async with self._db.unit() as session:
                repo = QuotaRepository(session)
                await repo.ensure(tenant_id)
                await repo.lock(tenant_id)  # held while the bots are read: no charge slips in between
                usage = sum((self.of_bot(own) for own in await repo.bot_resources(tenant_id)), NONE)
                row = await repo.get(tenant_id)
                assert row is not None
                if Amounts(row.bots, row.memory_mb, row.mcpus) != usage:
                    drifted += 1
                    await repo.set_usage(tenant_id, usage)
        if drifted:
            log.info("tenant usage recounted from the bots", extra={"tenants": drifted})
        return drifted

    async def quota(self, tenant_id: str) -> TenantQuota:
        """The tenant's limits in force, overrides and usage."""
        async with self._db.read() as session:
            row = await QuotaRepository(session).get(tenant_id)
        return self._view(tenant_id, row)

    async def set_overrides(self, tenant_id: str, overrides: QuotaOverrides) -> TenantQuota:
        """Replace the tenant's overrides (null: the default). A limit below the usage refuses what would grow
        the usage further; it removes nothing."""
        async with self._db.unit() as session:
            repo = QuotaRepository(session)
            await repo.ensure(tenant_id)
            await repo.set_overrides(
                tenant_id,
                max_bots=overrides.max_bots,
                max_memory_mb=overrides.max_memory_mb,
                max_mcpus=mcpus(overrides.max_cpus) if overrides.max_cpus is not None else None,
            )
            row = await repo.get(tenant_id)
        log.info("tenant quota set", extra={"tenant": tenant_id, **overrides.model_dump(by_alias=True)})
        return self._view(tenant_id, row)

    # helpers --------------------------------------------------------------------------------------------------

    def _limits(self, row: QuotaRow | None) -> Amounts:
        defaults = self.defaults
        if row is None:
            return defaults
        return Amounts(
            row.max_bots if row.max_bots is not None else defaults.bots,
            row.max_memory_mb if row.max_memory_mb is not None else defaults.memory_mb,
            row.max_mcpus if row.max_mcpus is not None else defaults.mcpus,
        )

    def _refusal(self, row: QuotaRow, delta: Amounts, *, force: bool = False) -> QuotaExceeded | None:
        """The error for the first amount `delta` would take past its limit (None when it fits)."""
        limits = self._limits(row)
        # however high the quota, a tenant's bots share its network's subnet: that many addresses at most
        room = self.network_room
        limits = replace(limits, bots=min(limits.bots or room, room))
        used = Amounts(row.bots or 0, row.memory_mb or 0, row.mcpus or 0)
        for field, wire in WIRE_NAMES.items():
            grow: int = getattr(delta, field)
            limit: int = getattr(limits, field)
            now: int = getattr(used, field)
            if grow > 0 and limit != 0 and (now + grow > limit or force):
                return _exceeded(row.tenant_id, wire, limit=limit, used=now, requested=grow)
        return None

    def _view(self, tenant_id: str, row: QuotaRow | None) -> TenantQuota:
        limits = self._limits(row)
        usage = Amounts(row.bots, row.memory_mb, row.mcpus) if row is not None else NONE
        return TenantQuota(
            tenant_id=tenant_id,
            limits=QuotaLimits(max_bots=limits.bots, max_memory_mb=limits.memory_mb, max_cpus=cpus(limits.mcpus)),
            overrides=QuotaOverrides(
                max_bots=row.max_bots if row is not None else None,
                max_memory_mb=row.max_memory_mb if row is not None else None,
                max_cpus=cpus(row.max_mcpus) if row is not None and row.max_mcpus is not None else None,
            ),
            usage=QuotaUsage(bots=usage.bots, memory_mb=usage.memory_mb, cpus=cpus(usage.mcpus)),
        )


def _exceeded(tenant_id: str, quota: str, *, limit: int, used: int, requested: int) -> QuotaExceeded:
    def shown(amount: int) -> int | float:
        return cpus(amount) if quota == "cpus" else amount

    return QuotaExceeded(
        f"the tenant's {quota} quota would be exceeded",
        details={
            "quota": quota,
            "limit": shown(limit),
            "used": shown(used),
            "requested": shown(requested),
            "tenantId": tenant_id,
        },
    )
