"""All SQL about audit events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import asdict

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.audit.schemas import AuditQuery, AuditRecord
from wopr_platform.db.models import AuditEvent


class AuditRepository:
    """Reads and writes of one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def add(self, records: Sequence[AuditRecord]) -> None:
        """Insert `records` in one statement (ids follow their order)."""
        rows = []
        for record in records:
            row = asdict(record)
            row["fields"] = list(record.fields) if record.fields is not None else None
            row["public_id"] = uuid.uuid4().hex
            rows.append(row)
        await self._session.execute(insert(AuditEvent), rows)

    async def page(self, tenant_id: str, query: AuditQuery) -> Sequence[AuditEvent]:
        """The tenant's events matching `query`, newest first."""
        statement = select(AuditEvent).where(AuditEvent.tenant_id == tenant_id)
        if query.bot_id is not None:
            statement = statement.where(AuditEvent.target_kind == "bot", AuditEvent.target_id == query.bot_id)
        if query.action is not None:
            if " " in query.action:
                statement = statement.where(AuditEvent.action == query.action)
            else:
                statement = statement.where(AuditEvent.action.startswith(query.action + " ", autoescape=True))
        if query.since is not None:
            statement = statement.where(AuditEvent.at >= query.since)
        if query.until is not None:
            statement = statement.where(AuditEvent.at < query.until)
        if query.before is not None:
            cursor = select(AuditEvent.id).where(
                AuditEvent.tenant_id == tenant_id, AuditEvent.public_id == query.before
            )
            statement = statement.where(AuditEvent.id < cursor.scalar_subquery())
        statement = statement.order_by(AuditEvent.id.desc()).limit(query.limit)
        return (await self._session.scalars(statement)).all()
