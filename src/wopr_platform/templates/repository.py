"""All SQL about seed records (which template has had its bot seeded, per tenant)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.db.models import Bot, TemplateSeed
from wopr_platform.templates.errors import AlreadySeeded

CREATING = "creating"
CREATED = "created"


@dataclass(frozen=True, slots=True)
class SeedRecord:
    """A seed record joined with whether its bot still exists."""

    template: str
    bot_id: str
    state: str
    bot_exists: bool


class SeedRepository:
    """Seed records of one session; every read is scoped to a tenant."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def records(self, tenant_id: str) -> dict[str, SeedRecord]:
        """The tenant's seed records by template name."""
        result = await self._session.execute(
            select(TemplateSeed.template_name, TemplateSeed.bot_id, TemplateSeed.state, Bot.id)
            .outerjoin(Bot, and_(Bot.id == TemplateSeed.bot_id, Bot.tenant_id == TemplateSeed.tenant_id))
            .where(TemplateSeed.tenant_id == tenant_id)
        )
        return {
            template: SeedRecord(template, bot_id, state, found is not None)
            for template, bot_id, state, found in result.all()
        }

    async def templates_in_use(self, tenant_id: str) -> set[str]:
        """The templates the tenant's existing bots were created from."""
        result = await self._session.execute(
            select(Bot.template_name).where(Bot.tenant_id == tenant_id, Bot.template_name.is_not(None)).distinct()
        )
        return {name for name in result.scalars() if name}

    async def claim(
        self, tenant_id: str, template: str, version: int, bot_id: str, *, stale_bot_id: str | None
    ) -> None:
        """Record that `bot_id` is the template's seeded bot, replacing a stale claim; AlreadySeeded if taken."""
        if stale_bot_id is not None:
            await self._session.execute(
                delete(TemplateSeed).where(
                    TemplateSeed.tenant_id == tenant_id,
                    TemplateSeed.template_name == template,
                    TemplateSeed.bot_id == stale_bot_id,
                    TemplateSeed.state == CREATING,
                )
            )
        now = datetime.now(UTC)
        self._session.add(
            TemplateSeed(
                tenant_id=tenant_id,
                template_name=template,
                template_version=version,
                bot_id=bot_id,
                state=CREATING,
                created_at=now,
                updated_at=now,
            )
        )
        try:
            await self._session.flush()
        except IntegrityError:
            raise AlreadySeeded(
                f"template {template} has already been seeded", details={"template": template}
            ) from None

    async def mark_created(self, tenant_id: str, template: str, bot_id: str) -> None:
        """The seeded bot exists and was started: from now on its removal is the operator's decision."""
        await self._session.execute(
            update(TemplateSeed)
            .where(
                TemplateSeed.tenant_id == tenant_id,
                TemplateSeed.template_name == template,
                TemplateSeed.bot_id == bot_id,
            )
            .values(state=CREATED, updated_at=datetime.now(UTC))
        )

    async def release(self, tenant_id: str, template: str, bot_id: str) -> None:
        """Forget a claim whose bot could not be created."""
        await self._session.execute(
            delete(TemplateSeed).where(
                TemplateSeed.tenant_id == tenant_id,
                TemplateSeed.template_name == template,
                TemplateSeed.bot_id == bot_id,
                TemplateSeed.state == CREATING,
            )
        )
