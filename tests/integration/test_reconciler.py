"""Desired state survives anything: the reconciler repairs drift made behind its back, on the real engine.

Every fault here is real: containers are removed, stopped, started, replaced and duplicated with a raw Docker
client, exactly as an operator with shell access (or a misbehaving tool) would.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiodocker
import pytest
from aiodocker.exceptions import DockerError

from tests.conftest import (
    STUB_IMAGE,
    Platform,
    PlatformFactory,
    bot_running,
    bot_units,
    both_backends,
    remove_behind_our_back,
    scale_behind_our_back,
)
from tests.integration.test_lifecycle import _instance_get

FAST = {"FLEET_RECONCILE_INTERVAL": 1, "FLEET_ORPHAN_GRACE": 1, "FLEET_HEALTH_INTERVAL": 1}


@pytest.fixture
async def fast(make_platform: PlatformFactory) -> Platform:
    """A platform that reconciles every second and removes orphans after one second."""
    return await make_platform(**FAST)


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 30.0) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}")
        await asyncio.sleep(0.1)


async def drift_report(platform: Platform) -> dict[str, Any]:
    response = await platform.client.get("/fleet/drift")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def repairs_for(platform: Platform, bot_id: str) -> list[dict[str, Any]]:
    return [r for r in (await drift_report(platform))["repairs"] if r["botId"] == bot_id]


async def wait_for_repair(platform: Platform, bot_id: str, kind: str, action: str) -> dict[str, Any]:
    """The (newest) successful repair of `kind` for the bot, once the reconciler has made it."""

    async def find() -> dict[str, Any] | None:
        for repair in await repairs_for(platform, bot_id):
            if repair["kind"] == kind and repair["action"] == action and repair["outcome"] == "ok":
                return repair
        return None

    found: dict[str, Any] = await eventually(find, f"a {kind}/{action} repair of bot {bot_id}")
    return found


async def wait_for_passes(platform: Platform, passes: int) -> None:
    """Let the reconciler complete `passes` more passes (its lastRunAt moves on each time)."""
    seen = (await drift_report(platform))["lastRunAt"]
    for _ in range(passes):

        async def moved(previous: str | None = seen) -> str | None:
            current = (await drift_report(platform))["lastRunAt"]
            return current if current != previous else None

        seen = await eventually(moved, "the reconciler run again")


async def labelled(docker: aiodocker.Docker, bot_id: str) -> list[dict[str, Any]]:
    """Every container the engine holds with the bot's label (raw, not through the platform)."""
    return [c._container for c in await docker.containers.list(all=True, filters={"label": [f"wopr.bot-id={bot_id}"]})]


async def inspect(docker: aiodocker.Docker, container_id: str) -> dict[str, Any] | None:
    try:
        return dict(await docker.containers.container(container_id).show())
    except DockerError as err:
        if err.status == 404:
            return None
        raise


async def remove_quietly(docker: aiodocker.Docker, container_id: str) -> None:
    try:
        await docker.containers.container(container_id).delete(force=True)
    except DockerError as err:
        if err.status != 404:
            raise


async def replace_by_hand(
    docker: aiodocker.Docker, bot: dict[str, Any], change: Callable[[dict[str, Any]], None]
) -> str:
    """Remove the bot's container and put a look-alike (same name, labels, volume; `change` applied) in its place.

    The reconciler may rebuild the removed container before ours takes the name; then that one is taken away
    and the swap is tried again (the reconciler backs off from drift that keeps recurring, so a retry wins).
    """
    original = await inspect(docker, bot["containerId"])
    assert original is not None
    config: dict[str, Any] = {
        "Image": original["Config"]["Image"],
        "Env": list(original["Config"]["Env"]),
        "Labels": dict(original["Config"]["Labels"]),
        "HostConfig": {"Init": True, "Mounts": original["HostConfig"]["Mounts"]},
    }
    change(config)
    name = f"wopr-{bot['id']}"
    victim = bot["containerId"]
    for _ in range(5):
        await remove_quietly(docker, victim)
        try:
            container = await docker.containers.create(config, name=name)
        except DockerError as err:
            if err.status != 409:
                raise
            victim = name  # the reconciler was quicker: its fresh container holds the name
            continue
        try:
            await container.start()
        except DockerError as err:
            # already replaced by the reconciler (gone, or being removed: 409 "marked for removal"): that is what
            # is tested
            if err.status not in (404, 409):
                raise
        return str(container.id)
    raise AssertionError("could not put a look-alike container in place")


# --- missing, stopped, running ------------------------------------------------------------------------------


@both_backends
async def test_a_removed_container_is_recreated_from_the_profile(fast: Platform, docker: aiodocker.Docker) -> None:
    bot = await fast.create_bot()
    await fast.wait_for(bot["id"], health="healthy")
    assert (await _instance_get(docker, bot["containerId"], "/state")).json() == {"boots": 1}

    await remove_behind_our_back(docker, bot["containerId"])

    async def replaced() -> bool:
        status = await fast.bot(bot["id"])
        return bool(status["containerId"] != bot["containerId"] and status["health"] == "healthy")

    await eventually(replaced, "the bot recreated and healthy")
    status = await fast.bot(bot["id"])
    assert status["state"] == "running"
    # the same volume: the stub's boot counter goes on
    assert (await _instance_get(docker, status["containerId"], "/state")).json() == {"boots": 2}
    assert await bot_units(docker, bot["id"]) == [status["containerId"]]
    await wait_for_repair(fast, bot["id"], "missing", "recreated")


@both_backends
async def test_a_bot_stopped_outside_is_started_again(fast: Platform, docker: aiodocker.Docker) -> None:
    bot = await fast.create_bot()
    first = await fast.wait_for(bot["id"], health="healthy")

    await scale_behind_our_back(docker, bot["containerId"], running=False)

    async def restarted() -> bool:
        status = await fast.bot(bot["id"])
        return bool(status["health"] == "healthy" and status["startedAt"] != first["startedAt"])

    await eventually(restarted, "the bot running again")
    status = await fast.bot(bot["id"])
    assert status["containerId"] == bot["containerId"]
    assert status["desiredState"] == "running"
    await wait_for_repair(fast, bot["id"], "stopped", "started")


@both_backends
async def test_a_bot_stopped_by_the_user_stays_stopped_even_when_started_outside(
    fast: Platform, docker: aiodocker.Docker
) -> None:
    bot = await fast.create_bot()
    await fast.wait_for(bot["id"], health="healthy")
    assert (await fast.client.post(f"/fleet/bots/{bot['id']}/stop")).status_code == 200
    await fast.wait_for(bot["id"], state="exited")

    await wait_for_passes(fast, 3)
    status = await fast.bot(bot["id"])
    assert status["state"] == "exited" and status["desiredState"] == "stopped"
    assert not await bot_running(docker, bot["containerId"])
    assert await repairs_for(fast, bot["id"]) == []

    await scale_behind_our_back(docker, bot["containerId"], running=True)
    await wait_for_repair(fast, bot["id"], "running", "stopped")
    status = await fast.wait_for(bot["id"], state="exited")
    assert status["containerId"] == bot["containerId"] and status["desiredState"] == "stopped"
    assert not await bot_running(docker, bot["containerId"])


# --- changed ------------------------------------------------------------------------------------------------


async def test_a_container_with_another_env_is_recreated_from_the_profile(
    fast: Platform, docker: aiodocker.Docker
) -> None:
    bot = await fast.create_bot(env={"STUB_MESSAGE": "good"})
    await fast.wait_for(bot["id"], health="healthy")

    def evil(config: dict[str, Any]) -> None:
        config["Env"] = [e for e in config["Env"] if not e.startswith("STUB_MESSAGE=")] + ["STUB_MESSAGE=evil"]

    impostor = await replace_by_hand(docker, bot, evil)
    try:
        await wait_for_repair(fast, bot["id"], "changed", "recreated")

        async def replaced() -> bool:
            status = await fast.bot(bot["id"])
            return status["containerId"] not in (impostor, bot["containerId"]) and status["health"] == "healthy"

        await eventually(replaced, "the impostor replaced by a healthy container")
        status = await fast.bot(bot["id"])
        containers = await labelled(docker, bot["id"])
        assert [c["Id"] for c in containers] == [status["containerId"]]
        env = (await inspect(docker, status["containerId"]) or {})["Config"]["Env"]
        assert "STUB_MESSAGE=good" in env and "STUB_MESSAGE=evil" not in env
        assert (await _instance_get(docker, status["containerId"], "/hello")).text.endswith(" good")
    finally:
        await remove_quietly(docker, impostor)


async def test_a_container_with_an_altered_spec_hash_is_recreated(fast: Platform, docker: aiodocker.Docker) -> None:
    bot = await fast.create_bot()
    await fast.wait_for(bot["id"], health="healthy")

    def altered(config: dict[str, Any]) -> None:
        config["Labels"]["wopr.spec-hash"] = "0" * 16

    impostor = await replace_by_hand(docker, bot, altered)
    try:
        await wait_for_repair(fast, bot["id"], "changed", "recreated")

        async def replaced() -> bool:
            status = await fast.bot(bot["id"])
            return status["containerId"] not in (impostor, bot["containerId"]) and status["health"] == "healthy"

        await eventually(replaced, "the altered container replaced by a healthy one")
        status = await fast.bot(bot["id"])
        containers = await labelled(docker, bot["id"])
        assert [c["Id"] for c in containers] == [status["containerId"]]
        original_hash = (await inspect(docker, status["containerId"]) or {})["Config"]["Labels"]["wopr.spec-hash"]
        assert original_hash != "0" * 16
    finally:
        await remove_quietly(docker, impostor)


# --- orphans and duplicates ---------------------------------------------------------------------------------


async def _labelled_container(docker: aiodocker.Docker, name: str, labels: dict[str, str]) -> str:
    container = await docker.containers.create(
        {"Image": STUB_IMAGE, "Labels": labels, "HostConfig": {"Init": True}}, name=name
    )
    await container.start()
    return str(container.id)


async def test_an_orphan_is_removed_after_its_grace_and_another_platforms_container_is_not(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    platform = await make_platform(**{**FAST, "FLEET_ORPHAN_GRACE": 2})
    suffix = uuid.uuid4().hex[:8]
    orphan_bot = str(uuid.uuid4())
    orphan = await _labelled_container(
        docker,
        f"wopr-orphan-{suffix}",
        {"wopr.managed": "true", "wopr.platform": platform.settings.platform_id, "wopr.bot-id": orphan_bot},
    )
    foreign = await _labelled_container(
        docker,
        f"wopr-foreign-{suffix}",
        {"wopr.managed": "true", "wopr.platform": f"other-{suffix}", "wopr.bot-id": str(uuid.uuid4())},
    )
    try:

        async def listed() -> dict[str, Any] | None:
            report = await drift_report(platform)
            return next((o for o in report["orphans"] if o["containerId"] == orphan), None)

        entry = await eventually(listed, "the orphan in the drift report")
        assert entry["botId"] == orphan_bot
        assert entry["removeAfterSeconds"] == 2
        # a container without a tenant label is no tenant's: only the platform's operator sees it
        other = await platform.client.get("/fleet/drift", headers={"X-Tenant-Id": "other"})
        assert all(o["containerId"] != orphan for o in other.json()["orphans"])

        async def gone() -> bool:
            return await inspect(docker, orphan) is None

        await eventually(gone, "the orphan removed")
        await wait_for_repair(platform, orphan_bot, "orphan", "removed")
        other = await platform.client.get("/fleet/drift", headers={"X-Tenant-Id": "other"})
        assert all(r["botId"] != orphan_bot for r in other.json()["repairs"])
        report = await drift_report(platform)
        assert all(o["containerId"] != orphan for o in report["orphans"])

        await wait_for_passes(platform, 3)
        still = await inspect(docker, foreign)
        assert still is not None and still["State"]["Running"] is True
        assert all(o["containerId"] != foreign for o in (await drift_report(platform))["orphans"])
    finally:
        await remove_quietly(docker, orphan)
        await remove_quietly(docker, foreign)


async def test_a_duplicate_is_removed_and_the_bots_own_container_left_alone(
    fast: Platform, docker: aiodocker.Docker
) -> None:
    bot = await fast.create_bot()
    await fast.wait_for(bot["id"], health="healthy")
    own = await inspect(docker, bot["containerId"])
    assert own is not None

    duplicate = await _labelled_container(docker, f"wopr-{bot['id']}-dup", dict(own["Config"]["Labels"]))
    try:

        async def gone() -> bool:
            return await inspect(docker, duplicate) is None

        await eventually(gone, "the duplicate removed")
        await wait_for_repair(fast, bot["id"], "duplicate", "removed duplicates")
        after = await inspect(docker, bot["containerId"])
        assert after is not None and after["State"]["Running"] is True
        assert after["State"]["StartedAt"] == own["State"]["StartedAt"]
        assert [c["Id"] for c in await labelled(docker, bot["id"])] == [bot["containerId"]]
        status = await fast.bot(bot["id"])
        assert status["containerId"] == bot["containerId"] and status["health"] == "healthy"
    finally:
        await remove_quietly(docker, duplicate)


# --- crashes ------------------------------------------------------------------------------------------------


async def test_a_crash_loop_is_reported_and_left_to_the_engines_back_off(
    fast: Platform, docker: aiodocker.Docker
) -> None:
    bot = await fast.create_bot(env={"STUB_EXIT": "1"}, restartPolicy="always")
    await fast.wait_for(bot["id"], timeout=30, crashLooping=True)

    await wait_for_passes(fast, 8)
    status = await fast.bot(bot["id"])
    assert status["crashLooping"] is True
    assert status["containerId"] == bot["containerId"]
    repairs = await repairs_for(fast, bot["id"])
    assert len(repairs) <= 3, repairs
    assert [c["Id"] for c in await labelled(docker, bot["id"])] == [bot["containerId"]]


async def test_a_crashed_bot_without_restart_policy_stays_exited(fast: Platform, docker: aiodocker.Docker) -> None:
    bot = await fast.create_bot(env={"STUB_EXIT": "1"}, restartPolicy="no")
    await fast.wait_for(bot["id"], state="exited")
    first = await inspect(docker, bot["containerId"])
    assert first is not None and first["State"]["ExitCode"] == 1

    await wait_for_passes(fast, 3)
    status = await fast.bot(bot["id"])
    assert status["state"] == "exited" and status["desiredState"] == "running"
    assert status["crashLooping"] is False
    assert not [r for r in await repairs_for(fast, bot["id"]) if r["kind"] == "stopped"]
    after = await inspect(docker, bot["containerId"])
    assert after is not None and after["State"]["StartedAt"] == first["State"]["StartedAt"]
    assert after["RestartCount"] == 0


# --- stale --------------------------------------------------------------------------------------------------


async def test_a_platform_that_cannot_see_its_engine_says_its_state_is_stale(
    make_platform: PlatformFactory, tmp_path: Path
) -> None:
    first = await make_platform(**FAST)
    bots = [await first.create_bot(), await first.create_bot()]
    for bot in bots:
        await first.wait_for(bot["id"], state="running")

    blind = await make_platform(
        **FAST,
        DATABASE_URL=first.settings.database_url,
        WOPR_PLATFORM_ID=first.settings.platform_id,
        DOCKER_HOST=f"unix://{tmp_path / uuid.uuid4().hex / 'nope.sock'}",
    )
    listed = await blind.client.get("/fleet/bots")
    assert listed.status_code == 200
    seen = {b["id"]: b for b in listed.json()["bots"]}
    assert set(seen) == {b["id"] for b in bots}
    assert all(b["stale"] is True for b in seen.values())
    assert (await blind.bot(bots[0]["id"]))["stale"] is True

    ready = await blind.client.get("/health/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["observedState"]["ok"] is False
    assert (await drift_report(blind))["stale"]

    started = await blind.client.post(f"/fleet/bots/{bots[0]['id']}/start")
    assert started.status_code == 503, started.text

    # the first platform, which sees the engine, is not stale and its bots are untouched
    for bot in bots:
        status = await first.bot(bot["id"])
        assert status["stale"] is False and status["containerId"] == bot["containerId"]


async def test_a_restart_policy_changed_in_place_is_not_taken_for_drift(
    fast: Platform, docker: aiodocker.Docker
) -> None:
    """PATCH applies a new restart policy to the running container; the container keeps the spec hash it was made
    with, and the reconciler must not take that for a changed container and recreate it."""
    bot = await fast.create_bot()
    response = await fast.client.patch(f"/fleet/bots/{bot['id']}", json={"restartPolicy": "always"})
    assert response.status_code == 200, response.text
    assert response.json()["containerId"] == bot["containerId"]

    await wait_for_passes(fast, 3)

    assert [d for d in (await drift_report(fast))["drift"] if d["botId"] == bot["id"]] == []
    assert await repairs_for(fast, bot["id"]) == []
    [container] = await labelled(docker, bot["id"])
    assert container["Id"] == bot["containerId"]


async def test_a_restart_policy_changed_behind_the_platforms_back_is_put_back(
    fast: Platform, docker: aiodocker.Docker
) -> None:
    """`docker update --restart` outside the platform: the container no longer has the profile's policy."""
    bot = await fast.create_bot()
    subprocess.run(["docker", "update", "--restart", "no", bot["containerId"]], check=True, capture_output=True)

    await wait_for_repair(fast, bot["id"], "changed", "recreated")

    [container] = await labelled(docker, bot["id"])
    shown = await inspect(docker, container["Id"])
    assert shown is not None and shown["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
