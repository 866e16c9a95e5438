"""The bot lifecycle: the rules that keep each bot's container in line with its profile.

Its writes between Docker calls are the durable steps of the operation journal (`Database.step`): the name is
reserved with the operation's journal row before Docker is touched, and a profile change is stored only once
its container exists. No database transaction is held open across a Docker call (SQLite has a single writer).
Every multi-step change is journaled, so a crash at any step is finished or undone by recovery
(`fleet.reconciliation.recovery`) at the next start.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, Generic, TypeVar

from wopr_platform.core import naming, subdomains
from wopr_platform.core.errors import Conflict, EngineNotFound, NotFound, ValidationFailed
from wopr_platform.core.faults import CrashPoints
from wopr_platform.core.reference import ImageReference, InvalidReference, is_allowed, pinned
from wopr_platform.core.settings import Settings
from wopr_platform.crypto.secretbox import SecretUnreadable
from wopr_platform.db.broadcast import Broadcast
from wopr_platform.db.engine import CommitCounter
from wopr_platform.db.models import Bot
from wopr_platform.db.unit import Database
from wopr_platform.fleet import resources
from wopr_platform.fleet.admission import Action, Admission
from wopr_platform.fleet.lifecycle.containers import BotContainers, Snapshot
from wopr_platform.fleet.lifecycle.journal import Journal
from wopr_platform.fleet.lifecycle.listing import BotQuery
from wopr_platform.fleet.lifecycle.locks import BotLocks
from wopr_platform.fleet.lifecycle.replace import Replaced, Replacer, VolumeFill, VolumeMove
from wopr_platform.fleet.lifecycle.views import BotViews
from wopr_platform.fleet.observation.events import EventBus
from wopr_platform.fleet.observation.health import HealthMonitor
from wopr_platform.fleet.observation.observed import ObservedState
from wopr_platform.fleet.observation.stats import StatsCollector
from wopr_platform.fleet.quotas.service import Quotas
from wopr_platform.fleet.repository import BotRepository, StatusRow, status_rows, subdomain_taken
from wopr_platform.fleet.schemas import (
    BotCreate,
    BotDetail,
    BotOrigin,
    BotPatch,
    BotProfile,
)
from wopr_platform.fleet.secrets.redaction import keep_redacted
from wopr_platform.fleet.secrets.sealed_env import SecretEnv

log = logging.getLogger(__name__)

__all__ = ["FleetService", "Paused", "VolumeFill", "VolumeMove"]  # what the domains above the fleet take from here

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Paused(Generic[T]):
    """What was made of a bot's volume, and how long its container was paused for it (None: it was not running)."""

    result: T
    pause_ms: int | None


CONTAINER_FIELDS = ("image", "env", "volume_name", "resources")
MAX_LOG_TAIL = 10_000
DEFAULT_LOG_TAIL = 100
LIST_CACHE_SECONDS = 5.0


def _check_secret_keys(keys: Collection[str], env: Mapping[str, str]) -> None:
    """Every key named secret must be in the env (400 otherwise)."""
    unknown = sorted(set(keys) - env.keys())
    if unknown:
        raise ValidationFailed(
            "secretEnv names keys that are not in env", details={"field": "secretEnv", "keys": unknown[:20]}
        )


def _now() -> datetime:
    return datetime.now(UTC)


class FleetService:
    """Create, change, start, stop, restart and remove bots; read them from memory and the database."""

    def __init__(
        self,
        *,
        db: Database,
        containers: BotContainers,
        replacer: Replacer,
        observed: ObservedState,
        health: HealthMonitor,
        stats: StatsCollector,
        events: EventBus,
        journal: Journal,
        locks: BotLocks,
        crash: CrashPoints,
        commits: CommitCounter,
        settings: Settings,
        secrets: SecretEnv,
        quotas: Quotas,
        changes: Broadcast,
        admission: Admission | None = None,
    ) -> None:
        self._admission = admission
        self._commits = commits
        # changes to bots made by any replica (PostgreSQL: the database notifies them); a change heard drops the
        # cached lists, and while the replica can hear them (always, on SQLite) the lists need no other bound on
        # their age
        self._changes = changes
        self._changes_heard = 0
        changes.subscribe(self._heard_change)
        self._quotas = quotas
        self._secrets = secrets
        self._list_cache: dict[str | None, tuple[tuple[int, int], float, list[StatusRow]]] = {}
        self._db = db
        self._containers = containers
        self._replacer = replacer
        self._observed = observed
        self._health = health
        self._stats = stats
        self._events = events
        self._journal = journal
        self._locks = locks
        self._crash = crash
        self._settings = settings
        self._views = BotViews(observed=observed, health=health, stats=stats, settings=settings)

    @asynccontextmanager
    async def operation(self, tenant_id: str | None, bot_id: str, *, engine: bool = True) -> AsyncIterator[Bot]:
        """One operation on one bot: its lock held throughout (operations on a bot are serialised), the bot loaded
        (404 when it is not the tenant's; `None` for any tenant, for the platform's own jobs), and with `engine`
        the Docker engine checked first (503 when it cannot be reached)."""
        async with self._locks.hold(bot_id):
            bot = await self._load(tenant_id, bot_id)
            if engine:
                await self._containers.require_engine()
            yield bot

    async def load(self) -> None:
        """At start-up: give the health monitor every bot's probe settings, and seal secret values stored in the
        clear (by an older platform) or with a previous key (after PLATFORM_SECRET changed)."""
        resealed = 0
        async with self._db.unit() as session:
            for bot in await BotRepository(session).list_all():
                self._health.configure(bot.id, bot.health_check)
                try:
                    env = self._secrets.refreshed(bot.id, bot.env, bot.secret_env_keys or ())
                except SecretUnreadable as err:
                    log.error(
                        "a bot's secret env values cannot be opened", extra={"bot_id": bot.id, "reason": str(err)}
                    )
                    continue
                if env is not None:
                    bot.env = env
                    resealed += 1
        if resealed:
            log.info("secret env values sealed with the current key", extra={"bots": resealed})
        await self._quotas.recount()

    # reads ----------------------------------------------------------------------------------------------

    async def list_bots_json(self, tenant_id: str | None, query: BotQuery | None = None) -> bytes:
        """The tenant's BotList answer (every tenant's for None), as JSON: every bot with its live status, or the
        page and filters `query` asks for; no Docker call, and no query unless something changed (rendered straight
        to JSON, see `BotViews.bot_list_json`)."""
        now = _now()
        rows = await self._list_rows(tenant_id)
        if query is None or query.whole:
            return self._views.bot_list_json(rows, now, every_tenant=tenant_id is None)
        return self._views.bot_page_json(rows, query, now)

    async def _list_rows(self, tenant_id: str | None) -> list[StatusRow]:
        """The tenant's status rows, re-read only after a commit through this process or a change to a bot heard from
        the database (PostgreSQL: by any replica, see `Broadcast`). While a replica cannot hear the database, a list
        it cached is trusted for LIST_CACHE_SECONDS at most (a bound on how long another replica's write can go
        unseen). A SQLite database has one platform process: its own commits are all there are."""
        generation = (self._commits.value, self._changes_heard)
        cached = self._list_cache.get(tenant_id)
        if cached is not None and cached[0] == generation and self._trusted(cached[1]):
            return cached[2]
        rows = await self._db.core_read(partial(status_rows, tenant_id=tenant_id))
        self._list_cache[tenant_id] = (generation, time.monotonic(), rows)
        return rows

    def _heard_change(self) -> None:
        self._changes_heard += 1

    def _trusted(self, read_at: float) -> bool:
        """Whether rows read at `read_at` hold every change made since, as far as this replica can know."""
        return self._changes.reliable or time.monotonic() - read_at < LIST_CACHE_SECONDS

    async def get_bot(self, tenant_id: str, bot_id: str) -> BotDetail:
        """One bot's profile and live status; no Docker call."""
        bot = await self._load(tenant_id, bot_id)
        return self._views.detail(bot, _now())

    async def logs(self, tenant_id: str, bot_id: str, tail: int | None) -> str:
        """The last `tail` lines the bot's container wrote. Clamped as the original service did: more than
        MAX_LOG_TAIL reads MAX_LOG_TAIL; none, zero or a negative number reads DEFAULT_LOG_TAIL."""
        tail = DEFAULT_LOG_TAIL if tail is None or tail < 1 else min(tail, MAX_LOG_TAIL)
        bot = await self._load(tenant_id, bot_id)
        if not bot.container_id:
            raise NotFound("bot has no container yet", details={"botId": bot_id})
        try:
            return await self._containers.logs(bot.container_id, tail)
        except EngineNotFound:
            raise NotFound("bot has no container", details={"botId": bot_id}) from None

    # writes ---------------------------------------------------------------------------------------------

    async def create_bot(
        self,
        tenant_id: str,
        request: BotCreate,
        *,
        origin: BotOrigin | None = None,
    ) -> BotProfile:
        """Store the profile (with its origin: a template, a seed claim), then create and start its container; on
        any failure nothing remains."""
        self._check_image(request.image)
        _check_secret_keys(request.secret_env, request.env)
        own_limits = request.resources.stored() if request.resources else None
        await self._containers.check_limits(own_limits)
        await self._quotas.check(tenant_id, self._quotas.of_bot(own_limits))  # before the pull; the charge decides
        await self._admit(
            tenant_id,
            "create",
            memory_mb=resources.effective(own_limits, self._settings.default_limits).memory_mb,
            channel=request.release_channel,
        )
        bot_id = str(uuid.uuid4())
        subdomain = request.subdomain or await self._default_subdomain(request.name, bot_id)
        now = _now()
        bot = Bot(
            id=bot_id,
            tenant_id=tenant_id,
            name=request.name,
            description=request.description,
            image=request.image,
            env=self._secrets.seal(bot_id, request.env, request.secret_env),
            secret_env_keys=request.secret_env or None,
            restart_policy=request.restart_policy,
            volume_name=request.volume_name or naming.default_volume(bot_id),
            release_channel=request.release_channel,
            update_policy=request.update_policy,
            health_check=request.health_check.stored() if request.health_check else None,
            subdomain=subdomain,
            resources=own_limits,
            desired_state="running",
            container_id=None,
            template_name=origin.template if origin is not None else None,
            template_version=origin.version if origin is not None else None,
            created_at=now,
            updated_at=now,
        )
        await self._containers.require_engine()
        # the image is pulled first: the container runs pinned to the digest it came with (see containers.py)
        bot.image_digest = await self._containers.resolve_digest(bot.image)
        async with self._locks.hold(bot_id):
            try:
                op_id = await self._store_new(bot, origin)
            except Conflict as err:
                if request.subdomain is not None or err.details.get("field") != "subdomain":
                    raise
                bot.subdomain = bot_id  # the name's subdomain was taken meanwhile: the id is always free
                op_id = await self._store_new(bot, origin)
            self._crash.reached("create.after_intent")
            self._health.configure(bot_id, bot.health_check)
            self._health.hold_news(bot_id)  # its first "healthy" comes after its "created"
            try:
                container_id = await self._containers.build(
                    bot,
                    Snapshot.of(bot),
                    start=True,
                    crash_prefix="create",
                    on_new_volume=lambda: self._journal.note(op_id, volumeCreated=True),
                )
            except BaseException:
                async with self._db.step() as session:
                    await self._quotas.remove_bot(session, tenant_id, bot_id)
                    if origin is not None and origin.seed:
                        await BotRepository(session).release_seed(bot_id)
                    await self._journal.finish(session, op_id)
                self._health.forget(bot_id)
                raise
            # (an interrupted create is undone by recovery, which then announces "removed")
            self._events.publish("created", bot_id, tenant_id, name=bot.name)
            self._health.release_news(bot_id)
            async with self._db.step() as session:
                stored = await BotRepository(session).get(tenant_id, bot_id)
                assert stored is not None
                stored.container_id = bot.container_id = container_id
                await self._journal.finish(session, op_id)
        log.info("bot created", extra={"bot_id": bot_id, "tenant": tenant_id, "bot_name": bot.name})
        return self._views.profile(bot)

    async def _store_new(self, bot: Bot, origin: BotOrigin | None) -> str:
        """Store a new bot, its charge to its tenant's quotas, its seed claim and its create intent in the journal,
        in one transaction; returns the journal row's id."""
        async with self._db.step() as session:
            await self._quotas.charge(session, bot.tenant_id, self._quotas.of_bot(bot.resources))
            repo = BotRepository(session)
            await repo.add(bot)
            if origin is not None and origin.seed:
                await repo.claim_seed(bot, origin.version, stale_bot_id=origin.stale_seed)
            return self._journal.begin(
                session, "create", bot.id, bot.tenant_id, {"volume": self._containers.volume(bot)}
            )

    async def patch_bot(self, tenant_id: str, bot_id: str, request: BotPatch) -> BotProfile:
        """Change a profile; recreate the container only if a container field changed, rolling back on failure."""
        changes = request.changes()
        if not changes:
            raise ValidationFailed("PATCH needs at least one field to change")
        if "image" in changes:
            self._check_image(changes["image"])
        async with self.operation(tenant_id, bot_id, engine=False) as bot:
            # a stored-form-only env change (a value newly marked secret gets sealed) recreates nothing
            quiet_env = self._env_changes(bot, changes)
            if "resources" in changes:
                changes["resources"] = resources.merge(bot.resources, changes["resources"])
                await self._containers.check_limits(changes["resources"])
                # before the new container is made; the replacement's commit charges it for good
                await self._quotas.check(tenant_id, self._quotas.change(bot.resources, changes["resources"]))
            if "resources" in changes or "release_channel" in changes:
                memory = resources.effective(changes.get("resources", bot.resources), self._settings.default_limits)
                await self._admit(
                    tenant_id, "change", memory_mb=memory.memory_mb, channel=changes.get("release_channel")
                )
            changes = {k: v for k, v in changes.items() if getattr(bot, k) != v}
            if not changes and quiet_env is None:
                return self._views.profile(bot)
            async with self._db.read() as session:
                clash = await BotRepository(session).taken(
                    tenant_id, bot_id, name=changes.get("name"), volume=changes.get("volume_name")
                )
            if clash:
                raise Conflict(f"{clash} is already used by another bot", details={"field": clash})
            if "subdomain" in changes and await self._subdomain_taken(changes["subdomain"], bot_id):
                raise Conflict("subdomain is already used by another bot", details={"field": "subdomain"})
            if "image" in changes:
                # a new reference: run it pinned to the digest it has now; a digest rejected before no longer applies
                await self._containers.require_engine()
                changes["image_digest"] = await self._containers.resolve_digest(changes["image"])
                changes["rejected_digest"] = None
            before = Snapshot.of(bot)
            after = Snapshot(
                image=pinned(changes.get("image", bot.image), changes.get("image_digest", bot.image_digest)),
                env=dict(changes.get("env", bot.env)),
                volume_name=changes.get("volume_name", bot.volume_name),
                restart_policy=changes.get("restart_policy", bot.restart_policy),
                resources=dict(changes.get("resources", bot.resources) or {}),
                volume_generation=0 if "volume_name" in changes else bot.volume_generation,
            )
            if "volume_name" in changes:
                changes["volume_generation"] = 0  # another name's first volume
            recreate = any(field in changes for field in CONTAINER_FIELDS)
            if quiet_env is not None:
                changes["env"] = quiet_env
            if recreate:
                replaced = await self._replacer.replace(bot, after, changes)
                assert replaced.bot is not None  # no health gate: it took, or it raised
                updated = replaced.bot
            else:
                updated = await self._patch_in_place(bot, changes, before, after)
            if "health_check" in changes:
                self._health.configure(bot_id, updated.health_check)
        log.info("bot changed", extra={"bot_id": bot_id, "fields": sorted(changes), "recreated": recreate})
        if recreate:
            self._events.publish("recreated", bot_id, tenant_id, containerId=updated.container_id)
        return self._views.profile(updated)

    def _env_changes(self, bot: Bot, changes: dict[str, Any]) -> dict[str, str] | None:
        """Turn PATCHed `env`/`secretEnv` into the stored forms in `changes`: `env` (sealed) when the container's
        env changes, `secret_env_keys` when the set of secret keys does. Returns the new stored env when only its
        stored form changed (a value newly marked secret), else None. Raises 400 before anything is touched."""
        if "env" not in changes and "secret_env" not in changes:
            return None
        old_keys = set(bot.secret_env_keys or ())
        keys = set(changes.pop("secret_env", old_keys))
        env = keep_redacted(changes.pop("env", bot.env), bot.env, old_keys)
        _check_secret_keys(keys, env)
        kept_hidden = sorted(key for key in old_keys - keys if key in env and env[key] == bot.env.get(key))
        if kept_hidden:
            raise ValidationFailed(
                "a key leaves secretEnv only with a new value in env (a stored secret is never revealed)",
                details={"field": "secretEnv", "keys": kept_hidden},
            )
        if keys != old_keys:
            changes["secret_env_keys"] = sorted(keys) or None
        stored = self._secrets.seal(bot.id, env, keys)
        if self._secrets.open(bot.id, stored) != self._secrets.open(bot.id, bot.env):
            changes["env"] = stored
            return None
        return stored if stored != bot.env else None

    async def _patch_in_place(self, bot: Bot, changes: dict[str, Any], before: Snapshot, after: Snapshot) -> Bot:
        policy_changed = "restart_policy" in changes and bot.container_id is not None
        if policy_changed:
            await self._containers.require_engine()
            assert bot.container_id is not None
            await self._containers.set_restart_policy(bot.container_id, after.restart_policy)
        try:
            return await self._store_changes(bot, changes)
        except BaseException:
            if policy_changed:
                assert bot.container_id is not None
                await self._containers.set_restart_policy(bot.container_id, before.restart_policy)
            raise

    async def _store_changes(self, bot: Bot, changes: dict[str, Any]) -> Bot:
        """Write a profile change that leaves the container as it is."""
        async with self._db.unit() as session:
            repo = BotRepository(session)
            stored = await repo.get(bot.tenant_id, bot.id)
            if stored is None:
                raise NotFound("bot not found", details={"botId": bot.id})
            for field, value in changes.items():
                setattr(stored, field, value)
            stored.updated_at = _now()
            await repo.flush()
            return stored

    async def delete_bot(self, tenant_id: str, bot_id: str, *, remove_volumes: bool) -> None:
        """Remove the bot's containers (and, if asked, its volume and the ones it had before), then its profile."""
        async with self.operation(tenant_id, bot_id) as bot:
            earlier = await self._earlier_volumes(bot) if remove_volumes else []
            async with self._db.step() as session:
                op_id = self._journal.begin(
                    session,
                    "delete",
                    bot_id,
                    tenant_id,
                    {"removeVolumes": remove_volumes, "volume": self._containers.volume(bot), "volumes": earlier},
                )
            try:
                for container in await self._containers.labelled(bot_id):
                    await self._containers.remove(container.id)
                    self._crash.reached("delete.after_container_removed")
                if bot.container_id:
                    await self._containers.remove(bot.container_id)
                if remove_volumes:
                    await self._containers.remove_volume(bot)
                    for name in earlier:
                        if not await self._containers.remove_earlier_volume(name):
                            log.warning("an earlier volume of the bot is in use; kept", extra={"bot_id": bot_id})
            except BaseException:
                await self._journal.finish_now(op_id)
                raise
            async with self._db.step() as session:
                await self._quotas.remove_bot(session, tenant_id, bot_id)
                await self._journal.finish(session, op_id)
            self._health.forget(bot_id)
        log.info("bot deleted", extra={"bot_id": bot_id, "removed_volumes": remove_volumes})
        self._events.publish("removed", bot_id, tenant_id)

    async def _earlier_volumes(self, bot: Bot) -> list[str]:
        """The volumes made for the bot before its `volumeName` changed, which no bot of its tenant uses now."""
        labelled = await self._containers.bot_volumes(bot.id)
        if not labelled:
            return []
        async with self._db.read() as session:
            names = await BotRepository(session).volume_names(bot.tenant_id)
        in_use = {self._containers.volume(bot, name, generation) for name, generation in names}
        return sorted(volume.name for volume in labelled if volume.name not in in_use)

    async def start_bot(self, tenant_id: str, bot_id: str) -> None:
        """Make it run (recreating a container removed behind our back), then want it running."""
        await self._run(tenant_id, bot_id, restart=False)

    async def stop_bot(self, tenant_id: str, bot_id: str) -> None:
        """Want it stopped and stop it (SIGTERM, then SIGKILL after the stop timeout)."""
        async with self.operation(tenant_id, bot_id) as bot:
            await self._set_desired(bot, "stopped")
            container = await self._containers.existing(bot)
            if container is not None:
                await self._containers.stop(container.id)

    async def restart_bot(self, tenant_id: str, bot_id: str) -> None:
        """Restart it, then want it running."""
        await self._run(tenant_id, bot_id, restart=True)

    async def _run(self, tenant_id: str, bot_id: str, *, restart: bool) -> None:
        async with self.operation(tenant_id, bot_id) as bot:
            await self._admit(bot.tenant_id, "restart" if restart else "start")
            container = await self._containers.existing(bot)
            if container is None:
                new_id = await self._containers.build(bot, Snapshot.of(bot), start=True, crash_prefix="start")
                await self._set_desired(bot, "running", container_id=new_id)
                return
            await (self._containers.restart if restart else self._containers.start)(container.id)
            await self._set_desired(bot, "running")

    # image updates: what the updates domain asks of a bot it holds through `operation` ---------------------

    async def require_engine(self) -> None:
        """503 when the Docker engine cannot be reached."""
        await self._containers.require_engine()

    async def pull(self, image: str) -> None:
        """Fetch an image before anything is touched (an update that cannot pull leaves the bot as it is)."""
        await self._containers.pull(image)

    async def replace_image(
        self, bot: Bot, digest: str, *, health_timeout: float, fill: VolumeFill | None = None
    ) -> Replaced:
        """Move a held bot to `digest` of its image reference, gated by its health; the old container comes back
        (and the answer says why) when the new one does not turn healthy in time. With `fill`, the new container
        runs on a fresh volume `fill` copies the data into, so the old container comes back on its data as it was."""
        after = replace(Snapshot.of(bot), image=pinned(bot.image, digest))  # only the image: env, volume, limits stay
        changes = {"image_digest": digest, "rejected_digest": None}
        return await self._replacer.replace(
            bot, after, changes, health_timeout=health_timeout, crash_prefix="update", fill=fill
        )

    # what backups ask of the fleet (they know nothing of containers) -------------------------------------

    async def read_volume(self, bot: Bot, consume: Callable[[AsyncIterator[bytes]], Awaitable[T]]) -> Paused[T]:
        """Hand `consume` the files of a held bot's volume (a tar stream) while they hold still: its running
        container paused for the engine's read alone (the helper container that reads is made before and removed
        after; `consume` may still be finishing its own work once the stream ended) and unpaused whatever happens;
        a stopped one left stopped."""
        image = Snapshot.of(bot).image
        await self._containers.ensure_image(image)
        info = await self._containers.existing(bot)
        held_ms: list[int] = []

        @asynccontextmanager
        async def paused(container_id: str) -> AsyncIterator[None]:
            await self._containers.pause(container_id)
            began = time.monotonic()
            try:
                yield
            finally:
                held_ms.append(round((time.monotonic() - began) * 1000))
                await self._containers.unpause(container_id)

        hold = paused(info.id) if info is not None and info.state == "running" else None
        files = self._containers.volume_files(self._containers.volume(bot), image, hold=hold)
        try:
            result = await consume(files)
        finally:
            await files.aclose()  # a stream `consume` left unfinished unpauses the bot now
        return Paused(result=result, pause_ms=held_ms[0] if held_ms else None)

    async def bot_ids(self, tenant_id: str | None = None) -> Sequence[tuple[str, str]]:
        """(bot id, tenant id) of every bot of the tenant (of every tenant for None), in one query."""
        async with self._db.read() as session:
            return await BotRepository(session).ids(tenant_id)

    async def restore_volume(self, bot: Bot, fill: VolumeFill) -> BotProfile:
        """Move a held bot onto a fresh volume that `fill` fills (its container stopped meanwhile, and started
        again on the fresh volume if it ran); a failure or a crash at any step leaves its old volume as it was."""
        replaced = await self._replacer.replace(bot, Snapshot.of(bot), {}, crash_prefix="restore", fill=fill)
        assert replaced.bot is not None  # no health gate: it took, or it raised
        self._events.publish("restored", bot.id, bot.tenant_id)
        return self._views.profile(replaced.bot)

    async def reject_digest(self, bot_id: str, digest: str) -> None:
        """Remember that this digest failed on this bot, so no policy applies it again by itself."""
        async with self._db.unit() as session:
            stored = await BotRepository(session).get_any(bot_id)
            if stored is not None:
                stored.rejected_digest = digest

    async def remove_image(self, image_id: str) -> bool:
        """Remove an image no container uses any more (the engine keeps one still in use)."""
        return await self._containers.remove_image(image_id)

    # what billing asks of the fleet (it meters what runs; the fleet knows nothing of billing) ----------------

    def running_bots(self) -> dict[str, str] | None:
        """Bot id → tenant of every bot with a running container, from memory (no Docker call); None while the
        engine's state is not known (not synchronised yet, or the engine stopped answering)."""
        if self._observed.stale_reason is not None:
            return None
        return {
            info.bot_id: info.tenant_id
            for info in self._observed.containers()
            if info.state == "running" and info.bot_id and info.tenant_id
        }

    async def desired_states(self, tenant_id: str) -> dict[str, str]:
        """Bot id → desired state (`running`, `stopped`) of each of the tenant's bots, in one query."""
        async with self._db.read() as session:
            return await BotRepository(session).desired_states(tenant_id)

    async def memory_of(self, bot_ids: Collection[str]) -> dict[str, int]:
        """The effective memory limit (MB) of each of these bots that exists, in one query."""
        if not bot_ids:
            return {}
        async with self._db.read() as session:
            own = await BotRepository(session).resources_of(bot_ids)
        defaults = self._settings.default_limits
        return {bot_id: resources.effective(limits, defaults).memory_mb for bot_id, limits in own.items()}

    # helpers --------------------------------------------------------------------------------------------

    async def _admit(
        self, tenant_id: str, action: Action, *, memory_mb: int | None = None, channel: str | None = None
    ) -> None:
        if self._admission is not None:
            await self._admission.admit(tenant_id, action, memory_mb=memory_mb, channel=channel)

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

    async def _subdomain_taken(self, subdomain: str, bot_id: str) -> bool:
        return await self._db.core_read(partial(subdomain_taken, subdomain=subdomain, bot_id=bot_id))

    async def _default_subdomain(self, name: str, bot_id: str) -> str:
        """The bot's name as subdomain when it is a valid and free one, else its id (a valid, unique label)."""
        candidate = subdomains.from_name(name)
        if candidate is not None and not await self._subdomain_taken(candidate, bot_id):
            return candidate
        return bot_id

    async def _load(self, tenant_id: str | None, bot_id: str) -> Bot:
        async with self._db.read() as session:  # read-only: rolled back, so it counts as no commit
            repo = BotRepository(session)
            bot = await (repo.get(tenant_id, bot_id) if tenant_id is not None else repo.get_any(bot_id))
        if bot is None:
            raise NotFound("bot not found", details={"botId": bot_id})
        return bot

    async def _set_desired(self, bot: Bot, desired: str, *, container_id: str | None = None) -> None:
        async with self._db.step() as session:
            stored = await BotRepository(session).get(bot.tenant_id, bot.id)
            if stored is None:
                return
            if stored.desired_state != desired:
                stored.desired_state = desired
                stored.updated_at = _now()
            if container_id is not None:
                stored.container_id = container_id
        bot.desired_state = desired
