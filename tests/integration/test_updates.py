"""Automated image updates against a real registry and the real engine: policies, the health gate, rollouts."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import aiodocker
import httpx
import pytest

from tests.conftest import STUB_IMAGE, Platform, PlatformFactory, bot_address, bot_container, both_backends
from tests.figures import figure, scrape
from tests.fixtures.registry import Registry
from tests.integration.updates_support import image_status, rollouts, update_settings, wait_status

pytestmark = pytest.mark.slow


class MovableClock:
    """Real time flowing from a chosen start, which a test can move forward (to a nightly window)."""

    def __init__(self, start: datetime) -> None:
        self._offset = start - datetime.now(UTC)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def move_to(self, moment: datetime) -> None:
        self._offset = moment - datetime.now(UTC)


async def history(platform: Platform, bot_id: str) -> list[dict[str, Any]]:
    response = await platform.client.get(f"/fleet/bots/{bot_id}/updates")
    assert response.status_code == 200, response.text
    return list(response.json()["updates"])


async def finished_rollouts(platform: Platform, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Wait until there are `count` rollouts and none is running (a bot's digest is stored before its rollout's
    final state is)."""
    deadline = time.monotonic() + timeout
    while True:
        found = await rollouts(platform)
        if len(found) == count and all(r["state"] != "running" for r in found):
            return found
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.2)


async def running_message(docker: aiodocker.Docker, platform: Platform, bot_id: str) -> str:
    """The STUB_MESSAGE the bot's container really runs with (the image variant: v1, v2, ...)."""
    bot = await platform.bot(bot_id)
    container = await bot_container(docker, bot["containerId"])
    env = dict(item.split("=", 1) for item in container["Config"]["Env"])
    return env.get("STUB_MESSAGE", "")


def repo_name() -> str:
    return "wopr-" + uuid.uuid4().hex[:8]


async def test_policies_decide_when_a_new_digest_is_applied(
    make_platform: PlatformFactory, registry: Registry, docker: aiodocker.Docker
) -> None:
    """v2 pushed under the same tag: on-push bots move to it, manual bots are only flagged, nightly and cron
    bots wait for their time and move when the clock reaches it."""
    repo = repo_name()
    d1 = await registry.push(repo, "stable", message="v1")
    clock = MovableClock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    platform = await make_platform(clock=clock, **update_settings(registry))
    image = f"{registry.host}/{repo}:stable"
    bots = {
        policy: (await platform.create_bot(image=image, updatePolicy=policy))["id"]
        for policy in ("on-push", "manual", "nightly", "cron:30 4 * * *")
    }
    for bot_id in bots.values():
        assert (await platform.bot(bot_id))["imageDigest"] == d1
        await wait_status(platform, bot_id, availableDigest=d1, updateAvailable=False)

    d2 = await registry.push(repo, "stable", message="v2")
    assert d2 != d1
    await wait_status(platform, bots["on-push"], currentDigest=d2, updateAvailable=False)
    await platform.wait_for(bots["on-push"], state="running", health="healthy")
    assert await running_message(docker, platform, bots["on-push"]) == "v2"
    [record] = await history(platform, bots["on-push"])
    assert record["outcome"] == "updated" and record["trigger"] == "on-push"
    assert (record["fromDigest"], record["toDigest"], record["rolledBack"]) == (d1, d2, False)

    manual = await wait_status(platform, bots["manual"], availableDigest=d2, updateAvailable=True)
    assert manual["currentDigest"] == d1 and manual["scheduledAt"] is None
    nightly = await image_status(platform, bots["nightly"])
    assert nightly["updateAvailable"] and nightly["scheduledAt"] == "2026-11-26T03:00:00Z"
    cron = await image_status(platform, bots["cron:30 4 * * *"])
    assert cron["scheduledAt"] == "2026-11-26T04:30:00Z"
    await asyncio.sleep(2.5)  # several scheduler rounds: nobody else moves
    for policy in ("manual", "nightly", "cron:30 4 * * *"):
        assert (await image_status(platform, bots[policy]))["currentDigest"] == d1, policy
        assert await running_message(docker, platform, bots[policy]) == "v1"

    clock.move_to(datetime(2026, 11, 26, 3, 0, 5, tzinfo=UTC))
    await wait_status(platform, bots["nightly"], currentDigest=d2)
    assert (await image_status(platform, bots["cron:30 4 * * *"]))["currentDigest"] == d1
    clock.move_to(datetime(2026, 11, 26, 4, 30, 5, tzinfo=UTC))
    await wait_status(platform, bots["cron:30 4 * * *"], currentDigest=d2)
    assert await running_message(docker, platform, bots["cron:30 4 * * *"]) == "v2"
    assert (await image_status(platform, bots["manual"]))["currentDigest"] == d1

    finished = await finished_rollouts(platform, 3)
    assert {r["trigger"] for r in finished} == {"on-push", "nightly", "cron"}
    assert all(r["state"] == "completed" and r["toDigest"] == d2 for r in finished)


async def test_an_unhealthy_image_is_rolled_back_and_halts_the_rollout(
    make_platform: PlatformFactory, registry: Registry, docker: aiodocker.Docker
) -> None:
    """v3 never becomes healthy: the first wave's bot is rolled back to v2 on the same volume, the rollout halts,
    every bot ends on v2, running and healthy."""
    repo = repo_name()
    await registry.push(repo, "latest", message="v1")
    platform = await make_platform(**update_settings(registry))
    image = f"{registry.host}/{repo}:latest"
    channels = ("stable", "canary", "staging")
    bots = [
        (await platform.create_bot(image=image, updatePolicy="on-push", releaseChannel=ch))["id"] for ch in channels
    ]
    for bot_id in bots:
        await wait_status(platform, bot_id, updateAvailable=False, watched=True)
    d2 = await registry.push(repo, "latest", message="v2")
    for bot_id in bots:
        await wait_status(platform, bot_id, currentDigest=d2)
    [good] = await finished_rollouts(platform, 1)
    assert good["state"] == "completed", (good, [await history(platform, bot_id) for bot_id in bots])
    assert [len(w["botIds"]) for w in good["waves"]] == [1, 2]
    assert good["waves"][0]["botIds"] == [bots[1]]  # the canary goes first
    volumes_before = {}
    for bot_id in bots:
        await platform.wait_for(bot_id, state="running", health="healthy")
        container = await docker.containers.get((await platform.bot(bot_id))["containerId"])
        volumes_before[bot_id] = [m["Name"] for m in container["Mounts"]]

    d3 = await registry.push(repo, "latest", message="v3", healthy=False)
    bad = (await finished_rollouts(platform, 2))[0]
    assert bad["toDigest"] == d3
    assert bad["state"] == "halted", bad
    assert bad["waves"][0]["botIds"] == [bots[1]]
    assert (bad["waves"][0]["failed"], bad["waves"][0]["rolledBack"]) == (1, 1)
    assert [w["state"] for w in bad["waves"][1:]] == ["cancelled"]
    latest = (await history(platform, bots[1]))[0]
    assert latest["outcome"] == "rolled_back" and latest["rolledBack"] is True
    assert latest["toDigest"] == d3 and "not healthy" in latest["error"]
    for bot_id in bots:
        bot = await platform.wait_for(bot_id, state="running", health="healthy")
        assert bot["imageDigest"] == d2
        assert await running_message(docker, platform, bot_id) == "v2"
        container = await docker.containers.get(bot["containerId"])
        assert [m["Name"] for m in container["Mounts"]] == volumes_before[bot_id]
    assert (await image_status(platform, bots[1]))["blockedBy"] == "rejected"
    assert (await image_status(platform, bots[0]))["blockedBy"] == "rollout-halted"
    await asyncio.sleep(2)  # the halted digest is not rolled out again by itself
    assert len(await rollouts(platform)) == 2
    samples = await scrape(platform.client)
    assert figure(samples, "wopr_rollouts_total", state="completed") == 1
    assert figure(samples, "wopr_rollouts_total", state="halted") == 1
    assert figure(samples, "wopr_updates_total", outcome="updated") == 3
    assert figure(samples, "wopr_updates_total", outcome="rolled_back") == 1
    assert figure(samples, "wopr_image_checks_total", outcome="changed") >= 2
    for bot_id in (bots[0], bots[2]):  # the later waves never tried v3
        assert [r["toDigest"] for r in await history(platform, bot_id)] == [d2]


@both_backends
async def test_manual_update_now_is_gated_and_exclusive(
    make_platform: PlatformFactory, registry: Registry, docker: aiodocker.Docker
) -> None:
    """POST /update moves a manual bot to the newest digest; a second update meanwhile is a 409; a failing
    image is rolled back and reported in the result."""
    repo = repo_name()
    d1 = await registry.push(repo, "v", message="v1")
    platform = await make_platform(**update_settings(registry))
    bot = await platform.create_bot(image=f"{registry.host}/{repo}:v")
    d2 = await registry.push(repo, "v", message="v2")
    first, second = await asyncio.gather(
        platform.client.post(f"/fleet/bots/{bot['id']}/update"),
        platform.client.post(f"/fleet/bots/{bot['id']}/update"),
    )
    assert sorted([first.status_code, second.status_code]) == [200, 409]
    done = first if first.status_code == 200 else second
    busy = second if done is first else first
    assert busy.json()["details"]["code"] == "conflict"
    result = done.json()
    assert result["success"] is True and result["rolledBack"] is False
    assert (result["previousDigest"], result["newDigest"]) == (d1, d2)
    assert result["newImage"] == f"{registry.host}/{repo}@{d2}"
    assert await running_message(docker, platform, bot["id"]) == "v2"

    again = await platform.client.post(f"/fleet/bots/{bot['id']}/update")
    assert again.status_code == 200 and again.json()["outcome"] == "current"

    d3 = await registry.push(repo, "v", message="v3", healthy=False)
    before = await platform.bot(bot["id"])
    response = await platform.client.post(f"/fleet/bots/{bot['id']}/update")
    assert response.status_code == 200, response.text
    failed = response.json()
    assert (failed["success"], failed["rolledBack"], failed["newDigest"]) == (False, True, d3)
    assert "not healthy" in failed["error"]
    after = await platform.wait_for(bot["id"], state="running", health="healthy")
    assert after["imageDigest"] == d2 and after["containerId"] == before["containerId"]
    assert await running_message(docker, platform, bot["id"]) == "v2"
    outcomes = [(r["outcome"], r["trigger"]) for r in await history(platform, bot["id"])]
    assert outcomes == [("rolled_back", "manual"), ("updated", "manual")]


async def test_registry_down_is_reported_and_backed_off(
    make_platform: PlatformFactory, registry: Registry, docker: aiodocker.Docker
) -> None:
    """With the registry stopped: no crash, the status shows the error with growing waits, a manual update is a
    clear 502 that leaves the container alone; with the registry back, checks succeed again."""
    repo = repo_name()
    d1 = await registry.push(repo, "x", message="v1")
    platform = await make_platform(**update_settings(registry))
    bot = await platform.create_bot(image=f"{registry.host}/{repo}:x", updatePolicy="on-push")
    await wait_status(platform, bot["id"], availableDigest=d1)
    await registry.stop()
    try:
        await asyncio.sleep(7)
        status = await image_status(platform, bot["id"])
        assert status["checkError"] is not None, status
        assert status["checkError"]["code"] == "registry_unavailable"
        # a check every second would have failed about 7 times; backing off (1, 2, 4 s) fails 2 to 4 times
        assert 2 <= status["checkError"]["failures"] <= 4, status
        assert status["availableDigest"] == d1  # the last known digest is kept
        response = await platform.client.post(f"/fleet/bots/{bot['id']}/update")
        assert response.status_code == 502
        assert response.json()["details"]["code"] == "registry_unavailable"
        assert (await platform.bot(bot["id"]))["containerId"] == bot["containerId"]
        assert (await platform.client.get("/health")).status_code == 200
    finally:
        await registry.start()
    await wait_status(platform, bot["id"], timeout=40, checkError=None, availableDigest=d1)


async def test_one_poll_makes_one_request_per_reference(make_platform: PlatformFactory, registry: Registry) -> None:
    """Six bots on two references (and channels): a poll asks the registry twice, not six times."""
    repos = [repo_name(), repo_name()]
    for repo in repos:
        await registry.push(repo, "t", message="v1")
    platform = await make_platform(
        **{**update_settings(registry), "FLEET_UPDATE_INTERVAL_STABLE": 3600, "FLEET_UPDATE_INTERVAL_CANARY": 3600}
    )
    for index in range(6):
        repo = repos[index % 2]
        channel = "canary" if index < 3 else "stable"
        await platform.create_bot(image=f"{registry.host}/{repo}:t", releaseChannel=channel)
    await platform.create_bot(image=STUB_IMAGE)  # built locally: nothing to watch
    await platform.create_bot(image=f"{registry.host}/{repos[0]}:t", releaseChannel="pinned")
    watcher = platform.app.state.platform.image_watcher
    stats = platform.app.state.platform.registry.stats
    before = stats.manifest_requests
    checked = await watcher.poll(force=True)
    assert sorted(result.reference for result in checked) == sorted(f"{registry.host}/{r}:t" for r in repos)
    assert stats.manifest_requests - before == 2
    assert await watcher.poll() == []  # not due again within the interval


async def test_private_registry_credentials_serve_checks_and_pulls(
    make_platform: PlatformFactory, auth_registry: Registry, docker: aiodocker.Docker, tmp_path: Any
) -> None:
    """An image in a registry that requires a login: the configured credentials are used for the digest checks
    and for the engine's pulls (the local copies are deleted first, so every pull really goes to the registry)."""
    repo = repo_name()
    await auth_registry.push(repo, "p", message="v1")
    await auth_registry.delete_local()
    credentials = tmp_path / "registry-auth.json"
    credentials.write_text(json.dumps(auth_registry.docker_config()))
    platform = await make_platform(**update_settings(auth_registry), FLEET_REGISTRY_CREDENTIALS=str(credentials))
    bot = await platform.create_bot(image=f"{auth_registry.host}/{repo}:p", updatePolicy="on-push")
    await wait_status(platform, bot["id"], updateAvailable=False, checkError=None, watched=True)
    d2 = await auth_registry.push(repo, "p", message="v2")
    await auth_registry.delete_local()
    await wait_status(platform, bot["id"], currentDigest=d2)
    assert await running_message(docker, platform, bot["id"]) == "v2"


async def test_without_credentials_a_private_image_is_a_clear_error(
    make_platform: PlatformFactory, auth_registry: Registry
) -> None:
    repo = repo_name()
    await auth_registry.push(repo, "p", message="v1")
    await auth_registry.delete_local()
    platform = await make_platform(**update_settings(auth_registry))
    response = await platform.client.post(
        "/fleet/bots", json={"name": "private", "image": f"{auth_registry.host}/{repo}:p"}
    )
    assert response.status_code == 502, response.text
    assert response.json()["details"]["code"] == "image_unavailable"
    assert (await platform.client.get("/fleet/bots")).json()["bots"] == []


async def test_a_failed_pull_leaves_the_running_container_alone(
    make_platform: PlatformFactory, registry: Registry, docker: aiodocker.Docker
) -> None:
    """The registry names v2 but cannot serve it (its config blob was deleted): the update fails before the
    running container is touched, and says so."""
    repo = repo_name()
    d1 = await registry.push(repo, "b", message="v1")
    platform = await make_platform(**update_settings(registry))
    bot = await platform.create_bot(image=f"{registry.host}/{repo}:b")
    d2 = await registry.push(repo, "b", message="v2")
    await registry.delete_local()
    async with httpx.AsyncClient(base_url=registry.url, trust_env=False) as client:
        manifest = await client.get(
            f"/v2/{repo}/manifests/{d2}", headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
        )
        config_blob = manifest.json()["config"]["digest"]
        assert (await client.delete(f"/v2/{repo}/blobs/{config_blob}")).status_code == 202
    response = await platform.client.post(f"/fleet/bots/{bot['id']}/update")
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["success"], result["outcome"], result["rolledBack"]) == (False, "failed", False)
    assert result["error"].startswith("pull failed")
    after = await platform.wait_for(bot["id"], state="running", health="healthy")
    assert (after["containerId"], after["imageDigest"]) == (bot["containerId"], d1)
    [record] = await history(platform, bot["id"])
    assert (record["outcome"], record["toDigest"]) == ("failed", d2)


async def test_image_status_survives_a_restart(make_platform: PlatformFactory, registry: Registry) -> None:
    """The last check is stored: a new platform process shows it even while the registry is unreachable."""
    repo = repo_name()
    d1 = await registry.push(repo, "s", message="v1")
    settings = {
        **update_settings(registry),
        "WOPR_PLATFORM_ID": "t-" + uuid.uuid4().hex[:10],
        "FLEET_UPDATE_INTERVAL_STABLE": 3600,  # only the forced check below
    }
    first = await make_platform(**settings)
    bot = await first.create_bot(image=f"{registry.host}/{repo}:s", updatePolicy="manual")
    d2 = await registry.push(repo, "s", message="v2")
    await first.app.state.platform.image_watcher.poll(force=True)
    before = await image_status(first, bot["id"])
    assert (before["availableDigest"], before["updateAvailable"]) == (d2, True)
    await first.stop()
    await registry.stop()
    try:
        second = await make_platform(**settings)
        after = await image_status(second, bot["id"])
        for key in ("currentDigest", "availableDigest", "updateAvailable", "lastCheckedAt"):
            assert after[key] == before[key], key
        assert after["currentDigest"] == d1
    finally:
        await registry.start()


async def _state(docker: aiodocker.Docker, container_id: str) -> dict[str, Any]:
    """The stub's GET /state (its boot count, and the schema its data was migrated to, if any)."""
    address = await bot_address(docker, container_id)
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        return dict((await client.get(f"http://{address}:7437/state")).json())


@both_backends
async def test_a_failed_update_brings_back_the_data_as_it_was_before_it(
    make_platform: PlatformFactory, registry: Registry, docker: aiodocker.Docker
) -> None:
    """The new version migrates the bot's data at start (STUB_SCHEMA), then fails its health check: the old
    version comes back on the data as it was before the update, not as the new version left it. A version that
    migrates and stays healthy keeps its migrated data; each update leaves a pre-update backup."""
    repo = repo_name()
    await registry.push(repo, "v", message="v1")
    platform = await make_platform(**update_settings(registry))
    bot = await platform.create_bot(image=f"{registry.host}/{repo}:v")
    before = await platform.wait_for(bot["id"], state="running", health="healthy")
    assert "schema" not in await _state(docker, before["containerId"])

    d2 = await registry.push(repo, "v", message="v2", healthy=False, env={"STUB_SCHEMA": "v2"})
    response = await platform.client.post(f"/fleet/bots/{bot['id']}/update")
    assert response.status_code == 200, response.text
    assert (response.json()["outcome"], response.json()["newDigest"]) == ("rolled_back", d2)
    after = await platform.wait_for(bot["id"], state="running", health="healthy")
    assert after["containerId"] == before["containerId"]
    state = await _state(docker, after["containerId"])
    assert "schema" not in state, state  # v2's migration is not in the data the old version runs on
    volumes = await docker.volumes.list(filters={"label": [f"wopr.bot-id={bot['id']}"]})
    assert len(volumes["Volumes"]) == 1  # the copy v2 ran on is gone

    d3 = await registry.push(repo, "v", message="v3", env={"STUB_SCHEMA": "v3"})
    response = await platform.client.post(f"/fleet/bots/{bot['id']}/update")
    assert response.json()["outcome"] == "updated" and response.json()["newDigest"] == d3
    updated = await platform.wait_for(bot["id"], state="running", health="healthy")
    assert (await _state(docker, updated["containerId"]))["schema"] == "v3"
    volumes = await docker.volumes.list(filters={"label": [f"wopr.bot-id={bot['id']}"]})
    assert [v["Name"] for v in volumes["Volumes"]] == [
        m["Name"] for m in (await bot_container(docker, updated["containerId"]))["Mounts"] if m["Type"] == "volume"
    ]
    backups = (await platform.client.get("/backups", params={"botId": bot["id"]})).json()["backups"]
    assert [(b["kind"], b["state"]) for b in backups] == [("pre-update", "ready"), ("pre-update", "ready")]
    assert all(b["image"].endswith("@" + before["imageDigest"]) for b in backups)  # both of the data v1 left
