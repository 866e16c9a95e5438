"""Image updates in tests: a platform that checks a test registry for new digests at once, and what the API says
of a bot's image and of the rollouts."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.conftest import Platform
from tests.fixtures.registry import Registry


def update_settings(registry: Registry) -> dict[str, Any]:
    return {
        "FLEET_IMAGE_ALLOWLIST": f"localhost/wopr-stub,{registry.host}/",
        "FLEET_UPDATE_INTERVAL_CANARY": 1,
        "FLEET_UPDATE_INTERVAL_STAGING": 1,
        "FLEET_UPDATE_INTERVAL_STABLE": 1,
        "FLEET_UPDATE_JITTER": 0,
        "FLEET_UPDATE_HEALTH_TIMEOUT": 6,
    }


async def image_status(platform: Platform, bot_id: str) -> dict[str, Any]:
    response = await platform.client.get(f"/fleet/bots/{bot_id}/image-status")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def wait_status(platform: Platform, bot_id: str, timeout: float = 30.0, **expected: Any) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        status = await image_status(platform, bot_id)
        if all(status.get(key) == value for key, value in expected.items()):
            return status
        if time.monotonic() > deadline:
            raise AssertionError(f"image status of {bot_id} never reached {expected}; last {status}")
        await asyncio.sleep(0.2)


async def rollouts(platform: Platform) -> list[dict[str, Any]]:
    response = await platform.client.get("/fleet/rollouts")
    assert response.status_code == 200, response.text
    return list(response.json()["rollouts"])
