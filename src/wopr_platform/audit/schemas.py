"""What the audit log records (never a request body or a token), and the shapes GET /audit answers with."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

TargetKind = Literal["bot", "template", "rollout", "tenant", "user", "key", "invitation"]


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One mutating call as it is recorded."""

    at: datetime
    actor: str
    tenant_id: str
    action: str  # method and route template: "PATCH /fleet/bots/{bot_id}"
    target_kind: TargetKind | None
    target_id: str | None
    status: int
    error_code: str | None
    fields: tuple[str, ...] | None  # the names of the fields a PATCH/PUT changed, never their values
    request_id: str  # the platform's own: the X-Request-ID of the answer
    client_request_id: str | None  # the caller's X-Request-ID, if it sent a plain one
    client_address: str | None
    duration_ms: int


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Filters and page of GET /audit (already validated)."""

    bot_id: str | None = None
    action: str | None = None  # a whole action, or only its method
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    before: str | None = None  # only events older than this one (the previous page's `nextBefore`)
    limit: int = 100


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class AuditEventOut(_Wire):
    id: str = Field(validation_alias=AliasChoices("public_id", "id"))
    at: datetime
    actor: str
    tenant_id: str
    action: str
    target_kind: TargetKind | None
    target_id: str | None
    status: int
    error_code: str | None
    fields: list[str] | None
    request_id: str
    client_request_id: str | None
    client_address: str | None
    duration_ms: int


class AuditPage(_Wire):
    """GET /audit: newest first; `nextBefore` is the `before` of the next (older) page, null on the last one."""

    events: list[AuditEventOut]
    next_before: str | None
