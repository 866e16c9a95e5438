"""Resource usage of running bots, sampled in the background (Docker's stats call is too slow for a request)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from wopr_platform.core.errors import PlatformError
from wopr_platform.docker.engine import DockerEngine
from wopr_platform.docker.types import ContainerStats
from wopr_platform.fleet.observation.observed import ObservedState

log = logging.getLogger(__name__)

TICK_SECONDS = 0.25
SAMPLE_SECONDS = 1.0  # about what one one-shot stats call takes (the daemon's tick)
MIN_CONCURRENT_SAMPLES = 4
MAX_CONCURRENT_SAMPLES = 64


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_percent: float
    memory_usage_mb: float
    memory_limit_mb: float
    memory_percent: float


def usage_between(previous: ContainerStats | None, current: ContainerStats) -> Usage:
    """CPU from the counters' growth since the previous sample (0 on the first one), memory from now.

    The CPU share is the average over the whole gap between the samples, however long: both counters grow
    over the same span.
    """
    cpu = 0.0
    if previous is not None:
        cpu_delta = current.cpu_total_ns - previous.cpu_total_ns
        system_delta = current.system_cpu_ns - previous.system_cpu_ns
        if cpu_delta > 0 and system_delta > 0:
            cpu = cpu_delta / system_delta * current.online_cpus * 100.0
    limit = current.memory_limit_bytes
    return Usage(
        cpu_percent=round(cpu, 2),
        memory_usage_mb=round(current.memory_usage_bytes / 1_048_576, 2),
        memory_limit_mb=round(limit / 1_048_576, 2),
        memory_percent=round(current.memory_usage_bytes / limit * 100.0, 2) if limit else 0.0,
    )


@dataclass(slots=True)
class _Track:
    started_at: datetime | None
    sampled_at: float = -math.inf  # when its last sample was taken (never: first in line)
    previous: ContainerStats | None = None
    sampling: bool = False


class StatsCollector:
    """Background loop `stats-collector`: one-shot samples of running containers, on a budget of `rate` a second.

    Each container is sampled at most every `interval`, oldest sample first; when the fleet is larger than
    `interval x rate` the round simply takes longer (running / rate seconds), so the engine sees the same load
    whatever the fleet's size.
    """

    name = "stats-collector"

    def __init__(
        self,
        engine: DockerEngine,
        observed: ObservedState,
        *,
        interval: float,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._observed = observed
        self._interval = interval
        self._rate = rate
        self._clock = clock
        # the budget: samples may start as long as there is a whole one left; it refills at `rate` a second, up to
        # one tick's worth (so no second ever holds much more than `rate` samples)
        self._burst = max(1.0, rate * TICK_SECONDS)
        self._budget = self._burst
        self._refilled_at: float | None = None
        # as many in flight as the rate needs while each call takes its second or so (with room to spare)
        self._concurrency = min(
            MAX_CONCURRENT_SAMPLES, max(MIN_CONCURRENT_SAMPLES, math.ceil(2 * rate * SAMPLE_SECONDS))
        )
        self._tracks: OrderedDict[str, _Track] = OrderedDict()  # running containers, oldest sample first
        self._usage: dict[str, Usage] = {}
        self._seen = -1  # the observed state's version as last looked through
        self._in_flight = 0

    def usage(self, container_id: str | None) -> Usage | None:
        """Latest usage of a running container, or None before its first sample."""
        return self._usage.get(container_id) if container_id else None

    async def run(self, stop: asyncio.Event) -> None:
        queue: asyncio.Queue[str] = asyncio.Queue()

        async def work() -> None:
            while True:
                await self._sample(await queue.get())

        workers = [asyncio.create_task(work(), name=f"{self.name}-{n}") for n in range(self._concurrency)]
        try:
            while not stop.is_set():
                try:
                    for container_id in self._due(self._clock()):
                        queue.put_nowait(container_id)
                except Exception:
                    log.exception("stats round failed")
                try:
                    async with asyncio.timeout(TICK_SECONDS):
                        await stop.wait()
                except TimeoutError:
                    pass
        finally:
            for worker in workers:
                worker.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            while not queue.empty():  # handed out, never sampled
                self._settle(queue.get_nowait())

    async def collect(self, now: float | None = None) -> None:
        """One round: sample the containers that are due, as many as the budget allows (and wait for them)."""
        due = self._due(self._clock() if now is None else now)
        await asyncio.gather(*(self._sample(container_id) for container_id in due))

    def _look(self) -> None:
        """Follow the running containers, when the observed ones changed since the last look (their version)."""
        if self._observed.version == self._seen:
            return
        self._seen = self._observed.version
        containers = self._observed.containers()
        running = {c.id: c.started_at for c in containers if c.state == "running"}
        for gone in self._tracks.keys() - running.keys():
            del self._tracks[gone]
            self._usage.pop(gone, None)
        for container_id, started_at in running.items():
            track = self._tracks.get(container_id)
            if track is None:
                self._tracks[container_id] = _Track(started_at)
                self._tracks.move_to_end(container_id, last=False)
            elif track.started_at != started_at:
                if track.started_at is not None:
                    track.previous = None  # started again: its counters began again (a listing's None is news)
                track.started_at = started_at

    def _due(self, now: float) -> list[str]:
        """The containers to sample now: the oldest samples first, within the budget and the concurrency."""
        self._look()
        if self._refilled_at is not None:
            self._budget = min(self._burst, self._budget + (now - self._refilled_at) * self._rate)
        self._refilled_at = now
        room = min(int(self._budget), self._concurrency - self._in_flight)
        due: list[str] = []
        for container_id, track in self._tracks.items():
            if len(due) >= room or track.sampled_at > now - self._interval:
                break
            if not track.sampling:
                due.append(container_id)
        for container_id in due:
            track = self._tracks[container_id]
            track.sampling, track.sampled_at = True, now
            self._tracks.move_to_end(container_id)
        self._budget -= len(due)
        self._in_flight += len(due)
        return due

    async def _sample(self, container_id: str) -> None:
        current: ContainerStats | None = None
        try:
            current = await self._engine.stats(container_id)
        except PlatformError:
            pass
        except Exception:  # one odd answer must not cost the others
            log.warning("stats sample failed", exc_info=True, extra={"container_id": container_id[:12]})
        finally:
            track = self._settle(container_id)
        if track is None or current is None:
            return
        self._usage[container_id] = usage_between(track.previous, current)
        track.previous = current

    def _settle(self, container_id: str) -> _Track | None:
        self._in_flight -= 1
        track = self._tracks.get(container_id)
        if track is not None:
            track.sampling = False
        return track
