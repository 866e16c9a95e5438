"""The Swarm adapter (docker/swarm.py) on a real single-node swarm: a bot's service made, started, stopped,
restarted and removed through the same operations as a container, its data kept on its named volume from one task
to the next, its task hardened, and a task that cannot run reported instead of waited on.

Runs on the single-node swarm of tests/conftest.py (the `swarm` mark: alone, after the other tests)."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import ipaddress
import tarfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker
import httpx
import pytest

from tests.conftest import STUB_IMAGE, PlatformFactory, bot_container
from tests.integration.test_hardening import docker_exec
from tests.ports import free_port
from wopr_platform.core import naming
from wopr_platform.core.errors import EngineError, EngineNotFound, ServiceUnavailable
from wopr_platform.core.limits import Limits
from wopr_platform.core.networks import SubnetPool
from wopr_platform.docker.engine import VOLUME_ROOT
from wopr_platform.docker.swarm import LABEL_SERVICE_ID, SwarmEngine, overlay_name
from wopr_platform.docker.types import ContainerSpec, EngineEvent

pytestmark = [pytest.mark.slow, pytest.mark.swarm]
NEVER_BUILT = STUB_IMAGE.rsplit(":", 1)[0] + ":never-built"  # no such image: the swarm rejects its task
SOCKET = "unix:///var/run/docker.sock"


@pytest.fixture
def platform_id() -> str:
    return "sw-" + uuid.uuid4().hex[:8]


@pytest.fixture
async def engine(swarm: None, platform_id: str) -> AsyncIterator[SwarmEngine]:
    made = SwarmEngine(SOCKET, timeout=60, platform_id=platform_id, subnets=SubnetPool.parse(["10.212.0.0/16"], 24))
    try:
        yield made
    finally:
        for info in await made.list_managed():
            await made.remove(info.id)
        for volume in await made.bot_volumes():
            await made.remove_volume(volume.name)
        for network in await made.list_networks():
            await made.remove_network(network, _always)
        await made.close()


async def _always() -> bool:
    return True


async def _spec(
    engine: SwarmEngine, platform_id: str, *, volume: str | None = None, bot_id: str | None = None, **env: str
) -> ContainerSpec:
    bot_id = bot_id or str(uuid.uuid4())
    network = naming.network_name(platform_id, "default")
    await engine.ensure_network(network, naming.network_labels(platform_id, "default"))
    volume = volume or naming.volume_name(platform_id, "default", f"v{bot_id[:8]}")
    await engine.ensure_volume(volume, naming.volume_labels(platform_id, "default", bot_id))
    return ContainerSpec(
        name=naming.container_name(bot_id),
        image=STUB_IMAGE,
        env={"WOPR_HOME": "/data", **env},
        labels=naming.labels(platform_id, "default", bot_id, "hash", network),
        volume=volume,
        restart_policy="unless-stopped",
        stop_timeout=5,
        network=network,
        limits=Limits(memory_mb=64, cpus=0.5, pids=64),
    )


async def _boots(engine: SwarmEngine, volume: str) -> int:
    """The boot count the stub keeps in its volume, read through the engine."""
    raw = b"".join([chunk async for chunk in engine.volume_files(volume, STUB_IMAGE)])
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        found = tar.extractfile(f"{VOLUME_ROOT}/boots")
        assert found is not None
        return int(found.read())


async def test_a_bot_service_lives_through_the_same_operations_as_a_container(
    engine: SwarmEngine, platform_id: str, docker: aiodocker.Docker
) -> None:
    spec = await _spec(engine, platform_id, STUB_MESSAGE="on swarm")
    network = await docker.networks.get(overlay_name(spec.network))
    shown = await network.show()
    assert shown["Driver"] == "overlay" and shown["Attachable"] is True and shown["Scope"] == "swarm"

    service_id = await engine.create(spec)
    made = await engine.inspect(service_id)
    assert (made.state, made.name, made.restart_policy) == ("created", spec.name, "unless-stopped")
    assert made.bot_id == spec.labels[naming.LABEL_BOT_ID] and made.image == STUB_IMAGE

    events: list[EngineEvent] = []

    async def watch() -> None:
        async for event in engine.events():
            events.append(event)

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.2)
    await engine.start(service_id)
    running = await engine.inspect(service_id)
    assert running.state == "running" and running.networks == (spec.network,)
    assert running.ip_address is not None  # its address on the node's gateway bridge: the host reaches it there
    async with httpx.AsyncClient(trust_env=False, timeout=5) as client:
        for _ in range(50):
            try:
                answer = await client.get(f"http://{running.ip_address}:7437/health")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
    assert answer.status_code == 200
    task = (await docker._query_json("tasks", params={"filters": f'{{"service":["{service_id}"]}}'}))[0]
    overlay = task["NetworksAttachments"][0]["Addresses"][0]
    assert ipaddress.ip_interface(overlay).ip in ipaddress.ip_network(shown["IPAM"]["Config"][0]["Subnet"])
    assert "boot #1" in await engine.logs(service_id, 20)

    # the task's container is hardened as a bot container is, as far as a service can say
    tasks = await docker.containers.list(filters={"label": [f"{LABEL_SERVICE_ID}={service_id}"]})
    assert len(tasks) == 1
    host = (await tasks[0].show())["HostConfig"]
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"] and host["Init"] is True
    assert set(host["CapAdd"]) == {"CHOWN", "DAC_OVERRIDE", "SETUID", "SETGID"}
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (64 * 1_048_576, 500_000_000, 64)
    assert host["PortBindings"] in (None, {})

    listed = {info.id: info for info in await engine.list_managed()}
    assert listed[service_id].state == "running" and listed[service_id].bot_id == made.bot_id

    await engine.stop(service_id, 5)
    assert (await engine.inspect(service_id)).state == "exited"
    assert await docker.containers.list(filters={"label": [f"{LABEL_SERVICE_ID}={service_id}"]}) == []
    assert await _boots(engine, spec.volume) == 1

    await engine.start(service_id)  # a new task on the same volume: the data is there
    await engine.restart(service_id, 5)
    assert (await engine.inspect(service_id)).state == "running"
    assert await engine.logs(service_id, 50) and "boot #3" in await engine.logs(service_id, 50)

    await engine.update_restart_policy(service_id, "on-failure")
    assert (await engine.inspect(service_id)).restart_policy == "on-failure"
    raw = await docker._query_json(f"services/{service_id}")
    assert raw["Spec"]["TaskTemplate"]["RestartPolicy"]["Condition"] == "on-failure"

    for _ in range(50):
        if any(e.action == "start" and e.container_id == service_id for e in events):
            break
        await asyncio.sleep(0.1)
    watcher.cancel()
    assert any(e.action == "start" and e.container_id == service_id and e.bot_id == made.bot_id for e in events)

    await engine.remove(service_id)
    with pytest.raises(EngineNotFound):
        await engine.inspect(service_id)
    await engine.remove_volume(spec.volume)  # no task container holds it any more
    assert not await engine.volume_exists(spec.volume)
    await engine.remove(service_id)  # gone already: fine


async def test_on_a_shared_volume_driver_the_data_is_where_the_options_say_on_a_node_that_never_had_the_volume(
    swarm: None, platform_id: str, tmp_path: Path, docker: aiodocker.Docker
) -> None:
    """The data of a bot on a shared volume driver lives where the driver's options put it, not in the node's own
    volume store: a node without the volume (here the same node after the volume was removed behind the platform's
    back, as a node the swarm moves the bot to) makes it from the service's mount and finds the data there.

    The shared place is a directory of the host mounted by the `local` driver (`o=bind`), standing in for an NFS
    export or a cluster filesystem that every node mounts."""
    shared = tmp_path / "shared"
    options = {"type": "none", "o": "bind", "device": f"{shared}/{{volume}}"}
    engine = SwarmEngine(
        SOCKET,
        timeout=60,
        platform_id=platform_id,
        subnets=SubnetPool.parse(["10.213.0.0/16"], 24),
        volume_driver="local",
        volume_options=options,
    )
    bot_id = str(uuid.uuid4())
    volume = naming.volume_name(platform_id, "default", f"v{bot_id[:8]}")
    (shared / volume).mkdir(parents=True)  # the shared store has a place per volume (an NFS server's directories)
    try:
        spec = await _spec(engine, platform_id, volume=volume, bot_id=bot_id)
        made = await (await docker.volumes.get(volume)).show()
        assert (made["Driver"], made["Options"]) == ("local", {**options, "device": str(shared / volume)})
        service_id = await engine.create(spec)
        mount = (await docker._query_json(f"services/{service_id}"))["Spec"]["TaskTemplate"]["ContainerSpec"]
        assert mount["Mounts"][0]["VolumeOptions"]["DriverConfig"]["Options"]["device"] == str(shared / volume)

        await engine.start(service_id)
        assert await _boots(engine, volume) == 1
        assert (shared / volume / "boots").read_text().strip() == "1"  # in the shared place itself

        await engine.stop(service_id, 5)
        # the node forgets the bot's ended task and its volume: a node that never had either
        ended = await docker.containers.list(all=True, filters={"label": [f"{LABEL_SERVICE_ID}={service_id}"]})
        for container in ended:
            await container.delete(force=True)
        await engine.remove_volume(volume)
        assert not await engine.volume_exists(volume)
        await engine.start(service_id)  # the task makes the volume from its mount: the same place, the same data
        remade = await (await docker.volumes.get(volume)).show()
        assert remade["Options"]["device"] == str(shared / volume)
        assert await _boots(engine, volume) == 2
    finally:
        for info in await engine.list_managed():
            await engine.remove(info.id)
        for found in await engine.bot_volumes():
            await engine.remove_volume(found.name)
        if await engine.volume_exists(volume):
            await engine.remove_volume(volume)
        for network in await engine.list_networks():
            await engine.remove_network(network, _always)
        await engine.close()


async def test_a_task_that_cannot_run_is_reported_not_waited_on(engine: SwarmEngine, platform_id: str) -> None:
    spec = await _spec(engine, platform_id)
    service_id = await engine.create(dataclasses.replace(spec, image=NEVER_BUILT))
    with pytest.raises(EngineError) as failed:
        await engine.start(service_id)  # the swarm rejects the task: no such image on the node
    assert "image" in str(failed.value.details.get("reason")).lower()
    await engine.stop(service_id, 5)
    await engine.remove(service_id)


async def test_a_bot_that_exits_is_seen_as_exited_with_its_code(engine: SwarmEngine, platform_id: str) -> None:
    spec = await _spec(engine, platform_id, STUB_EXIT="3")
    service_id = await engine.create(dataclasses.replace(spec, restart_policy="no"))
    await engine.start(service_id)  # it starts (and ends at once), as a container would
    for _ in range(100):
        info = await engine.inspect(service_id)
        if info.state == "exited":
            break
        await asyncio.sleep(0.1)
    assert (info.state, info.exit_code, info.restart_policy) == ("exited", 3, "no")


@pytest.mark.parametrize("backend", ["swarm"], indirect=True)
async def test_a_bot_on_swarm_reaches_no_service_on_the_host_and_is_probed_healthy(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    """A task reaches the host through its node's gateway bridge: the platform's host chains cover that bridge,
    so a service on the host (and the platform's own API) does not answer the bot, while the platform's health
    probes of the bot, answers to the host's own connections, still come back."""
    platform = await make_platform(HOST="0.0.0.0", BOT_HOST_CHECK_INTERVAL=3600)
    bot = await platform.create_bot()
    await platform.wait_for(bot["id"], state="running", health="healthy")
    task = await bot_container(docker, bot["containerId"])
    gateway = (await docker._query_json("networks/docker_gwbridge"))["IPAM"]["Config"][0]["Gateway"]
    port = free_port()
    banner = f"host-service-{uuid.uuid4().hex[:8]}"

    async def greet(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(banner.encode() + b"\n")
        writer.close()

    server = await asyncio.start_server(greet, "0.0.0.0", port)
    try:
        reader, writer = await asyncio.open_connection(gateway, port)  # the host itself gets the banner
        assert (await reader.readline()).decode().strip() == banner
        writer.close()
        api_port = int(platform.url.rsplit(":", 1)[1])
        for target in (port, api_port):
            _, output = await docker_exec(
                task["Id"], "sh", "-c", f"printf 'GET /health HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {gateway} {target}"
            )
            assert banner not in output and "HTTP/1" not in output, (target, output)
    finally:
        server.close()
        await server.wait_closed()
    await asyncio.sleep(2)
    assert (await platform.bot(bot["id"]))["health"] == "healthy"


async def test_a_bot_no_node_has_room_for_is_refused_at_once_and_left_stopped(
    engine: SwarmEngine, platform_id: str, docker: aiodocker.Docker
) -> None:
    """The swarm reserves a bot's memory limit on its node: one that no node can hold is a 503 with the
    scheduler's reason, straight away, and its service is scaled back to zero (the swarm stops trying)."""
    spec = await _spec(engine, platform_id)
    huge = dataclasses.replace(spec, limits=Limits(memory_mb=64 * 1024 * 1024, cpus=0.5, pids=64))
    service_id = await engine.create(huge)
    with pytest.raises(ServiceUnavailable) as refused:
        await engine.start(service_id)
    assert "insufficient resources" in str(refused.value.details.get("reason"))
    service = await docker.services.inspect(service_id)
    assert service["Spec"]["Mode"] == {"Replicated": {"Replicas": 0}}
