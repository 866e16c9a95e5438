"""Health of running bots, probed from outside over HTTP and kept in memory."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from wopr_platform.core.rounds import run_rounds
from wopr_platform.docker.types import ContainerInfo
from wopr_platform.fleet.observation.events import EventBus
from wopr_platform.fleet.observation.observed import ObservedState
from wopr_platform.instance.client import InstanceClient, ProbeResult

log = logging.getLogger(__name__)

Health = Literal["healthy", "unhealthy", "starting", "none"]
TICK_SECONDS = 0.2
STARTING_PROBE_SECONDS = 0.25
MAX_CONCURRENT_PROBES = 64  # the workers; the instance client's pool holds more connections than this
MAX_PROBES_PER_ROUND = 256  # probes handed out in one round, and waiting or running at any time
HEALTHY_PROBES_PER_STEP = 3  # healthy answers in a row before a bot's interval doubles (up to the backoff cap)
MOST_NEW_AT_ONCE = 8  # more containers than this first seen in one look are a start-up or a reconnect


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
    info: ContainerInfo
    started_at: datetime | None
    since: float
    status: Health = "starting"
    failures: int = 0
    next_due: float = 0.0
    last_detail: str = ""
    streak: int = 0  # healthy answers in a row at the current pace
    backoff: int = 1  # the configured interval is stretched this many times
    probing: bool = False


def _jitter(container_id: str) -> float:
    """A fraction of an interval in [0, 1), the same for a container each time (a spread that tests can repeat)."""
    return zlib.crc32(container_id.encode()) / 2**32


class HealthMonitor:
    """Background loop `health-monitor`: probes each running container's `/health` on its own schedule.

    A fresh container is probed every quarter second until it answers (so "healthy" shows soon after start),
    then every `interval`; it turns unhealthy after `retries` failures in a row (failures within
    `start_period` of a start only keep it "starting"). Each bot may override the defaults (`configure`).

    A bot healthy for a long stretch is probed less often: after HEALTHY_PROBES_PER_STEP healthy answers in a row
    its interval doubles, up to `max_backoff` times the configured one; any failure brings it back. Slow probing
    of long-healthy bots loses little: a container that dies is reported at once by the engine's events (the
    watcher's job), so probes only have to find bots that run but stopped answering.

    The schedule is a heap of (next due, container), so a round costs what is due, not the size of the fleet;
    the observed containers are looked through again only when they changed. Many containers seen at once (a
    start-up, a reconnect) have their first probes spread over one interval; a round hands out at most
    MAX_PROBES_PER_ROUND probes to MAX_CONCURRENT_PROBES workers.
    """

    name = "health-monitor"

    def __init__(
        self,
        observed: ObservedState,
        client: InstanceClient,
        *,
        defaults: ProbeConfig,
        events: EventBus | None = None,
        max_backoff: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._events = events
        self._observed = observed
        self._client = client
        self._defaults = defaults
        self._max_backoff = max(1, max_backoff)
        self._clock = clock
        self._configs: dict[str, ProbeConfig] = {}
        self._states: dict[str, _ProbeState] = {}
        self._held: dict[str, list[tuple[str, str | None, dict[str, str]]]] = {}  # bot → its news, held back
        self._wake = asyncio.Event()
        self._seen = -1  # the observed state's version as last looked through
        self._heap: list[tuple[float, int, str]] = []  # (due, order, container id); stale entries are skipped
        self._order = itertools.count()
        self._in_flight = 0
        # grows whenever what `status` answers may have changed (a container seen, gone, or its health changed):
        # a reader that computed every bot's health can keep its answer while this and the observed state's stay
        self.version = 0

    def configure(self, bot_id: str, check: dict[str, object] | None) -> None:
        """Use the bot's own probe settings (camelCase keys as stored); None or missing keys take defaults."""
        before = self.config(bot_id)
        if not check:
            self._configs.pop(bot_id, None)
        else:
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
        if self.config(bot_id) != before:
            self._pace_anew(bot_id)

    def _pace_anew(self, bot_id: str) -> None:
        """New settings count from now: back to the configured interval, the next probe within it."""
        info = self._observed.for_bot(bot_id)
        state = self._states.get(info.id) if info is not None else None
        if state is None:
            return
        state.backoff, state.streak = 1, 0
        soon = self._clock() + self.config(bot_id).interval
        if not state.probing and state.next_due > soon:
            self._schedule(state, soon)

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
        queue: asyncio.Queue[_ProbeState] = asyncio.Queue()

        async def work() -> None:
            while True:
                state = await queue.get()
                try:
                    await self._probe(state)
                except Exception:  # the probe is rescheduled all the same
                    log.exception("health probe failed", extra={"container_id": state.info.id[:12]})

        async def hand_out() -> None:
            for state in self._due(self._clock()):
                queue.put_nowait(state)

        workers = [asyncio.create_task(work(), name=f"{self.name}-{n}") for n in range(MAX_CONCURRENT_PROBES)]
        try:
            await run_rounds(stop, self._wake, TICK_SECONDS, hand_out, "health probe round")
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            while not queue.empty():  # handed out, never probed: due again when the loop runs again
                self._settle(queue.get_nowait(), None)

    def _look(self, now: float) -> None:
        """Follow the observed containers, when they changed since the last look (their version says so)."""
        if self._observed.version == self._seen:
            return
        self._seen = self._observed.version
        containers = self._observed.containers()
        running = {c.id: c for c in containers if c.state == "running" and c.ip_address}
        self.version += 1
        for gone in self._states.keys() - running.keys():
            del self._states[gone]
        new = []
        for cid, info in running.items():
            state = self._states.get(cid)
            if state is None or state.started_at not in (None, info.started_at):
                self._states[cid] = state = _ProbeState(info, info.started_at, since=now)
                new.append(state)
                continue
            state.info = info
            state.started_at = info.started_at  # a listing knows no start time; its detail tells the same start
        spread = len(new) > MOST_NEW_AT_ONCE
        for state in new:
            delay = _jitter(state.info.id) * self.config(state.info.bot_id).interval if spread else 0.0
            self._schedule(state, now + delay)

    def _schedule(self, state: _ProbeState, at: float) -> None:
        state.next_due = at
        heapq.heappush(self._heap, (at, next(self._order), state.info.id))

    def _due(self, now: float) -> list[_ProbeState]:
        """The probes to start now, soonest due first, at most what the bounds leave room for."""
        self._look(now)
        room = MAX_PROBES_PER_ROUND - self._in_flight
        due: list[_ProbeState] = []
        while self._heap and self._heap[0][0] <= now and len(due) < room:
            at, _, cid = heapq.heappop(self._heap)
            state = self._states.get(cid)
            if state is None or state.probing or state.next_due != at:
                continue  # gone, restarted or rescheduled since
            state.probing = True
            due.append(state)
        self._in_flight += len(due)
        return due

    async def _probe(self, state: _ProbeState) -> None:
        """Probe one container handed out by `_due`, then record the answer and schedule the next probe."""
        info = state.info
        config = self.config(info.bot_id)
        result = None
        try:
            assert info.ip_address is not None
            result = await self._client.probe(info.ip_address, config.endpoint, config.timeout)
        finally:
            self._settle(state, result)

    def _settle(self, state: _ProbeState, result: ProbeResult | None) -> None:
        self._in_flight -= 1
        state.probing = False
        if self._states.get(state.info.id) is not state:
            return  # gone or restarted while probed: the answer is of no use
        if result is None:
            self._schedule(state, self._clock() + self.config(state.info.bot_id).interval)
            return
        self._record(state, result)

    def _record(self, state: _ProbeState, result: ProbeResult) -> None:
        info = state.info
        config = self.config(info.bot_id)
        now = self._clock()
        state.last_detail = result.detail
        if result.ok:
            if state.status != "healthy":
                log.info("bot healthy", extra={"bot_id": info.bot_id, "container_id": info.id[:12]})
                if info.bot_id:
                    self._announce("healthy", info.bot_id, info.tenant_id, {"containerId": info.id})
                self.version += 1
            state.status, state.failures = "healthy", 0
            state.streak += 1
            if state.streak >= HEALTHY_PROBES_PER_STEP and state.backoff < self._max_backoff:
                state.backoff, state.streak = min(state.backoff * 2, self._max_backoff), 0
            self._schedule(state, now + config.interval * state.backoff)
            return
        state.backoff, state.streak = 1, 0
        if state.status == "starting" and now - state.since < config.start_period:
            self._schedule(state, now + STARTING_PROBE_SECONDS)
            return
        state.failures += 1
        if state.failures >= config.retries and state.status != "unhealthy":
            state.status = "unhealthy"
            self.version += 1
            log.warning(
                "bot unhealthy",
                extra={"bot_id": info.bot_id, "container_id": info.id[:12], "reason": result.detail},
            )
            if info.bot_id:
                self._announce("unhealthy", info.bot_id, info.tenant_id, {"reason": result.detail})
        self._schedule(state, now + (config.interval if state.status == "unhealthy" else config.interval / 2))
