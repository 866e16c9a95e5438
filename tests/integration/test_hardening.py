"""Secure by default: every bot container is hardened and limited, checked on the real engine with the stub image.

The stub honours the WOPR entrypoint contract (root chowns /data, then drops to uid 1000), so it running
healthy under these settings shows the real image's needs are met.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from typing import Any

import aiodocker
import pytest

from tests.conftest import STUB_IMAGE, Platform, PlatformFactory
from tests.integration.test_lifecycle import _instance_get
from tests.integration.test_reconciler import eventually, repairs_for, wait_for_passes, wait_for_repair
from wopr_platform.core.errors import UnsafeContainerSpec
from wopr_platform.core.limits import Limits
from wopr_platform.core.networks import SubnetPool
from wopr_platform.docker.engine import DockerEngine
from wopr_platform.docker.hardening import KEPT_CAPABILITIES, check_hardened, container_config
from wopr_platform.docker.types import ContainerSpec

MIB = 1_048_576


async def inspect(docker: aiodocker.Docker, container_id: str) -> dict[str, Any]:
    return dict(await docker.containers.container(container_id).show())


async def docker_exec(container_id: str, *command: str) -> tuple[int, str]:
    """Run a command in the container (as the container's root, with its capabilities); exit code and output."""
    process = await asyncio.create_subprocess_exec(
        "docker",
        "exec",
        container_id,
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


def tenant_network(platform: Platform, tenant: str = "default") -> str:
    return f"wopr-{platform.settings.platform_id}.{tenant}.net"


async def test_a_bot_container_is_hardened_and_the_stub_runs_healthy_under_it(
    platform: Platform, docker: aiodocker.Docker
) -> None:
    bot = await platform.create_bot()
    status = await platform.wait_for(bot["id"], state="running", health="healthy")
    info = await inspect(docker, bot["containerId"])
    host = info["HostConfig"]

    assert host["Privileged"] is False
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["CapDrop"] == ["ALL"]
    assert sorted(host["CapAdd"]) == sorted(KEPT_CAPABILITIES) == ["CHOWN", "DAC_OVERRIDE", "SETGID", "SETUID"]
    assert host["ReadonlyRootfs"] is True
    assert host["Tmpfs"] == {"/tmp": "rw,noexec,nosuid,nodev,size=64m,mode=1777"}
    assert host["Memory"] == host["MemorySwap"] == 512 * MIB
    assert host["NanoCpus"] == 1_000_000_000
    assert host["PidsLimit"] == 256
    assert not host.get("Binds") and not host.get("Devices") and not host.get("VolumesFrom")
    assert [(m["Type"], m["Target"]) for m in host["Mounts"]] == [("volume", "/data")]
    assert all("docker.sock" not in str(m) for m in info["Mounts"])
    assert host["NetworkMode"] == tenant_network(platform)
    assert list(info["NetworkSettings"]["Networks"]) == [tenant_network(platform)]
    assert status["resources"] == {"memoryMb": 512, "cpus": 1.0, "pids": 256}

    # the entrypoint chowned /data and dropped to uid 1000: the server runs as `wopr`, the state belongs to it
    assert (await _instance_get(docker, bot["containerId"], "/state")).json() == {"boots": 1}
    code, processes = await docker_exec(bot["containerId"], "ps", "-o", "user,args")
    assert code == 0, processes
    server = [line for line in processes.splitlines() if "nc -ll -p 7437" in line]
    assert server and all(line.split()[0] == "wopr" for line in server), processes
    code, listing = await docker_exec(bot["containerId"], "ls", "-n", "/data")
    assert code == 0 and " 1000 " in listing, listing
    # the root filesystem is read-only; /tmp is writable but nothing there can be executed
    code, output = await docker_exec(bot["containerId"], "touch", "/etc/evil")
    assert code != 0 and "Read-only file system" in output
    code, output = await docker_exec(bot["containerId"], "sh", "-c", "cp /bin/busybox /tmp/bb && /tmp/bb true")
    assert code != 0 and "Permission denied" in output, output
    code, output = await docker_exec(bot["containerId"], "grep", "^CapEff", "/proc/1/status")
    assert code == 0 and output.split()[1] == "00000000000000c3", output  # CHOWN|DAC_OVERRIDE|SETGID|SETUID

    # the stats collector reports the container's limit
    assert (await sampled(platform, bot["id"]))["memoryLimitMb"] == 512


async def sampled(platform: Platform, bot_id: str) -> dict[str, Any]:
    """The bot's stats once the collector has sampled its current container."""

    async def stats() -> dict[str, Any] | None:
        status = await platform.bot(bot_id)
        return status["stats"] if status["stats"] and status["state"] == "running" else None

    found: dict[str, Any] = await eventually(stats, "a stats sample")
    return found


LIMITED = {
    "FLEET_DEFAULT_MEMORY_MB": 256,
    "FLEET_DEFAULT_CPUS": 0.5,
    "FLEET_DEFAULT_PIDS": 128,
    "FLEET_MAX_MEMORY_MB": 1024,
    "FLEET_MAX_PIDS": 512,
}


def _limits(info: dict[str, Any]) -> tuple[int, int, int]:
    host = info["HostConfig"]
    return host["Memory"] // MIB, host["NanoCpus"], host["PidsLimit"]


async def test_per_bot_resources_override_the_defaults_within_bounds(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    platform = await make_platform(**LIMITED)
    plain = await platform.create_bot()
    assert plain["resources"] == {"memoryMb": 256, "cpus": 0.5, "pids": 128}
    assert _limits(await inspect(docker, plain["containerId"])) == (256, 500_000_000, 128)

    bot = await platform.create_bot(resources={"memoryMb": 384, "pids": 200})
    assert bot["resources"] == {"memoryMb": 384, "cpus": 0.5, "pids": 200}
    assert _limits(await inspect(docker, bot["containerId"])) == (384, 500_000_000, 200)
    await platform.wait_for(bot["id"], health="healthy")

    # a change of limits recreates the container (journaled like an env change), the other overrides stay
    response = await platform.client.patch(f"/fleet/bots/{bot['id']}", json={"resources": {"memoryMb": 768}})
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["containerId"] != bot["containerId"]
    assert patched["resources"] == {"memoryMb": 768, "cpus": 0.5, "pids": 200}
    assert _limits(await inspect(docker, patched["containerId"])) == (768, 500_000_000, 200)
    status = await platform.wait_for(bot["id"], health="healthy", containerId=patched["containerId"])
    assert status["resources"] == patched["resources"]
    # same volume: the stub's boot counter goes on
    assert (await _instance_get(docker, patched["containerId"], "/state")).json() == {"boots": 2}
    await eventually(lambda: _memory_limit_is(platform, bot["id"], 768), "the stats of the new container", timeout=20)

    # the same limits again: nothing to do
    same = (await platform.client.patch(f"/fleet/bots/{bot['id']}", json={"resources": {"memoryMb": 768}})).json()
    assert same["containerId"] == patched["containerId"]

    # null returns one limit to the platform's default
    response = await platform.client.patch(f"/fleet/bots/{bot['id']}", json={"resources": {"pids": None}})
    assert response.status_code == 200, response.text
    reset = response.json()
    assert reset["resources"] == {"memoryMb": 768, "cpus": 0.5, "pids": 128}
    assert reset["containerId"] != patched["containerId"]
    assert _limits(await inspect(docker, reset["containerId"])) == (768, 500_000_000, 128)
    await platform.wait_for(bot["id"], health="healthy", containerId=reset["containerId"])


@pytest.mark.parametrize(
    "resources",
    [
        {"memoryMb": 2048},  # above FLEET_MAX_MEMORY_MB
        {"pids": 513},  # above FLEET_MAX_PIDS
        {"cpus": 64.0},  # above FLEET_MAX_CPUS
        {"cpus": 3},  # within FLEET_MAX_CPUS (4) but more than the engine host's 2 CPUs
        {"memoryMb": 16},  # below the least an instance can start with
        {"cpus": 0.0},
        {"pids": 0},
        {"memoryMb": "512"},
        {"memoryMb": 512.5},
        {"swapMb": 10},
        ["memoryMb"],
    ],
    ids=repr,
)
async def test_resources_out_of_bounds_are_a_400_and_change_nothing(
    make_platform: PlatformFactory, docker: aiodocker.Docker, resources: Any
) -> None:
    if resources == {"cpus": 3} and (await docker.system.info())["NCPU"] > 2:
        pytest.skip("the engine host has more than 2 CPUs")
    platform = await make_platform(**LIMITED)
    bot = await platform.create_bot(resources={"memoryMb": 300})
    await platform.wait_for(bot["id"], health="healthy")

    response = await platform.client.post(
        "/fleet/bots", json={"name": "b-" + uuid.uuid4().hex[:8], "image": STUB_IMAGE, "resources": resources}
    )
    assert response.status_code == 400, response.text
    assert "resources" in response.text
    bots = (await platform.client.get("/fleet/bots")).json()["bots"]
    assert [b["id"] for b in bots] == [bot["id"]]
    label = f"wopr.platform={platform.settings.platform_id}"
    assert len(await docker.containers.list(all=True, filters={"label": [label]})) == 1

    response = await platform.client.patch(f"/fleet/bots/{bot['id']}", json={"resources": resources})
    assert response.status_code == 400, response.text
    after = await platform.bot(bot["id"])
    assert after["containerId"] == bot["containerId"] and after["updatedAt"] == bot["updatedAt"]
    assert after["resources"] == {"memoryMb": 300, "cpus": 0.5, "pids": 128}
    assert _limits(await inspect(docker, bot["containerId"])) == (300, 500_000_000, 128)


async def _memory_limit_is(platform: Platform, bot_id: str, megabytes: float) -> bool:
    stats = (await platform.bot(bot_id))["stats"]
    return bool(stats and stats["memoryLimitMb"] == megabytes)


async def test_new_defaults_reach_existing_bots_through_the_reconciler(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    """The spec hash covers the effective limits: a bot made under other defaults is recreated, once."""
    first = await make_platform(**LIMITED)
    plain = await first.create_bot()
    own = await first.create_bot(resources={"memoryMb": 300})
    await first.wait_for(plain["id"], health="healthy")
    await first.stop()

    second = await make_platform(
        **{**LIMITED, "FLEET_DEFAULT_MEMORY_MB": 320, "FLEET_RECONCILE_INTERVAL": 1},
        WOPR_PLATFORM_ID=first.settings.platform_id,
    )
    assert (await second.bot(plain["id"]))["resources"] == {"memoryMb": 320, "cpus": 0.5, "pids": 128}

    async def recreated() -> dict[str, Any] | None:
        status = await second.bot(plain["id"])
        fresh = status["containerId"] != plain["containerId"] and status["health"] == "healthy"
        return status if fresh else None

    status = await eventually(recreated, "the bot recreated with the new default")
    assert _limits(await inspect(docker, status["containerId"]))[0] == 320
    await wait_for_repair(second, plain["id"], "changed", "recreated")
    await wait_for_passes(second, 3)
    # once: the new container is left alone; the bot with its own memory limit kept its container throughout
    assert (await second.bot(plain["id"]))["containerId"] == status["containerId"]
    assert (await second.bot(own["id"]))["containerId"] == own["containerId"]
    assert len(await repairs_for(second, plain["id"])) == 1
    assert await repairs_for(second, own["id"]) == []


# --- the adapter refuses what would break the hardening --------------------------------------------------------


def _spec(**changes: Any) -> ContainerSpec:
    base = ContainerSpec(
        name="wopr-unsafe-" + uuid.uuid4().hex[:8],
        image=STUB_IMAGE,
        env={},
        labels={},
        volume="wopr.unsafe.data",
        restart_policy="no",
        stop_timeout=1,
        network="wopr.unsafe.net",
        limits=Limits(memory_mb=64, cpus=0.5, pids=64),
    )
    return replace(base, **changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"volume": "/var/run/docker.sock"},
        {"volume": "/"},
        {"volume": "../etc"},
        {"network": "host"},
        {"network": "bridge"},
        {"network": "container:abc"},
        {"network": "none"},
        {"limits": Limits(memory_mb=0, cpus=0.5, pids=64)},
        {"limits": Limits(memory_mb=64, cpus=0.0, pids=64)},
        {"limits": Limits(memory_mb=64, cpus=0.5, pids=0)},
    ],
    ids=repr,
)
async def test_the_adapter_refuses_an_unsafe_spec_before_asking_the_engine(
    stub_image: str, docker: aiodocker.Docker, changes: dict[str, Any]
) -> None:
    spec = _spec(**changes)
    engine = DockerEngine(
        "unix:///var/run/docker.sock", timeout=30, platform_id="unsafe", subnets=SubnetPool.parse(["10.200.0.0/14"], 27)
    )
    try:
        with pytest.raises(UnsafeContainerSpec):
            await engine.create(spec)
    finally:
        await engine.close()
    assert await docker.containers.list(all=True, filters={"name": [spec.name]}) == []


def _privileged(config: dict[str, Any]) -> None:
    config["HostConfig"]["Privileged"] = True


def _socket_bind(config: dict[str, Any]) -> None:
    config["HostConfig"]["Binds"] = ["/var/run/docker.sock:/var/run/docker.sock"]


def _socket_mount(config: dict[str, Any]) -> None:
    config["HostConfig"]["Mounts"].append(
        {"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/var/run/docker.sock"}
    )


def _sys_admin(config: dict[str, Any]) -> None:
    config["HostConfig"]["CapAdd"].append("SYS_ADMIN")


def _keeps_capabilities(config: dict[str, Any]) -> None:
    config["HostConfig"]["CapDrop"] = []


def _writable_root(config: dict[str, Any]) -> None:
    config["HostConfig"]["ReadonlyRootfs"] = False


def _new_privileges(config: dict[str, Any]) -> None:
    config["HostConfig"]["SecurityOpt"] = []


def _host_pid(config: dict[str, Any]) -> None:
    config["HostConfig"]["PidMode"] = "host"


def _device(config: dict[str, Any]) -> None:
    config["HostConfig"]["Devices"] = [{"PathOnHost": "/dev/kmsg", "PathInContainer": "/dev/kmsg"}]


def _second_network(config: dict[str, Any]) -> None:
    config["NetworkingConfig"]["EndpointsConfig"]["wopr.other.net"] = {}


def _no_memory_limit(config: dict[str, Any]) -> None:
    del config["HostConfig"]["Memory"]


@pytest.mark.parametrize(
    "weaken",
    [
        _privileged,
        _socket_bind,
        _socket_mount,
        _sys_admin,
        _keeps_capabilities,
        _writable_root,
        _new_privileges,
        _host_pid,
        _device,
        _second_network,
        _no_memory_limit,
    ],
)
def test_a_weakened_config_is_refused(weaken: Any) -> None:
    config = container_config(_spec())
    check_hardened(config)  # what create sends passes
    weaken(config)
    with pytest.raises(UnsafeContainerSpec):
        check_hardened(config)
