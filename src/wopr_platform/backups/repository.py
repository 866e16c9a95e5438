"""All the backups' SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.db.models import Backup, BackupPolicy

LIVE_STATES = ("creating", "ready")  # what takes storage


class BackupRepository:
    """Reads and writes of one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def add(self, backup: Backup) -> None:
        self._session.add(backup)

    async def get(self, backup_id: str, tenant_id: str | None) -> Backup | None:
        """The backup, when it is the tenant's (any tenant's for None)."""
        backup = await self._session.get(Backup, backup_id)
        if backup is None or (tenant_id is not None and backup.tenant_id != tenant_id):
            return None
        return backup

    async def page(
        self, tenant_id: str, bot_id: str | None, *, limit: int, before: datetime | None
    ) -> Sequence[Backup]:
        query = select(Backup).where(Backup.tenant_id == tenant_id)
        if bot_id is not None:
            query = query.where(Backup.bot_id == bot_id)
        if before is not None:
            query = query.where(Backup.created_at < before)
        result = await self._session.execute(query.order_by(Backup.created_at.desc(), Backup.id).limit(limit))
        return result.scalars().all()

    async def of_bot(self, bot_id: str) -> Sequence[Backup]:
        """A bot's backups, newest first (retention walks them)."""
        result = await self._session.execute(
            select(Backup).where(Backup.bot_id == bot_id).order_by(Backup.created_at.desc(), Backup.id)
        )
        return result.scalars().all()

    async def bots_with_backups(self) -> Sequence[tuple[str, str]]:
        """(bot id, tenant id) of every bot that has backups."""
        result = await self._session.execute(select(Backup.bot_id, Backup.tenant_id).distinct())
        return [(bot_id, tenant_id) for bot_id, tenant_id in result.all()]

    async def stored_bytes(self, tenant_id: str) -> int:
        """What the tenant's backups take in the store (the ones being written count as what they have so far)."""
        result = await self._session.execute(
            select(func.coalesce(func.sum(Backup.archive_bytes), 0)).where(
                Backup.tenant_id == tenant_id, Backup.state.in_(LIVE_STATES)
            )
        )
        return int(result.scalar_one())

    async def stored_by_tenant(self) -> dict[str, int]:
        result = await self._session.execute(
            select(Backup.tenant_id, func.sum(Backup.archive_bytes))
            .where(Backup.state == "ready")
            .group_by(Backup.tenant_id)
        )
        return {tenant: int(total or 0) for tenant, total in result.all()}

    async def unfinished(self, started_before: datetime) -> Sequence[Backup]:
        """Backups still `creating` that began before the moment (an interrupted process left them)."""
        result = await self._session.execute(
            select(Backup).where(Backup.state == "creating", Backup.created_at < started_before)
        )
        return result.scalars().all()

    async def delete(self, backup: Backup) -> None:
        await self._session.delete(backup)

    # policies --------------------------------------------------------------------------------------------

    async def policy(self, scope: str) -> BackupPolicy | None:
        return await self._session.get(BackupPolicy, scope)

    async def policies_of(self, tenant_id: str) -> Sequence[BackupPolicy]:
        result = await self._session.execute(select(BackupPolicy).where(BackupPolicy.tenant_id == tenant_id))
        return result.scalars().all()

    async def scheduled_policies(self) -> Sequence[BackupPolicy]:
        result = await self._session.execute(select(BackupPolicy).where(BackupPolicy.schedule.is_not(None)))
        return result.scalars().all()

    def add_policy(self, policy: BackupPolicy) -> None:
        self._session.add(policy)
