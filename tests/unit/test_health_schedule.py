"""The health monitor's schedule: slower probing of long-healthy bots, first probes spread, bounded rounds."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest

from wopr_platform.core.settings import SettingsError, load_settings
from wopr_platform.docker.types import ContainerInfo
from wopr_platform.fleet.observation.health import (
    MAX_PROBES_PER_ROUND,
    STARTING_PROBE_SECONDS,
    TICK_SECONDS,
    HealthMonitor,
    ProbeConfig,
)
from wopr_platform.fleet.observation.observed import ObservedState
from wopr_platform.instance.client import InstanceClient, ProbeResult

INTERVAL = 10.0
STARTED = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Scripted(InstanceClient):
    """Answers healthy unless an address is told to fail; remembers when each address was probed."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.failing: set[str] = set()
        self.probed: list[tuple[float, str]] = []

    async def probe(self, address: str, path: str = "/health", seconds: float | None = None) -> ProbeResult:
        self.probed.append((self._clock.now, address))
        return ProbeResult(False, "HTTP 500") if address in self.failing else ProbeResult(True, "ok")


def container(n: int, started_at: datetime = STARTED) -> ContainerInfo:
    return ContainerInfo(
        f"c{n}",
        f"bot-{n}",
        f"b{n}",
        "t",
        "running",
        "img",
        "sha",
        None,
        started_at,
        ip_address=f"10.{n // 65536}.{n // 256 % 256}.{n % 256}",
    )


def monitor_of(observed: ObservedState, clock: Clock, *, max_backoff: int = 6) -> tuple[HealthMonitor, Scripted]:
    client = Scripted(clock)
    config = ProbeConfig("/health", INTERVAL, 1, 3, 30)
    return HealthMonitor(observed, client, defaults=config, max_backoff=max_backoff, clock=clock), client


async def one_round(monitor: HealthMonitor) -> int:
    """A round as the loop runs it, its probes answered at once; how many it started."""
    due = monitor._due(monitor._clock())
    for state in due:
        await monitor._probe(state)
    return len(due)


async def until(monitor: HealthMonitor, clock: Clock, end: float) -> None:
    """Run the rounds due until `end`, each at the moment it is due (as if ticks were infinitely fine)."""
    await one_round(monitor)
    while monitor._heap and monitor._heap[0][0] <= end:
        clock.now = max(clock.now, monitor._heap[0][0])
        await one_round(monitor)
    clock.now = end


def gaps(times: list[float]) -> list[float]:
    return [round(b - a, 3) for a, b in pairwise(times)]


async def test_a_long_healthy_bot_is_probed_less_often_up_to_the_cap_and_at_the_interval_after_a_failure() -> None:
    clock, observed = Clock(), ObservedState()
    monitor, client = monitor_of(observed, clock)
    observed.apply(container(1))
    await until(monitor, clock, clock.now + 600)
    times = [at for at, _ in client.probed]
    assert times[0] == 1000.0  # a container of its own is probed at once
    # three healthy answers at each pace, doubling up to six times the interval
    assert gaps(times)[:11] == [10, 10, 20, 20, 20, 40, 40, 40, 60, 60, 60]

    client.probed.clear()
    client.failing.add("10.0.0.1")
    await until(monitor, clock, monitor._heap[0][0])  # the next probe fails
    client.failing.clear()
    await until(monitor, clock, clock.now + 60)
    # a failure: half the interval as before, then the configured interval again
    assert gaps([at for at, _ in client.probed])[:3] == [5, 10, 10]
    assert monitor.status(observed.get("c1")) == "healthy"


async def test_a_max_backoff_of_one_keeps_the_configured_interval() -> None:
    clock, observed = Clock(), ObservedState()
    monitor, client = monitor_of(observed, clock, max_backoff=1)
    observed.apply(container(1))
    await until(monitor, clock, clock.now + 200)
    assert set(gaps([at for at, _ in client.probed])) == {10}


async def test_a_restarted_container_is_probed_at_start_up_pace_again() -> None:
    clock, observed = Clock(), ObservedState()
    monitor, client = monitor_of(observed, clock)
    observed.apply(container(1))
    await until(monitor, clock, clock.now + 600)  # slowed down to a minute
    client.probed.clear()
    client.failing.add("10.0.0.1")  # not answering yet after its restart
    observed.apply(container(1, STARTED + timedelta(hours=1)))
    clock.now += 1
    await until(monitor, clock, clock.now + 1)
    times = [at for at, _ in client.probed]
    assert times[0] == clock.now - 1  # at once
    assert set(gaps(times)) == {STARTING_PROBE_SECONDS}
    assert monitor.status(observed.get("c1")) == "starting"


async def test_new_settings_bring_a_slowed_bot_back_to_its_interval() -> None:
    clock, observed = Clock(), ObservedState()
    monitor, client = monitor_of(observed, clock)
    observed.apply(container(1))
    await until(monitor, clock, clock.now + 600)
    client.probed.clear()
    start = clock.now
    monitor.configure("b1", {"intervalSeconds": 2})
    await until(monitor, clock, start + 5)
    assert client.probed and client.probed[0][0] <= start + 2


async def test_ten_thousand_containers_seen_at_once_are_spread_over_one_interval_in_bounded_rounds() -> None:
    clock, observed = Clock(), ObservedState()
    monitor, client = monitor_of(observed, clock)
    observed.replace_all([container(n) for n in range(10_000)])  # a start-up (or a reconnect's listing)
    start = clock.now
    started_per_round = []
    while clock.now <= start + INTERVAL:
        started_per_round.append(await one_round(monitor))
        clock.now = round(clock.now + TICK_SECONDS, 6)
    first = {}
    for at, address in client.probed:
        first.setdefault(address, at)
    assert len(first) == 10_000  # each one probed within the interval
    assert max(started_per_round) <= MAX_PROBES_PER_ROUND
    assert started_per_round[0] < 50  # not a storm at the start
    # about evenly spread: some 2,000 in each fifth of the interval (probes start at the tick after they are due)
    per_fifth = Counter(min(int((at - start) // 2), 4) for at in first.values())
    assert all(1600 <= per_fifth[n] <= 2400 for n in range(5)), per_fifth

    # a container created now, alone, is probed at once
    client.probed.clear()
    observed.apply(container(10_000))
    await one_round(monitor)
    assert ("10.0.39.16" in {address for _, address in client.probed}) and clock.now == client.probed[0][0]


async def test_a_round_starts_at_most_the_bound_and_leaves_the_rest_due() -> None:
    clock, observed = Clock(), ObservedState()
    monitor, _ = monitor_of(observed, clock)
    observed.replace_all([container(n) for n in range(1000)])
    for state in monitor._due(clock.now):  # the first look spreads them: few are due at once
        await monitor._probe(state)
    clock.now += INTERVAL  # every first probe is due now
    handed = monitor._due(clock.now)
    assert len(handed) == MAX_PROBES_PER_ROUND
    assert monitor._due(clock.now) == []  # none more while those are in flight
    for state in handed:
        await monitor._probe(state)
    assert len(monitor._due(clock.now)) == MAX_PROBES_PER_ROUND  # the rest, one bound at a time


async def test_a_few_containers_started_together_are_probed_at_once() -> None:
    clock, observed = Clock(), ObservedState()
    monitor, _ = monitor_of(observed, clock)
    for n in range(3):
        observed.apply(container(n))
    assert await one_round(monitor) == 3


async def test_a_container_stopped_while_probed_is_forgotten_not_judged() -> None:
    clock, observed = Clock(), ObservedState()
    monitor, client = monitor_of(observed, clock)
    observed.apply(container(1))
    (state,) = monitor._due(clock.now)
    observed.forget("c1")
    monitor._due(clock.now)  # the next round sees it gone
    client.failing.add("10.0.0.1")
    await monitor._probe(state)
    assert monitor._states == {} and monitor._in_flight == 0


async def test_a_round_with_nothing_changed_and_nothing_due_costs_little_whatever_the_fleet() -> None:
    """10,000 known containers: a round looks at the heap's top, not at every container (the old walk took ms)."""
    clock, observed = Clock(), ObservedState()
    monitor, _ = monitor_of(observed, clock)
    observed.replace_all([container(n) for n in range(10_000)])
    monitor._due(clock.now)
    began = time.perf_counter()
    for _ in range(1000):
        monitor._due(clock.now)
    assert time.perf_counter() - began < 1.0  # some 50 ms here; walking all of them is seconds


async def test_the_loop_probes_through_its_workers_and_stops() -> None:
    observed = ObservedState()
    monitor = HealthMonitor(observed, Scripted(Clock()), defaults=ProbeConfig("/health", INTERVAL, 1, 3, 30))
    observed.apply(container(1))
    stop = asyncio.Event()
    running = asyncio.create_task(monitor.run(stop))
    async with asyncio.timeout(5):
        while monitor.status(observed.get("c1")) != "healthy":
            await asyncio.sleep(0.01)
    stop.set()
    monitor.kick()
    await asyncio.wait_for(running, 5)
    assert monitor._in_flight == 0


def test_the_backoff_is_bounded_and_six_by_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLEET_HEALTH_MAX_BACKOFF", raising=False)
    assert load_settings().health_max_backoff == 6
    monkeypatch.setenv("FLEET_HEALTH_MAX_BACKOFF", "0")
    with pytest.raises(SettingsError, match="FLEET_HEALTH_MAX_BACKOFF"):
        load_settings()
