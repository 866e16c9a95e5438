"""Reading the audit log: a tenant's events, filtered and paged."""

from __future__ import annotations

from wopr_platform.audit.repository import AuditRepository
from wopr_platform.audit.schemas import AuditEventOut, AuditPage, AuditQuery
from wopr_platform.audit.writer import AuditWriter
from wopr_platform.core.errors import ValidationFailed
from wopr_platform.db.unit import Database


class AuditService:
    """The audit log as the API shows it."""

    def __init__(self, *, db: Database, writer: AuditWriter) -> None:
        self._db = db
        self._writer = writer

    async def events(self, tenant_id: str, query: AuditQuery) -> AuditPage:
        """The tenant's events matching `query`, newest first, with the cursor of the next page."""
        if query.since is not None and query.until is not None and query.since >= query.until:
            raise ValidationFailed("since must be before until", details={"field": "since"})
        await self._writer.flush()  # the caller's own changes, just answered, are in the answer
        async with self._db.read() as session:
            rows = await AuditRepository(session).page(tenant_id, query)
        return AuditPage(
            events=[AuditEventOut.model_validate(row, from_attributes=True) for row in rows],
            next_before=rows[-1].public_id if len(rows) == query.limit else None,
        )
