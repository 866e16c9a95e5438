"""All SQL about image checks, update history and rollouts."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.db.models import Bot, ImageCheck, ImageUpdate, Rollout

CANDIDATE_COLUMNS = (
    Bot.id,
    Bot.tenant_id,
    Bot.image,
    Bot.image_digest,
    Bot.release_channel,
    Bot.update_policy,
    Bot.created_at,
    ImageCheck.digest,
    ImageCheck.digest_seen_at,
)


class UpdateRepository:
    """Reads and writes of one session."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    # what to watch ----------------------------------------------------------------------------------------

    async def tracked_references(self) -> Sequence[Any]:
        """(image, channel) pairs of bots that follow a channel and run an image that came from a registry."""
        query = (
            select(Bot.image, Bot.release_channel)
            .where(Bot.release_channel != "pinned", Bot.image_digest.is_not(None))
            .group_by(Bot.image, Bot.release_channel)
        )
        return (await self._session.execute(query)).all()

    async def checks(self, references: Sequence[str] | None = None) -> dict[str, ImageCheck]:
        query = select(ImageCheck)
        if references is not None:
            query = query.where(ImageCheck.reference.in_(references))
        return {row.reference: row for row in (await self._session.scalars(query)).all()}

    async def check(self, reference: str) -> ImageCheck | None:
        return await self._session.get(ImageCheck, reference)

    async def save_check(self, check: ImageCheck) -> None:
        await self._session.merge(check)

    # what to update -------------------------------------------------------------------------------------

    async def candidates(self) -> Sequence[Any]:
        """Running bots with an automatic policy whose reference has a newer digest they have not rejected."""
        query = (
            select(*CANDIDATE_COLUMNS)
            .join(ImageCheck, ImageCheck.reference == Bot.image)
            .where(
                Bot.release_channel != "pinned",
                Bot.update_policy != "manual",
                Bot.desired_state == "running",
                Bot.image_digest.is_not(None),
                ImageCheck.digest.is_not(None),
                Bot.image_digest != ImageCheck.digest,
                (Bot.rejected_digest.is_(None)) | (Bot.rejected_digest != ImageCheck.digest),
            )
            .order_by(Bot.created_at, Bot.id)
        )
        return (await self._session.execute(query)).all()

    # history ----------------------------------------------------------------------------------------------

    def add_update(self, record: ImageUpdate) -> None:
        self._session.add(record)

    async def get_update(self, update_id: str) -> ImageUpdate | None:
        return await self._session.get(ImageUpdate, update_id)

    async def updates(self, bot_id: str, limit: int) -> Sequence[ImageUpdate]:
        query = (
            select(ImageUpdate)
            .where(ImageUpdate.bot_id == bot_id)
            .order_by(ImageUpdate.started_at.desc(), ImageUpdate.id)
            .limit(limit)
        )
        return (await self._session.scalars(query)).all()

    async def unfinished_updates(self) -> Sequence[ImageUpdate]:
        query = select(ImageUpdate).where(ImageUpdate.outcome == "running")
        return (await self._session.scalars(query)).all()

    # rollouts -------------------------------------------------------------------------------------------

    def add_rollout(self, rollout: Rollout) -> None:
        self._session.add(rollout)

    async def bot(self, tenant_id: str, bot_id: str) -> Bot | None:
        """One of the tenant's bots (None when it is another tenant's or does not exist)."""
        result = await self._session.execute(select(Bot).where(Bot.id == bot_id, Bot.tenant_id == tenant_id))
        return result.scalar_one_or_none()

    async def deployed_digest(self, bot_id: str) -> str | None:
        """The digest a bot runs now (None when it has none, or no longer exists)."""
        result = await self._session.execute(select(Bot.image_digest).where(Bot.id == bot_id))
        return result.scalar_one_or_none()

    async def get_rollout(self, rollout_id: str) -> Rollout | None:
        return await self._session.get(Rollout, rollout_id)

    async def rollouts(self, limit: int, *, reference: str | None = None) -> Sequence[Rollout]:
        query = select(Rollout).order_by(Rollout.created_at.desc(), Rollout.id).limit(limit)
        if reference is not None:
            query = query.where(Rollout.reference == reference)
        return (await self._session.scalars(query)).all()

    async def halted(self) -> set[tuple[str, str]]:
        """(reference, digest) pairs whose rollout halted: not rolled out again by itself."""
        query = select(Rollout.reference, Rollout.to_digest).where(Rollout.state == "halted")
        return {(row[0], row[1]) for row in (await self._session.execute(query)).all()}

    async def interrupt_running_rollouts(self, now: datetime, reason: str) -> int:
        result = await self._session.execute(
            update(Rollout)
            .where(Rollout.state == "running")
            .values(state="interrupted", reason=reason, finished_at=now)
        )
        return int(getattr(result, "rowcount", 0) or 0)
