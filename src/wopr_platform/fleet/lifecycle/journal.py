"""The operation journal: every multi-step change records its intent before touching Docker.

A row lives from the moment an operation starts until it is complete; whatever rows a starting platform
finds belong to operations a crash interrupted, and recovery (`fleet.reconciliation.recovery`) finishes or
undoes each of them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.db.models import Operation
from wopr_platform.db.unit import Database


class Journal:
    """Operations in flight, in the same database as the profiles (so a profile and its journal row commit together)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    def begin(session: AsyncSession, kind: str, bot_id: str, tenant_id: str, payload: dict[str, Any]) -> str:
        """Add an intent row to `session` (committed by the caller's transaction); returns its id."""
        op_id = str(uuid.uuid4())
        session.add(
            Operation(
                id=op_id,
                bot_id=bot_id,
                tenant_id=tenant_id,
                kind=kind,
                stage="started",
                payload=payload,
                created_at=datetime.now(UTC),
            )
        )
        return op_id

    async def note(self, op_id: str, *, stage: str | None = None, **facts: Any) -> None:
        """Record progress of an operation in its own transaction."""
        async with self._db.step() as session:
            op = await session.get(Operation, op_id)
            if op is None:
                return
            op.payload = {**op.payload, **facts}
            if stage is not None:
                op.stage = stage

    @staticmethod
    async def mark(session: AsyncSession, op_id: str, stage: str) -> None:
        """Move the operation to `stage` inside the caller's transaction."""
        op = await session.get(Operation, op_id)
        if op is not None:
            op.stage = stage

    @staticmethod
    async def finish(session: AsyncSession, op_id: str) -> None:
        """Drop the row inside the caller's transaction: the operation is complete."""
        await session.execute(delete(Operation).where(Operation.id == op_id))

    async def finish_now(self, op_id: str) -> None:
        async with self._db.step() as session:
            await self.finish(session, op_id)

    async def pending(self) -> Sequence[Operation]:
        """Operations a previous run did not complete, oldest first."""
        async with self._db.read() as session:
            result = await session.execute(select(Operation).order_by(Operation.created_at))
            return result.scalars().all()
