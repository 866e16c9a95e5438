"""Wire shapes of the backups API (camelCase on the wire)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from wopr_platform.core.cron import InvalidCron, validate_cron

BackupKind = Literal["manual", "scheduled", "pre-update", "upload"]
BackupState = Literal["creating", "ready", "failed"]


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class BackupOut(_Wire):
    """One backup of a bot's data volume."""

    id: str
    bot_id: str
    bot_name: str
    kind: BackupKind
    state: BackupState
    image: str
    archive_bytes: int
    tar_bytes: int
    sha256: str
    pause_ms: int | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class BackupList(_Wire):
    backups: list[BackupOut]
    next_before: datetime | None  # pass as `before` for the next page; None on the last page


class BackupUsage(_Wire):
    """What a tenant's backups take, against its quota (0: no limit)."""

    tenant_id: str
    stored_bytes: int
    quota_bytes: int


class BackupCreate(_Wire):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, strict=True, extra="forbid")

    bot_id: str = Field(min_length=1, max_length=36)


class RestoreRequest(_Wire):
    """Into the backup's own bot (no field), another bot of the tenant (`botId`)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, strict=True, extra="forbid")

    bot_id: str | None = Field(None, min_length=1, max_length=36)


class PolicyIn(_Wire):
    """A tenant's or a bot's backup policy: each field left out (or null) falls back to the wider one."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, strict=True, extra="forbid")

    schedule: str | None = Field(None, max_length=200)
    keep_last: int | None = Field(None, ge=0, le=10_000)
    max_age_days: int | None = Field(None, ge=0, le=36_500)
    quota_bytes: int | None = Field(None, ge=0, le=10**15)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            validate_cron(value)
        except InvalidCron as err:
            raise ValueError(str(err)) from None
        return value.strip()


class PolicyOut(_Wire):
    """A policy as stored, and what applies once the wider ones fill its gaps."""

    scope: str
    schedule: str | None
    keep_last: int | None
    max_age_days: int | None
    quota_bytes: int | None
    effective: EffectivePolicy


class EffectivePolicy(_Wire):
    schedule: str | None
    keep_last: int
    max_age_days: int
    quota_bytes: int


PolicyOut.model_rebuild()
