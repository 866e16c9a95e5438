"""The one way a bot's container is replaced: a profile change (PATCH), an image update and its rollback all use it.

The steps: the intent goes to the journal (its one durable step before Docker is touched); the old container
is parked (stopped, renamed, kept) and a new one built from the new snapshot; optionally the new one must turn
healthy within a deadline; then the profile change is stored with the journal row marked committed, in one
transaction; only then is the old container removed. A failure at any step brings the old container back, and a
crash at any step is settled by recovery at the next start (the old container comes back unless the change was
committed). The caller holds the bot's lock.

A replacement may also move the bot onto a fresh volume (a restore, or an image update that keeps the data it
started from): the caller fills the fresh volume while the old container is stopped, the new container mounts it,
and the old volume is removed only after the commit. Until then the old data is never touched, so a failure or a
crash at any step leaves the bot on its old container and its old data (recovery removes the fresh volume).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from dataclasses import replace as with_fields
from datetime import UTC, datetime
from typing import Any, ClassVar

from wopr_platform.core.errors import Conflict, NotFound, PlatformError
from wopr_platform.core.faults import CrashPoints
from wopr_platform.db.models import Bot
from wopr_platform.db.unit import Database
from wopr_platform.docker.engine import VOLUME_ROOT
from wopr_platform.docker.types import ContainerInfo
from wopr_platform.fleet.lifecycle.containers import BotContainers, Snapshot, Swap
from wopr_platform.fleet.lifecycle.journal import Journal
from wopr_platform.fleet.observation.health import HealthMonitor
from wopr_platform.fleet.quotas.service import Quotas
from wopr_platform.fleet.repository import BotRepository
from wopr_platform.instance.client import InstanceClient

log = logging.getLogger(__name__)

# the new instance is probed soon after its start (it usually answers within milliseconds), then less often
FIRST_PROBE_PAUSE = 0.025
MAX_PROBE_PAUSE = 0.5
RUNNING_STATES = ("created", "running", "restarting")


@dataclass(frozen=True, slots=True)
class Replaced:
    """How a replacement ended: the stored bot when it took, else why the previous container is back."""

    bot: Bot | None
    why: str
    old_image_id: str | None = None  # the image the removed container ran (the caller may drop it)

    @property
    def took(self) -> bool:
        return self.bot is not None


@dataclass(frozen=True, slots=True)
class VolumeMove:
    """A bot's move onto a fresh volume, handed to the caller's fill while the old container is stopped: `read`
    streams the data the bot has now (a tar stream), `write` fills the fresh volume from one."""

    ROOT: ClassVar[str] = VOLUME_ROOT  # the directory every entry of the tar streams lies under

    source: str
    target: str
    image: str  # one the engine holds (the new container's), for the helper containers that read and write
    _containers: BotContainers = field(repr=False)

    def read(self) -> AsyncIterator[bytes]:
        return self._containers.volume_files(self.source, self.image)

    async def write(self, tar: AsyncIterable[bytes]) -> None:
        await self._containers.write_volume_files(self.target, self.image, tar)


VolumeFill = Callable[[VolumeMove], Awaitable[None]]
FRESH_VOLUME_TRIES = 5


class Replacer:
    """Replaces containers under the journal, with an optional health gate and undo on failure."""

    def __init__(
        self,
        *,
        db: Database,
        containers: BotContainers,
        instances: InstanceClient,
        health: HealthMonitor,
        journal: Journal,
        crash: CrashPoints,
        quotas: Quotas,
    ) -> None:
        self._quotas = quotas
        self._db = db
        self._containers = containers
        self._instances = instances
        self._health = health
        self._journal = journal
        self._crash = crash

    async def replace(
        self,
        bot: Bot,
        after: Snapshot,
        changes: dict[str, Any],
        *,
        health_timeout: float | None = None,
        crash_prefix: str = "patch",
        fill: VolumeFill | None = None,
    ) -> Replaced:
        """Swap the bot's container for one built from `after` and store `changes` with it.

        With `health_timeout`, the new container must be healthy within it, else the old one comes back and the
        answer says why (not an exception: an unhealthy image is an outcome). A container that cannot be made or
        started raises (with `rolledBack` in its details: the previous container is back).

        With `fill`, the new container gets a fresh volume (the next generation of the bot's volume), which `fill`
        fills while the old container is stopped; the old volume is removed once the change is committed.
        """
        await self._containers.require_engine()
        before = Snapshot.of(bot)
        move: VolumeMove | None = None
        if fill is not None:
            generation = await self._fresh_generation(bot)
            after = with_fields(after, volume_generation=generation)
            changes = {**changes, "volume_generation": generation}
            move = VolumeMove(
                source=self._containers.volume(bot),
                target=self._containers.volume(bot, after.volume_name, generation),
                image=after.image,
                _containers=self._containers,
            )
        payload: dict[str, Any] = {"before": before.wire(), "after": after.wire()}
        if move is not None:
            payload["move"] = {"source": move.source, "target": move.target}
        async with self._db.step() as session:  # the journal's durable step
            op_id = self._journal.begin(session, "patch", bot.id, bot.tenant_id, payload)

        async def parked(old: ContainerInfo, was_running: bool) -> None:
            await self._journal.note(op_id, oldContainer=old.id, wasRunning=was_running)

        async def while_parked() -> None:
            assert move is not None and fill is not None
            await self._containers.make_volume(bot, move.target)
            self._crash.reached(f"{crash_prefix}.after_fresh_volume")
            await fill(move)
            self._crash.reached(f"{crash_prefix}.after_fill")

        fresh = move.target if move is not None else None  # the volume a failure leaves behind for removal
        try:
            swap = await self._containers.replace(
                bot,
                after,
                on_parked=parked,
                crash_prefix=crash_prefix,
                while_parked=while_parked if move is not None else None,
            )
        except BaseException as err:
            _mark_rolled_back(err)
            await self._drop_volume(fresh)
            await self._journal.finish_now(op_id)
            raise
        if health_timeout is not None:
            try:
                healthy, why = await self._wait_healthy(bot, swap.new_id, health_timeout)
            except BaseException as err:  # the engine failed while the new container was probed: undo it all
                await self._undo(bot, swap, fresh, op_id)
                _mark_rolled_back(err)
                raise
            self._crash.reached(f"{crash_prefix}.after_health_gate")
            if not healthy:
                await self._undo(bot, swap, fresh, op_id)
                return Replaced(bot=None, why=why)
        try:
            stored = await self._store(bot, changes, container_id=swap.new_id, op_id=op_id)
        except BaseException:
            await self._containers.restore(bot, swap)
            await self._drop_volume(fresh)
            await self._journal.finish_now(op_id)
            raise
        self._crash.reached(f"{crash_prefix}.after_commit")
        if swap.old is not None:
            try:
                await self._containers.remove(swap.old.id)
            except PlatformError as err:  # the change took: the reconciler removes the duplicate later
                log.warning(
                    "could not remove the replaced container",
                    extra={"bot_id": bot.id, "container_id": swap.old.id, "reason": err.message},
                )
        await self._drop_volume(move.source if move else None)
        await self._journal.finish_now(op_id)
        return Replaced(bot=stored, why="replaced", old_image_id=swap.old.image_id if swap.old is not None else None)

    async def _undo(self, bot: Bot, swap: Swap, fresh: str | None, op_id: str) -> None:
        """After the health gate: the old container back, the fresh volume (if any) removed, the journal row done."""
        try:
            await self._containers.restore(bot, swap)
            await self._drop_volume(fresh)
        finally:
            await self._journal.finish_now(op_id)

    async def _fresh_generation(self, bot: Bot) -> int:
        """The next generation of the bot's volume whose name no volume has (one left by an earlier failure that
        could not be removed is skipped)."""
        generation = int(bot.volume_generation or 0)
        for _ in range(FRESH_VOLUME_TRIES):
            generation += 1
            name = self._containers.volume(bot, bot.volume_name, generation)
            if not await self._containers.volume_exists(name) or await self._containers.remove_earlier_volume(name):
                return generation
        raise Conflict("no fresh volume could be made for the bot", details={"botId": bot.id})

    async def _drop_volume(self, name: str | None) -> None:
        """Remove a volume the bot no longer uses (best effort: one the engine will not remove yet is reported by
        the reconciler as an old volume)."""
        if name is None:
            return
        try:
            if not await self._containers.remove_earlier_volume(name):
                log.warning("a volume the bot left is still in use; kept", extra={"volume": name})
        except PlatformError as err:
            log.warning("could not remove a volume the bot left", extra={"volume": name, "reason": err.message})

    async def _store(self, bot: Bot, changes: dict[str, Any], *, container_id: str, op_id: str) -> Bot:
        """Write the new profile, its change of the tenant's usage, and mark the journal row committed, in one
        transaction (a refused charge undoes it all, and the caller brings the old container back)."""
        async with self._db.step() as session:
            if "resources" in changes:
                await self._quotas.hold(session, bot.tenant_id)
            repo = BotRepository(session)
            stored = await repo.get_any(bot.id)
            if stored is None:
                raise NotFound("bot not found", details={"botId": bot.id})
            if "resources" in changes:
                delta = self._quotas.change(stored.resources, changes["resources"])
                await self._quotas.charge(session, stored.tenant_id, delta)
            for field, value in changes.items():
                setattr(stored, field, value)
            stored.updated_at = datetime.now(UTC)
            stored.container_id = container_id
            await self._journal.mark(session, op_id, "committed")
            await repo.flush()
            return stored

    async def _wait_healthy(self, bot: Bot, container_id: str, within: float) -> tuple[bool, str]:
        """Probe the new container until it is healthy; False (with why) on exit, restart or timeout."""
        config = self._health.config(bot.id)
        deadline = time.monotonic() + within
        detail = "no answer yet"
        pause = FIRST_PROBE_PAUSE
        while True:
            info = await self._containers.current(container_id)
            if info is None:
                return False, "the new container disappeared"
            if info.state not in RUNNING_STATES:
                return False, f"the new container stopped (state {info.state}, exit code {info.exit_code})"
            if info.restart_count > 0:
                return False, f"the new container restarted {info.restart_count} time(s)"
            if info.state == "running" and info.ip_address:
                probe = await self._instances.probe(info.ip_address, config.endpoint, config.timeout)
                if probe.ok:
                    return True, "healthy"
                detail = probe.detail
            if time.monotonic() >= deadline:
                return False, f"not healthy within {within:g} s ({detail})"
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_PROBE_PAUSE)


def _mark_rolled_back(err: BaseException) -> None:
    """Say in the error that the previous container is back (callers tell an outcome from a failure by it)."""
    if isinstance(err, PlatformError):
        err.details["rolledBack"] = True
