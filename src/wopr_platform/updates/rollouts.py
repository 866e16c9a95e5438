"""Background loop `image-updater`: applies available updates by policy, as fleet rollouts in waves.

Each round it asks which running bots have a newer digest of their reference that their policy says is due
(and that they have not rejected before), groups them by (reference, digest), and rolls each group out:
first one bot, then a share, then the rest (`FLEET_ROLLOUT_WAVES`), canary bots before staging before stable.
A wave whose failure rate is above `FLEET_ROLLOUT_MAX_FAILURE_RATE` halts the rollout: its failed bots have
been rolled back by the updater, the later waves are never started, and that digest is not rolled out again
by itself (an operator can still update a bot by hand).
"""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Row

from wopr_platform.core.errors import Conflict, NotFound, PlatformError
from wopr_platform.core.metrics import PlatformMetrics
from wopr_platform.core.policy import UpdatePolicy
from wopr_platform.core.rounds import first_set, run_rounds
from wopr_platform.db.models import Rollout
from wopr_platform.db.unit import Database
from wopr_platform.fleet.observation.events import EventBus
from wopr_platform.updates.clock import Clock
from wopr_platform.updates.repository import UpdateRepository
from wopr_platform.updates.updater import Updater

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
CHANNEL_ORDER = {"canary": 0, "staging": 1, "stable": 2}
FAILED_OUTCOMES = ("rolled_back", "failed")


@dataclass(frozen=True, slots=True)
class RolloutRules:
    waves: Sequence[str]  # cumulative sizes: "1", "5", "25%", "100%"
    max_failure_rate: float
    parallel: int
    nightly_at: str
    window: timedelta


def plan_waves(total: int, sizes: Sequence[str]) -> list[int]:
    """Cumulative wave ends for `total` bots: ["1", "25%", "100%"] over 20 bots → [1, 5, 20]."""
    ends: list[int] = []
    for size in sizes:
        count = math.ceil(total * int(size[:-1]) / 100) if size.endswith("%") else int(size)
        count = min(max(count, 1), total)
        if not ends or count > ends[-1]:
            ends.append(count)
    if not ends or ends[-1] < total:
        ends.append(total)
    return ends


class RolloutScheduler:
    """Decides which updates are due and runs their rollouts (one at a time per image reference)."""

    name = "image-updater"

    def __init__(
        self,
        *,
        db: Database,
        updater: Updater,
        events: EventBus,
        clock: Clock,
        rules: RolloutRules,
        ready: asyncio.Event,
        metrics: PlatformMetrics | None = None,
    ) -> None:
        self._metrics = metrics or PlatformMetrics()
        self._db = db
        self._updater = updater
        self._events = events
        self._clock = clock
        self._rules = rules
        self._ready = ready
        self._wake = asyncio.Event()
        self._active: dict[str, asyncio.Task[None]] = {}  # image reference → its running rollout

    def kick(self) -> None:
        """Look for due updates now (a new digest was seen)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await first_set(stop, self._ready)  # crash recovery first: it settles updates a crash interrupted
            if stop.is_set():
                return
            await self._settle_previous_run()  # at the start of each term: this replica runs none yet
            await run_rounds(stop, self._wake, TICK_SECONDS, self.tick, "update round")
        finally:
            tasks = list(self._active.values())
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._active.clear()

    async def _settle_previous_run(self) -> None:
        settled = await self._updater.settle_interrupted()
        async with self._db.unit() as session:
            interrupted = await UpdateRepository(session).interrupt_running_rollouts(
                self._clock.now(), "the platform stopped during the rollout; due bots are picked up again"
            )
        if settled or interrupted:
            log.warning("closed updates and rollouts a restart interrupted", extra={"updates": settled})

    async def tick(self) -> list[str]:
        """Start a rollout for every (reference, digest) with due bots; returns the new rollouts' ids."""
        now = self._clock.now()
        async with self._db.read() as session:
            repo = UpdateRepository(session)
            candidates = await repo.candidates()
            halted = await repo.halted() if candidates else set()
        groups: dict[tuple[str, str], list[Row[Any]]] = {}
        for row in candidates:
            if row.image in self._active or (row.image, row.digest) in halted or self._updater.busy(row.id):
                continue
            try:
                policy = UpdatePolicy.parse(row.update_policy, nightly_at=self._rules.nightly_at)
            except ValueError:
                continue
            if policy.automatic and policy.due(row.digest_seen_at or now, now, self._rules.window):
                groups.setdefault((row.image, row.digest), []).append(row)
        started = []
        for (reference, digest), rows in groups.items():
            rows.sort(key=lambda r: (CHANNEL_ORDER.get(r.release_channel, 9), r.created_at, r.id))
            rollout_id = await self._create(reference, digest, rows)
            task = asyncio.create_task(
                self._run_rollout(rollout_id, reference, digest, rows), name=f"rollout-{rollout_id}"
            )
            self._active[reference] = task
            task.add_done_callback(self._forget_finished)
            started.append(rollout_id)
        return started

    def _forget_finished(self, task: asyncio.Task[None]) -> None:
        for reference, active in list(self._active.items()):
            if active is task:
                del self._active[reference]
        if not task.cancelled() and task.exception() is not None:
            log.error("rollout crashed", exc_info=task.exception())

    async def _create(self, reference: str, digest: str, rows: list[Row[Any]]) -> str:
        ends = plan_waves(len(rows), self._rules.waves)
        waves: list[dict[str, Any]] = []
        begin = 0
        for index, end in enumerate(ends):
            waves.append(
                {
                    "index": index,
                    "botIds": [row.id for row in rows[begin:end]],
                    "state": "pending",
                    "updated": 0,
                    "failed": 0,
                    "rolledBack": 0,
                    "skipped": 0,
                }
            )
            begin = end
        kinds = sorted({row.update_policy.split(":", 1)[0] for row in rows})
        rollout = Rollout(
            id=str(uuid.uuid4()),
            reference=reference,
            to_digest=digest,
            state="running",
            trigger=kinds[0] if len(kinds) == 1 else "mixed",
            waves=waves,
            created_at=self._clock.now(),
        )
        async with self._db.unit() as session:
            UpdateRepository(session).add_rollout(rollout)
        log.info(
            "rollout started",
            extra={"rollout_id": rollout.id, "image": reference, "digest": digest, "bots": len(rows)},
        )
        return rollout.id

    async def _run_rollout(self, rollout_id: str, reference: str, digest: str, rows: list[Row[Any]]) -> None:
        try:
            await self._waves(rollout_id, reference, digest, rows)
        except Exception as err:
            log.exception("rollout failed", extra={"rollout_id": rollout_id})
            self._metrics.rollouts.labels("failed").inc()
            await self._save(rollout_id, None, state="failed", reason=f"internal error: {type(err).__name__}")

    async def _waves(self, rollout_id: str, reference: str, digest: str, rows: list[Row[Any]]) -> None:
        by_id = {row.id: row for row in rows}
        async with self._db.read() as session:
            rollout = await UpdateRepository(session).get_rollout(rollout_id)
        assert rollout is not None
        waves = [dict(wave) for wave in rollout.waves]
        limit = asyncio.Semaphore(self._rules.parallel)

        async def one(bot_id: str) -> str:
            row = by_id[bot_id]
            async with limit:
                try:
                    trigger = row.update_policy.split(":", 1)[0]
                    result = await self._updater.update(
                        row.tenant_id, bot_id, digest, trigger=trigger, rollout_id=rollout_id
                    )
                except (Conflict, NotFound):
                    return "skipped"  # deleted, stopped or busy meanwhile: not this image's fault
                except PlatformError as err:
                    log.warning("rollout could not update a bot", extra={"bot_id": bot_id, "reason": err.message})
                    return "failed"
                except Exception:
                    log.exception("rollout update crashed", extra={"bot_id": bot_id})
                    return "failed"
            return {"updated": "updated", "current": "skipped"}.get(result.outcome, result.outcome)

        state, reason = "completed", None
        for wave in waves:
            wave["state"] = "running"
            await self._save(rollout_id, waves)
            outcomes = await asyncio.gather(*(one(bot_id) for bot_id in wave["botIds"]))
            wave["updated"] = outcomes.count("updated")
            wave["rolledBack"] = outcomes.count("rolled_back")
            wave["failed"] = sum(outcomes.count(kind) for kind in FAILED_OUTCOMES)
            wave["skipped"] = outcomes.count("skipped")
            attempted = len(outcomes) - wave["skipped"]
            rate = wave["failed"] / attempted if attempted else 0.0
            wave["failureRate"] = round(rate, 4)
            wave["state"] = "done"
            if rate > self._rules.max_failure_rate:
                state = "halted"
                reason = (
                    f"wave {wave['index'] + 1}: {wave['failed']} of {attempted} bot(s) failed "
                    f"(above {self._rules.max_failure_rate:.0%}); the rest stay on their current image"
                )
                for later in waves[wave["index"] + 1 :]:
                    later["state"] = "cancelled"
                break
        await self._save(rollout_id, waves, state=state, reason=reason)
        self._metrics.rollouts.labels(state).inc()
        log.log(
            logging.WARNING if state == "halted" else logging.INFO,
            "rollout " + state,
            extra={"rollout_id": rollout_id, "image": reference, "digest": digest, "reason": reason},
        )

    async def _save(
        self,
        rollout_id: str,
        waves: list[dict[str, Any]] | None,
        *,
        state: str | None = None,
        reason: str | None = None,
    ) -> None:
        async with self._db.unit() as session:
            rollout = await UpdateRepository(session).get_rollout(rollout_id)
            if rollout is None:
                return
            if waves is not None:
                rollout.waves = [dict(wave) for wave in waves]
            if state is not None:
                rollout.state = state
                rollout.reason = reason
                rollout.finished_at = self._clock.now()
