"""The event bus: who receives which event (tenants, one bot, events of no tenant)."""

from __future__ import annotations

from wopr_platform.fleet.observation.events import EventBus


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
