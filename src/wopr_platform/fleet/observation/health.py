"""Health of running bots, probed from outside over HTTP and kept in memory."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from wopr_platform.core.rounds import run_rounds
from wopr_platform.docker.types import ContainerInfo
from wopr_platform.fleet.observation.events import EventBus
from wopr_platform.fleet.observation.observed import ObservedState
from wopr_platform.instance.client import InstanceClient

log = logging.getLogger(__name__)

Health = Literal["healthy", "unhealthy", "starting", "none"]
TICK_SECONDS = 0.2
STARTING_PROBE_SECONDS = 0.25
MAX_CONCURRENT_PROBES = 32


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    """How one bot is probed."""

    endpoint: str
    interval: float
    timeout: float
    retries: int
    start_period: float


@dataclass(slots=True)
class _ProbeState:
    started_at: datetime | None
    since: float
    status: Health = "starting"
    failures: int = 0
    next_due: float = 0.0
    last_detail: str = ""


class HealthMonitor:
    """Background loop `health-monitor`: probes each running container's `/health` on its own schedule.

    A fresh container is probed every quarter second until it answers (so "healthy" shows soon after start),
    then every `interval`; it turns unhealthy after `retries` failures in a row (failures within
    `start_period` of a start only keep it "starting"). Each bot may override the defaults (`configure`).
    """

    name = "health-monitor"

    def __init__(
        self,
        observed: ObservedState,
        client: InstanceClient,
        *,
        defaults: ProbeConfig,
        events: EventBus | None = None,
    ) -> None:
        self._events = events
        self._observed = observed
        self._client = client
        self._defaults = defaults
        self._configs: dict[str, ProbeConfig] = {}
        self._states: dict[str, _ProbeState] = {}
        self._held: dict[str, list[tuple[str, str | None, dict[str, str]]]] = {}  # bot → its news, held back
        self._wake = asyncio.Event()

    def configure(self, bot_id: str, check: dict[str, object] | None) -> None:
        """Use the bot's own probe settings (camelCase keys as stored); None or missing keys take defaults."""
        if not check:
            self._configs.pop(bot_id, None)
            return
        base = self._defaults

        def number(key: str, default: float) -> float:
            value = check.get(key)
            return float(value) if isinstance(value, int | float) else default

        self._configs[bot_id] = ProbeConfig(
            endpoint=str(check.get("endpoint") or base.endpoint),
            interval=number("intervalSeconds", base.interval),
            timeout=number("timeoutSeconds", base.timeout),
            retries=int(number("retries", base.retries)),
            start_period=number("startPeriodSeconds", base.start_period),
        )

    def forget(self, bot_id: str) -> None:
        """The bot is gone: drop its settings (and any news of it held back)."""
        self._configs.pop(bot_id, None)
        self._held.pop(bot_id, None)

    def hold_news(self, bot_id: str) -> None:
        """Announce nothing of the bot until `release_news` (its creation is announced first, whatever the
        first probe's timing)."""
        self._held.setdefault(bot_id, [])

    def release_news(self, bot_id: str) -> None:
        """Announce what was held back of the bot, in order."""
        for kind, tenant_id, detail in self._held.pop(bot_id, []):
            self._announce(kind, bot_id, tenant_id, detail)

    def _announce(self, kind: str, bot_id: str, tenant_id: str | None, detail: dict[str, str]) -> None:
        held = self._held.get(bot_id)
        if held is not None:
            held.append((kind, tenant_id, detail))
        elif self._events is not None:
            self._events.publish(kind, bot_id, tenant_id, **detail)

    def config(self, bot_id: str | None) -> ProbeConfig:
        return self._configs.get(bot_id or "", self._defaults)

    def status(self, container: ContainerInfo | None) -> Health:
        """The health of `container` as last probed ("none" when it is not running)."""
        if container is None or container.state != "running":
            return "none"
        state = self._states.get(container.id)
        if state is None or state.started_at != container.started_at:
            return "starting"
        return state.status

    def kick(self) -> None:
        """Look for new containers now instead of at the next tick."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        limit = asyncio.Semaphore(MAX_CONCURRENT_PROBES)

        async def probe_due() -> None:
            due = self._due(time.monotonic())
            if due:
                await asyncio.gather(*(self._probe(info, limit) for info in due))

        await run_rounds(stop, self._wake, TICK_SECONDS, probe_due, "health probe round")

    def _due(self, now: float) -> list[ContainerInfo]:
        running = {c.id: c for c in self._observed.containers() if c.state == "running" and c.ip_address}
        for gone in self._states.keys() - running.keys():
            del self._states[gone]
        due = []
        for cid, info in running.items():
            state = self._states.get(cid)
            if state is None or state.started_at != info.started_at:
                state = self._states[cid] = _ProbeState(started_at=info.started_at, since=now)
            if state.next_due <= now:
                due.append(info)
        return due

    async def _probe(self, info: ContainerInfo, limit: asyncio.Semaphore) -> None:
        assert info.ip_address is not None
        config = self.config(info.bot_id)
        async with limit:
            result = await self._client.probe(info.ip_address, config.endpoint, config.timeout)
        state = self._states.get(info.id)
        if state is None:
            return
        now = time.monotonic()
        state.last_detail = result.detail
        if result.ok:
            if state.status != "healthy":
                log.info("bot healthy", extra={"bot_id": info.bot_id, "container_id": info.id[:12]})
                if info.bot_id:
                    self._announce("healthy", info.bot_id, info.tenant_id, {"containerId": info.id})
            state.status, state.failures = "healthy", 0
            state.next_due = now + config.interval
            return
        if state.status == "starting" and now - state.since < config.start_period:
            state.next_due = now + STARTING_PROBE_SECONDS
            return
        state.failures += 1
        if state.failures >= config.retries and state.status != "unhealthy":
            state.status = "unhealthy"
            log.warning(
                "bot unhealthy",
                extra={"bot_id": info.bot_id, "container_id": info.id[:12], "reason": result.detail},
            )
            if info.bot_id:
                self._announce("unhealthy", info.bot_id, info.tenant_id, {"reason": result.detail})
        state.next_due = now + (config.interval if state.status == "unhealthy" else config.interval / 2)
