"""All SQL about seed records (which template has had its bot seeded, per tenant)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.db.models import Bot, TemplateSeed
from wopr_platform.fleet.repository import SEED_CREATING

CREATING = SEED_CREATING  # claimed with the bot by the fleet, in the transaction that stores it
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
