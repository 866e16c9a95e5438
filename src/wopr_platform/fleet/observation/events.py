"""State changes of bots, fanned out to subscribers (the `/fleet/events` stream)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

QUEUE_SIZE = 1000
HEARTBEAT_SECONDS = 15.0
KINDS = (
    "created",
    "started",
    "stopped",
    "died",
    "healthy",
    "unhealthy",
    "recreated",
    "removed",
    "drift_repaired",
    "orphan_removed",
    # published by billing (a tenant out of credits), through the same bus
    "suspended",
    "resumed",
    "removal_warning",
    # published by backups (a bot's data), through the same bus
    "backed_up",
    "restored",
)


@dataclass(frozen=True, slots=True)
class BotEvent:
    """One change of one bot."""

    kind: str
    bot_id: str
    tenant_id: str | None
    detail: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    seq: int = 0

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.seq,
            "kind": self.kind,
            "botId": self.bot_id,
            "at": self.at.isoformat().replace("+00:00", "Z"),
            **({"detail": self.detail} if self.detail else {}),
        }


class _Subscriber:
    def __init__(self, bot_id: str | None, tenant_id: str | None, platform_wide: bool) -> None:
        self.bot_id = bot_id
        self.tenant_id = tenant_id
        self.platform_wide = platform_wide
        self.queue: asyncio.Queue[BotEvent | None] = asyncio.Queue(QUEUE_SIZE)
        self.overflowed = False

    def wants(self, event: BotEvent) -> bool:
        # an event of no tenant (a container without a tenant label) is the platform's
        no_tenant_allowed = event.tenant_id is None and self.platform_wide
        if self.tenant_id is not None and event.tenant_id != self.tenant_id and not no_tenant_allowed:
            return False
        return self.bot_id is None or event.bot_id == self.bot_id


class Subscription:
    """One subscriber's events, iterated with `async for`; `close()` (or the bus closing) ends it."""

    def __init__(self, bus: EventBus, subscriber: _Subscriber) -> None:
        self._bus = bus
        self._subscriber = subscriber

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> BotEvent:
        subscriber = self._subscriber
        if subscriber.overflowed and subscriber.queue.empty():
            raise StopAsyncIteration
        event = await subscriber.queue.get()
        if event is None:
            self.close()
            raise StopAsyncIteration
        return event

    def close(self) -> None:
        self._bus._drop(self._subscriber)


class EventBus:
    """In-process publish/subscribe; a subscriber that falls `QUEUE_SIZE` events behind is cut off."""

    def __init__(self) -> None:
        self._subscribers: set[_Subscriber] = set()
        self._seq = itertools.count(1)
        self._closed = False

    def publish(self, kind: str, bot_id: str, tenant_id: str | None = None, /, **detail: Any) -> None:
        """Deliver an event to every interested subscriber without waiting."""
        event = BotEvent(kind=kind, bot_id=bot_id, tenant_id=tenant_id, detail=detail, seq=next(self._seq))
        for subscriber in list(self._subscribers):
            if not subscriber.wants(event):
                continue
            try:
                subscriber.queue.put_nowait(event)
            except asyncio.QueueFull:
                subscriber.overflowed = True
                self._subscribers.discard(subscriber)
                log.warning("event subscriber fell behind; its stream is closed")

    def subscribe(self, *, bot_id: str | None, tenant_id: str | None, platform_wide: bool = False) -> Subscription:
        """Events from this call on (registered now, not at the first iteration) until the bus closes: every event
        for `tenant_id` None, else the tenant's, and with `platform_wide` those of no tenant too."""
        subscriber = _Subscriber(bot_id, tenant_id, platform_wide)
        if not self._closed:
            self._subscribers.add(subscriber)
        else:
            subscriber.queue.put_nowait(None)
        return Subscription(self, subscriber)

    def _drop(self, subscriber: _Subscriber) -> None:
        self._subscribers.discard(subscriber)

    def close(self) -> None:
        """End every stream (platform shutdown)."""
        self._closed = True
        for subscriber in list(self._subscribers):
            try:
                subscriber.queue.put_nowait(None)
            except asyncio.QueueFull:
                subscriber.overflowed = True
        self._subscribers.clear()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)


async def sse_stream(bus: EventBus, *, bot_id: str | None, tenant_id: str, platform_wide: bool) -> AsyncIterator[bytes]:
    """Encode the bus as server-sent events, with a comment line as heartbeat so proxies keep the stream open."""
    events = bus.subscribe(bot_id=bot_id, tenant_id=tenant_id, platform_wide=platform_wide)
    yield b": connected\n\n"
    pending: asyncio.Task[BotEvent] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait({pending}, timeout=HEARTBEAT_SECONDS)
            if not done:
                yield b": heartbeat\n\n"
                continue
            try:
                event = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            data = json.dumps(event.wire(), separators=(",", ":"))
            yield f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n".encode()
    finally:
        events.close()
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending
