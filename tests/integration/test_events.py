"""`GET /fleet/events`: bot state changes as server-sent events, read by a real streaming client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import aiodocker
import httpx
import pytest

from tests.conftest import TOKEN, Platform, PlatformFactory


@pytest.fixture
async def fast(make_platform: PlatformFactory) -> Platform:
    return await make_platform(FLEET_RECONCILE_INTERVAL=1, FLEET_ORPHAN_GRACE=1, FLEET_HEALTH_INTERVAL=1)


class EventStream:
    """An open `/fleet/events` stream on its own connection, its SSE frames collected in the background."""

    def __init__(self, platform: Platform, params: dict[str, str] | None = None) -> None:
        self._platform = platform
        self._params = params or {}
        self._client = httpx.AsyncClient(
            base_url=platform.url,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=httpx.Timeout(10, read=None),
            trust_env=False,
        )
        self._reader: asyncio.Task[None] | None = None
        self.events: list[dict[str, Any]] = []
        self.comments: list[str] = []
        self.ended = False

    async def __aenter__(self) -> EventStream:
        bus = self._platform.app.state.events
        before = bus.subscribers
        opened = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(opened))
        response: httpx.Response = await opened
        assert response.status_code == 200, response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        # subscribed once the platform's event bus counts one more listener
        await self.until(lambda: bus.subscribers > before, "the stream subscribed")
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self._client.aclose()

    async def _read(self, opened: asyncio.Future[httpx.Response]) -> None:
        try:
            async with self._client.stream("GET", "/fleet/events", params=self._params) as response:
                opened.set_result(response)
                frame: dict[str, str] = {}
                async for line in response.aiter_lines():
                    if line.startswith(":"):
                        self.comments.append(line[1:].strip())
                    elif line:
                        field, _, value = line.partition(":")
                        frame[field] = value.removeprefix(" ")
                    elif frame:
                        assert "event" in frame and "data" in frame, frame
                        data = json.loads(frame["data"])
                        assert data["kind"] == frame["event"] and str(data["id"]) == frame["id"]
                        self.events.append(data)
                        frame = {}
        except BaseException as err:
            if not opened.done():
                opened.set_exception(err)
            raise
        self.ended = True

    async def finished(self, timeout: float = 30.0) -> None:
        """Wait for the server to end the stream; a transport error would be raised here."""
        assert self._reader is not None
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)

    async def until(self, condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self._reader is not None and self._reader.done():
                self._reader.result()  # surface a broken stream at once
            if time.monotonic() > deadline:
                raise AssertionError(f"never saw {what}; events so far: {self.kinds()}")
            await asyncio.sleep(0.05)

    def kinds(self, bot_id: str | None = None) -> list[str]:
        return [e["kind"] for e in self.events if bot_id is None or e["botId"] == bot_id]

    async def saw(self, bot_id: str, kind: str) -> None:
        await self.until(lambda: kind in self.kinds(bot_id), f"{kind!r} for bot {bot_id}")


async def test_a_bots_life_as_events(fast: Platform, docker: aiodocker.Docker) -> None:
    async with EventStream(fast) as stream:
        assert stream.comments[:1] == ["connected"]
        bot = await fast.create_bot()
        await stream.saw(bot["id"], "healthy")
        await stream.saw(bot["id"], "started")
        kinds = stream.kinds(bot["id"])
        assert kinds.index("created") < kinds.index("healthy"), kinds
        created = next(e for e in stream.events if e["kind"] == "created")
        assert created["botId"] == bot["id"] and created["detail"]["name"] == bot["name"]
        started = next(e for e in stream.events if e["kind"] == "started")
        assert started["detail"]["containerId"] == bot["containerId"]
        assert [e["id"] for e in stream.events] == sorted(e["id"] for e in stream.events)

        assert (await fast.client.post(f"/fleet/bots/{bot['id']}/stop")).status_code == 200
        await stream.saw(bot["id"], "stopped")

        await docker.containers.container(bot["containerId"]).delete(force=True)
        await stream.saw(bot["id"], "drift_repaired")
        repaired = next(e for e in stream.events if e["kind"] == "drift_repaired")
        assert repaired["botId"] == bot["id"]
        assert repaired["detail"] == {"kind": "missing", "action": "recreated"}
        assert not stream.ended


async def test_a_stream_for_one_bot_carries_only_that_bots_events(fast: Platform) -> None:
    first = await fast.create_bot()
    other = await fast.create_bot()
    await fast.wait_for(first["id"], health="healthy")
    await fast.wait_for(other["id"], health="healthy")

    async with EventStream(fast) as everything, EventStream(fast, {"botId": other["id"]}) as only:
        assert (await fast.client.post(f"/fleet/bots/{first['id']}/stop")).status_code == 200
        await everything.saw(first["id"], "stopped")  # published before anything of the other bot below
        assert (await fast.client.post(f"/fleet/bots/{other['id']}/stop")).status_code == 200
        await only.saw(other["id"], "stopped")
        assert (await fast.client.post(f"/fleet/bots/{other['id']}/start")).status_code == 200
        await only.saw(other["id"], "healthy")

        assert only.events and {e["botId"] for e in only.events} == {other["id"]}
        assert "stopped" in everything.kinds(first["id"]) and "stopped" in everything.kinds(other["id"])


async def test_refused_streams(fast: Platform) -> None:
    response = await fast.client.get("/fleet/events", params={"botId": "not-a-uuid"})
    assert response.status_code == 404
    assert set(response.json()) == {"error", "details"}

    async with httpx.AsyncClient(base_url=fast.url, timeout=10, trust_env=False) as anonymous:
        response = await anonymous.get("/fleet/events")
    assert response.status_code == 401
    assert set(response.json()) == {"error", "details"}


async def test_the_stream_ends_cleanly_when_the_platform_shuts_down(make_platform: PlatformFactory) -> None:
    platform = await make_platform(FLEET_RECONCILE_INTERVAL=1)
    async with EventStream(platform) as stream:
        bot = await platform.create_bot()
        await stream.saw(bot["id"], "created")

        await platform.stop()
        await stream.finished()
        assert stream.ended
        assert "created" in stream.kinds(bot["id"])


async def test_each_start_is_one_started_event(fast: Platform, docker: aiodocker.Docker) -> None:
    """A start through the API, a restart (the engine reports `start` and then `restart`) and a start made on the
    engine behind the platform's back are each one `started` event."""
    bot = await fast.create_bot()
    await fast.wait_for(bot["id"], health="healthy")
    assert (await fast.client.post(f"/fleet/bots/{bot['id']}/stop")).status_code == 200
    await fast.wait_for(bot["id"], state="exited")

    async def one_started(stream: EventStream) -> None:
        await stream.saw(bot["id"], "started")
        await asyncio.sleep(1.5)  # room for a late duplicate
        assert stream.kinds(bot["id"]).count("started") == 1, stream.kinds(bot["id"])

    async with EventStream(fast, {"botId": bot["id"]}) as stream:
        assert (await fast.client.post(f"/fleet/bots/{bot['id']}/start")).status_code == 200
        await one_started(stream)
    await fast.wait_for(bot["id"], health="healthy")

    async with EventStream(fast, {"botId": bot["id"]}) as stream:
        assert (await fast.client.post(f"/fleet/bots/{bot['id']}/restart")).status_code == 200
        await one_started(stream)

    assert (await fast.client.post(f"/fleet/bots/{bot['id']}/stop")).status_code == 200
    await fast.wait_for(bot["id"], state="exited")
    async with EventStream(fast, {"botId": bot["id"]}) as stream:
        await docker.containers.container(bot["containerId"]).start()  # not through the API
        await one_started(stream)
