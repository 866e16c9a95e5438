"""Response shapes of the image-update API (documented in the OpenAPI document; camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class UpdateResultOut(_Wire):
    """POST /fleet/bots/{id}/update."""

    bot_id: str
    success: bool
    outcome: Literal["updated", "current", "rolled_back", "failed"]
    previous_image: str
    new_image: str
    previous_digest: str | None
    new_digest: str | None
    rolled_back: bool
    update_id: str | None
    error: str | None = None


class CheckError(_Wire):
    code: str | None
    message: str
    failures: int


class ImageStatus(_Wire):
    """GET /fleet/bots/{id}/image-status."""

    bot_id: str
    image: str
    current_digest: str | None
    available_digest: str | None
    update_available: bool
    release_channel: str
    update_policy: str
    last_checked_at: datetime | None
    next_check_at: datetime | None
    check_error: CheckError | None
    scheduled_at: datetime | None
    blocked_by: Literal["pinned", "rejected", "rollout-halted", "stopped"] | None
    rejected_digest: str | None
    updating: bool
    watched: bool


class UpdateRecord(_Wire):
    id: str
    trigger: str
    rollout_id: str | None
    outcome: Literal["running", "updated", "rolled_back", "failed", "interrupted"]
    rolled_back: bool
    from_image: str
    to_image: str | None
    from_digest: str | None
    to_digest: str | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None


class UpdateHistory(_Wire):
    """GET /fleet/bots/{id}/updates, newest first."""

    updates: list[UpdateRecord]


class RolloutOut(_Wire):
    id: str
    image: str
    to_digest: str
    state: Literal["running", "completed", "halted", "interrupted", "failed"]
    trigger: str
    reason: str | None
    created_at: datetime
    finished_at: datetime | None
    waves: list[dict[str, Any]]


class RolloutList(_Wire):
    """GET /fleet/rollouts, newest first."""

    rollouts: list[RolloutOut]
