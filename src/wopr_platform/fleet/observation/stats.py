"""Resource usage of running bots, sampled in the background (Docker's stats call is too slow for a request)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from wopr_platform.core.errors import PlatformError
from wopr_platform.docker.engine import DockerEngine
from wopr_platform.docker.types import ContainerStats
from wopr_platform.fleet.observation.observed import ObservedState

log = logging.getLogger(__name__)

MAX_CONCURRENT_SAMPLES = 4


@dataclass(frozen=True, slots=True)
class Usage:
    cpu_percent: float
    memory_usage_mb: float
    memory_limit_mb: float
    memory_percent: float


def usage_between(previous: ContainerStats | None, current: ContainerStats) -> Usage:
    """CPU from the counters' growth since the previous sample (0 on the first one), memory from now."""
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


class StatsCollector:
    """Background loop `stats-collector`: one one-shot sample per running container every `interval`."""

    name = "stats-collector"

    def __init__(self, engine: DockerEngine, observed: ObservedState, *, interval: float) -> None:
        self._engine = engine
        self._observed = observed
        self._interval = interval
        self._samples: dict[str, ContainerStats] = {}
        self._usage: dict[str, Usage] = {}

    def usage(self, container_id: str | None) -> Usage | None:
        """Latest usage of a running container, or None before its first sample."""
        return self._usage.get(container_id) if container_id else None

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.collect()
            except Exception:
                log.exception("stats round failed")
            try:
                async with asyncio.timeout(self._interval):
                    await stop.wait()
            except TimeoutError:
                pass

    async def collect(self) -> None:
        """Sample every running container once."""
        running = [c.id for c in self._observed.containers() if c.state == "running"]
        for gone in self._usage.keys() - set(running):
            self._usage.pop(gone, None)
            self._samples.pop(gone, None)
        limit = asyncio.Semaphore(MAX_CONCURRENT_SAMPLES)

        async def sample(container_id: str) -> None:
            async with limit:
                try:
                    current = await self._engine.stats(container_id)
                except PlatformError:
                    return
                except Exception:  # one odd answer must not cost the whole round
                    log.warning("stats sample failed", exc_info=True, extra={"container_id": container_id[:12]})
                    return
            if current is None:
                return
            self._usage[container_id] = usage_between(self._samples.get(container_id), current)
            self._samples[container_id] = current

        await asyncio.gather(*(sample(cid) for cid in running))
