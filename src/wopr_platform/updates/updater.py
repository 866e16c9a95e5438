"""Moving one bot to another image digest, gated by the instance's own health, rolled back when it fails.

The steps, under the bot's lock: pull the new image by digest (a failed pull leaves the running container
alone); park the old container (stopped, renamed, kept); create and start the new one pinned to the digest;
probe its health until it answers or the timeout passes. Healthy → the profile records the new digest, the
old container goes, and the old image is dropped if nothing else uses it. Not healthy → the new container is
removed and the old one comes back with the same data volume. The swap is journaled like a profile change,
so a crash mid-update is settled by recovery (the old container is restored unless the new digest was
committed). Every attempt is recorded in `image_updates`.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from wopr_platform.backups.service import Backups
from wopr_platform.core.errors import Conflict, PlatformError
from wopr_platform.core.faults import CrashPoints
from wopr_platform.core.metrics import PlatformMetrics
from wopr_platform.core.reference import pinned
from wopr_platform.db.models import Bot, ImageUpdate
from wopr_platform.db.unit import Database
from wopr_platform.fleet.lifecycle.service import FleetService
from wopr_platform.fleet.observation.events import EventBus
from wopr_platform.updates.clock import Clock
from wopr_platform.updates.repository import UpdateRepository

log = logging.getLogger(__name__)

# the new instance is probed soon after its start (it usually answers within milliseconds), then less often
FIRST_PROBE_PAUSE = 0.025
MAX_PROBE_PAUSE = 0.5
RUNNING_STATES = ("created", "running", "restarting")
INTERRUPTED = "the platform stopped during the update; the previous container was restored"


@dataclass(slots=True)
class UpdateResult:
    """How one update ended (the API's UpdateResult)."""

    bot_id: str
    success: bool
    previous_image: str
    new_image: str
    previous_digest: str | None
    new_digest: str | None
    rolled_back: bool = False
    outcome: str = "updated"  # updated | current | rolled_back | failed | skipped
    error: str | None = None
    update_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "botId": self.bot_id,
            "success": self.success,
            "outcome": self.outcome,
            "previousImage": self.previous_image,
            "newImage": self.new_image,
            "previousDigest": self.previous_digest,
            "newDigest": self.new_digest,
            "rolledBack": self.rolled_back,
            "updateId": self.update_id,
        }
        if self.error is not None:
            body["error"] = self.error
        return body


class Updater:
    """Runs health-gated updates, one per bot at a time; the swap itself is the fleet's (`replace_image`)."""

    def __init__(
        self,
        *,
        db: Database,
        fleet: FleetService,
        events: EventBus,
        clock: Clock,
        crash: CrashPoints,
        health_timeout: float,
        backups: Backups | None = None,
        metrics: PlatformMetrics | None = None,
    ) -> None:
        self._metrics = metrics or PlatformMetrics()
        self._backups = backups  # with backups: the new version runs on a copy of the data, archived first
        self._db = db
        self._fleet = fleet
        self._events = events
        self._clock = clock
        self._crash = crash
        self._health_timeout = health_timeout
        self._busy: set[str] = set()

    def busy(self, bot_id: str) -> bool:
        """Is an update of this bot running now?"""
        return bot_id in self._busy

    async def update(
        self,
        tenant_id: str | None,
        bot_id: str,
        digest: str,
        *,
        trigger: str,
        rollout_id: str | None = None,
    ) -> UpdateResult:
        """Move the bot to `digest` of its image reference. A second update of the same bot meanwhile → Conflict."""
        if bot_id in self._busy:
            raise Conflict("an update of this bot is already in progress", details={"botId": bot_id})
        self._busy.add(bot_id)
        try:
            async with self._fleet.operation(tenant_id, bot_id, engine=False) as bot:
                result = await self._update(bot, digest, trigger=trigger, rollout_id=rollout_id)
            self._metrics.updates.labels(result.outcome).inc()
            return result
        finally:
            self._busy.discard(bot_id)

    async def _update(self, bot: Bot, digest: str, *, trigger: str, rollout_id: str | None) -> UpdateResult:
        previous = pinned(bot.image, bot.image_digest)
        target = pinned(bot.image, digest)
        result = UpdateResult(
            bot_id=bot.id,
            success=True,
            previous_image=previous,
            new_image=target,
            previous_digest=bot.image_digest,
            new_digest=digest,
        )
        if bot.image_digest == digest:
            result.outcome = "current"
            return result
        if bot.desired_state != "running":
            raise Conflict(
                "the bot is stopped: start it first, so the update can be verified by its health",
                details={"botId": bot.id},
            )
        await self._fleet.require_engine()
        record_id = await self._record_start(bot, result, trigger=trigger, rollout_id=rollout_id)
        result.update_id = record_id
        self._events.publish("update_started", bot.id, bot.tenant_id, image=target, trigger=trigger)
        log.info("updating bot", extra={"bot_id": bot.id, "image": target, "trigger": trigger})
        try:
            return await self._apply(bot, result, target, digest)
        except PlatformError as err:  # the record says why, not "running" until the next restart
            await self._finish(bot, result, "failed", error=err.message)
            raise

    async def _apply(self, bot: Bot, result: UpdateResult, target: str, digest: str) -> UpdateResult:
        try:
            await self._fleet.pull(target)
        except PlatformError as err:
            # nothing was touched: the running container is the old one
            return await self._finish(bot, result, "failed", error=f"pull failed: {err.message}")
        self._crash.reached("update.after_pull")
        try:
            fill = self._backups.before_update(bot) if self._backups is not None and self._backups.sealing else None
            replaced = await self._fleet.replace_image(bot, digest, health_timeout=self._health_timeout, fill=fill)
        except PlatformError as err:
            if not err.details.get("rolledBack"):
                raise
            return await self._finish(bot, result, "rolled_back", error=f"could not start the new image: {err.message}")
        if not replaced.took:
            await self._fleet.reject_digest(bot.id, digest)
            return await self._finish(bot, result, "rolled_back", error=replaced.why)
        if replaced.old_image_id:
            await self._drop_image(replaced.old_image_id, result.previous_image)
        return await self._finish(bot, result, "updated")

    async def _drop_image(self, image_id: str, previous: str) -> None:
        """Remove the image the bot ran before (by id and without force: the engine keeps it while any container,
        another bot's, still uses it, and removing it with its stale local tag makes the next bot created on the tag
        pull the current build). The update took either way: a failure here is only logged."""
        try:
            if await self._fleet.remove_image(image_id):
                log.info("previous image removed", extra={"image": previous})
        except PlatformError as err:
            log.warning("could not remove the previous image", extra={"image": previous, "reason": err.message})

    async def _record_start(self, bot: Bot, result: UpdateResult, *, trigger: str, rollout_id: str | None) -> str:
        record_id = str(uuid.uuid4())
        async with self._db.unit() as session:
            UpdateRepository(session).add_update(
                ImageUpdate(
                    id=record_id,
                    bot_id=bot.id,
                    tenant_id=bot.tenant_id,
                    rollout_id=rollout_id,
                    trigger=trigger,
                    outcome="running",
                    rolled_back=False,
                    from_image=result.previous_image,
                    to_image=result.new_image,
                    from_digest=result.previous_digest,
                    to_digest=result.new_digest,
                    started_at=self._clock.now(),
                )
            )
        return record_id

    async def _finish(self, bot: Bot, result: UpdateResult, outcome: str, *, error: str | None = None) -> UpdateResult:
        result.outcome = outcome
        result.success = outcome == "updated"
        result.rolled_back = outcome == "rolled_back"
        result.error = error
        assert result.update_id is not None
        async with self._db.unit() as session:
            record = await UpdateRepository(session).get_update(result.update_id)
            if record is not None:
                record.outcome = outcome
                record.rolled_back = result.rolled_back
                record.error = error
                record.finished_at = self._clock.now()
        if result.success:
            log.info("bot updated", extra={"bot_id": bot.id, "image": result.new_image})
            self._events.publish("updated", bot.id, bot.tenant_id, image=result.new_image)
        else:
            log.warning(
                "bot update failed",
                extra={"bot_id": bot.id, "image": result.new_image, "outcome": outcome, "reason": error},
            )
            self._events.publish(
                "update_failed", bot.id, bot.tenant_id, image=result.new_image, rolledBack=result.rolled_back
            )
        return result

    async def settle_interrupted(self) -> int:
        """After a restart (and crash recovery): close the records of updates a crash cut short."""
        now = self._clock.now()
        async with self._db.unit() as session:
            records = await UpdateRepository(session).unfinished_updates()
            for record in records:
                deployed = await UpdateRepository(session).deployed_digest(record.bot_id)
                landed = record.to_digest is not None and deployed == record.to_digest
                record.outcome = "updated" if landed else "interrupted"
                record.rolled_back = not landed
                record.error = (
                    None if landed else "the platform stopped during the update; the previous container was restored"
                )
                record.finished_at = now
        return len(records)
