"""All SQL about tenant quotas: the overrides and the usage row of each tenant."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, func, or_, select, union, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.db.models import Bot, TenantQuota
from wopr_platform.fleet.quotas.amounts import Amounts


def _within(used: Any, delta: int, override: Any, default: int) -> ColumnElement[bool] | None:
    """The condition that adding `delta` keeps `used` within its limit (0: none); None when nothing is added."""
    if delta <= 0:
        return None
    limit = func.coalesce(override, default)
    return or_(limit == 0, used + delta <= limit)


class QuotaRepository:
    """Tenant quota rows of one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def ensure(self, tenant_id: str) -> None:
        """Insert the tenant's row (no overrides, no usage) unless it exists; a concurrent insert is no error."""
        dialect = self._session.get_bind().dialect.name
        insert = postgres_insert if dialect == "postgresql" else sqlite_insert
        await self._session.execute(
            insert(TenantQuota)
            .values(tenant_id=tenant_id, bots=0, memory_mb=0, mcpus=0)
            .on_conflict_do_nothing(index_elements=["tenant_id"])
        )

    async def lock(self, tenant_id: str) -> None:
        """Hold the tenant's row until the transaction ends (a row lock on PostgreSQL, the write lock on SQLite)."""
        await self._session.execute(
            update(TenantQuota).where(TenantQuota.tenant_id == tenant_id).values(bots=TenantQuota.bots)
        )

    async def add_within(self, tenant_id: str, delta: Amounts, defaults: Amounts, *, bots_room: int) -> bool:
        """Add `delta` to the usage in one conditional update: False (nothing changed) when an amount that grows
        would pass its limit (the override, else `defaults`; 0 is no limit), or the bots would pass `bots_room`
        (what the tenant's network holds, whatever the limit)."""
        room = TenantQuota.bots + delta.bots <= bots_room if delta.bots > 0 else None
        conditions = [
            condition
            for condition in (
                _within(TenantQuota.bots, delta.bots, TenantQuota.max_bots, defaults.bots),
                _within(TenantQuota.memory_mb, delta.memory_mb, TenantQuota.max_memory_mb, defaults.memory_mb),
                _within(TenantQuota.mcpus, delta.mcpus, TenantQuota.max_mcpus, defaults.mcpus),
                room,
            )
            if condition is not None
        ]
        result = await self._session.execute(
            update(TenantQuota)
            .where(TenantQuota.tenant_id == tenant_id, and_(True, *conditions))
            .values(
                bots=TenantQuota.bots + delta.bots,
                memory_mb=TenantQuota.memory_mb + delta.memory_mb,
                mcpus=TenantQuota.mcpus + delta.mcpus,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def set_usage(self, tenant_id: str, usage: Amounts) -> None:
        await self._session.execute(
            update(TenantQuota)
            .where(TenantQuota.tenant_id == tenant_id)
            .values(bots=usage.bots, memory_mb=usage.memory_mb, mcpus=usage.mcpus)
            .execution_options(synchronize_session=False)
        )

    async def set_overrides(
        self, tenant_id: str, *, max_bots: int | None, max_memory_mb: int | None, max_mcpus: int | None
    ) -> None:
        """Store the tenant's overrides (None: the platform's default)."""
        await self._session.execute(
            update(TenantQuota)
            .where(TenantQuota.tenant_id == tenant_id)
            .values(max_bots=max_bots, max_memory_mb=max_memory_mb, max_mcpus=max_mcpus)
            .execution_options(synchronize_session=False)
        )

    async def get(self, tenant_id: str) -> TenantQuota | None:
        result = await self._session.execute(
            select(TenantQuota).where(TenantQuota.tenant_id == tenant_id).execution_options(populate_existing=True)
        )
        return result.scalar_one_or_none()

    async def tenants(self) -> list[str]:
        """Every tenant that has bots or a quota row."""
        result = await self._session.execute(union(select(Bot.tenant_id), select(TenantQuota.tenant_id)))
        return sorted(result.scalars().all())

    async def bot_resources(self, tenant_id: str) -> Sequence[dict[str, Any] | None]:
        """The own `resources` of each bot of the tenant."""
        result = await self._session.execute(select(Bot.resources).where(Bot.tenant_id == tenant_id))
        return result.scalars().all()


def quota_of(connection: Connection, tenant_id: str) -> TenantQuota | None:
    """The tenant's quota row on a Core connection (`Database.core_read`: the check before a create), as an object
    of no session."""
    found = connection.execute(select(*TenantQuota.__table__.columns).where(TenantQuota.tenant_id == tenant_id))
    row = found.first()
    return TenantQuota(**row._mapping) if row is not None else None
