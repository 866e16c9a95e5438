"""The bot lifecycle: the rules that keep each bot's container in line with its profile.

Unlike request-scoped services elsewhere, this one commits its own short transactions: the name must be
reserved before Docker is touched, and a profile change must be stored only once its container exists.
No database transaction is held open across a Docker call (SQLite has a single writer).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from wopr_platform.config.settings import Settings
from wopr_platform.db.models import Bot
from wopr_platform.docker.engine import DockerEngine
from wopr_platform.docker.types import ContainerInfo, ContainerSpec
from wopr_platform.errors import Conflict, EngineNotFound, NotFound, PlatformError, ValidationFailed
from wopr_platform.fleet import naming
from wopr_platform.fleet.health import HealthMonitor
from wopr_platform.fleet.locks import BotLocks
from wopr_platform.fleet.observed import ObservedState
from wopr_platform.fleet.repository import BotRepository
from wopr_platform.fleet.schemas import BotCreate, BotPatch
from wopr_platform.fleet.stats import StatsCollector
from wopr_platform.images.reference import ImageReference, InvalidReference, is_allowed

log = logging.getLogger(__name__)

CONTAINER_FIELDS = ("image", "env", "volume_name")
MAX_LOG_TAIL = 10_000


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """The container-relevant part of a profile, to build from and to roll back to."""

    image: str
    env: dict[str, str]
    volume_name: str
    restart_policy: str


@dataclass(frozen=True, slots=True)
class _Swap:
    """A replacement container and the parked one it may have to give way to again."""

    new_id: str
    old: ContainerInfo | None
    was_running: bool


def _snapshot(bot: Bot) -> _Snapshot:
    return _Snapshot(bot.image, dict(bot.env), bot.volume_name, bot.restart_policy)


class FleetService:
    """Create, change, start, stop, restart and remove bots; read them from memory and the database."""

    def __init__(
        self,
        *,
        sessions: async_sessionmaker[AsyncSession],
        engine: DockerEngine,
        observed: ObservedState,
        health: HealthMonitor,
        stats: StatsCollector,
        settings: Settings,
    ) -> None:
        self._sessions = sessions
        self._engine = engine
        self._observed = observed
        self._health = health
        self._stats = stats
        self._settings = settings
        self._locks = BotLocks()

    @asynccontextmanager
    async def _repo(self) -> AsyncIterator[BotRepository]:
        async with self._sessions() as session, session.begin():
            yield BotRepository(session)

    async def load(self) -> None:
        """At start-up: give the health monitor every bot's probe settings."""
        async with self._repo() as repo:
            for bot in await repo.list_all():
                self._health.configure(bot.id, bot.health_check)

    # reads ----------------------------------------------------------------------------------------------

    async def list_bots(self, tenant_id: str) -> list[dict[str, Any]]:
        """Every bot of the tenant with its live status; no Docker call."""
        async with self._repo() as repo:
            bots = await repo.list(tenant_id)
        now = _now()
        return [self._status(bot, now) for bot in bots]

    async def get_bot(self, tenant_id: str, bot_id: str) -> dict[str, Any]:
        """One bot's profile and live status; no Docker call."""
        bot = await self._load(tenant_id, bot_id)
        return {**self._status(bot, _now()), **self._profile_extra(bot)}

    async def logs(self, tenant_id: str, bot_id: str, tail: int) -> str:
        """The last `tail` lines the bot's container wrote."""
        if not 1 <= tail <= MAX_LOG_TAIL:
            raise ValidationFailed(
                f"tail must be between 1 and {MAX_LOG_TAIL}", details={"field": "tail", "value": tail}
            )
        bot = await self._load(tenant_id, bot_id)
        if not bot.container_id:
            raise NotFound("bot has no container yet", details={"botId": bot_id})
        try:
            return await self._engine.logs(bot.container_id, tail)
        except EngineNotFound:
            raise NotFound("bot has no container", details={"botId": bot_id}) from None

    # writes ---------------------------------------------------------------------------------------------

    async def create_bot(self, tenant_id: str, request: BotCreate) -> dict[str, Any]:
        """Store the profile, then create and start its container; on any failure nothing remains."""
        self._check_image(request.image)
        bot_id = str(uuid.uuid4())
        now = _now()
        bot = Bot(
            id=bot_id,
            tenant_id=tenant_id,
            name=request.name,
            description=request.description,
            image=request.image,
            env=dict(request.env),
            restart_policy=request.restart_policy,
            volume_name=request.volume_name or naming.default_volume(bot_id),
            release_channel=request.release_channel,
            update_policy=request.update_policy,
            health_check=request.health_check.stored() if request.health_check else None,
            desired_state="running",
            container_id=None,
            created_at=now,
            updated_at=now,
        )
        async with self._locks.hold(bot_id):
            async with self._repo() as repo:
                await repo.add(bot)
            self._health.configure(bot_id, bot.health_check)
            try:
                bot.container_id = await self._build(bot, _snapshot(bot), start=True)
            except BaseException:
                async with self._repo() as repo:
                    await repo.delete(bot_id)
                self._health.forget(bot_id)
                raise
            async with self._repo() as repo:
                stored = await repo.get(tenant_id, bot_id)
                assert stored is not None
                stored.container_id = bot.container_id
        log.info("bot created", extra={"bot_id": bot_id, "tenant": tenant_id, "bot_name": bot.name})
        return self._profile(bot)

    async def patch_bot(self, tenant_id: str, bot_id: str, request: BotPatch) -> dict[str, Any]:
        """Change a profile; recreate the container only if a container field changed, rolling back on failure."""
        changes = request.changes()
        if not changes:
            raise ValidationFailed("PATCH needs at least one field to change")
        if "image" in changes:
            self._check_image(changes["image"])
        async with self._locks.hold(bot_id):
            bot = await self._load(tenant_id, bot_id)
            changes = {k: v for k, v in changes.items() if getattr(bot, k) != v}
            if not changes:
                return self._profile(bot)
            async with self._repo() as repo:
                clash = await repo.taken(tenant_id, bot_id, name=changes.get("name"), volume=changes.get("volume_name"))
            if clash:
                raise Conflict(f"{clash} is already used by another bot", details={"field": clash})
            before = _snapshot(bot)
            after = _Snapshot(
                image=changes.get("image", bot.image),
                env=dict(changes.get("env", bot.env)),
                volume_name=changes.get("volume_name", bot.volume_name),
                restart_policy=changes.get("restart_policy", bot.restart_policy),
            )
            recreate = any(field in changes for field in CONTAINER_FIELDS)
            if recreate:
                try:
                    swap = await self._replace(bot, after)
                except PlatformError as err:
                    err.details["rolledBack"] = True
                    raise
            elif "restart_policy" in changes and bot.container_id:
                await self._set_restart_policy(bot, after)
            try:
                async with self._repo() as repo:
                    stored = await repo.get(tenant_id, bot_id)
                    if stored is None:
                        raise NotFound("bot not found", details={"botId": bot_id})
                    for field, value in changes.items():
                        setattr(stored, field, value)
                    stored.updated_at = _now()
                    if recreate:
                        stored.container_id = swap.new_id
                    await repo.flush()
                    updated = stored
            except BaseException:
                if recreate:
                    await self._restore(bot, swap)
                elif "restart_policy" in changes and bot.container_id:
                    await self._set_restart_policy(bot, before)
                raise
            if "health_check" in changes:
                self._health.configure(bot_id, updated.health_check)
            if recreate and swap.old is not None:
                await self._engine.remove(swap.old.id)
                self._observed.forget(swap.old.id)
        log.info("bot changed", extra={"bot_id": bot_id, "fields": sorted(changes), "recreated": recreate})
        return self._profile(updated)

    async def delete_bot(self, tenant_id: str, bot_id: str, *, remove_volumes: bool) -> None:
        """Remove the bot's containers (and its volume if asked), then its profile."""
        async with self._locks.hold(bot_id):
            bot = await self._load(tenant_id, bot_id)
            for container_id in self._containers_of(bot):
                await self._engine.remove(container_id)
                self._observed.forget(container_id)
            if remove_volumes:
                await self._engine.remove_volume(
                    naming.volume_name(self._settings.platform_id, tenant_id, bot.volume_name)
                )
            async with self._repo() as repo:
                await repo.delete(bot_id)
            self._health.forget(bot_id)
        log.info("bot deleted", extra={"bot_id": bot_id, "removed_volumes": remove_volumes})

    async def start_bot(self, tenant_id: str, bot_id: str) -> None:
        """Want it running and make it so (recreating a container removed behind our back)."""
        async with self._locks.hold(bot_id):
            bot = await self._set_desired(tenant_id, bot_id, "running")
            container = await self._existing_container(bot)
            if container is None:
                await self._adopt(bot, await self._build(bot, _snapshot(bot), start=True))
                return
            await self._engine.start(container.id)
            await self._refresh(container.id)

    async def stop_bot(self, tenant_id: str, bot_id: str) -> None:
        """Want it stopped and stop it (SIGTERM, then SIGKILL after the stop timeout)."""
        async with self._locks.hold(bot_id):
            bot = await self._set_desired(tenant_id, bot_id, "stopped")
            container = await self._existing_container(bot)
            if container is not None:
                await self._engine.stop(container.id, self._settings.stop_timeout)
                await self._refresh(container.id)

    async def restart_bot(self, tenant_id: str, bot_id: str) -> None:
        """Want it running and restart it."""
        async with self._locks.hold(bot_id):
            bot = await self._set_desired(tenant_id, bot_id, "running")
            container = await self._existing_container(bot)
            if container is None:
                await self._adopt(bot, await self._build(bot, _snapshot(bot), start=True))
                return
            await self._engine.restart(container.id, self._settings.stop_timeout)
            await self._refresh(container.id)

    # container work -------------------------------------------------------------------------------------

    def _spec(self, bot: Bot, snap: _Snapshot, name: str) -> ContainerSpec:
        volume = naming.volume_name(self._settings.platform_id, bot.tenant_id, snap.volume_name)
        env = {**snap.env, "WOPR_HOME": "/data"}
        return ContainerSpec(
            name=name,
            image=snap.image,
            env=env,
            labels=naming.labels(
                self._settings.platform_id,
                bot.tenant_id,
                bot.id,
                naming.spec_hash(snap.image, snap.env, volume, snap.restart_policy),
            ),
            volume=volume,
            restart_policy=snap.restart_policy,
            stop_timeout=self._settings.stop_timeout,
        )

    async def _build(self, bot: Bot, snap: _Snapshot, *, start: bool) -> str:
        """Create (and start) a container for `snap`; undo every step of it if a later one fails."""
        spec = self._spec(bot, snap, naming.container_name(bot.id))
        await self._engine.ensure_image(spec.image)
        volume_is_new = not await self._engine.volume_exists(spec.volume)
        await self._engine.ensure_volume(spec.volume, naming.volume_labels(self._settings.platform_id, bot.tenant_id))
        container_id: str | None = None
        try:
            container_id = await self._engine.create(spec)
            if start:
                await self._engine.start(container_id)
        except BaseException:
            if container_id is not None:
                await self._engine.remove(container_id)
            if volume_is_new:
                await self._engine.remove_volume(spec.volume)
            raise
        await self._refresh(container_id)
        return container_id

    async def _replace(self, bot: Bot, after: _Snapshot) -> _Swap:
        """Swap the container for one built from `after`; the old one is parked, not removed, until we commit."""
        await self._engine.ensure_image(after.image)
        old = await self._existing_container(bot)
        was_running = old is not None and old.state in ("running", "restarting")
        start = was_running or (old is None and bot.desired_state == "running")
        if old is not None:
            await self._engine.stop(old.id, self._settings.stop_timeout)
            await self._engine.rename(old.id, naming.parked_container_name(bot.id, old.id))
        try:
            new_id = await self._build(bot, after, start=start)
        except BaseException:
            if old is not None:
                await self._unpark(bot, old.id, was_running)
            raise
        return _Swap(new_id=new_id, old=old, was_running=was_running)

    async def _restore(self, bot: Bot, swap: _Swap) -> None:
        """Undo `_replace` after the profile could not be stored."""
        await self._engine.remove(swap.new_id)
        self._observed.forget(swap.new_id)
        if swap.old is not None:
            await self._unpark(bot, swap.old.id, swap.was_running)

    async def _unpark(self, bot: Bot, container_id: str, start: bool) -> None:
        await self._engine.rename(container_id, naming.container_name(bot.id))
        if start:
            await self._engine.start(container_id)
        await self._refresh(container_id)

    async def _set_restart_policy(self, bot: Bot, snap: _Snapshot) -> None:
        assert bot.container_id is not None
        try:
            await self._engine.update_restart_policy(bot.container_id, snap.restart_policy)
        except EngineNotFound:
            return

    async def _existing_container(self, bot: Bot) -> ContainerInfo | None:
        """The bot's container as the engine sees it now, or None if it is gone."""
        if not bot.container_id:
            return None
        try:
            info = await self._engine.inspect(bot.container_id)
        except EngineNotFound:
            self._observed.forget(bot.container_id)
            return None
        self._observed.apply(info)
        return info

    async def _adopt(self, bot: Bot, container_id: str) -> None:
        async with self._repo() as repo:
            stored = await repo.get(bot.tenant_id, bot.id)
            if stored is not None:
                stored.container_id = container_id

    async def _refresh(self, container_id: str) -> None:
        try:
            self._observed.apply(await self._engine.inspect(container_id))
        except EngineNotFound:
            self._observed.forget(container_id)
        self._health.kick()

    def _containers_of(self, bot: Bot) -> list[str]:
        ids = {c.id for c in self._observed.containers() if c.bot_id == bot.id}
        if bot.container_id:
            ids.add(bot.container_id)
        return sorted(ids)

    # helpers --------------------------------------------------------------------------------------------

    def _check_image(self, image: str) -> None:
        try:
            reference = ImageReference.parse(image)
        except InvalidReference as err:
            raise ValidationFailed(f"invalid image reference: {err}", details={"field": "image"}) from None
        if not is_allowed(reference, self._settings.image_allowlist):
            raise ValidationFailed(
                "image is not in the allowlist",
                details={"field": "image", "image": image, "allowed": self._settings.image_allowlist},
            )

    async def _load(self, tenant_id: str, bot_id: str) -> Bot:
        async with self._repo() as repo:
            bot = await repo.get(tenant_id, bot_id)
        if bot is None:
            raise NotFound("bot not found", details={"botId": bot_id})
        return bot

    async def _set_desired(self, tenant_id: str, bot_id: str, desired: str) -> Bot:
        async with self._repo() as repo:
            bot = await repo.get(tenant_id, bot_id)
            if bot is None:
                raise NotFound("bot not found", details={"botId": bot_id})
            if bot.desired_state != desired:
                bot.desired_state = desired
                bot.updated_at = _now()
        return bot

    def _status(self, bot: Bot | Row[Any], now: datetime) -> dict[str, Any]:
        info = self._observed.for_bot(bot.id, bot.container_id)
        running = info is not None and info.state == "running"
        started = info.started_at if info is not None and running else None
        usage = self._stats.usage(info.id) if info is not None and running else None
        return {
            "id": bot.id,
            "name": bot.name,
            "description": bot.description,
            "image": bot.image,
            "containerId": info.id if info else bot.container_id,
            "state": info.state if info else "missing",
            "health": self._health.status(info),
            "uptime": int((now - started).total_seconds()) if started else None,
            "startedAt": _iso(started),
            "createdAt": _iso(bot.created_at),
            "updatedAt": _iso(bot.updated_at),
            "desiredState": bot.desired_state,
            "stats": (
                {
                    "cpuPercent": usage.cpu_percent,
                    "memoryUsageMb": usage.memory_usage_mb,
                    "memoryLimitMb": usage.memory_limit_mb,
                    "memoryPercent": usage.memory_percent,
                }
                if usage
                else None
            ),
        }

    @staticmethod
    def _profile_extra(bot: Bot) -> dict[str, Any]:
        return {
            "env": dict(bot.env),
            "restartPolicy": bot.restart_policy,
            "volumeName": bot.volume_name,
            "releaseChannel": bot.release_channel,
            "updatePolicy": bot.update_policy,
            "healthCheck": bot.health_check,
        }

    @classmethod
    def _profile(cls, bot: Bot) -> dict[str, Any]:
        return {
            "id": bot.id,
            "name": bot.name,
            "description": bot.description,
            "image": bot.image,
            **cls._profile_extra(bot),
            "desiredState": bot.desired_state,
            "containerId": bot.container_id,
            "createdAt": _iso(bot.created_at),
            "updatedAt": _iso(bot.updated_at),
        }
