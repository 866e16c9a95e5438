"""PATCH semantics against the real engine: in-place changes, recreates, and rollback when a recreate fails."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import aiodocker
import httpx
import pytest
from aiodocker.containers import DockerContainer

from tests.conftest import BROKEN_IMAGE, STUB_IMAGE, Platform, PlatformFactory
from tests.integration.test_reconciler import eventually
from wopr_platform.core import naming

MISSING_IMAGE = "localhost/wopr-stub:does-not-exist"


async def _inspect(docker: aiodocker.Docker, container_id: str) -> dict[str, Any]:
    return dict(await docker.containers.container(container_id).show())


async def _containers_of(docker: aiodocker.Docker, bot_id: str) -> list[DockerContainer]:
    """Every container (running or not) carrying the bot's label, as the engine lists them."""
    found = await docker.containers.list(all=True, filters={"label": [f"wopr.bot-id={bot_id}"]})
    return list(found)


async def _boots(docker: aiodocker.Docker, container_id: str) -> int:
    """How many times the instance has started on its data volume (the stub counts boots in /data)."""
    info = await _inspect(docker, container_id)
    address = next(iter(info["NetworkSettings"]["Networks"].values()))["IPAddress"]
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        response = await client.get(f"http://{address}:7437/state")
    response.raise_for_status()
    return int(response.json()["boots"])


def _volume(platform: Platform, volume_name: str) -> str:
    """The engine's name for a bot's `volumeName` on this platform."""
    return naming.volume_name(platform.settings.platform_id, "default", volume_name)


def _mount_name(info: dict[str, Any]) -> str:
    return str(next(m for m in info["Mounts"] if m["Destination"] == "/data")["Name"])


async def _patch(platform: Platform, bot_id: str, body: dict[str, Any]) -> httpx.Response:
    return await platform.client.patch(f"/fleet/bots/{bot_id}", json=body)


async def _running_bot(platform: Platform, **fields: Any) -> dict[str, Any]:
    """A bot created with `fields`, once it runs and answers its health check."""
    bot = await platform.create_bot(**fields)
    await platform.wait_for(bot["id"], state="running", health="healthy")
    return bot


async def _stopped_bot(platform: Platform, **fields: Any) -> dict[str, Any]:
    bot = await _running_bot(platform, **fields)
    assert (await platform.client.post(f"/fleet/bots/{bot['id']}/stop")).status_code == 200
    return await platform.wait_for(bot["id"], state="exited", desiredState="stopped")


@pytest.fixture
async def second_tag(docker: aiodocker.Docker, stub_image: str) -> AsyncIterator[str]:
    """Another tag of the stub image (unique per test, so parallel runs never untag each other's)."""
    tag = "v2-" + uuid.uuid4().hex[:8]
    await docker.images.tag(stub_image, repo="localhost/wopr-stub", tag=tag)
    try:
        yield f"localhost/wopr-stub:{tag}"
    finally:
        await docker.images.delete(f"localhost/wopr-stub:{tag}", force=True)


# --- changes that do not touch the container ------------------------------------------------------------


async def test_profile_only_fields_change_without_touching_the_container(
    platform: Platform, docker: aiodocker.Docker
) -> None:
    bot = await _running_bot(platform)
    before = await _inspect(docker, bot["containerId"])
    new_name = "renamed-" + uuid.uuid4().hex[:8]

    response = await _patch(
        platform,
        bot["id"],
        {"description": "changed", "name": new_name, "releaseChannel": "canary", "updatePolicy": "nightly"},
    )

    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["containerId"] == bot["containerId"]
    assert patched["description"] == "changed"
    assert patched["name"] == new_name
    assert patched["releaseChannel"] == "canary"
    assert patched["updatePolicy"] == "nightly"
    assert patched["updatedAt"] != bot["updatedAt"]
    after = await _inspect(docker, bot["containerId"])
    assert after["State"]["Running"] is True
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]
    assert len(await _containers_of(docker, bot["id"])) == 1
    current = await platform.bot(bot["id"])
    assert (current["name"], current["description"], current["releaseChannel"], current["updatePolicy"]) == (
        new_name,
        "changed",
        "canary",
        "nightly",
    )


async def test_restart_policy_is_changed_in_place(platform: Platform, docker: aiodocker.Docker) -> None:
    bot = await _running_bot(platform)
    before = await _inspect(docker, bot["containerId"])
    assert before["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"

    response = await _patch(platform, bot["id"], {"restartPolicy": "on-failure"})

    assert response.status_code == 200, response.text
    assert response.json()["containerId"] == bot["containerId"]
    assert response.json()["restartPolicy"] == "on-failure"
    after = await _inspect(docker, bot["containerId"])
    assert after["HostConfig"]["RestartPolicy"]["Name"] == "on-failure"
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]
    assert (await platform.bot(bot["id"]))["restartPolicy"] == "on-failure"


async def test_patch_with_identical_values_changes_nothing(platform: Platform, docker: aiodocker.Docker) -> None:
    bot = await _running_bot(platform, env={"A": "1"}, description="same")
    before = await _inspect(docker, bot["containerId"])

    response = await _patch(
        platform,
        bot["id"],
        {"env": {"A": "1"}, "image": STUB_IMAGE, "description": "same", "restartPolicy": "unless-stopped"},
    )

    assert response.status_code == 200, response.text
    assert response.json()["containerId"] == bot["containerId"]
    assert response.json()["updatedAt"] == bot["updatedAt"]
    after = await _inspect(docker, bot["containerId"])
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]
    assert len(await _containers_of(docker, bot["id"])) == 1


# --- changes that recreate the container ----------------------------------------------------------------


async def _assert_recreated(
    platform: Platform, docker: aiodocker.Docker, bot: dict[str, Any], response: httpx.Response
) -> dict[str, Any]:
    """The PATCH answered with a new container that replaced the old one; returns the new container's inspect."""
    assert response.status_code == 200, response.text
    new_id = response.json()["containerId"]
    assert new_id != bot["containerId"]
    with pytest.raises(aiodocker.DockerError) as gone:
        await _inspect(docker, bot["containerId"])
    assert gone.value.status == 404
    assert [c["Id"] for c in await _containers_of(docker, bot["id"])] == [new_id]
    await platform.wait_for(bot["id"], containerId=new_id, state="running", health="healthy")
    info = await _inspect(docker, new_id)
    assert info["Name"] == f"/wopr-{bot['id']}"
    return info


async def test_env_change_recreates_and_keeps_the_data(platform: Platform, docker: aiodocker.Docker) -> None:
    bot = await _running_bot(platform, env={"STUB_MESSAGE": "before"})
    assert await _boots(docker, bot["containerId"]) == 1

    response = await _patch(platform, bot["id"], {"env": {"STUB_MESSAGE": "after", "EXTRA": "x"}})

    info = await _assert_recreated(platform, docker, bot, response)
    assert "STUB_MESSAGE=after" in info["Config"]["Env"]
    assert "EXTRA=x" in info["Config"]["Env"]
    assert "STUB_MESSAGE=before" not in info["Config"]["Env"]
    assert _mount_name(info) == _volume(platform, bot["volumeName"])
    assert await _boots(docker, info["Id"]) == 2
    assert (await platform.bot(bot["id"]))["env"] == {"STUB_MESSAGE": "after", "EXTRA": "x"}


async def test_image_change_recreates_and_keeps_the_data(
    platform: Platform, docker: aiodocker.Docker, second_tag: str
) -> None:
    bot = await _running_bot(platform)
    assert await _boots(docker, bot["containerId"]) == 1

    response = await _patch(platform, bot["id"], {"image": second_tag})

    info = await _assert_recreated(platform, docker, bot, response)
    assert info["Config"]["Image"] == second_tag
    assert await _boots(docker, info["Id"]) == 2
    assert (await platform.bot(bot["id"]))["image"] == second_tag


async def test_volume_change_recreates_on_the_new_volume(platform: Platform, docker: aiodocker.Docker) -> None:
    old_volume, new_volume = "v-" + uuid.uuid4().hex[:10], "v-" + uuid.uuid4().hex[:10]
    bot = await _running_bot(platform, volumeName=old_volume)
    assert await _boots(docker, bot["containerId"]) == 1

    response = await _patch(platform, bot["id"], {"volumeName": new_volume})

    info = await _assert_recreated(platform, docker, bot, response)
    assert _mount_name(info) == _volume(platform, new_volume)
    assert await _boots(docker, info["Id"]) == 1  # a fresh volume: the count starts again
    assert (await platform.bot(bot["id"]))["volumeName"] == new_volume
    kept = await (await docker.volumes.get(_volume(platform, old_volume))).show()
    assert kept["Name"] == _volume(platform, old_volume)


async def _volumes(docker: aiodocker.Docker, platform: Platform) -> set[str]:
    label = f"wopr.platform={platform.settings.platform_id}"
    return {v["Name"] for v in (await docker.volumes.list(filters={"label": [label]})).get("Volumes") or []}


async def _old_volumes(platform: Platform) -> list[dict[str, Any]]:
    drift = (await platform.client.get("/fleet/drift")).json()["drift"]
    return [d for d in drift if d["kind"] == "old_volume"]


async def test_earlier_volumes_are_kept_shown_as_drift_and_removed_with_the_bot(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    """A PATCH of `volumeName` keeps the old volume (its data is safe), drift shows it as `old_volume` of its bot,
    and `DELETE ?removeVolumes=true` removes it with the bot; a volume another bot uses now is never touched."""
    platform = await make_platform(FLEET_RECONCILE_INTERVAL=1)
    first, second, third = ("v-" + uuid.uuid4().hex[:10] for _ in range(3))
    bot = await _running_bot(platform, volumeName=first)
    assert (await _patch(platform, bot["id"], {"volumeName": second})).status_code == 200
    assert (await _patch(platform, bot["id"], {"volumeName": third})).status_code == 200
    assert {_volume(platform, v) for v in (first, second, third)} <= await _volumes(docker, platform)

    earlier = sorted(_volume(platform, v) for v in (first, second))
    await eventually(lambda: _equal(_old_volumes(platform), earlier), "the two earlier volumes as drift")
    assert {d["botId"] for d in await _old_volumes(platform)} == {bot["id"]}
    async with httpx.AsyncClient(
        base_url=platform.url, headers={**platform.client.headers, "X-Tenant-Id": "other"}, trust_env=False
    ) as other:
        assert [d for d in (await other.get("/fleet/drift")).json()["drift"] if d["kind"] == "old_volume"] == []

    # another bot takes an earlier volume: it is that bot's now, no longer shown, and never removed with the first
    taker = await _running_bot(platform, volumeName=first)
    await eventually(
        lambda: _equal(_old_volumes(platform), [_volume(platform, second)]), "the taken volume no longer shown"
    )

    response = await platform.client.delete(f"/fleet/bots/{bot['id']}", params={"removeVolumes": "true"})
    assert response.status_code == 204, response.text
    left = await _volumes(docker, platform)
    assert _volume(platform, second) not in left and _volume(platform, third) not in left
    assert _volume(platform, first) in left
    assert (await platform.bot(taker["id"]))["state"] == "running"
    await eventually(lambda: _equal(_old_volumes(platform), []), "no old volume left")


async def _equal(volumes: Awaitable[list[dict[str, Any]]], expected: list[str]) -> bool:
    return sorted(d["detail"]["volume"] for d in await volumes) == expected


async def test_a_stopped_bot_stays_stopped_when_recreated(platform: Platform, docker: aiodocker.Docker) -> None:
    bot = await _stopped_bot(platform, env={"STUB_MESSAGE": "before"})

    response = await _patch(platform, bot["id"], {"env": {"STUB_MESSAGE": "after"}})

    assert response.status_code == 200, response.text
    new_id = response.json()["containerId"]
    assert new_id != bot["containerId"]
    assert response.json()["desiredState"] == "stopped"
    info = await _inspect(docker, new_id)
    assert info["State"]["Running"] is False
    assert "STUB_MESSAGE=after" in info["Config"]["Env"]
    assert [c["Id"] for c in await _containers_of(docker, bot["id"])] == [new_id]
    status = await platform.wait_for(bot["id"], containerId=new_id)
    assert status["desiredState"] == "stopped"
    assert status["state"] != "running"

    assert (await platform.client.post(f"/fleet/bots/{bot['id']}/start")).status_code == 200
    await platform.wait_for(bot["id"], containerId=new_id, state="running", health="healthy")
    assert await _boots(docker, new_id) == 2


# --- rollback -------------------------------------------------------------------------------------------


async def _assert_rolled_back(
    platform: Platform, docker: aiodocker.Docker, bot: dict[str, Any], response: httpx.Response
) -> dict[str, Any]:
    """The PATCH failed cleanly and the bot has its old profile and its old container, under its own name."""
    assert 400 <= response.status_code < 600, response.text
    body = response.json()
    assert set(body) == {"error", "details"}
    assert body["error"] and body["details"]["code"]
    current = await platform.bot(bot["id"])
    assert current["image"] == bot["image"]
    assert current["env"] == bot["env"]
    assert current["volumeName"] == bot["volumeName"]
    assert current["containerId"] == bot["containerId"]
    assert current["updatedAt"] == bot["updatedAt"]
    containers = await _containers_of(docker, bot["id"])
    assert [c["Id"] for c in containers] == [bot["containerId"]]
    assert containers[0]["Names"] == [f"/wopr-{bot['id']}"]
    parked = await docker.containers.list(all=True, filters={"name": [f"wopr-{bot['id']}-prev-"]})
    assert parked == []
    return body


async def test_failed_image_change_rolls_back_a_running_bot(platform: Platform, docker: aiodocker.Docker) -> None:
    bot = await _running_bot(platform, env={"STUB_MESSAGE": "old"})
    assert await _boots(docker, bot["containerId"]) == 1

    response = await _patch(platform, bot["id"], {"image": BROKEN_IMAGE, "env": {"STUB_MESSAGE": "new"}})

    body = await _assert_rolled_back(platform, docker, bot, response)
    assert response.status_code == 502
    assert body["details"]["code"] == "engine_error"
    assert body["details"]["rolledBack"] is True
    assert "/var/lib" not in response.text
    await platform.wait_for(bot["id"], containerId=bot["containerId"], state="running", health="healthy")
    assert (await _inspect(docker, bot["containerId"]))["State"]["Running"] is True
    assert await _boots(docker, bot["containerId"]) == 2  # the same volume, started once more


async def test_failed_recreate_rolls_back_a_stopped_bot(platform: Platform, docker: aiodocker.Docker) -> None:
    bot = await _stopped_bot(platform, volumeName="v-" + uuid.uuid4().hex[:10])
    new_volume = "v-" + uuid.uuid4().hex[:10]

    # the engine refuses to create this one: it would copy the image's /data (a file) into the empty new volume
    response = await _patch(platform, bot["id"], {"image": BROKEN_IMAGE, "volumeName": new_volume})

    await _assert_rolled_back(platform, docker, bot, response)
    info = await _inspect(docker, bot["containerId"])
    assert info["State"]["Running"] is False
    status = await platform.wait_for(bot["id"], containerId=bot["containerId"], state="exited")
    assert status["desiredState"] == "stopped"
    volumes = await docker.volumes.list(filters={"name": [_volume(platform, new_volume)]})
    assert not volumes.get("Volumes")

    assert (await platform.client.post(f"/fleet/bots/{bot['id']}/start")).status_code == 200
    await platform.wait_for(bot["id"], containerId=bot["containerId"], state="running", health="healthy")
    assert await _boots(docker, bot["containerId"]) == 2


async def test_an_image_that_cannot_be_pulled_leaves_the_bot_untouched(
    platform: Platform, docker: aiodocker.Docker
) -> None:
    bot = await _running_bot(platform)
    before = await _inspect(docker, bot["containerId"])

    response = await _patch(platform, bot["id"], {"image": MISSING_IMAGE})

    body = await _assert_rolled_back(platform, docker, bot, response)
    assert response.status_code == 502
    assert body["details"]["code"] == "image_unavailable"
    after = await _inspect(docker, bot["containerId"])
    assert after["State"]["Running"] is True
    assert after["State"]["StartedAt"] == before["State"]["StartedAt"]
