"""Concurrent requests against the real engine: no duplicates, no orphans, no state that disagrees with Docker."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable
from typing import Any

import aiodocker
import httpx
import pytest
from aiodocker.containers import DockerContainer

from tests.conftest import STUB_IMAGE, Platform
from wopr_platform.core import naming


async def _platform_containers(docker: aiodocker.Docker, platform: Platform) -> list[DockerContainer]:
    found = await docker.containers.list(
        all=True, filters={"label": [f"wopr.platform={platform.settings.platform_id}"]}
    )
    return list(found)


async def _platform_volumes(docker: aiodocker.Docker, platform: Platform) -> set[str]:
    found = await docker.volumes.list(filters={"label": [f"wopr.platform={platform.settings.platform_id}"]})
    return {volume["Name"] for volume in found.get("Volumes") or []}


async def _containers_of(docker: aiodocker.Docker, bot_id: str) -> list[DockerContainer]:
    found = await docker.containers.list(all=True, filters={"label": [f"wopr.bot-id={bot_id}"]})
    return list(found)


def _create(platform: Platform, name: str) -> Awaitable[httpx.Response]:
    return platform.client.post("/fleet/bots", json={"name": name, "image": STUB_IMAGE})


def _no_server_error(responses: list[httpx.Response]) -> None:
    for response in responses:
        assert response.status_code < 500, f"{response.request.method} {response.request.url}: {response.text}"


# --- creates --------------------------------------------------------------------------------------------


async def test_same_name_creates_race_and_exactly_one_wins(platform: Platform, docker: aiodocker.Docker) -> None:
    winners: list[dict[str, Any]] = []
    for round_ in range(5):
        name = f"race-{round_}-{uuid.uuid4().hex[:6]}"

        responses = await asyncio.gather(_create(platform, name), _create(platform, name))

        assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
        loser = next(r for r in responses if r.status_code == 409).json()
        assert loser["details"]["field"] == "name"
        winners.append(next(r for r in responses if r.status_code == 201).json())

        containers = await _platform_containers(docker, platform)
        assert sorted(c["Labels"]["wopr.bot-id"] for c in containers) == sorted(w["id"] for w in winners)
        expected_volumes = {
            naming.volume_name(platform.settings.platform_id, "default", w["volumeName"]) for w in winners
        }
        assert await _platform_volumes(docker, platform) == expected_volumes

    listed = (await platform.client.get("/fleet/bots")).json()["bots"]
    assert sorted(bot["name"] for bot in listed) == sorted(w["name"] for w in winners)


async def test_ten_concurrent_creates_all_succeed(platform: Platform, docker: aiodocker.Docker) -> None:
    names = [f"many-{i}-{uuid.uuid4().hex[:6]}" for i in range(10)]

    responses = await asyncio.gather(*(_create(platform, name) for name in names))

    assert [r.status_code for r in responses] == [201] * 10, [r.text for r in responses if r.status_code != 201]
    bots = [r.json() for r in responses]
    assert sorted(bot["name"] for bot in bots) == sorted(names)
    containers = await _platform_containers(docker, platform)
    assert sorted(c["Id"] for c in containers) == sorted(bot["containerId"] for bot in bots)
    await asyncio.gather(*(platform.wait_for(bot["id"], state="running", health="healthy") for bot in bots))


# --- delete racing other operations ---------------------------------------------------------------------


def _operation(platform: Platform, bot_id: str, kind: str, round_: int) -> Awaitable[httpx.Response]:
    if kind == "patch":
        return platform.client.patch(f"/fleet/bots/{bot_id}", json={"env": {"ROUND": str(round_)}})
    return platform.client.post(f"/fleet/bots/{bot_id}/{kind}")


@pytest.mark.parametrize("kind", ["start", "restart", "patch"])
async def test_delete_racing_another_operation_leaves_nothing_behind(
    platform: Platform, docker: aiodocker.Docker, kind: str
) -> None:
    for round_ in range(6):
        bot = await platform.create_bot()
        if round_ % 3 == 2:  # sometimes from a stopped bot, so that start and patch have real work to do
            assert (await platform.client.post(f"/fleet/bots/{bot['id']}/stop")).status_code == 200
        delete = platform.client.delete(f"/fleet/bots/{bot['id']}")
        other = _operation(platform, bot["id"], kind, round_)

        if round_ % 2:
            deleted, raced = await asyncio.gather(delete, other)
        else:
            raced, deleted = await asyncio.gather(other, delete)

        _no_server_error([deleted, raced])
        assert deleted.status_code == 204, deleted.text
        assert raced.status_code in (200, 404), raced.text
        assert (await platform.client.get(f"/fleet/bots/{bot['id']}")).status_code == 404
        assert await _containers_of(docker, bot["id"]) == []


# --- operations on one bot ------------------------------------------------------------------------------


async def test_racing_stops_and_starts_end_where_the_api_says(platform: Platform, docker: aiodocker.Docker) -> None:
    bot = await platform.create_bot()
    await platform.wait_for(bot["id"], state="running", health="healthy")
    shuffle = random.Random(1234)  # fixed seed: the same orders on every run
    for _ in range(8):
        kinds = ["stop", "start"] * 2
        shuffle.shuffle(kinds)

        responses = await asyncio.gather(*(platform.client.post(f"/fleet/bots/{bot['id']}/{k}") for k in kinds))

        _no_server_error(responses)
        assert [r.status_code for r in responses] == [200] * len(kinds), [r.text for r in responses]
        status = await platform.bot(bot["id"])
        info = await docker.containers.container(status["containerId"]).show()
        assert info["State"]["Running"] is (status["desiredState"] == "running"), (status, info["State"])
        expected = "running" if status["desiredState"] == "running" else "exited"
        await platform.wait_for(bot["id"], state=expected)
        assert [c["Id"] for c in await _containers_of(docker, bot["id"])] == [bot["containerId"]]


async def test_concurrent_env_patches_leave_one_container_matching_the_profile(
    platform: Platform, docker: aiodocker.Docker
) -> None:
    bot = await platform.create_bot()
    await platform.wait_for(bot["id"], state="running", health="healthy")
    image_env = set((await docker.images.inspect(STUB_IMAGE))["Config"].get("Env") or [])
    bodies = [{"env": {"WHO": str(i), f"ONLY_{i}": "yes"}} for i in range(5)]

    responses = await asyncio.gather(*(platform.client.patch(f"/fleet/bots/{bot['id']}", json=b) for b in bodies))

    _no_server_error(responses)
    assert all(r.status_code in (200, 409) for r in responses), [r.text for r in responses]
    assert any(r.status_code == 200 for r in responses)
    profile = await platform.bot(bot["id"])
    assert {"env": profile["env"]} in bodies
    containers = await _containers_of(docker, bot["id"])
    assert [c["Id"] for c in containers] == [profile["containerId"]]
    info = await docker.containers.container(profile["containerId"]).show()
    container_env = set(info["Config"]["Env"]) - image_env - {"WOPR_HOME=/data"}
    assert container_env == {f"{key}={value}" for key, value in profile["env"].items()}
    await platform.wait_for(bot["id"], containerId=profile["containerId"], state="running", health="healthy")
