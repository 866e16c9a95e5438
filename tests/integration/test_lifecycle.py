"""The bot lifecycle through the API, checked against the real engine: on plain Docker and on Swarm."""

from __future__ import annotations

import aiodocker
import httpx

from tests.conftest import (
    Platform,
    bot_address,
    bot_container,
    bot_running,
    bot_units,
    both_backends,
    remove_behind_our_back,
)

pytestmark = both_backends


async def _instance_get(docker: aiodocker.Docker, container_id: str, path: str) -> httpx.Response:
    address = await bot_address(docker, container_id)
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        return await client.get(f"http://{address}:7437{path}")


async def test_create_starts_the_bot_and_it_becomes_healthy(
    platform: Platform, docker: aiodocker.Docker, backend: str
) -> None:
    created = await platform.create_bot(env={"STUB_MESSAGE": "hello"}, description="first")
    assert created["desiredState"] == "running"
    status = await platform.wait_for(created["id"], state="running", health="healthy")
    assert status["containerId"] == created["containerId"]
    # `uptime` is what the original sent: the time the container started, in the same form as `startedAt`
    assert status["startedAt"] is not None and status["startedAt"].endswith("Z")
    assert status["uptime"] == status["startedAt"]
    assert isinstance(status["uptimeSeconds"], int) and 0 <= status["uptimeSeconds"] < 60

    info = await bot_container(docker, created["containerId"])
    labels = info["Config"]["Labels"]
    assert labels["wopr.managed"] == "true"
    assert labels["wopr.bot-id"] == created["id"]
    assert labels["wopr.tenant"] == "default"
    assert info["HostConfig"]["Init"] is True
    if backend == "docker":
        assert info["Name"] == f"/wopr-{created['id']}"
        assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    else:  # one service of one replica, the swarm restarting its task
        service = await docker.services.inspect(created["containerId"])
        assert service["Spec"]["Labels"]["wopr.name"] == f"wopr-{created['id']}"
        assert service["Spec"]["Mode"] == {"Replicated": {"Replicas": 1}}
        assert service["Spec"]["TaskTemplate"]["RestartPolicy"]["Condition"] == "any"
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    assert mounts["/data"]["Type"] == "volume"
    assert mounts["/data"]["Name"] == f"wopr-{platform.settings.platform_id}.default.data-{created['id']}"
    assert "STUB_MESSAGE=hello" in info["Config"]["Env"]
    assert "WOPR_HOME=/data" in info["Config"]["Env"]

    answer = await _instance_get(docker, created["containerId"], "/hello")
    assert answer.text.endswith("hello")

    listed = (await platform.client.get("/fleet/bots")).json()["bots"]
    assert [bot["id"] for bot in listed] == [created["id"]]
    assert listed[0]["state"] == "running"
    assert listed[0]["uptime"] == status["startedAt"] and isinstance(listed[0]["uptimeSeconds"], int)


async def test_stop_start_restart(platform: Platform, docker: aiodocker.Docker) -> None:
    bot = await platform.create_bot()
    first = await platform.wait_for(bot["id"], state="running", health="healthy")

    assert (await platform.client.post(f"/fleet/bots/{bot['id']}/stop")).json() == {"ok": True}
    stopped = await platform.wait_for(bot["id"], state="exited")
    assert stopped["desiredState"] == "stopped"
    assert stopped["health"] == "none"
    assert not await bot_running(docker, bot["containerId"])

    assert (await platform.client.post(f"/fleet/bots/{bot['id']}/start")).json() == {"ok": True}
    started = await platform.wait_for(bot["id"], state="running", health="healthy")
    assert started["containerId"] == bot["containerId"]
    assert started["startedAt"] != first["startedAt"]

    assert (await platform.client.post(f"/fleet/bots/{bot['id']}/restart")).json() == {"ok": True}
    restarted = await platform.wait_for(bot["id"], state="running", health="healthy")
    assert restarted["startedAt"] != started["startedAt"]
    assert restarted["containerId"] == bot["containerId"]


async def test_data_volume_survives_recreate_and_delete_without_remove_volumes(
    platform: Platform, docker: aiodocker.Docker
) -> None:
    bot = await platform.create_bot(volumeName="keepme")
    await platform.wait_for(bot["id"], health="healthy")
    assert (await _instance_get(docker, bot["containerId"], "/state")).json() == {"boots": 1}

    patched = (await platform.client.patch(f"/fleet/bots/{bot['id']}", json={"env": {"A": "1"}})).json()
    await platform.wait_for(bot["id"], health="healthy", containerId=patched["containerId"])
    assert (await _instance_get(docker, patched["containerId"], "/state")).json() == {"boots": 2}

    deleted = await platform.client.delete(f"/fleet/bots/{bot['id']}")
    assert deleted.status_code == 204 and deleted.content == b"", deleted.text
    assert (await platform.client.get(f"/fleet/bots/{bot['id']}")).status_code == 404
    containers = await docker.containers.list(all=True, filters={"label": [f"wopr.bot-id={bot['id']}"]})
    assert containers == []
    volume_name = f"wopr-{platform.settings.platform_id}.default.keepme"
    volume = await (await docker.volumes.get(volume_name)).show()
    assert volume["Name"] == volume_name

    again = await platform.create_bot(volumeName="keepme")
    await platform.wait_for(again["id"], health="healthy")
    assert (await _instance_get(docker, again["containerId"], "/state")).json() == {"boots": 3}

    response = await platform.client.delete(f"/fleet/bots/{again['id']}", params={"removeVolumes": "true"})
    assert response.status_code == 204 and response.content == b"", response.text
    volumes = await docker.volumes.list(filters={"name": [volume_name]})
    assert not volumes.get("Volumes")


async def test_logs(platform: Platform) -> None:
    bot = await platform.create_bot()
    await platform.wait_for(bot["id"], health="healthy")
    response = await platform.client.get(f"/fleet/bots/{bot['id']}/logs", params={"tail": 50})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert "boot #1" in response.text


async def test_a_container_removed_behind_our_back_is_recreated_on_start(
    platform: Platform, docker: aiodocker.Docker
) -> None:
    bot = await platform.create_bot()
    await platform.wait_for(bot["id"], health="healthy")
    await remove_behind_our_back(docker, bot["containerId"])
    gone = await platform.wait_for(bot["id"], observedState="missing")
    # without a container the wire keeps the original's values; observedState says why
    assert gone["state"] == "stopped" and gone["health"] is None and gone["stale"] is False
    assert gone["uptime"] is None and gone["uptimeSeconds"] is None

    assert (await platform.client.post(f"/fleet/bots/{bot['id']}/start")).status_code == 200
    status = await platform.wait_for(bot["id"], state="running", health="healthy")
    assert status["containerId"] != bot["containerId"]
    assert len(await bot_units(docker, bot["id"])) == 1
