"""The control plane survives its own failure under load: two replicas on PostgreSQL share the leader lock; the
leader is killed (SIGKILL) in the middle of a burst of creates, and in the middle of a rollout, and the other
replica takes over and finishes the work: no bot lost, none duplicated, none updated twice."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import aiodocker
import httpx

from tests.conftest import STUB_IMAGE, several_replicas
from tests.fixtures.registry import Registry
from tests.integration.process import PlatformProcess, ProcessPlatforms
from tests.integration.test_crash_recovery import OLD_ENV, _profile, _settled, platforms

__all__ = ["platforms"]  # the fixture, shared with the crash tests

pytestmark = several_replicas
BURST = 12
TAKEOVER_TIMEOUT = 20.0


async def _leads(process: PlatformProcess) -> bool:
    response = await process.client.get("/health/ready")
    return bool(response.json().get("leader"))


async def _two_replicas(group: ProcessPlatforms) -> tuple[PlatformProcess, PlatformProcess]:
    """Two replicas of one platform; (the leader, the other) once one of them leads."""
    first, second = await group.start(), await group.start()
    deadline = time.monotonic() + TAKEOVER_TIMEOUT
    while True:
        leading = [p for p in (first, second) if await _leads(p)]
        if len(leading) == 1:
            return leading[0], second if leading[0] is first else first
        assert time.monotonic() < deadline, f"{len(leading)} leaders"
        await asyncio.sleep(0.1)


async def _takes_over(process: PlatformProcess) -> None:
    deadline = time.monotonic() + TAKEOVER_TIMEOUT
    while not await _leads(process):
        assert time.monotonic() < deadline, "the surviving replica never took the lead"
        await asyncio.sleep(0.1)


async def test_the_leader_killed_in_a_burst_of_creates_loses_and_duplicates_no_bot(
    platforms: ProcessPlatforms, docker: aiodocker.Docker
) -> None:
    with platforms.reporting():
        leader, other = await _two_replicas(platforms)
        names = [f"burst-{i}-{uuid.uuid4().hex[:6]}" for i in range(BURST)]
        creates = [
            asyncio.create_task(
                leader.client.post("/fleet/bots", json={"name": name, "image": STUB_IMAGE, "env": OLD_ENV})
            )
            for name in names
        ]
        while sum(task.done() for task in creates) < 3:  # some answered, the others in flight
            await asyncio.sleep(0.01)
        leader.proc.kill()
        results = await asyncio.gather(*creates, return_exceptions=True)
        assert await leader.wait_exit() == -9
        answered = {
            str(result.json()["id"])
            for result in results
            if isinstance(result, httpx.Response) and result.status_code == 201
        }
        cut_off = sum(isinstance(result, httpx.TransportError) for result in results)
        assert len(answered) >= 3 and cut_off >= 1, results

        await _takes_over(other)
        bots, _ = await _settled(platforms, other, docker)  # one container each, running, nothing half-made
        assert answered <= {bot["id"] for bot in bots}  # no bot the leader answered for is lost
        listed_names = [bot["name"] for bot in bots]
        assert len(listed_names) == len(set(listed_names)) and set(listed_names) <= set(names)
        assert all(bot["state"] == "running" for bot in bots)


async def _rollouts(process: PlatformProcess) -> list[dict[str, Any]]:
    response = await process.client.get("/fleet/rollouts")
    assert response.status_code == 200, response.text
    return list(response.json()["rollouts"])


async def _updates(process: PlatformProcess, bot_id: str) -> list[dict[str, Any]]:
    response = await process.client.get(f"/fleet/bots/{bot_id}/updates")
    assert response.status_code == 200, response.text
    return list(response.json()["updates"])


async def test_the_leader_killed_in_a_rollout_the_other_finishes_it_and_updates_no_bot_twice(
    platforms: ProcessPlatforms, docker: aiodocker.Docker, registry: Registry
) -> None:
    repo = "failover-" + uuid.uuid4().hex[:8]
    await registry.push(repo, "t", message="v1")
    platforms.extra_env.update(
        {
            "FLEET_IMAGE_ALLOWLIST": f"localhost/wopr-stub,{registry.host}/",
            "FLEET_UPDATE_INTERVAL_STABLE": "1",
            "FLEET_UPDATE_JITTER": "0",
            "FLEET_UPDATE_HEALTH_TIMEOUT": "20",
            "FLEET_ROLLOUT_WAVES": "1,2,100%",
            "FLEET_ROLLOUT_PARALLEL": "1",
        }
    )
    with platforms.reporting():
        leader, other = await _two_replicas(platforms)
        bots = []
        for i in range(6):
            body = {"name": f"{repo}-{i}", "image": f"{registry.host}/{repo}:t", "updatePolicy": "on-push"}
            response = await other.client.post("/fleet/bots", json=body)
            assert response.status_code == 201, response.text
            bots.append(str(response.json()["id"]))
        for bot_id in bots:
            deadline = time.monotonic() + 30
            while (await _profile(other.client, bot_id))["state"] != "running":
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        new = await registry.push(repo, "t", message="v2")

        # the leader rolls v2 out; it is killed once the first wave is done and the second under way
        deadline = time.monotonic() + 60
        while True:
            found = await _rollouts(other)
            if found and found[0]["waves"][0]["state"] == "done":
                break
            assert time.monotonic() < deadline, found
            await asyncio.sleep(0.05)
        leader.proc.kill()
        assert await leader.wait_exit() == -9
        assert found[0]["state"] == "running", found  # killed in the middle of it
        interrupted = found[0]["id"]

        await _takes_over(other)
        deadline = time.monotonic() + 120
        while True:
            profiles = [await _profile(other.client, bot_id) for bot_id in bots]
            if all(p["imageDigest"] == new and p["state"] == "running" for p in profiles):
                break
            assert time.monotonic() < deadline, [(p["imageDigest"], p["state"]) for p in profiles]
            await asyncio.sleep(0.2)
        await _settled(platforms, other, docker)
        for bot_id in bots:
            records = await _updates(other, bot_id)
            applied = [r for r in records if r["toDigest"] == new and r["outcome"] == "updated"]
            assert len(applied) == 1, records  # moved to v2 once, whoever led
            assert all(r["outcome"] != "running" for r in records), records
        # the rollout the leader was killed in is closed as such; the other replica's rollout moved the rest
        states = {r["id"]: r["state"] for r in await _rollouts(other)}
        print("ROLLOUTS", states)
        assert states.pop(interrupted) == "interrupted", states
        assert list(states.values()) == ["completed"], states
