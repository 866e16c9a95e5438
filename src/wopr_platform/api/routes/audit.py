"""HTTP route of the audit log: parse the filters, call the service, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from wopr_platform.api.auth import Operator
from wopr_platform.api.deps import UUID_RE, Audit
from wopr_platform.api.params import Time, as_utc
from wopr_platform.audit.schemas import AuditPage, AuditQuery

router = APIRouter(tags=["audit"])
# a whole action ("PATCH /fleet/bots/{bot_id}") or only its method ("DELETE")
ACTION_PATTERN = r"^(POST|PATCH|PUT|DELETE)( /[A-Za-z0-9_{}/.-]{0,200})?$"
CURSOR_PATTERN = r"^[0-9a-f]{32}$"


@router.get("/audit", response_model=AuditPage)
async def list_audit_events(
    principal: Operator,
    audit: Audit,
    bot_id: Annotated[str | None, Query(alias="botId", pattern=UUID_RE.pattern)] = None,
    action: Annotated[str | None, Query(max_length=220, pattern=ACTION_PATTERN)] = None,
    since: Annotated[Time, Query(description="ISO 8601; events at or after it")] = None,
    until: Annotated[Time, Query(description="ISO 8601; events before it")] = None,
    before: Annotated[
        str | None, Query(pattern=CURSOR_PATTERN, description="the previous page's nextBefore (an event id)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    """The caller's tenant's mutating calls (who, what, on what, outcome), newest first."""
    query = AuditQuery(
        bot_id=bot_id.lower() if bot_id else None,
        action=action,
        since=as_utc(since),
        until=as_utc(until),
        before=before,
        limit=limit,
    )
    return await audit.events(principal.tenant_id, query)
