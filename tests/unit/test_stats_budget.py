"""The stats collector on a budget: at most `rate` engine calls a second, oldest sample first, whatever the fleet."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from wopr_platform.core.settings import SettingsError, load_settings
from wopr_platform.docker.engine import DockerEngine
from wopr_platform.docker.types import ContainerInfo, ContainerStats
from wopr_platform.fleet.observation.observed import ObservedState
from wopr_platform.fleet.observation.stats import TICK_SECONDS, StatsCollector, usage_between

SECOND = 1_000_000_000
STARTED = datetime(2026, 1, 1, tzinfo=UTC)


class CountingEngine(DockerEngine):
    """Answers every stats call at once; each container's CPU counter grows by a second per call."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def stats(self, container_id: str) -> ContainerStats | None:
        self.calls.append(container_id)
        n = self.calls.count(container_id)
        return ContainerStats(n * SECOND, n * 4 * SECOND, 2, 100 * 1_048_576, 1024 * 1_048_576)


def running(n: int, started_at: datetime = STARTED) -> ContainerInfo:
    return ContainerInfo(f"c{n}", f"bot-{n}", f"b{n}", "t", "running", "img", "sha", None, started_at)


def collector_of(count: int, *, rate: float, interval: float) -> tuple[StatsCollector, CountingEngine, ObservedState]:
    engine, observed = CountingEngine(), ObservedState()
    observed.replace_all([running(n) for n in range(count)])
    return StatsCollector(engine, observed, interval=interval, rate=rate), engine, observed


async def collect_for(collector: StatsCollector, start: float, seconds: float) -> None:
    """The loop's ticks from `start` for `seconds`, on a made-up clock."""
    ticks = round(seconds / TICK_SECONDS)
    for n in range(ticks):
        await collector.collect(start + n * TICK_SECONDS)


def cpu_of(collector: StatsCollector, container_id: str) -> float | None:
    usage = collector.usage(container_id)
    return usage.cpu_percent if usage is not None else None


async def test_ten_thousand_containers_cost_at_most_the_rate_of_engine_calls_a_second() -> None:
    collector, engine, _ = collector_of(10_000, rate=20, interval=10)
    await collect_for(collector, 0.0, 1.0)
    assert len(engine.calls) <= 20
    await collect_for(collector, 1.0, 59.0)
    assert 1180 - 25 <= len(engine.calls) <= 1200  # the budget is spent, never overspent
    assert len(set(engine.calls)) == len(engine.calls)  # nobody twice before everybody once


async def test_every_container_is_sampled_in_turn_oldest_sample_first() -> None:
    collector, engine, _ = collector_of(100, rate=20, interval=1)  # a round of 100 takes 5 s, more than the interval
    await collect_for(collector, 0.0, 15.0)
    first, second = engine.calls[:100], engine.calls[100:200]
    assert sorted(first) == sorted(f"c{n}" for n in range(100))  # everybody, each once
    assert second == first  # the same order again: the oldest sample goes first
    assert cpu_of(collector, "c7") == 50.0


async def test_a_small_fleet_is_sampled_every_interval_not_more() -> None:
    collector, engine, _ = collector_of(5, rate=20, interval=10)
    await collect_for(collector, 0.0, 30.0)
    assert len(engine.calls) == 15  # at 0, 10 and 20 s


async def test_a_new_container_goes_ahead_of_the_line_and_a_gone_one_leaves_it() -> None:
    collector, engine, observed = collector_of(10_000, rate=20, interval=10)
    await collect_for(collector, 0.0, 2.0)
    observed.apply(running(10_000))
    observed.forget("c0")
    engine.calls.clear()
    await collector.collect(2.0)
    assert "c10000" in engine.calls
    assert collector.usage("c10000") is not None
    assert collector.usage("c0") is None


async def test_a_restarted_container_starts_its_cpu_from_scratch() -> None:
    collector, _, observed = collector_of(1, rate=20, interval=1)
    await collector.collect(0.0)
    await collector.collect(1.0)
    assert cpu_of(collector, "c0") == 50.0
    observed.apply(running(0, STARTED + timedelta(hours=1)))
    await collector.collect(2.0)
    assert cpu_of(collector, "c0") == 0.0  # no sample of this run before


def test_cpu_over_a_long_gap_is_the_average_over_the_gap() -> None:
    """Ten minutes between samples (a large fleet): 150 s of CPU over 600 s on a host of 2 cores is 25%."""
    before = ContainerStats(10 * SECOND, 1000 * SECOND, 2, 0, 1)
    after = ContainerStats(160 * SECOND, (1000 + 2 * 600) * SECOND, 2, 0, 1)
    assert usage_between(before, after).cpu_percent == 25.0


async def test_the_loop_samples_and_stops() -> None:
    collector, engine, _ = collector_of(3, rate=20, interval=10)
    stop = asyncio.Event()
    running_loop = asyncio.create_task(collector.run(stop))
    async with asyncio.timeout(5):
        while collector.usage("c2") is None:
            await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(running_loop, 5)
    assert sorted(engine.calls) == ["c0", "c1", "c2"] and collector._in_flight == 0


def test_the_rate_is_bounded_and_twenty_a_second_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLEET_STATS_RATE", raising=False)
    assert load_settings().stats_rate == 20.0
    monkeypatch.setenv("FLEET_STATS_RATE", "0")
    with pytest.raises(SettingsError, match="FLEET_STATS_RATE"):
        load_settings()
