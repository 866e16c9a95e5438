"""Backups of bots' data volumes: made, listed, downloaded, uploaded, restored and deleted, scoped by tenant.

A backup is a sealed archive (`archive.py`) in the object store, with a row saying what it holds. The row is
written `creating` before a byte is stored and `ready` once the store has the whole archive; whatever a crash
leaves `creating` is swept with its object. Reading a bot's files and moving it onto restored data are the
fleet's (`FleetService.read_volume`, `restore_volume`); the backups never touch a container.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.backups.archive import Manifest, TarGuard, pack, unpack
from wopr_platform.backups.repository import BackupRepository
from wopr_platform.backups.schemas import BackupKind, BackupList, BackupOut, BackupUsage
from wopr_platform.backups.spool import Spool
from wopr_platform.backups.store import ObjectStore
from wopr_platform.core.errors import (
    ArchiveRefused,
    NotFound,
    PayloadTooLarge,
    PlatformError,
    QuotaExceeded,
    ServiceUnavailable,
)
from wopr_platform.core.reference import pinned
from wopr_platform.core.settings import Settings
from wopr_platform.crypto.stream import StreamKeys
from wopr_platform.db.models import Backup, Bot
from wopr_platform.db.unit import Database
from wopr_platform.fleet.lifecycle.service import FleetService, VolumeFill, VolumeMove
from wopr_platform.fleet.observation.events import EventBus
from wopr_platform.fleet.schemas import BotProfile

log = logging.getLogger(__name__)

PAGE = 100
PIPE_DEPTH = 2  # chunks in flight between the volume's reader and each of its two writers (the copy and the archive)
SEAL_OVERHEAD = 64  # an archive may be a little larger than its tar (incompressible data, frame heads)


class Backups:
    """The backups of every tenant's bots."""

    def __init__(
        self,
        *,
        db: Database,
        fleet: FleetService,
        store: ObjectStore,
        keys: StreamKeys | None,
        settings: Settings,
        events: EventBus,
        clock: Callable[[], datetime],
    ) -> None:
        self._db = db
        self._fleet = fleet
        self._store = store
        self._keys = keys
        self._settings = settings
        self._events = events
        self._clock = clock

    @property
    def sealing(self) -> bool:
        """Can backups be made (is there a key to seal them with)?"""
        return self._keys is not None

    # making -----------------------------------------------------------------------------------------------

    async def create(self, tenant_id: str, bot_id: str, *, kind: BackupKind = "manual") -> BackupOut:
        """Back up the bot's volume now (its container paused while its files are read). 404 for another tenant's
        bot, 409 over the tenant's storage quota, 503 without the key to seal with."""
        keys = self._require_keys()
        async with self._fleet.operation(tenant_id, bot_id) as bot:
            await self._check_quota(tenant_id)
            row = await self._begin(bot, kind)
            made: list[Manifest] = []

            async def spooled(tar: AsyncIterator[bytes]) -> int:
                """The tar spooled as fast as the engine sends it (the bot's pause ends with it), then packed
                from the spool into the store."""
                async with Spool(self._settings.backup_spool_dir) as spool:
                    await spool.fill(tar)
                    return await self._store.put(row.store_key, pack(keys, spool.drain(), self._facts(bot), made))

            try:
                paused = await self._fleet.read_volume(bot, spooled)
            except BaseException as err:
                await self._fail(row, err)
                raise
            done = await self._finish(row, made[0], archive_bytes=paused.result, pause_ms=paused.pause_ms)
        log.info("bot backed up", extra={"bot_id": bot_id, "backup_id": row.id, "pause_ms": paused.pause_ms})
        self._events.publish("backed_up", bot_id, tenant_id, backupId=row.id, kind=kind)
        return done

    def before_update(self, bot: Bot) -> VolumeFill:
        """The fill an image update gives the fleet: the bot's data copied into the fresh volume the new version
        runs on and, from the same read, archived as a `pre-update` backup (the old container is stopped then, so
        both are the data as the old version left it)."""
        keys = self._require_keys()

        async def fill(move: VolumeMove) -> None:
            row = await self._begin(bot, "pre-update")
            made: list[Manifest] = []
            to_volume: asyncio.Queue[bytes | None] = asyncio.Queue(PIPE_DEPTH)
            to_archive: asyncio.Queue[bytes | None] = asyncio.Queue(PIPE_DEPTH)

            async def read() -> None:
                async for chunk in move.read():
                    await to_volume.put(chunk)
                    await to_archive.put(chunk)
                await to_volume.put(None)
                await to_archive.put(None)

            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(read())
                    group.create_task(move.write(_drained(to_volume)))
                    stored = group.create_task(
                        self._store.put(row.store_key, pack(keys, _drained(to_archive), self._facts(bot), made))
                    )
            except BaseExceptionGroup as group_error:
                first = _first(group_error)
                await self._fail(row, first)
                raise first from None
            except BaseException as err:
                await self._fail(row, err)
                raise
            await self._finish(row, made[0], archive_bytes=stored.result(), pause_ms=None)
            self._events.publish("backed_up", bot.id, bot.tenant_id, backupId=row.id, kind="pre-update")

        return fill

    async def upload(self, tenant_id: str, bot_id: str, body: AsyncIterable[bytes]) -> BackupOut:
        """Keep an archive a client sends (one this platform made, for one of this tenant's bots) as a backup of
        the bot. It is read back whole and checked (its seal, its manifest, every entry) before it is listed;
        anything wrong: 400 and nothing kept."""
        keys = self._require_keys()
        async with self._fleet.operation(tenant_id, bot_id, engine=False) as bot:
            await self._check_quota(tenant_id)
            row = await self._begin(bot, "upload")
        limit = self._settings.backup_max_volume_bytes + self._settings.backup_max_volume_bytes // 8 + 1024 * 1024
        try:
            size = await self._store.put(row.store_key, _bounded(body, limit))
            opened: list[Manifest] = []
            async for _ in unpack(keys, self._store.get(row.store_key), self._guard(), opened):
                pass
            manifest = opened[0]
            if manifest.tenant_id != tenant_id:
                raise ArchiveRefused("the archive is another tenant's", details={"reason": "tenant"})
        except BaseException as err:
            await self._fail(row, err, keep_row=False)
            raise
        row.image = manifest.image
        return await self._finish(row, manifest, archive_bytes=size, pause_ms=None)

    # reading ------------------------------------------------------------------------------------------------

    async def list(
        self, tenant_id: str, *, bot_id: str | None = None, before: datetime | None = None, limit: int = PAGE
    ) -> BackupList:
        """The tenant's backups (of one bot), newest first, a page at a time."""
        async with self._db.read() as session:
            rows = await BackupRepository(session).page(tenant_id, bot_id, limit=limit + 1, before=before)
        page = [_out(row) for row in rows[:limit]]
        return BackupList(backups=page, next_before=page[-1].created_at if len(rows) > limit else None)

    async def get(self, tenant_id: str | None, backup_id: str) -> BackupOut:
        return _out(await self._row(tenant_id, backup_id))

    async def download(self, tenant_id: str, backup_id: str) -> tuple[BackupOut, AsyncIterator[bytes]]:
        """The sealed archive as stored, to be streamed (only this platform's key opens it)."""
        row = await self._row(tenant_id, backup_id, ready=True)
        return _out(row), self._store.get(row.store_key)

    async def usage(self, tenant_id: str) -> BackupUsage:
        async with self._db.read() as session:
            stored = await BackupRepository(session).stored_bytes(tenant_id)
            quota = await self._quota(session, tenant_id)
        return BackupUsage(tenant_id=tenant_id, stored_bytes=stored, quota_bytes=quota)

    async def stored_by_tenant(self) -> dict[str, int]:
        """Bytes of ready backups per tenant, in one query (billing charges storage by it)."""
        async with self._db.read() as session:
            return await BackupRepository(session).stored_by_tenant()

    # restoring and deleting ---------------------------------------------------------------------------------

    async def restore(self, tenant_id: str, backup_id: str, *, into_bot_id: str | None = None) -> BotProfile:
        """Put the backup's data back: into its own bot, or into another bot of the tenant (a clone). The data
        goes into a fresh volume; the bot moves onto it only once it is whole and checked, so a bad archive or a
        crash leaves the bot's data as it was."""
        keys = self._require_keys()
        row = await self._row(tenant_id, backup_id, ready=True)
        target = into_bot_id or row.bot_id

        async def fill(move: VolumeMove) -> None:
            opened: list[Manifest] = []
            await move.write(unpack(keys, self._store.get(row.store_key), self._guard(), opened))

        async with self._fleet.operation(tenant_id, target) as bot:
            profile = await self._fleet.restore_volume(bot, fill)
        log.info("backup restored", extra={"backup_id": backup_id, "bot_id": target})
        return profile

    async def delete(self, tenant_id: str | None, backup_id: str) -> None:
        """Remove the backup: its object first, then its row (a failure in between leaves a row to retry)."""
        row = await self._row(tenant_id, backup_id)
        await self._store.delete(row.store_key)
        async with self._db.unit() as session:
            repo = BackupRepository(session)
            stored = await repo.get(backup_id, tenant_id)
            if stored is not None:
                await repo.delete(stored)

    async def sweep_unfinished(self, older_than: timedelta) -> int:
        """Backups a crash left `creating` (none is written that long): their objects and rows removed; then what
        interrupted writes left in the store. How many rows."""
        async with self._db.read() as session:
            stale = await BackupRepository(session).unfinished(self._clock() - older_than)
        for row in stale:
            await self._fail(row, RuntimeError("interrupted"), keep_row=False)
        await self._store.sweep()
        return len(stale)

    # helpers ------------------------------------------------------------------------------------------------

    def _require_keys(self) -> StreamKeys:
        if self._keys is None:
            raise ServiceUnavailable(
                "backups need PLATFORM_SECRET: archives are sealed with a key derived from it",
                details={"setting": "PLATFORM_SECRET"},
            )
        return self._keys

    def _guard(self) -> TarGuard:
        return TarGuard(
            most_bytes=self._settings.backup_max_volume_bytes,
            most_entries=self._settings.backup_max_entries,
            root=VolumeMove.ROOT,
        )

    @staticmethod
    def _facts(bot: Bot) -> dict[str, str]:
        return {
            "bot_id": bot.id,
            "tenant_id": bot.tenant_id,
            "image": pinned(bot.image, bot.image_digest),
            "created_at": datetime.now(UTC).isoformat(),
        }

    async def _check_quota(self, tenant_id: str) -> None:
        async with self._db.read() as session:
            stored = await BackupRepository(session).stored_bytes(tenant_id)
            quota = await self._quota(session, tenant_id)
        if quota and stored >= quota:
            raise QuotaExceeded(
                "the tenant's backups take all of its backup storage: delete some first",
                details={"quota": "backupBytes", "used": stored, "limit": quota},
            )

    async def _quota(self, session: AsyncSession, tenant_id: str) -> int:
        policy = await BackupRepository(session).policy(f"tenant:{tenant_id}")
        if policy is not None and policy.quota_bytes is not None:
            return policy.quota_bytes
        return self._settings.backup_tenant_quota_bytes

    async def _begin(self, bot: Bot, kind: str) -> Backup:
        backup_id = str(uuid.uuid4())
        row = Backup(
            id=backup_id,
            tenant_id=bot.tenant_id,
            bot_id=bot.id,
            bot_name=bot.name,
            kind=kind,
            state="creating",
            store_key=f"{bot.tenant_id}/{backup_id}",
            image=pinned(bot.image, bot.image_digest),
            archive_bytes=0,
            tar_bytes=0,
            sha256="",
            created_at=self._clock(),
        )
        async with self._db.unit() as session:
            BackupRepository(session).add(row)
        return row

    async def _finish(self, row: Backup, manifest: Manifest, *, archive_bytes: int, pause_ms: int | None) -> BackupOut:
        async with self._db.unit() as session:
            stored = await BackupRepository(session).get(row.id, None)
            if stored is None:  # deleted meanwhile: the object goes too
                await self._store.delete(row.store_key)
                raise NotFound("the backup was deleted while it was made", details={"backupId": row.id})
            stored.state = "ready"
            stored.image = row.image
            stored.archive_bytes = archive_bytes
            stored.tar_bytes = manifest.tar_bytes
            stored.sha256 = manifest.sha256
            stored.pause_ms = pause_ms
            stored.finished_at = self._clock()
            return _out(stored)

    async def _fail(self, row: Backup, err: BaseException, *, keep_row: bool = True) -> None:
        """What a failed backup leaves: no object, and its row marked failed (or gone)."""
        try:
            await self._store.delete(row.store_key)
        except PlatformError as store_err:
            log.warning("a failed backup's object could not be removed", extra={"reason": store_err.message})
        reason = err.message if isinstance(err, PlatformError) else (str(err) or type(err).__name__)
        async with self._db.unit() as session:
            repo = BackupRepository(session)
            stored = await repo.get(row.id, None)
            if stored is None:
                return
            if keep_row:
                stored.state = "failed"
                stored.error = reason[:2000]
                stored.finished_at = self._clock()
            else:
                await repo.delete(stored)

    async def _row(self, tenant_id: str | None, backup_id: str, *, ready: bool = False) -> Backup:
        async with self._db.read() as session:
            row = await BackupRepository(session).get(backup_id, tenant_id)
        if row is None:
            raise NotFound("backup not found", details={"backupId": backup_id})
        if ready and row.state != "ready":
            raise NotFound("the backup is not ready", details={"backupId": backup_id, "state": row.state})
        return row


async def _drained(pipe: asyncio.Queue[bytes | None]) -> AsyncIterator[bytes]:
    while (chunk := await pipe.get()) is not None:
        yield chunk


async def _bounded(body: AsyncIterable[bytes], limit: int) -> AsyncIterator[bytes]:
    size = 0
    async for chunk in body:
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge("the archive is larger than any backup may be", details={"limit": limit})
        yield chunk


def _out(row: Backup) -> BackupOut:
    return BackupOut(
        id=row.id,
        bot_id=row.bot_id,
        bot_name=row.bot_name,
        kind=row.kind,
        state=row.state,
        image=row.image,
        archive_bytes=row.archive_bytes,
        tar_bytes=row.tar_bytes,
        sha256=row.sha256,
        pause_ms=row.pause_ms,
        error=row.error,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


def _first(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report of a task group's: the first of the project's own (the reason a step refused), else
    the first."""
    for error in group.exceptions:
        if isinstance(error, PlatformError):
            return error
    return group.exceptions[0]
