"""Several replicas on one PostgreSQL database: exactly one leads (repairs, registry checks, rollouts)."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiodocker

from tests.conftest import Platform, PlatformFactory, several_replicas


async def leaders(platforms: list[Platform]) -> list[Platform]:
    return [p for p in platforms if p.app.state.platform.leadership.is_leader]


async def wait_single_leader(platforms: list[Platform], timeout: float = 15.0) -> Platform:
    deadline = time.monotonic() + timeout
    while len(found := await leaders(platforms)) != 1:
        assert time.monotonic() < deadline, f"{len(found)} leaders"
        await asyncio.sleep(0.1)
    return found[0]


async def bot_containers(docker: aiodocker.Docker, bot_id: str) -> list[str]:
    found = await docker.containers.list(all=True, filters={"label": [f"wopr.bot-id={bot_id}"]})
    return [c.id for c in found]


async def repaired(platform: Platform, docker: aiodocker.Docker, bot_id: str, gone: str) -> str:
    """Wait until the bot has one container again, other than `gone`, running; return its id."""
    deadline = time.monotonic() + 30
    while True:
        ids = await bot_containers(docker, bot_id)
        bot = await platform.bot(bot_id)
        if ids and gone not in ids and bot["state"] == "running":
            await asyncio.sleep(1.5)  # a second (duplicate) repair would show up by now
            ids = await bot_containers(docker, bot_id)
            assert len(ids) == 1, ids
            return ids[0]
        assert time.monotonic() < deadline, (ids, bot["state"])
        await asyncio.sleep(0.1)


async def test_a_single_replica_leads(platform: Platform) -> None:
    """The embedded default (and a lone PostgreSQL replica) leads at once and says so in readiness."""
    assert platform.app.state.platform.leadership.is_leader
    ready = (await platform.client.get("/health/ready")).json()
    assert ready["leader"] is True


@several_replicas
async def test_one_of_two_replicas_leads_and_the_other_takes_over(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    """Two replicas: one leader; a container removed behind their back is rebuilt once, not twice; when the
    leader stops, the other takes over and repairs from then on."""
    shared = {"WOPR_PLATFORM_ID": "l-" + uuid.uuid4().hex[:10], "FLEET_RECONCILE_INTERVAL": 1}
    first = await make_platform(**shared)
    second = await make_platform(**shared)
    both = [first, second]
    leader = await wait_single_leader(both)
    follower = second if leader is first else first
    assert (await follower.client.get("/health/ready")).json()["leader"] is False

    bot = await follower.create_bot()  # every replica serves the API
    await leader.wait_for(bot["id"], state="running")
    await (await docker.containers.get(bot["containerId"])).delete(force=True)
    rebuilt = await repaired(follower, docker, bot["id"], bot["containerId"])

    await leader.stop()
    assert await wait_single_leader([follower]) is follower
    await (await docker.containers.get(rebuilt)).delete(force=True)
    await repaired(follower, docker, bot["id"], rebuilt)
