"""The event bus: who receives which event (tenants, one bot, events of no tenant)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from wopr_platform.docker.types import ContainerInfo
from wopr_platform.fleet.observation.events import EventBus
from wopr_platform.fleet.observation.health import HealthMonitor, ProbeConfig
from wopr_platform.fleet.observation.observed import ObservedState
from wopr_platform.instance.client import InstanceClient, ProbeResult


async def _received(*, bot_id: str | None, tenant_id: str | None, platform_wide: bool = False) -> list[str]:
    """Publish an event for tenant a, one for tenant b and one of no tenant: the bots a subscriber received."""
    bus = EventBus()
    events = bus.subscribe(bot_id=bot_id, tenant_id=tenant_id, platform_wide=platform_wide)
    bus.publish("started", "bot-a", "a")
    bus.publish("started", "bot-b", "b")
    bus.publish("orphan_removed", "bot-x", None)
    bus.close()
    return [event.bot_id async for event in events]


async def test_a_tenant_receives_its_own_events_and_events_of_no_tenant_only_when_platform_wide() -> None:
    assert await _received(bot_id=None, tenant_id="a") == ["bot-a"]
    assert await _received(bot_id=None, tenant_id="a", platform_wide=True) == ["bot-a", "bot-x"]
    assert await _received(bot_id="bot-b", tenant_id="b") == ["bot-b"]
    assert await _received(bot_id=None, tenant_id=None) == ["bot-a", "bot-b", "bot-x"]


class _Healthy(InstanceClient):
    """Every probe answers healthy at once."""

    def __init__(self) -> None:
        pass

    async def probe(self, address: str, path: str = "/health", seconds: float | None = None) -> ProbeResult:
        return ProbeResult(True, "ok")


async def test_news_of_a_bot_being_created_is_held_until_its_creation_is_announced() -> None:
    """A first probe that passes before the create announced the bot is announced after it, not before."""
    bus = EventBus()
    events = bus.subscribe(bot_id=None, tenant_id=None)
    observed = ObservedState()
    monitor = HealthMonitor(observed, _Healthy(), defaults=ProbeConfig("/health", 10, 1, 3, 30), events=bus)
    observed.apply(
        ContainerInfo("c1", "bot", "b1", "t", "running", "img", "sha", None, datetime.now(UTC), ip_address="10.0.0.2")
    )
    monitor.hold_news("b1")  # as a create does before it builds the container
    for state in monitor._due(time.monotonic()):
        await monitor._probe(state)
    assert monitor.status(observed.containers()[0]) == "healthy"
    bus.publish("created", "b1", "t")
    monitor.release_news("b1")
    bus.close()
    assert [event.kind async for event in events] == ["created", "healthy"]
