"""The reconciler: desired state (database) against observed state (engine), and the repairs between them.

Drift it repairs, each under the bot's lock and with a per-bot back-off so nothing is retried in a hot loop:
- `missing`: the bot has no container (removed behind our back) → build one from the profile;
- `stopped`: it should run but was stopped outside the platform → start it (a container that crashed on its
  own is left to its restart policy, which Docker backs off by itself);
- `running`: the user stopped it but something started it → stop it again;
- `changed`: its image, env, volume or restart policy no longer match the profile (or a look-alike that does
  not match took the bot's container name) → recreate it;
- `duplicate`: more than one container carries the bot's label → keep the profile's, remove the rest;
- `adopt`: the profile names no live container but exactly one matching container carries its label (or one
  of several holds the bot's container name) → adopt it.
Shown, never repaired:
- `old_volume`: a volume made for the bot that is no longer its volume (its `volumeName` changed) and that no bot
  uses; kept with its data until `DELETE ?removeVolumes=true` removes it with the bot.
Containers labelled as ours that belong to no bot are orphans, removed after a grace period; so is the
network of a tenant that has no bot left (bots of a tenant share one bridge network, see fleet.naming).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from wopr_platform.core import naming
from wopr_platform.core.errors import PlatformError
from wopr_platform.core.metrics import PlatformMetrics
from wopr_platform.db.models import Bot
from wopr_platform.db.unit import Database
from wopr_platform.docker.types import ContainerInfo
from wopr_platform.fleet.lifecycle.containers import BotContainers, Snapshot
from wopr_platform.fleet.lifecycle.locks import BotLocks
from wopr_platform.fleet.observation.events import EventBus
from wopr_platform.fleet.observation.observed import ObservedState
from wopr_platform.fleet.reconciliation.recovery import Recovery
from wopr_platform.fleet.repository import BotRepository
from wopr_platform.fleet.schemas import DriftItem, DriftReport, Orphan, RepairView

log = logging.getLogger(__name__)

BACKOFF_MAX_SECONDS = 300.0
RECUR_WINDOW_SECONDS = 30.0
MAX_PARALLEL_REPAIRS = 4
YIELD_EVERY = 50
SETTLE_SECONDS = 0.05  # the least time between passes, for a burst of engine events to settle into one
HISTORY = 200
# an operation in flight this long (longer than any create, change or update takes) was abandoned by its replica
IN_FLIGHT_GRACE = timedelta(minutes=15)
_RESTARTING_POLICIES = ("always", "unless-stopped")


@dataclass(frozen=True, slots=True)
class Drift:
    bot_id: str
    tenant_id: str
    kind: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Repair:
    bot_id: str
    tenant_id: str
    kind: str
    action: str
    outcome: str
    at: datetime
    error: str | None = None


@dataclass(slots=True)
class _Backoff:
    """Repairs of one bot that keep coming back (or failing) wait 2 s, 4 s, ... up to 5 min."""

    attempts: int = 0
    next_allowed: float = 0.0
    last_repair: float = float("-inf")

    def record(self, now: float, *, failed: bool) -> None:
        recurring = now - self.last_repair < RECUR_WINDOW_SECONDS
        self.attempts = self.attempts + 1 if (failed or recurring) else 0
        self.last_repair = now
        self.next_allowed = now + (min(2.0**self.attempts, BACKOFF_MAX_SECONDS) if self.attempts else 0.0)


@dataclass(slots=True)
class _Orphan:
    info: ContainerInfo
    first_seen: float
    first_seen_at: datetime


def _now() -> datetime:
    return datetime.now(UTC)


def diff(bot: Any, containers: list[ContainerInfo], observed: ObservedState, matches: Any) -> list[Drift]:
    """What differs between one bot's profile and the containers carrying its label."""
    primary = next((c for c in containers if c.id == bot.container_id), None)
    drift: list[Drift] = []
    extras = [c for c in containers if c is not primary]
    if primary is None and extras:
        fitting = [c for c in extras if matches(bot, c)]
        adoptable = [c for c in fitting if c.name == naming.container_name(bot.id)] or fitting
        if len(adoptable) == 1:
            return [Drift(bot.id, bot.tenant_id, "adopt", {"containerId": adoptable[0].id})]
        # one that holds the bot's name but not its profile (replaced behind our back) would make a rebuild
        # fail on the name forever: it is the bot's container, changed
        primary = next((c for c in extras if c.name == naming.container_name(bot.id)), None)
        extras = [c for c in extras if c is not primary]
    if primary is None:
        drift.append(Drift(bot.id, bot.tenant_id, "missing", {"expectedContainer": bot.container_id}))
    elif not matches(bot, primary):
        drift.append(Drift(bot.id, bot.tenant_id, "changed", {"containerId": primary.id}))
    elif bot.desired_state == "running" and primary.state in ("exited", "created", "dead"):
        by_hand = observed.stopped_by_signal(primary.id) or primary.state == "created"
        if by_hand or bot.restart_policy in _RESTARTING_POLICIES:
            drift.append(Drift(bot.id, bot.tenant_id, "stopped", {"containerId": primary.id}))
    elif bot.desired_state == "stopped" and primary.state in ("running", "restarting"):
        drift.append(Drift(bot.id, bot.tenant_id, "running", {"containerId": primary.id}))
    if primary is not None and extras:
        drift.append(Drift(bot.id, bot.tenant_id, "duplicate", {"containerIds": [c.id for c in extras]}))
    return drift


class Reconciler:
    """Background loop `reconciler`: settles the journal once, then repairs drift every `interval` (or on a kick)."""

    name = "reconciler"

    def __init__(
        self,
        *,
        db: Database,
        containers: BotContainers,
        observed: ObservedState,
        locks: BotLocks,
        events: EventBus,
        recovery: Recovery,
        interval: float,
        orphan_grace: float,
        metrics: PlatformMetrics | None = None,
    ) -> None:
        self._metrics = metrics or PlatformMetrics()
        self._db = db
        self._containers = containers
        self._observed = observed
        self._locks = locks
        self._events = events
        self._recovery = recovery
        self._interval = interval
        self._orphan_grace = orphan_grace
        self._wake = asyncio.Event()
        self._backoff: dict[str, _Backoff] = {}
        self._orphans: dict[str, _Orphan] = {}
        self._idle_networks: dict[str, float] = {}
        self.recovered = asyncio.Event()
        self.current: list[Drift] = []
        self.old_volumes: list[Drift] = []
        self.history: deque[Repair] = deque(maxlen=HISTORY)
        self.last_run_at: datetime | None = None
        self.last_run_ms: float | None = None

    def kick(self) -> None:
        """Run a pass soon (something changed in the engine)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()  # before the pass: a change during it must cause another one
            try:
                if self._observed.stale_reason is None:
                    if not self.recovered.is_set():
                        await self._recovery.run()
                        self.recovered.set()
                    await self.reconcile_once()
            except PlatformError as err:
                log.warning("reconcile pass failed", extra={"reason": err.message})
            except Exception:
                log.exception("reconcile pass failed")
            try:
                async with asyncio.timeout(self._next_pass_in()):
                    await self._wake.wait()
            except TimeoutError:
                pass
            # let a burst of engine events settle into one pass; with a large fleet, at least as long as the pass
            # took, so passes kicked back to back by a stream of changes use at most half a core between them
            await asyncio.sleep(max(SETTLE_SECONDS, (self.last_run_ms or 0.0) / 1000))

    def _next_pass_in(self) -> float:
        """The interval, or sooner when a bot's back-off ends and its drift is still outstanding."""
        now = time.monotonic()
        waiting = [self._backoff[d.bot_id].next_allowed - now for d in self.current if d.bot_id in self._backoff]
        return max(min([self._interval, *waiting]), 0.0)

    async def reconcile_once(self) -> list[Drift]:
        """One pass over every bot; returns the drift left unrepaired (repairs are recorded in `history`)."""
        started = time.monotonic()
        async with self._db.read() as session:
            repo = BotRepository(session)
            # a bot another replica is creating, changing or removing right now (its bot lock is that replica's)
            # is left to it; an operation older than IN_FLIGHT_GRACE was abandoned by a replica that died
            busy = await repo.in_flight(_now() - IN_FLIGHT_GRACE)
            bots = list(await repo.list_for_reconcile())
        by_bot: dict[str, list[ContainerInfo]] = {}
        for info in self._observed.containers():
            if info.bot_id:
                by_bot.setdefault(info.bot_id, []).append(info)
        drifting: dict[str, list[Drift]] = {}
        for index, bot in enumerate(bots):
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)  # a large fleet must not hold requests up for the whole pass
            if bot.id in busy:
                continue
            drift = diff(bot, by_bot.get(bot.id, []), self._observed, self._containers.matches)
            if drift:
                drifting[bot.id] = drift
        limit = asyncio.Semaphore(MAX_PARALLEL_REPAIRS)

        async def repair(bot_id: str, drift: list[Drift]) -> list[Drift]:
            async with limit:
                return await self._repair_bot(bot_id, drift)

        left = await asyncio.gather(*(repair(bot_id, drift) for bot_id, drift in drifting.items()))
        self.current = [d for part in left for d in part]
        outstanding = self.current
        await self._old_volumes_pass(bots)
        await self._orphans_pass({bot.id for bot in bots})
        await self._networks_pass({bot.tenant_id for bot in bots})
        self.last_run_at = _now()
        self.last_run_ms = round((time.monotonic() - started) * 1000, 1)
        self._metrics.reconcile_pass.observe(time.monotonic() - started)
        return outstanding

    async def _repair_bot(self, bot_id: str, seen: list[Drift]) -> list[Drift]:
        """Repair what still differs once the bot's lock is held; returns what is left (failed or backing off)."""
        backoff = self._backoff.setdefault(bot_id, _Backoff())
        if time.monotonic() < backoff.next_allowed:
            return seen
        left: list[Drift] = []
        async with self._locks.hold(bot_id):
            async with self._db.read() as session:
                bot = await BotRepository(session).get_any(bot_id)
            if bot is None:
                return []
            containers = [c for c in self._observed.containers() if c.bot_id == bot_id]
            for drift in diff(bot, containers, self._observed, self._containers.matches):
                action, outcome, error = await self._apply(bot, drift)
                backoff.record(time.monotonic(), failed=outcome != "ok")
                self._metrics.drift.labels(drift.kind, outcome).inc()
                if outcome != "ok":
                    left.append(drift)
                self.history.append(Repair(bot.id, bot.tenant_id, drift.kind, action, outcome, _now(), error))
                log.info(
                    "drift repaired" if outcome == "ok" else "drift repair failed",
                    extra={"bot_id": bot.id, "kind": drift.kind, "action": action, "error": error},
                )
                if outcome == "ok":
                    self._events.publish("drift_repaired", bot.id, bot.tenant_id, kind=drift.kind, action=action)
        return left

    async def _apply(self, bot: Bot, drift: Drift) -> tuple[str, str, str | None]:
        try:
            if drift.kind == "adopt":
                await self._adopt(bot, str(drift.detail["containerId"]))
                return "adopted", "ok", None
            if drift.kind == "missing":
                await self._rebuild(bot, None)
                return "recreated", "ok", None
            if drift.kind == "changed":
                await self._rebuild(bot, str(drift.detail["containerId"]))
                return "recreated", "ok", None
            if drift.kind == "stopped":
                await self._containers.start(str(drift.detail["containerId"]))
                return "started", "ok", None
            if drift.kind == "running":
                await self._containers.stop(str(drift.detail["containerId"]))
                return "stopped", "ok", None
            if drift.kind == "duplicate":
                for container_id in drift.detail["containerIds"]:
                    await self._containers.remove(str(container_id))
                return "removed duplicates", "ok", None
        except PlatformError as err:
            return drift.kind, "failed", err.message
        return "none", "ok", None

    async def _rebuild(self, bot: Bot, old_container: str | None) -> None:
        if old_container is not None:
            await self._containers.remove(old_container)
        new_id = await self._containers.build(
            bot, Snapshot.of(bot), start=bot.desired_state == "running", crash_prefix="reconcile"
        )
        await self._adopt(bot, new_id)

    async def _adopt(self, bot: Bot, container_id: str) -> None:
        async with self._db.unit() as session:
            stored = await BotRepository(session).get_any(bot.id)
            if stored is not None:
                stored.container_id = container_id
        bot.container_id = container_id

    async def _old_volumes_pass(self, bots: list[Any]) -> None:
        """Find the volumes made for a bot that neither it nor another bot uses now (one engine call)."""
        try:
            volumes = await self._containers.bot_volumes()
        except PlatformError as err:
            log.warning("could not list the bots' volumes", extra={"reason": err.message})
            return
        in_use = {self._containers.volume(bot) for bot in bots}
        tenants = {bot.id: bot.tenant_id for bot in bots}
        self.old_volumes = [
            Drift(
                volume.bot_id,
                tenants[volume.bot_id],
                "old_volume",
                {"volume": volume.name, "action": "kept until DELETE ?removeVolumes=true"},
            )
            for volume in sorted(volumes, key=lambda v: v.name)
            if volume.bot_id in tenants and volume.name not in in_use
        ]

    async def _orphans_pass(self, bot_ids: set[str]) -> None:
        now = time.monotonic()
        seen: set[str] = set()
        for info in self._observed.containers():
            if info.bot_id in bot_ids:
                continue
            seen.add(info.id)
            orphan = self._orphans.setdefault(info.id, _Orphan(info, now, _now()))
            if now - orphan.first_seen < self._orphan_grace:
                continue
            async with self._db.read() as session:
                owner = await BotRepository(session).get_any(info.bot_id) if info.bot_id else None
            if owner is not None:
                continue
            try:
                await self._containers.remove(info.id)
            except PlatformError as err:
                log.warning("could not remove an orphan", extra={"container_id": info.id[:12], "reason": err.message})
                continue
            log.warning("orphan container removed", extra={"container_id": info.id[:12], "bot_id": info.bot_id})
            self.history.append(Repair(info.bot_id or "", info.tenant_id or "", "orphan", "removed", "ok", _now()))
            self._events.publish("orphan_removed", info.bot_id or "", info.tenant_id, containerId=info.id)
            seen.discard(info.id)
        for gone in set(self._orphans) - seen:
            del self._orphans[gone]

    async def _networks_pass(self, tenants: set[str]) -> None:
        """Remove the network of a tenant without bots once it has been so for the orphan grace."""
        now = time.monotonic()
        idle = {
            name: tenant
            for name, tenant in (await self._containers.tenant_networks()).items()
            if tenant is not None and tenant not in tenants
        }
        for gone in set(self._idle_networks) - set(idle):
            del self._idle_networks[gone]
        for name, tenant in idle.items():
            if now - self._idle_networks.setdefault(name, now) < self._orphan_grace:
                continue

            async def unused(tenant: str = tenant) -> bool:
                async with self._db.read() as session:
                    return not await BotRepository(session).has_bots(tenant)

            try:
                removed = await self._containers.remove_network(name, unused)
            except PlatformError as err:
                log.warning("could not remove a tenant network", extra={"network": name, "reason": err.message})
                continue
            if removed:
                del self._idle_networks[name]
                log.info("unused tenant network removed", extra={"network": name, "tenant": tenant})

    def report(self, tenant_id: str, *, platform_wide: bool) -> DriftReport:
        """GET /fleet/drift: what differs now, the orphans waiting out their grace, and the latest repairs; orphans
        without a tenant label (and their repairs) belong to no tenant, so only `platform_wide` shows them."""
        unlabelled: tuple[str | None, ...] = (None, "") if platform_wide else ()
        return DriftReport(
            drift=[
                DriftItem(bot_id=d.bot_id, kind=d.kind, detail=d.detail)
                for d in [*self.current, *self.old_volumes]
                if d.tenant_id == tenant_id
            ],
            orphans=[
                Orphan(
                    container_id=o.info.id,
                    name=o.info.name,
                    bot_id=o.info.bot_id,
                    first_seen_at=o.first_seen_at,
                    remove_after_seconds=self._orphan_grace,
                )
                for o in self._orphans.values()
                if o.info.tenant_id == tenant_id or o.info.tenant_id in unlabelled
            ],
            repairs=[
                RepairView(bot_id=r.bot_id, kind=r.kind, action=r.action, outcome=r.outcome, error=r.error, at=r.at)
                for r in reversed(self.history)
                if r.tenant_id == tenant_id or r.tenant_id in unlabelled  # "": an orphan without a tenant label
            ],
            last_run_at=self.last_run_at,
            last_run_ms=self.last_run_ms,
            stale=self._observed.stale_reason,
        )
