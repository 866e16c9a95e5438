"""Keeps ObservedState true: the engine's event stream, plus a periodic full resync as a safety net."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from wopr_platform.core.errors import EngineNotFound, PlatformError
from wopr_platform.core.naming import LABEL_TENANT
from wopr_platform.docker.engine import DockerEngine
from wopr_platform.docker.types import EngineEvent
from wopr_platform.fleet.observation.events import EventBus
from wopr_platform.fleet.observation.health import HealthMonitor
from wopr_platform.fleet.observation.observed import ObservedState

log = logging.getLogger(__name__)

RECONNECT_MIN_SECONDS = 0.5
RECONNECT_MAX_SECONDS = 10.0
# A listing lacks what only an inspect tells (start time, exit code, env): containers known from one are inspected
# in the background at this many a second, so a start-up with 10,000 containers is one listing, not 10,000 calls at
# once. Until then such a container is what the listing says (state, address, labels, image).
DETAIL_RATE = 100.0


class EngineWatcher:
    """Background loop `engine-watcher`: subscribe to container events, resync every `resync_interval`."""

    name = "engine-watcher"

    def __init__(
        self,
        engine: DockerEngine,
        observed: ObservedState,
        health: HealthMonitor,
        events: EventBus,
        *,
        resync_interval: float,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._observed = observed
        self._health = health
        self._events = events
        self._on_change = on_change
        self._resync_interval = resync_interval
        self._detail_wanted = asyncio.Event()
        self.connected = asyncio.Event()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = RECONNECT_MIN_SECONDS
        while not stop.is_set():
            try:
                await self._follow(stop)
                backoff = RECONNECT_MIN_SECONDS
            except PlatformError as err:
                self.connected.clear()
                self._observed.mark_stale(err.message)
                log.warning("engine watch interrupted", extra={"reason": err.message})
            except Exception:
                self.connected.clear()
                self._observed.mark_stale("engine watcher failed")
                log.exception("engine watcher failed")
            if stop.is_set():
                return
            try:
                async with asyncio.timeout(backoff):
                    await stop.wait()
            except TimeoutError:
                pass
            backoff = min(backoff * 2, RECONNECT_MAX_SECONDS)

    async def resync(self) -> None:
        """Replace observed state by a full listing; the detail a listing lacks is filled in the background."""
        self._observed.replace_all(await self._engine.list_managed())
        self._detail_wanted.set()
        self._health.kick()
        self._on_change()

    async def fill_details(self) -> int:
        """Inspect the containers known only from a listing, at most DETAIL_RATE a second; returns how many."""
        filled = 0
        for container_id in self._observed.needing_detail():
            started = time.monotonic()
            known = self._observed.get(container_id)
            if known is None or known.detailed:
                continue  # gone, or detailed by an event meanwhile
            await self._refresh(container_id)
            filled += 1
            await asyncio.sleep(max(0.0, 1 / DETAIL_RATE - (time.monotonic() - started)))
        return filled

    async def _fill_details_when_wanted(self) -> None:
        while True:
            await self._detail_wanted.wait()
            self._detail_wanted.clear()
            filled = await self.fill_details()
            if filled:
                log.info("container details filled in", extra={"containers": filled})
                self._on_change()

    async def _follow(self, stop: asyncio.Event) -> None:
        since = time.time() - 1
        await self.resync()
        self.connected.set()
        consumer = asyncio.create_task(self._consume(since))
        resyncer = asyncio.create_task(self._resync_periodically())
        filler = asyncio.create_task(self._fill_details_when_wanted())
        stopper = asyncio.create_task(stop.wait())
        tasks: tuple[asyncio.Task[object], ...] = (consumer, resyncer, filler, stopper)
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if stopper in done:
            return
        for task in done:
            error = task.exception()
            if error is not None:
                raise error
        raise PlatformError("engine closed the event stream")

    async def _consume(self, since: float) -> None:
        """Apply events (replayed from `since`, so nothing between the listing and the subscription is lost)."""
        async for event in self._engine.events(since=since):
            await self._handle(event)

    async def _resync_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._resync_interval)
            await self.resync()

    async def _handle(self, event: EngineEvent) -> None:
        exit_code = event.attributes.get("exitCode")
        self._observed.note_event(event.action, event.container_id, event.bot_id, exit_code)
        if event.action == "destroy":
            self._observed.forget(event.container_id)
            self._on_change()
            return
        await self._refresh(event.container_id)
        tenant = event.attributes.get(LABEL_TENANT)
        if event.action in ("create", "start", "restart", "update"):  # update: a restart policy changed, by us or not
            self._on_change()
        if event.action in ("start", "restart"):
            self._health.kick()
            # one event per start: a restart is reported as `start` and then `restart`, and a start by the engine
            # itself (restart policy) as `start` alone; the lifecycle publishes no `started` of its own
            if event.bot_id and event.action == "start":
                self._events.publish("started", event.bot_id, tenant, containerId=event.container_id)
        elif event.action == "die":
            if event.bot_id:
                self._events.publish(
                    "stopped",
                    event.bot_id,
                    tenant,
                    containerId=event.container_id,
                    exitCode=int(exit_code) if exit_code and exit_code.lstrip("-").isdigit() else None,
                )
            self._on_change()
        elif event.action in ("stop", "oom"):
            self._on_change()

    async def _refresh(self, container_id: str) -> None:
        try:
            info = await self._engine.inspect(container_id)
        except EngineNotFound:
            self._observed.forget(container_id)
            return
        self._observed.apply(info)
