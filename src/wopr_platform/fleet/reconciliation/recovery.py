"""Crash recovery: finish or undo every operation the journal says was interrupted.

Afterwards each bot has exactly one container (or, for a bot whose creation was cut short, none and no
profile), and each deleted bot has none.
"""

from __future__ import annotations

import logging

from wopr_platform.core import naming
from wopr_platform.core.errors import EngineConflict, EngineNotFound
from wopr_platform.db.models import Bot, Operation
from wopr_platform.db.unit import Database
from wopr_platform.docker.engine import DockerEngine
from wopr_platform.fleet.lifecycle.containers import BotContainers
from wopr_platform.fleet.lifecycle.journal import Journal
from wopr_platform.fleet.lifecycle.locks import BotLocks
from wopr_platform.fleet.observation.events import EventBus
from wopr_platform.fleet.quotas.service import Quotas
from wopr_platform.fleet.repository import BotRepository

log = logging.getLogger(__name__)


class Recovery:
    """Settles the journal's pending operations, one bot at a time under its lock."""

    def __init__(
        self,
        *,
        db: Database,
        journal: Journal,
        containers: BotContainers,
        engine: DockerEngine,
        locks: BotLocks,
        events: EventBus,
        quotas: Quotas,
    ) -> None:
        self._quotas = quotas
        self._db = db
        self._journal = journal
        self._containers = containers
        self._engine = engine
        self._locks = locks
        self._events = events

    async def run(self) -> int:
        """Settle every pending operation; returns how many there were. Engine errors propagate (retry later)."""
        pending = await self._journal.pending()
        for op in pending:
            async with self._locks.hold(op.bot_id):
                log.warning(
                    "settling an interrupted operation",
                    extra={"bot_id": op.bot_id, "kind": op.kind, "stage": op.stage},
                )
                await self._settle(op)
                await self._journal.finish_now(op.id)
        return len(pending)

    async def _bot(self, bot_id: str) -> Bot | None:
        async with self._db.read() as session:
            return await BotRepository(session).get_any(bot_id)

    async def _settle(self, op: Operation) -> None:
        bot = await self._bot(op.bot_id)
        if op.kind == "create":
            await self._undo_create(op, bot)
        elif op.kind == "delete":
            await self._finish_delete(op)
        elif op.kind == "patch" and bot is not None:
            await self._settle_patch(op, bot)

    async def _undo_create(self, op: Operation, bot: Bot | None) -> None:
        """The client never got its 201: remove what the create left, as if it never ran."""
        for container in await self._containers.labelled(op.bot_id):
            await self._containers.remove(container.id)
        if op.payload.get("volumeCreated") and op.payload.get("volume"):
            await self._engine.remove_volume(str(op.payload["volume"]))
        if bot is not None:
            async with self._db.step() as session:
                await self._quotas.remove_bot(session, op.tenant_id, op.bot_id)
        self._events.publish("removed", op.bot_id, op.tenant_id, reason="interrupted create undone")

    async def _finish_delete(self, op: Operation) -> None:
        """The delete had begun: carry it through."""
        for container in await self._containers.labelled(op.bot_id):
            await self._containers.remove(container.id)
        if op.payload.get("removeVolumes") and op.payload.get("volume"):
            await self._engine.remove_volume(str(op.payload["volume"]))
        if op.payload.get("removeVolumes"):
            for name in op.payload.get("volumes") or ():  # the ones it had before (rows of older platforms: none)
                await self._containers.remove_earlier_volume(str(name))
        async with self._db.step() as session:
            await self._quotas.remove_bot(session, op.tenant_id, op.bot_id)
        self._events.publish("removed", op.bot_id, op.tenant_id, reason="interrupted delete finished")

    async def _settle_patch(self, op: Operation, bot: Bot) -> None:
        """Committed → keep the new container; not committed → bring the old one back. A move onto a fresh
        volume drops the volume the bot no longer uses: the old one when committed, else the fresh one."""
        containers = await self._containers.labelled(bot.id)
        move = op.payload.get("move") or {}
        if op.stage == "committed":
            for container in containers:
                if container.id != bot.container_id:
                    await self._containers.remove(container.id)
            await self._drop_volume(move.get("source"))
            return
        old_id = op.payload.get("oldContainer") or bot.container_id
        for container in containers:
            if container.id != old_id:
                await self._containers.remove(container.id)
        await self._drop_volume(move.get("target"))
        old = next((c for c in containers if c.id == old_id), None)
        if old is None:
            return  # the reconciler builds the bot's container from its (unchanged) profile
        if old.name != naming.container_name(bot.id):
            try:
                await self._engine.rename(old.id, naming.container_name(bot.id))
            except (EngineConflict, EngineNotFound):
                log.warning("could not give the parked container its name back", extra={"bot_id": bot.id})
        if op.payload.get("wasRunning") and bot.desired_state == "running":
            await self._containers.start(old.id)
        else:
            await self._containers.refresh(old.id)

    async def _drop_volume(self, name: object) -> None:
        if isinstance(name, str) and name and not await self._containers.remove_earlier_volume(name):
            log.warning("a volume an interrupted move left is in use; kept", extra={"volume": name})
