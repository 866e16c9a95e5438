"""Health is probed from outside over HTTP, per bot, and reported from memory."""

from __future__ import annotations

import aiodocker

from tests.conftest import Platform


async def test_an_instance_whose_health_fails_turns_unhealthy(platform: Platform) -> None:
    bot = await platform.create_bot(
        env={"STUB_HEALTH": "fail"},
        healthCheck={"intervalSeconds": 1, "retries": 2, "startPeriodSeconds": 0},
    )
    status = await platform.wait_for(bot["id"], state="running", health="unhealthy")
    assert status["desiredState"] == "running"


async def test_a_slow_instance_is_starting_until_it_answers(platform: Platform) -> None:
    bot = await platform.create_bot(env={"STUB_HEALTH": "slow:2"}, healthCheck={"startPeriodSeconds": 30})
    first = await platform.bot(bot["id"])
    assert first["health"] == "starting"
    await platform.wait_for(bot["id"], health="healthy")


async def test_the_profile_keeps_the_health_check_and_patch_changes_it_without_recreate(platform: Platform) -> None:
    bot = await platform.create_bot(healthCheck={"endpoint": "/hello", "intervalSeconds": 5})
    assert bot["healthCheck"] == {"endpoint": "/hello", "intervalSeconds": 5}
    await platform.wait_for(bot["id"], health="healthy")  # any 2xx from a custom endpoint is healthy

    response = await platform.client.patch(
        f"/fleet/bots/{bot['id']}", json={"healthCheck": {"endpoint": "/missing", "retries": 1, "intervalSeconds": 1}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["containerId"] == bot["containerId"]
    await platform.wait_for(bot["id"], health="unhealthy")


async def test_health_check_settings_are_validated(platform: Platform) -> None:
    for check in (
        {"endpoint": "health"},
        {"endpoint": "/../x y"},
        {"intervalSeconds": 0},
        {"timeoutSeconds": 1000},
        {"retries": "3"},
        {"unknown": 1},
    ):
        response = await platform.client.post(
            "/fleet/bots", json={"name": "hc", "image": "localhost/wopr-stub:latest", "healthCheck": check}
        )
        assert response.status_code == 400, (check, response.text)
    assert (await platform.client.get("/fleet/bots")).json() == {"bots": []}


async def test_a_stopped_bot_reports_no_health(platform: Platform, docker: aiodocker.Docker) -> None:
    bot = await platform.create_bot()
    await platform.wait_for(bot["id"], health="healthy")
    await platform.client.post(f"/fleet/bots/{bot['id']}/stop")
    status = await platform.wait_for(bot["id"], state="exited")
    assert status["health"] == "none"
    assert status["uptime"] is None and status["uptimeSeconds"] is None
    listed = (await platform.client.get("/fleet/bots")).json()["bots"]
    assert listed[0]["uptime"] is None and listed[0]["uptimeSeconds"] is None
