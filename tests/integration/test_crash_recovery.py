"""Crash safety: the real platform process is SIGKILLed at every crash point of create, patch and delete.

Each test sets the scene on one process, kills a second one at the named point (WOPR_CRASH_AT) in the middle
of the operation, then starts a third on the same database and platform id and checks, against the engine
itself, that the interrupted operation was finished or undone: each bot has exactly one container, named
after it and running iff it should run; a deleted bot has none; a patch is all old or all new; no parked
`-prev-` container is left; the operation journal is empty.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import aiodocker
import httpx
import pytest
from sqlalchemy import func, select

from tests.conftest import STUB_IMAGE
from tests.fixtures.registry import Registry
from tests.integration.process import PlatformProcess, ProcessPlatforms, process_platforms
from wopr_platform.core import naming
from wopr_platform.db.engine import create_engine
from wopr_platform.db.models import Operation

pytestmark = pytest.mark.slow

SETTLE_TIMEOUT = 30.0
ENV_KEYS = ("A", "B")  # every env key a bot in these tests ever has
OLD_ENV = {"A": "1"}
NEW_ENV = {"A": "2", "B": "added"}


@pytest.fixture
async def platforms(stub_image: str, database_url: str, tmp_path: Path) -> AsyncIterator[ProcessPlatforms]:
    """Platform processes sharing this test's database and a platform id; cleaned up after."""
    async with process_platforms(database_url, tmp_path) as group:
        yield group


# --- helpers --------------------------------------------------------------------------------------------


async def _killed_during(process: PlatformProcess, request: Awaitable[httpx.Response]) -> None:
    """The request never gets an answer: the process SIGKILLed itself at the crash point."""
    with pytest.raises(httpx.TransportError):
        response = await request
        pytest.fail(f"the request was answered ({response.status_code} {response.text}) instead of crashing")
    assert await process.wait_exit() == -9


async def _journal(database_url: str) -> list[tuple[str, str]]:
    """(kind, stage) of every operation in the journal, read from the database directly."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            rows = await connection.execute(select(Operation.kind, Operation.stage).order_by(Operation.created_at))
            return [(row.kind, row.stage) for row in rows]
    finally:
        await engine.dispose()


async def _journal_size(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(select(func.count()).select_from(Operation))).scalar_one())
    finally:
        await engine.dispose()


async def _engine_containers(docker: aiodocker.Docker, platform_id: str) -> list[dict[str, Any]]:
    """Every container of the platform, inspected, straight from the engine.

    A container removed between the listing and its inspection (a removal in progress) is left out.
    """
    found = await docker.containers.list(all=True, filters={"label": [f"wopr.platform={platform_id}"]})
    inspected = []
    for container in found:
        try:
            inspected.append(dict(await container.show()))
        except aiodocker.DockerError as error:
            if error.status != 404:
                raise
    return inspected


async def _engine_volumes(docker: aiodocker.Docker, platform_id: str) -> set[str]:
    found = await docker.volumes.list(filters={"label": [f"wopr.platform={platform_id}"]})
    return {volume["Name"] for volume in found.get("Volumes") or []}


def _bot_env(info: dict[str, Any]) -> dict[str, str]:
    """The part of a container's env that comes from the bot's profile."""
    pairs = (entry.split("=", 1) for entry in info["Config"]["Env"] or [])
    return {key: value for key, value in pairs if key in ENV_KEYS}


def _volume(group: ProcessPlatforms, volume_name: str, generation: int = 0) -> str:
    return naming.volume_name(group.platform_id, naming.DEFAULT_TENANT, volume_name, generation)


async def _problems(
    group: ProcessPlatforms, client: httpx.AsyncClient, docker: aiodocker.Docker
) -> tuple[list[str], list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Everything that breaks the invariants now, the bots (full profiles) and their containers by bot id."""
    problems: list[str] = []
    listed = await client.get("/fleet/bots")
    assert listed.status_code == 200, listed.text
    bots = []
    for listed_bot in listed.json()["bots"]:
        response = await client.get(f"/fleet/bots/{listed_bot['id']}")
        if response.status_code == 404:  # an interrupted create undone between the listing and now
            problems.append(f"bot {listed_bot['id']} was listed and is gone meanwhile")
            continue
        assert response.status_code == 200, response.text
        bots.append(dict(response.json()))
    by_bot: dict[str, list[dict[str, Any]]] = {}
    for info in await _engine_containers(docker, group.platform_id):
        name = info["Name"].lstrip("/")
        if "-prev-" in name:
            problems.append(f"parked container {name} is left")
        by_bot.setdefault(info["Config"]["Labels"].get("wopr.bot-id", "?"), []).append(info)
    containers: dict[str, dict[str, Any]] = {}
    for bot in bots:
        mine = by_bot.pop(bot["id"], [])
        if len(mine) != 1:
            problems.append(f"bot {bot['id']} has {len(mine)} containers: {[c['Name'] for c in mine]}")
            continue
        info = containers[bot["id"]] = mine[0]
        if info["Name"].lstrip("/") != naming.container_name(bot["id"]):
            problems.append(f"bot {bot['id']}'s container is named {info['Name']}")
        if info["State"]["Running"] != (bot["desiredState"] == "running"):
            problems.append(f"bot {bot['id']} wants {bot['desiredState']}, container is {info['State']['Status']}")
        if bot["containerId"] != info["Id"]:
            problems.append(f"bot {bot['id']}: the API says container {bot['containerId']}, the engine {info['Id']}")
        if _bot_env(info) != bot["env"]:
            problems.append(f"bot {bot['id']}: profile env {bot['env']}, container env {_bot_env(info)}")
    for bot_id, extra in by_bot.items():
        problems.append(f"containers of no listed bot ({bot_id}): {[c['Name'] for c in extra]}")
    if (pending := await _journal_size(group.database_url)) != 0:
        problems.append(f"{pending} operations still in the journal")
    return problems, bots, containers


async def _settled(
    group: ProcessPlatforms, process: PlatformProcess, docker: aiodocker.Docker
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Poll until the invariants hold (the reconciler may need a pass); returns the bots and their containers."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        problems, bots, containers = await _problems(group, process.client, docker)
        if not problems:
            return bots, containers
        if time.monotonic() > deadline:
            raise AssertionError("the fleet never settled after the crash:\n" + "\n".join(problems))
        await asyncio.sleep(0.2)


async def _profile(client: httpx.AsyncClient, bot_id: str) -> dict[str, Any]:
    response = await client.get(f"/fleet/bots/{bot_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _wait_state(client: httpx.AsyncClient, bot_id: str, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while (bot := await _profile(client, bot_id))["state"] != state:
        if time.monotonic() > deadline:
            raise AssertionError(f"bot {bot_id} never reached {state}: {bot}")
        await asyncio.sleep(0.1)
    return bot


async def _create(client: httpx.AsyncClient, name: str | None = None) -> dict[str, Any]:
    body = {"name": name or "crash-" + uuid.uuid4().hex[:8], "image": STUB_IMAGE, "env": OLD_ENV}
    response = await client.post("/fleet/bots", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _set_scene(group: ProcessPlatforms, *, stopped: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """On a first process: the bot under test (running, or stopped) and a running bystander; then stop it."""
    first = await group.start()
    bot = await _create(first.client)
    bystander = await _create(first.client)
    await _wait_state(first.client, bot["id"], "running")
    await _wait_state(first.client, bystander["id"], "running")
    if stopped:
        assert (await first.client.post(f"/fleet/bots/{bot['id']}/stop")).status_code == 200
        await _wait_state(first.client, bot["id"], "exited")
    assert await first.terminate() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    assert await _journal(group.database_url) == []
    return bot, bystander


# --- create ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("point", "left_behind"),
    [
        ("create.after_intent", None),
        ("create.after_container_created", "created"),
        ("create.after_container_started", "running"),
    ],
)
async def test_interrupted_create_is_undone(
    platforms: ProcessPlatforms, docker: aiodocker.Docker, point: str, left_behind: str | None
) -> None:
    """The client never got its 201, so recovery removes what the create left: no bot, container or volume."""
    with platforms.reporting():
        crashing = await platforms.start(crash_at=point)
        name = "crash-" + uuid.uuid4().hex[:8]
        await _killed_during(crashing, crashing.client.post("/fleet/bots", json={"name": name, "image": STUB_IMAGE}))

        assert await _journal(platforms.database_url) == [("create", "started")]
        leftover = await _engine_containers(docker, platforms.platform_id)
        assert [c["State"]["Status"] for c in leftover] == ([left_behind] if left_behind else [])
        assert len(await _engine_volumes(docker, platforms.platform_id)) == (1 if left_behind else 0)

        recovered = await platforms.start()
        bots, _ = await _settled(platforms, recovered, docker)
        assert bots == []
        assert await _engine_containers(docker, platforms.platform_id) == []
        assert await _engine_volumes(docker, platforms.platform_id) == set()

        # the name was released with the profile, and the platform creates again
        again = await _create(recovered.client, name)
        await _wait_state(recovered.client, again["id"], "running")
        bots, _ = await _settled(platforms, recovered, docker)
        assert [bot["id"] for bot in bots] == [again["id"]]


# --- patch ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("desired", "point", "outcome"),
    [
        ("running", "patch.after_parking", "old"),
        ("running", "patch.after_container_created", "old"),
        ("running", "patch.after_container_started", "old"),
        ("running", "patch.after_commit", "new"),
        # a stopped bot's replacement is created but never started: there is no after_container_started
        ("stopped", "patch.after_parking", "old"),
        ("stopped", "patch.after_container_created", "old"),
        ("stopped", "patch.after_commit", "new"),
    ],
)
async def test_interrupted_patch_is_all_old_or_all_new(
    platforms: ProcessPlatforms, docker: aiodocker.Docker, desired: str, point: str, outcome: str
) -> None:
    """Before the profile commit the old container comes back (renamed, restarted); after it the new one stays."""
    with platforms.reporting():
        bot, bystander = await _set_scene(platforms, stopped=desired == "stopped")

        crashing = await platforms.start(crash_at=point)
        await _killed_during(crashing, crashing.client.patch(f"/fleet/bots/{bot['id']}", json={"env": NEW_ENV}))
        stage = "committed" if outcome == "new" else "started"
        assert await _journal(platforms.database_url) == [("patch", stage)]
        names = [c["Name"].lstrip("/") for c in await _engine_containers(docker, platforms.platform_id)]
        assert any("-prev-" in name for name in names), names  # the old container was parked when it died

        recovered = await platforms.start()
        bots, containers = await _settled(platforms, recovered, docker)
        assert {b["id"] for b in bots} == {bot["id"], bystander["id"]}
        after = next(b for b in bots if b["id"] == bot["id"])
        assert after["desiredState"] == desired
        if outcome == "old":
            assert after["env"] == OLD_ENV
            assert containers[bot["id"]]["Id"] == bot["containerId"]  # the very same container, given back
        else:
            assert after["env"] == NEW_ENV
            assert containers[bot["id"]]["Id"] != bot["containerId"]
        assert _bot_env(containers[bot["id"]]) == after["env"]
        assert containers[bystander["id"]]["Id"] == bystander["containerId"]  # recovery touched no other bot
        mounts = [m["Name"] for m in containers[bot["id"]]["Mounts"] if m["Destination"] == "/data"]
        assert mounts == [_volume(platforms, bot["volumeName"])]


# --- delete ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("remove_volumes", [False, True], ids=["keep-volume", "remove-volumes"])
async def test_interrupted_delete_is_finished(
    platforms: ProcessPlatforms, docker: aiodocker.Docker, remove_volumes: bool
) -> None:
    """The delete had begun, so recovery carries it through: no profile, no container, the volumes as asked (the
    bot's own and the one it had before its volumeName changed)."""
    with platforms.reporting():
        bot, bystander = await _set_scene(platforms)
        earlier = _volume(platforms, bot["volumeName"])

        crashing = await platforms.start(crash_at="delete.after_container_removed")
        changed = await crashing.client.patch(
            f"/fleet/bots/{bot['id']}", json={"volumeName": "v-" + uuid.uuid4().hex[:8]}
        )
        assert changed.status_code == 200, changed.text
        volume = _volume(platforms, changed.json()["volumeName"])
        params = {"removeVolumes": "true"} if remove_volumes else {}
        await _killed_during(crashing, crashing.client.delete(f"/fleet/bots/{bot['id']}", params=params))
        assert await _journal(platforms.database_url) == [("delete", "started")]

        recovered = await platforms.start()
        bots, containers = await _settled(platforms, recovered, docker)
        assert [b["id"] for b in bots] == [bystander["id"]]
        assert containers[bystander["id"]]["Id"] == bystander["containerId"]
        assert (await recovered.client.get(f"/fleet/bots/{bot['id']}")).status_code == 404
        assert await docker.containers.list(all=True, filters={"label": [f"wopr.bot-id={bot['id']}"]}) == []
        left = await _engine_volumes(docker, platforms.platform_id)
        assert (volume in left) is not remove_volumes
        assert (earlier in left) is not remove_volumes


# --- repairs the platform makes on its own -------------------------------------------------------------


@pytest.mark.parametrize("point", ["reconcile.after_container_created", "reconcile.after_container_started"])
async def test_interrupted_repair_is_adopted(platforms: ProcessPlatforms, docker: aiodocker.Docker, point: str) -> None:
    """A container removed while the platform was down is rebuilt at start; killed mid-rebuild, the next
    start adopts the rebuilt container instead of making a second one."""
    with platforms.reporting():
        bot, bystander = await _set_scene(platforms)
        await docker.containers.container(bot["containerId"]).delete(force=True)

        crashing = await platforms.start(crash_at=point)  # the reconciler's first pass reaches the point
        assert await crashing.wait_exit() == -9
        rebuilt = await docker.containers.list(all=True, filters={"label": [f"wopr.bot-id={bot['id']}"]})
        assert len(rebuilt) == 1

        recovered = await platforms.start()
        bots, containers = await _settled(platforms, recovered, docker)
        assert {b["id"] for b in bots} == {bot["id"], bystander["id"]}
        assert containers[bot["id"]]["Id"] == rebuilt[0].id
        assert containers[bystander["id"]]["Id"] == bystander["containerId"]


# --- image update ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("point", "outcome"),
    [
        ("update.after_pull", "old"),
        ("update.after_parking", "old"),
        ("update.after_container_started", "old"),
        ("update.after_health_gate", "old"),  # healthy, but the new digest was not committed yet
        ("update.after_commit", "new"),
    ],
)
async def test_interrupted_update_is_all_old_or_all_new(
    platforms: ProcessPlatforms, docker: aiodocker.Docker, registry: Registry, point: str, outcome: str
) -> None:
    """An update killed at any step leaves the bot on one container, running, on the old digest (the very
    same container, on its volume) or on the new one; the update's record says what happened."""
    repo = "crash-" + uuid.uuid4().hex[:8]
    old_digest = await registry.push(repo, "t", message="v1")
    platforms.extra_env.update(
        {"FLEET_IMAGE_ALLOWLIST": f"localhost/wopr-stub,{registry.host}/", "FLEET_UPDATE_INTERVAL_STABLE": "3600"}
    )
    with platforms.reporting():
        first = await platforms.start()
        response = await first.client.post(
            "/fleet/bots", json={"name": repo, "image": f"{registry.host}/{repo}:t", "env": OLD_ENV}
        )
        assert response.status_code == 201, response.text
        bot = response.json()
        await _wait_state(first.client, bot["id"], "running")
        assert await first.terminate() in (0, -signal.SIGTERM)
        new_digest = await registry.push(repo, "t", message="v2")

        crashing = await platforms.start(crash_at=point)
        await _killed_during(crashing, crashing.client.post(f"/fleet/bots/{bot['id']}/update"))

        recovered = await platforms.start()
        _, containers = await _settled(platforms, recovered, docker)
        after = await _profile(recovered.client, bot["id"])
        container = containers[bot["id"]]
        expected = old_digest if outcome == "old" else new_digest
        assert after["imageDigest"] == expected
        assert container["Config"]["Image"] == f"{registry.host}/{repo}@{expected}"
        if outcome == "old":
            assert container["Id"] == bot["containerId"]
        # the new version runs on a copy of the data (the next generation of the volume); the old version on its
        # own volume, untouched; either way the volume the bot does not use is gone
        mounts = [m["Name"] for m in container["Mounts"] if m["Destination"] == "/data"]
        assert mounts == [_volume(platforms, bot["volumeName"], 0 if outcome == "old" else 1)]
        assert await _engine_volumes(docker, platforms.platform_id) == set(mounts)
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while (records := (await recovered.client.get(f"/fleet/bots/{bot['id']}/updates")).json()["updates"])[0][
            "outcome"
        ] == "running":
            assert time.monotonic() < deadline, records
            await asyncio.sleep(0.1)
        [record] = records
        assert record["outcome"] == ("interrupted" if outcome == "old" else "updated")
        assert record["rolledBack"] is (outcome == "old")


# --- restore --------------------------------------------------------------------------------------------


async def _note(docker: aiodocker.Docker, container_id: str, write: str | None = None) -> str:
    """Write (with `write`) or read the note file in a bot's volume, through its running container."""
    script = f"echo {write} > /data/note" if write else "cat /data/note"
    execution = await docker.containers.container(container_id).exec(["sh", "-c", script], stdout=True)
    output = b""
    async with execution.start(detach=False) as stream:
        while (message := await stream.read_out()) is not None:
            output += message.data
    return output.decode().strip()


@pytest.mark.parametrize(
    ("point", "outcome"),
    [
        ("restore.after_parking", "old"),
        ("restore.after_fresh_volume", "old"),
        ("restore.after_fill", "old"),
        ("restore.after_container_started", "old"),
        ("restore.after_commit", "new"),
    ],
)
async def test_interrupted_restore_leaves_the_old_data_or_the_restored_data(
    platforms: ProcessPlatforms, docker: aiodocker.Docker, point: str, outcome: str
) -> None:
    """A restore killed at any step leaves the bot running on one volume: its old data, untouched, until the move
    onto the restored volume was committed; then the restored data. The volume it does not use is gone."""
    with platforms.reporting():
        first = await platforms.start()
        bot = await _create(first.client)
        await _wait_state(first.client, bot["id"], "running")
        await _note(docker, bot["containerId"], write="backed-up")
        response = await first.client.post("/backups", json={"botId": bot["id"]})
        assert response.status_code == 201, response.text
        backup_id = response.json()["id"]
        await _note(docker, bot["containerId"], write="newer")
        assert await first.terminate() in (0, -signal.SIGTERM)

        crashing = await platforms.start(crash_at=point)
        await _killed_during(crashing, crashing.client.post(f"/backups/{backup_id}/restore"))

        recovered = await platforms.start()
        _, containers = await _settled(platforms, recovered, docker)
        container = containers[bot["id"]]
        await _wait_state(recovered.client, bot["id"], "running")
        assert await _note(docker, container["Id"]) == ("newer" if outcome == "old" else "backed-up")
        mounts = [m["Name"] for m in container["Mounts"] if m["Destination"] == "/data"]
        assert mounts == [_volume(platforms, bot["volumeName"], 0 if outcome == "old" else 1)]
        assert await _engine_volumes(docker, platforms.platform_id) == set(mounts)
