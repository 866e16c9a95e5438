"""Tables: what every bot should be (its profile and desired state)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, Integer, String, Text, TypeDecorator, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Bot(Base):
    """A bot's profile and desired state; the container is derived from it."""

    __tablename__ = "bots"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_bots_tenant_name"),
        UniqueConstraint("tenant_id", "volume_name", name="uq_bots_tenant_volume"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63), index=True)
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(Text, default="")
    image: Mapped[str] = mapped_column(String(512))
    env: Mapped[dict[str, Any]] = mapped_column(default=dict)
    restart_policy: Mapped[str] = mapped_column(String(20))
    volume_name: Mapped[str] = mapped_column(String(63))
    release_channel: Mapped[str] = mapped_column(String(20))
    update_policy: Mapped[str] = mapped_column(String(200))
    health_check: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    desired_state: Mapped[str] = mapped_column(String(20))
    container_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # the profile template the bot was created from, and which env keys hold resolved `${VAR}` values (redacted)
    template_name: Mapped[str | None] = mapped_column(String(63), default=None)
    template_version: Mapped[int | None] = mapped_column(Integer, default=None)
    secret_env_keys: Mapped[list[str] | None] = mapped_column(JSON, default=None)


class Operation(Base):
    """A multi-step change in flight (see `fleet.journal`)."""

    __tablename__ = "operations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    bot_id: Mapped[str] = mapped_column(String(36), index=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(20))
    stage: Mapped[str] = mapped_column(String(20))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class TemplateSeed(Base):
    """That `POST /fleet/seed` created a bot from a template for a tenant (kept after the bot is deleted).

    `state` is `creating` from the transaction that stores the bot until its container runs, then `created`.
    """

    __tablename__ = "template_seeds"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    template_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    template_version: Mapped[int] = mapped_column(Integer)
    bot_id: Mapped[str] = mapped_column(String(36), index=True)
    state: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
