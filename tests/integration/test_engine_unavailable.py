"""A Docker engine that cannot be reached: the platform still starts, says so, answers 503 and loses nothing.

The fault is real: DOCKER_HOST names a unix socket that does not exist.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiodocker
import httpx
import pytest

from tests.conftest import STUB_IMAGE, Platform, PlatformFactory


def _dead_socket(tmp_path: Path) -> str:
    return f"unix://{tmp_path / 'no-such-dir' / 'docker.sock'}"


def assert_engine_unavailable(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 503, response.text
    body = response.json()
    assert set(body) == {"error", "details"} and isinstance(body["error"], str), body
    assert body["details"]["code"] == "engine_unavailable", body
    assert "Traceback" not in response.text
    return dict(body)


@pytest.fixture
async def engineless(make_platform: PlatformFactory, tmp_path: Path) -> Platform:
    """A platform whose engine endpoint does not exist."""
    return await make_platform(DOCKER_HOST=_dead_socket(tmp_path))


async def test_starts_and_reports_not_ready(engineless: Platform) -> None:
    """Liveness stays 200; readiness is 503 and names the engine as the thing that is down."""
    health = await engineless.client.get("/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "service": "wopr-platform"}

    ready = await engineless.client.get("/health/ready")
    assert ready.status_code == 503
    body = ready.json()
    assert body["status"] == "not_ready"
    assert body["checks"]["docker"]["ok"] is False
    assert "docker" in body["checks"]["docker"]["reason"].lower()
    assert body["checks"]["database"] == {"ok": True}


async def test_create_is_503_and_leaves_no_profile(engineless: Platform) -> None:
    """A create that cannot reach the engine is refused with 503 and its profile is rolled back."""
    response = await engineless.client.post("/fleet/bots", json={"name": "orphan", "image": STUB_IMAGE})
    assert_engine_unavailable(response)

    listed = await engineless.client.get("/fleet/bots")
    assert listed.status_code == 200
    assert listed.json() == {"bots": []}
    # the name was released with the profile: the same request fails the same way, not with a 409
    assert_engine_unavailable(await engineless.client.post("/fleet/bots", json={"name": "orphan", "image": STUB_IMAGE}))


async def test_operations_on_an_existing_bot_are_503_and_it_is_kept(
    make_platform: PlatformFactory, docker: aiodocker.Docker, tmp_path: Path
) -> None:
    """Start, stop, restart, logs, patch and delete through a platform that lost its engine: 503, nothing lost."""
    healthy = await make_platform()
    bot = await healthy.create_bot()
    await healthy.wait_for(bot["id"], state="running")

    cut_off = await make_platform(
        DOCKER_HOST=_dead_socket(tmp_path),
        DATABASE_URL=healthy.settings.database_url,
        WOPR_PLATFORM_ID=healthy.settings.platform_id,
    )
    path = f"/fleet/bots/{bot['id']}"
    for method, suffix, kwargs in [
        ("POST", "/start", {}),
        ("POST", "/stop", {}),
        ("POST", "/restart", {}),
        ("GET", "/logs", {}),
        ("PATCH", "", {"json": {"env": {"NEW": "1"}}}),
        ("DELETE", "", {}),
        ("DELETE", "", {"params": {"removeVolumes": "true"}}),
    ]:
        assert_engine_unavailable(await cut_off.client.request(method, path + suffix, **kwargs))

    for platform in (cut_off, healthy):
        listed = (await platform.client.get("/fleet/bots")).json()["bots"]
        assert [b["id"] for b in listed] == [bot["id"]]
        profile = await platform.bot(bot["id"])
        assert profile["containerId"] == bot["containerId"]
        assert profile["env"] == {}

    # a platform that never reached the engine: the original's "stopped" with no health; observedState says unknown
    for status in [(await cut_off.client.get("/fleet/bots")).json()["bots"][0], await cut_off.bot(bot["id"])]:
        assert (status["state"], status["observedState"], status["health"]) == ("stopped", "unknown", None), status
        assert status["stale"] is True
    running = await healthy.bot(bot["id"])
    assert (running["state"], running["observedState"]) == ("running", "running"), running

    info = await docker.containers.container(bot["containerId"]).show()
    assert info["State"]["Running"] is True
    volumes = await docker.volumes.list(filters={"label": [f"wopr.platform={healthy.settings.platform_id}"]})
    assert len(volumes.get("Volumes") or []) == 1
