"""Health of running bots, probed from outside over HTTP and kept in memory."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from wopr_platform.docker.types import ContainerInfo
from wopr_platform.fleet.observed import ObservedState
from wopr_platform.instance.client import InstanceClient

log = logging.getLogger(__name__)

Health = Literal["healthy", "unhealthy", "starting", "none"]
TICK_SECONDS = 0.2
STARTING_PROBE_SECONDS = 0.25
MAX_CONCURRENT_PROBES = 32


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
    `start_period` of a start only keep it "starting").
    """

    name = "health-monitor"

    def __init__(
        self,
        observed: ObservedState,
        client: InstanceClient,
        *,
        interval: float,
        retries: int,
        start_period: float = 60.0,
    ) -> None:
        self._observed = observed
        self._client = client
        self._interval = interval
        self._retries = retries
        self._start_period = start_period
        self._states: dict[str, _ProbeState] = {}
        self._wake = asyncio.Event()

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
        while not stop.is_set():
            try:
                due = self._due(time.monotonic())
                if due:
                    await asyncio.gather(*(self._probe(info, limit) for info in due))
            except Exception:
                log.exception("health probe round failed")
            self._wake.clear()
            try:
                async with asyncio.timeout(TICK_SECONDS):
                    await self._wake.wait()
            except TimeoutError:
                pass

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
        async with limit:
            result = await self._client.probe(info.ip_address)
        state = self._states.get(info.id)
        if state is None:
            return
        now = time.monotonic()
        state.last_detail = result.detail
        if result.ok:
            if state.status != "healthy":
                log.info("bot healthy", extra={"bot_id": info.bot_id, "container_id": info.id[:12]})
            state.status, state.failures = "healthy", 0
            state.next_due = now + self._interval
            return
        if state.status == "starting" and now - state.since < self._start_period:
            state.next_due = now + STARTING_PROBE_SECONDS
            return
        state.failures += 1
        if state.failures >= self._retries and state.status != "unhealthy":
            state.status = "unhealthy"
            log.warning(
                "bot unhealthy",
                extra={"bot_id": info.bot_id, "container_id": info.id[:12], "reason": result.detail},
            )
        state.next_due = now + (self._interval if state.status == "unhealthy" else self._interval / 2)
