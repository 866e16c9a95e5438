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


async def rollout_bots(platform: Platform, registry: Registry, repo: str) -> list[str]:
    """A stable bot and a canary bot that update on a push of `repo`'s latest tag, once the updater watches them."""
    image = f"{registry.host}/{repo}:latest"
    bots = [
        (await platform.create_bot(image=image, updatePolicy="on-push", releaseChannel=channel))["id"]
        for channel in ("stable", "canary")
    ]
    for bot_id in bots:
        await wait_status(platform, bot_id, updateAvailable=False, watched=True)
    return bots


async def halting_rollout(platform: Platform, registry: Registry, repo: str) -> dict[str, Any]:
    """Push a digest of `repo` that never turns healthy: the rollout it starts, once begun (its first wave, the
    canary's, is rolled back and the rollout halts)."""
    await registry.push(repo, "latest", message="v2", healthy=False)
    deadline = time.monotonic() + 30
    while not (found := await rollouts(platform)):
        assert time.monotonic() < deadline, "no rollout began"
        await asyncio.sleep(0.1)
    return found[0]
