"""What the API asks of image updates: a bot's image status, its update history, rollouts, an update now."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.core.errors import Conflict, NotFound
from wopr_platform.core.policy import UpdatePolicy
from wopr_platform.db.models import Bot, ImageUpdate, Rollout
from wopr_platform.db.unit import Database
from wopr_platform.updates.clock import Clock
from wopr_platform.updates.repository import UpdateRepository
from wopr_platform.updates.schemas import (
    ImageStatus,
    RolloutList,
    RolloutOut,
    UpdateHistory,
    UpdateRecord,
    UpdateResultOut,
)
from wopr_platform.updates.updater import Updater
from wopr_platform.updates.watcher import ImageWatcher

MAX_LIST = 500


class UpdateService:
    """Reads come from the database only (no registry or Docker call); an update now asks the registry first."""

    def __init__(
        self,
        *,
        db: Database,
        watcher: ImageWatcher,
        updater: Updater,
        clock: Clock,
        nightly_at: str,
        window: timedelta,
    ) -> None:
        self._db = db
        self._watcher = watcher
        self._updater = updater
        self._clock = clock
        self._nightly_at = nightly_at
        self._window = window

    async def _bot(self, session: AsyncSession, tenant_id: str, bot_id: str) -> Bot:
        bot = await UpdateRepository(session).bot(tenant_id, bot_id)
        if bot is None:
            raise NotFound("bot not found", details={"botId": bot_id})
        return bot

    async def image_status(self, tenant_id: str, bot_id: str) -> ImageStatus:
        """The bot's deployed digest, the newest one its reference has, and when it was last checked."""
        async with self._db.read() as session:
            bot = await self._bot(session, tenant_id, bot_id)
            check = await UpdateRepository(session).check(bot.image)
            halted = await UpdateRepository(session).halted()
        available = check.digest if check is not None else None
        update_available = bool(available and bot.image_digest and available != bot.image_digest)
        scheduled: datetime | None = None
        blocked: str | None = None
        if update_available and available is not None:
            if bot.release_channel == "pinned":
                blocked = "pinned"
            elif available == bot.rejected_digest:
                blocked = "rejected"
            elif (bot.image, available) in halted:
                blocked = "rollout-halted"
            elif bot.desired_state != "running":
                blocked = "stopped"
            else:
                policy = UpdatePolicy.parse(bot.update_policy, nightly_at=self._nightly_at)
                now = self._clock.now()
                if policy.automatic and check is not None:
                    scheduled = policy.applies_at(check.digest_seen_at or now, now, self._window)
        return ImageStatus.model_validate(
            {
                "botId": bot.id,
                "image": bot.image,
                "currentDigest": bot.image_digest,
                "availableDigest": available,
                "updateAvailable": update_available,
                "releaseChannel": bot.release_channel,
                "updatePolicy": bot.update_policy,
                "lastCheckedAt": check.checked_at if check else None,
                "nextCheckAt": (check.next_check_at if check else None) if bot.release_channel != "pinned" else None,
                "checkError": (
                    {"code": check.error_code, "message": check.error, "failures": check.failures}
                    if check is not None and check.error
                    else None
                ),
                "scheduledAt": scheduled,
                "blockedBy": blocked,
                "rejectedDigest": bot.rejected_digest,
                "updating": self._updater.busy(bot.id),
                "watched": bot.release_channel != "pinned" and bot.image_digest is not None,
            }
        )

    async def update_now(self, tenant_id: str, bot_id: str) -> UpdateResultOut:
        """`POST /fleet/bots/{id}/update`: ask the registry for the newest digest, then update under the gate."""
        if self._updater.busy(bot_id):
            raise Conflict("an update of this bot is already in progress", details={"botId": bot_id})
        async with self._db.read() as session:
            bot = await self._bot(session, tenant_id, bot_id)
        if bot.image_digest is None:
            raise Conflict(
                "this bot runs a locally built image with no registry digest: there is nothing to update from",
                details={"botId": bot_id, "image": bot.image},
            )
        result = await self._watcher.check(bot.image)
        if result.exception is not None:
            raise result.exception
        assert result.digest is not None
        done = await self._updater.update(tenant_id, bot_id, result.digest, trigger="manual")
        return UpdateResultOut.model_validate(done.wire())

    async def updates(self, tenant_id: str, bot_id: str, limit: int) -> UpdateHistory:
        """The bot's update attempts, newest first."""
        async with self._db.read() as session:
            await self._bot(session, tenant_id, bot_id)
            records = await UpdateRepository(session).updates(bot_id, min(limit, MAX_LIST))
        return UpdateHistory(updates=[self._update_wire(record) for record in records])

    async def rollouts(self, limit: int) -> RolloutList:
        async with self._db.read() as session:
            rows = await UpdateRepository(session).rollouts(min(limit, MAX_LIST))
        return RolloutList(rollouts=[self._rollout_wire(row) for row in rows])

    async def rollout(self, rollout_id: str) -> RolloutOut:
        async with self._db.read() as session:
            row = await UpdateRepository(session).get_rollout(rollout_id)
        if row is None:
            raise NotFound("rollout not found", details={"rolloutId": rollout_id})
        return self._rollout_wire(row)

    @staticmethod
    def _update_wire(record: ImageUpdate) -> UpdateRecord:
        return UpdateRecord.model_validate(
            {
                "id": record.id,
                "trigger": record.trigger,
                "rolloutId": record.rollout_id,
                "outcome": record.outcome,
                "rolledBack": record.rolled_back,
                "fromImage": record.from_image,
                "toImage": record.to_image,
                "fromDigest": record.from_digest,
                "toDigest": record.to_digest,
                "error": record.error,
                "startedAt": record.started_at,
                "finishedAt": record.finished_at,
            }
        )

    @staticmethod
    def _rollout_wire(row: Rollout) -> RolloutOut:
        return RolloutOut.model_validate(
            {
                "id": row.id,
                "image": row.reference,
                "toDigest": row.to_digest,
                "state": row.state,
                "trigger": row.trigger,
                "reason": row.reason,
                "createdAt": row.created_at,
                "finishedAt": row.finished_at,
                "waves": row.waves,
            }
        )
