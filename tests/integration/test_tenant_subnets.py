"""Tenant networks take their subnets from FLEET_TENANT_SUBNETS, not from the engine's few default pools, so one
engine holds thousands of them.

Each test has a range of its own (`RANGES`), outside the default one every other test's platform uses, so tests in
parallel workers never take each other's subnets. Networks are made the way the platform makes them before a
tenant's first container: the engine adapter's `ensure_network`, then the host firewall covering its bridge.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
import uuid
from typing import Any

import aiodocker
import pytest

from tests.conftest import STUB_IMAGE, Platform, PlatformFactory, remove_networks
from tests.integration.test_hardening import inspect
from tests.integration.test_tenants import as_tenant, create_for, healthy
from wopr_platform.api.deps import Services
from wopr_platform.core import naming
from wopr_platform.core.networks import SubnetPool
from wopr_platform.docker.engine import DockerEngine

# one range per test (10.64.0.0/10 is the tests' own; the default 10.200.0.0/14 is every other test's)
RANGES = {
    "many": "10.64.0.0/18",  # 512 subnets of /27
    "bots": "10.64.64.0/24",
    "full": "10.64.65.0/27",  # one subnet: room for one tenant
    "foreign": "10.64.66.0/25",
    "race": "10.64.68.0/22",
}
MANY = 300  # tenant networks made by the test of many


def pool_of(key: str) -> SubnetPool:
    return SubnetPool.parse([RANGES[key]], 27)


def services_of(platform: Platform) -> Services:
    found = platform.app.state.services
    assert isinstance(found, Services)
    return found


async def make_network(platform: Platform, tenant: str) -> str:
    """The tenant's network as the platform makes it before the tenant's first container; returns its name."""
    services = services_of(platform)
    name = naming.network_name(platform.settings.platform_id, tenant)
    bridge = await services.docker.ensure_network(name, naming.network_labels(platform.settings.platform_id, tenant))
    if services.isolation is not None:
        await services.isolation.cover(bridge)
    return name


def subnet_of(network: dict[str, Any]) -> ipaddress.IPv4Network:
    (config,) = network["IPAM"]["Config"]
    subnet = ipaddress.IPv4Network(config["Subnet"])
    assert config["Gateway"] == str(subnet.network_address + 1)
    return subnet


async def subnets_by_name(docker: aiodocker.Docker, platform_id: str) -> dict[str, ipaddress.IPv4Network]:
    """The subnet of each network of the platform id (one listing)."""
    rows = await docker.networks.list(filters={"label": [f"wopr.platform={platform_id}"]})
    return {row["Name"]: subnet_of(row) for row in rows}


async def host_rules() -> int:
    """How many rules the host's IPv4 firewall holds, in every table (dockerd's, the platform's, anyone's)."""
    process = await asyncio.create_subprocess_exec("iptables-save", stdout=asyncio.subprocess.PIPE)
    out, _ = await process.communicate()
    return sum(1 for line in out.decode().splitlines() if line.startswith("-A "))


def in_range(subnet: ipaddress.IPv4Network, key: str) -> bool:
    return subnet.prefixlen == 27 and subnet.subnet_of(ipaddress.IPv4Network(RANGES[key]))


async def test_hundreds_of_tenant_networks_get_distinct_subnets_of_the_range(
    make_platform: PlatformFactory, docker: aiodocker.Docker, record_property: Any
) -> None:
    """300 tenant networks, one after another as tenants arrive, made as the containers layer makes them (the
    engine adapter, then the host firewall covering the bridge): each gets its own /27 of the range, the lowest
    free one, and the host firewall covers every bridge; removing them leaves none behind. The times are recorded
    (printed with -s, and as properties in a junit report), not asserted."""
    platform = await make_platform(FLEET_TENANT_SUBNETS=RANGES["many"])
    pid = platform.settings.platform_id
    services = services_of(platform)
    names = [naming.network_name(pid, f"tenant-{i:04d}") for i in range(MANY)]
    rules_before = await host_rules()
    isolation = services.isolation
    assert isolation is not None
    each: list[float] = []  # the engine making the network
    covers: list[float] = []  # the platform's chains taking its bridge in
    for i, name in enumerate(names):
        started = time.monotonic()
        bridge = await services.docker.ensure_network(name, naming.network_labels(pid, f"tenant-{i:04d}"))
        each.append(time.monotonic() - started)
        started = time.monotonic()
        await isolation.cover(bridge)
        covers.append(time.monotonic() - started)
    rules_after = await host_rules()

    subnets = await subnets_by_name(docker, pid)
    assert sorted(subnets) == sorted(names)
    assert len(set(subnets.values())) == MANY, "two tenant networks share a subnet"
    assert all(in_range(subnet, "many") for subnet in subnets.values())
    pool = pool_of("many")
    assert sorted(subnets.values()) == [pool.subnet(i) for i in range(MANY)]  # lowest free first, no gaps

    # the platform's chains hold every bridge, and a full rewrite of them at this size
    assert isolation.reason is None, isolation.reason
    bridges = set((await services.docker.list_bridges()).values())
    assert isolation.covered == bridges and len(bridges) == MANY
    check_started = time.monotonic()
    await isolation.check()  # in step: one iptables-save, nothing written
    check_seconds = time.monotonic() - check_started
    firewall = isolation._firewall
    await firewall.remove()
    rewrite_started = time.monotonic()
    await isolation.check()  # every rule of both tables written again, in one iptables-restore
    rewrite_seconds = time.monotonic() - rewrite_started
    assert isolation.covered == bridges and isolation.reason is None

    # the platform's own removal takes them all away
    removed_started = time.monotonic()
    for name in names:

        async def unused() -> bool:
            return True

        assert await services.docker.remove_network(name, unused)
    removed_seconds = time.monotonic() - removed_started
    assert await subnets_by_name(docker, pid) == {}

    figures = {
        "networks": MANY,
        "create_seconds": round(sum(each) + sum(covers), 2),
        "engine_first_10_ms": round(1000 * sum(each[:10]) / 10),
        "engine_last_10_ms": round(1000 * sum(each[-10:]) / 10),
        "cover_first_10_ms": round(1000 * sum(covers[:10]) / 10),
        "cover_last_10_ms": round(1000 * sum(covers[-10:]) / 10),
        "host_rules_added": rules_after - rules_before,
        "remove_seconds": round(removed_seconds, 2),
        "firewall_check_seconds": round(check_seconds, 3),
        "firewall_rewrite_seconds": round(rewrite_seconds, 3),
    }
    for key, value in figures.items():
        record_property(key, value)
    print(f"tenant networks at scale: {figures}")


async def test_bots_of_two_tenants_get_addresses_of_the_range_and_are_healthy(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    """Bots created through the API: each tenant's network has a subnet of its own in the range, each bot an
    address in its tenant's subnet, and the platform probes them healthy there."""
    platform = await make_platform(FLEET_TENANT_SUBNETS=RANGES["bots"])
    pid = platform.settings.platform_id
    async with as_tenant(platform, "acme") as acme, as_tenant(platform, "globex") as globex:
        bots = [(acme, await create_for(acme), "acme"), (globex, await create_for(globex), "globex")]
        for client, bot, _ in bots:
            await healthy(client, bot["id"])
    subnets = await subnets_by_name(docker, pid)
    assert len(subnets) == 2 and len(set(subnets.values())) == 2
    for _, bot, tenant in bots:
        network = naming.network_name(pid, tenant)
        assert in_range(subnets[network], "bots")
        info = await inspect(docker, bot["containerId"])
        ip = ipaddress.IPv4Address(info["NetworkSettings"]["Networks"][network]["IPAddress"])
        assert ip in subnets[network] and ip != subnets[network].network_address + 1


async def test_a_full_range_refuses_a_new_tenant_with_a_clear_error_and_leaves_nothing(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    """A range with room for one tenant: the first tenant's bots are made; a second tenant's bot is a 503
    `tenant_subnets_exhausted`, and no bot, container, volume or network of it remains."""
    platform = await make_platform(FLEET_TENANT_SUBNETS=RANGES["full"])
    pid = platform.settings.platform_id
    async with as_tenant(platform, "first") as first, as_tenant(platform, "second") as second:
        await create_for(first)
        response = await second.post("/fleet/bots", json={"name": "late", "image": STUB_IMAGE})
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["details"]["code"] == "tenant_subnets_exhausted"
        assert body["details"]["ranges"] == [RANGES["full"]] and body["details"]["size"] == 1
        assert "FLEET_TENANT_SUBNETS" in body["error"]
        assert (await second.get("/fleet/bots")).json()["bots"] == []
        await create_for(first)  # the tenant that has its network goes on as before
    scope = [f"wopr.platform={pid}", "wopr.tenant=second"]
    assert await docker.containers.list(all=True, filters={"label": scope}) == []
    assert (await docker.volumes.list(filters={"label": scope})).get("Volumes") in (None, [])
    assert [row["Name"] for row in await docker.networks.list(filters={"label": [f"wopr.platform={pid}"]})] == [
        naming.network_name(pid, "first")
    ]


async def test_a_subnet_held_by_a_network_not_the_platforms_is_skipped(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    """A network someone else made on the range's first subnet (no platform labels) is left alone; the tenant
    gets the next subnet."""
    platform = await make_platform(FLEET_TENANT_SUBNETS=RANGES["foreign"])
    pid = platform.settings.platform_id
    pool = pool_of("foreign")
    first = pool.subnet(0)
    foreign = await docker.networks.create(
        {
            "Name": f"foreign-{uuid.uuid4().hex[:8]}",
            "Labels": {"wopr.platform": pid},  # for the fixture's clean-up only: not the platform's (no wopr.managed)
            "IPAM": {"Driver": "default", "Config": [{"Subnet": str(first)}]},
        }
    )
    name = await make_network(platform, "acme")
    network = await (await docker.networks.get(name)).show()
    assert subnet_of(network) == pool.subnet(1)
    assert (await foreign.show())["IPAM"]["Config"][0]["Subnet"] == str(first)  # untouched


async def test_tenant_networks_made_at_once_by_two_platforms_get_distinct_subnets(
    make_platform: PlatformFactory, docker: aiodocker.Docker, caplog: pytest.LogCaptureFixture
) -> None:
    """The platform and another process (an engine adapter of another platform id, on the same range) make tenant
    networks at the same moment: each lists the engine, both pick the same lowest subnet, the engine refuses
    one of them ("Pool overlaps"), which takes the next; none fails, no two share a subnet."""
    caplog.set_level(logging.INFO, logger="wopr_platform.docker.engine")
    platform = await make_platform(FLEET_TENANT_SUBNETS=RANGES["race"])
    other_id = "t-" + uuid.uuid4().hex[:10]
    other = DockerEngine("unix:///var/run/docker.sock", timeout=30, platform_id=other_id, subnets=pool_of("race"))
    tenants = [f"tenant-{i}" for i in range(12)]

    async def by_other(tenant: str) -> str:
        name = naming.network_name(other_id, tenant)
        await other.ensure_network(name, naming.network_labels(other_id, tenant))
        return name

    try:
        made = await asyncio.gather(
            *(make_network(platform, tenant) for tenant in tenants), *(by_other(tenant) for tenant in tenants)
        )
        subnets = {
            **await subnets_by_name(docker, platform.settings.platform_id),
            **await subnets_by_name(docker, other_id),
        }
        assert sorted(subnets) == sorted(made) and len(made) == 24
        assert len(set(subnets.values())) == 24, "two tenant networks share a subnet"
        assert all(in_range(subnet, "race") for subnet in subnets.values())
        retries = [r for r in caplog.records if r.getMessage().startswith("tenant subnet taken meanwhile")]
        assert retries, "the two sides never raced for a subnet"
        print(f"subnets taken by the other side meanwhile, tried again: {len(retries)}")
    finally:
        await other.close()
        await remove_networks(docker, f"wopr.platform={other_id}")
