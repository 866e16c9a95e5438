"""Bots and the host: from inside a bot, the host's addresses answer nothing the platform does not offer bots.

Every attempt is made from a real bot container (busybox `nc` through `docker exec`) against real listeners the
test opens on the host: on the tenant network's gateway, on all the host's addresses, and the platform's own API
(a `wopr-platform serve` process listening on 0.0.0.0, as by default). The firewall is the host's real one; each
test's platform id has chains of its own, removed after it (tests.conftest.remove_firewall_chains).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import aiodocker
import httpx
import pytest

from tests.conftest import TOKEN, PlatformFactory
from tests.integration.process import PlatformProcess, ProcessPlatforms, process_platforms
from tests.integration.test_hardening import docker_exec, inspect, tenant_network
from tests.integration.test_reconciler import eventually
from tests.integration.test_tenants import address, create_for, healthy, reaches
from tests.ports import free_port
from wopr_platform.core.addresses import HostPort
from wopr_platform.firewall.iptables import Chains, HostFirewall, Installed, Ruleset

pytestmark = pytest.mark.slow
NC_WAIT = 2  # seconds busybox nc waits for a connection: what "nothing answers" means here


@contextlib.asynccontextmanager
async def listener(host: str, port: int) -> AsyncIterator[bytes]:
    """A TCP service on the host that greets every connection with a banner of its own (yielded)."""
    banner = f"host-service-{uuid.uuid4().hex[:8]}".encode()

    async def greet(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(banner + b"\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, host, port, reuse_address=True)
    try:
        yield banner
    finally:
        server.close()
        await server.wait_closed()


async def answer_from(container_id: str, ip: str, port: int) -> str:
    """What the container gets back from `ip:port` over TCP ("" when nothing answers within NC_WAIT)."""
    request = f"printf 'GET /health HTTP/1.0\\r\\n\\r\\n' | nc -w {NC_WAIT} {ip} {port}"
    _, output = await docker_exec(container_id, "sh", "-c", request)
    return output


# what every answer of the platform's API carries: an answer without it (or a listener's banner) comes from no
# service of this host (an address given up during the probe leaves the machine, and something out there answers)
API_SIGNATURE = "x-request-id:"


async def answers(container_id: str, targets: Iterable[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """Every target tried at once from the container; the ones that answered, with their answers."""
    targets = list(targets)
    before = host_addresses()
    found = await asyncio.gather(*(answer_from(container_id, ip, port) for ip, port in targets))
    # every target is one of the host's own addresses; one the host gave up before or during the probe (the bridge
    # of another test's tenant network, removed by a parallel worker, maybe after the caller listed it) is no
    # longer the host's: a packet to it leaves the machine like any other, and whatever answers out there is no
    # service on this host. Only the addresses the host held all along count.
    kept = before & host_addresses()
    # busybox prints its own complaints ("nc: can't connect ...", "nc: timed out"); those are not answers
    return {
        target: text
        for target, text in zip(targets, found, strict=True)
        if text and "nc: " not in text and target[0] in kept and _from_this_host(text)
    }


def _from_this_host(text: str) -> bool:
    """An answer of one of the test's listeners (its banner) or of the platform's API."""
    return text.startswith("host-service-") or API_SIGNATURE in text.lower()


async def gateway(docker: aiodocker.Docker, network: str) -> str:
    """The tenant network's gateway: the host's own address on the network's bridge."""
    data = await (await docker.networks.get(network)).show()
    return str(data["IPAM"]["Config"][0]["Gateway"])


async def bridge_of(docker: aiodocker.Docker, network: str) -> str:
    data = await (await docker.networks.get(network)).show()
    return str((data.get("Options") or {}).get("com.docker.network.bridge.name") or "br-" + data["Id"][:12])


def host_addresses() -> set[str]:
    """Every IPv4 address of the host but loopback's (bots have a loopback of their own)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"], check=True, capture_output=True, text=True).stdout
    found = {line.split()[3].split("/")[0] for line in out.splitlines() if " inet " in f" {line} "}
    return {ip for ip in found if not ipaddress.IPv4Address(ip).is_loopback}


async def installed(platform_id: str) -> Installed:
    return await HostFirewall(platform_id).read()


async def iptables(*args: str) -> None:
    process = await asyncio.create_subprocess_exec("iptables", *args)
    assert await process.wait() == 0, args


async def ready(client: httpx.AsyncClient) -> dict[str, Any]:
    return dict((await client.get("/health/ready")).json())


async def start_serving_everywhere(group: ProcessPlatforms, **settings: str) -> PlatformProcess:
    """A platform process on the default HOST (0.0.0.0), as in production."""
    group.extra_env.update({"HOST": "0.0.0.0", **settings})
    return await group.start()


def tenant_client(url: str, tenant: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {TOKEN}", "X-Tenant-Id": tenant}, timeout=60, trust_env=False
    )


def api_port(process: PlatformProcess) -> int:
    return int(process.url.rsplit(":", 1)[1])


async def platform_bot(platform: PlatformProcess, tenant: str) -> dict[str, Any]:
    """A bot of `tenant`, once the platform has probed it healthy (from the host)."""
    async with tenant_client(platform.url, tenant) as client:
        created = await create_for(client)
        await healthy(client, created["id"])
        return created


# --- the host answers nothing ------------------------------------------------------------------------------


async def test_a_bot_reaches_no_service_on_the_host_and_the_platform_still_reaches_it(
    database_url: str, tmp_path: Path, docker: aiodocker.Docker
) -> None:
    """The finding: a service on the tenant network's gateway, one on every host address (0.0.0.0) and the
    platform's own API (HOST=0.0.0.0) all answered a bot. Now none does, from any host address, while the
    platform's health probes of the bot (answers to the host's own connections) keep working.

    The check interval is an hour: the bots' network is covered when it is made (before its first container),
    not by a later periodic pass."""
    async with process_platforms(database_url, tmp_path) as group:
        with group.reporting():
            platform = await start_serving_everywhere(group, BOT_HOST_CHECK_INTERVAL="3600")
            created = await platform_bot(platform, "acme")
            network = f"wopr-{group.platform_id}.acme.net"
            gw = await gateway(docker, network)
            shared, on_gateway = free_port(), free_port()
            async with listener("0.0.0.0", shared) as banner, listener(gw, on_gateway) as gw_banner:
                # the listeners answer: the host itself gets their banners
                for ip, port, expected in ((gw, shared, banner), (gw, on_gateway, gw_banner)):
                    reader, writer = await asyncio.open_connection(ip, port)
                    assert (await reader.readline()).strip() == expected
                    writer.close()
                targets = [(ip, shared) for ip in host_addresses() | {gw}]
                targets += [(gw, on_gateway), (gw, api_port(platform))]
                targets += [(ip, api_port(platform)) for ip in host_addresses()]
                assert await answers(created["containerId"], targets) == {}
            # the platform's probes (every second, unhealthy after three failures) still get their answers
            await asyncio.sleep(2)
            async with tenant_client(platform.url, "acme") as acme:
                assert (await acme.get(f"/fleet/bots/{created['id']}")).json()["health"] == "healthy"
            body = await ready(platform.client)
            assert body["checks"]["hostIsolation"] == {"ok": True, "enabled": True}, body
            # IPv6 is no way around it: the tenant networks have none, and Docker turns it off in their containers
            code, output = await docker_exec(created["containerId"], "cat", "/proc/sys/net/ipv6/conf/all/disable_ipv6")
            assert (code, output.strip()) == (0, "1")


async def test_with_isolation_off_the_same_attempts_answer(
    database_url: str, tmp_path: Path, docker: aiodocker.Docker
) -> None:
    """The control, and the finding as it was: with BOT_HOST_ISOLATION=false (a host that keeps bots off with a
    firewall of its own) the platform installs nothing, and a bot gets the host's services and API."""
    async with process_platforms(database_url, tmp_path) as group:
        with group.reporting():
            platform = await start_serving_everywhere(group, BOT_HOST_ISOLATION="false")
            created = await platform_bot(platform, "acme")
            gw = await gateway(docker, f"wopr-{group.platform_id}.acme.net")
            port = free_port()
            async with listener("0.0.0.0", port) as banner:
                got = await answers(created["containerId"], [(gw, port), (gw, api_port(platform))])
            assert banner.decode() in got[(gw, port)]
            assert got[(gw, api_port(platform))].startswith("HTTP/1.1 200")
            nothing = Chains(gate=None, policy=None, jumps=0)
            assert await installed(group.platform_id) == Installed(host=nothing, across=nothing)
            body = await ready(platform.client)
            assert body["checks"]["hostIsolation"] == {"ok": True, "enabled": False}, body


async def test_an_offered_port_is_reachable_and_nothing_else(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    """BOT_HOST_PORTS (the hook for services the platform offers bots on purpose, such as a model gateway):
    an offered port answers on the host's addresses, the port next to it does not."""
    offered, other = free_port(), free_port()
    platform = await make_platform(BOT_HOST_PORTS=f"{offered}/tcp")
    bot = await platform.create_bot()
    await platform.wait_for(bot["id"], health="healthy")
    gw = await gateway(docker, tenant_network(platform))
    async with listener("0.0.0.0", offered) as banner, listener("0.0.0.0", other):
        got = await answers(bot["containerId"], [(gw, offered), (gw, other)])
    assert list(got) == [(gw, offered)] and banner.decode() in got[(gw, offered)]
    wanted = HostFirewall(platform.settings.platform_id).rules(Ruleset(frozenset(), (HostPort(offered),)))
    assert (await installed(platform.settings.platform_id)).host.policy == wanted.host.policy


# --- the rules ---------------------------------------------------------------------------------------------


async def test_the_rules_are_one_jump_and_one_rule_per_tenant_network_and_a_restart_adds_none(
    database_url: str, tmp_path: Path, docker: aiodocker.Docker
) -> None:
    async with process_platforms(database_url, tmp_path) as group:
        with group.reporting():
            first = await start_serving_everywhere(group)
            await platform_bot(first, "acme")
            await platform_bot(first, "globex")
            bridges = {await bridge_of(docker, f"wopr-{group.platform_id}.{t}.net") for t in ("acme", "globex")}
            firewall = HostFirewall(group.platform_id)
            gate, policy = firewall.gate, firewall.policy
            expected = firewall.rules(Ruleset(frozenset(bridges)))
            assert expected.host == Chains(
                gate=(
                    f"-A {gate} ! -i br-+ -j RETURN",  # not from a bridge: one comparison
                    *(f"-A {gate} -i {bridge} -j {policy}" for bridge in sorted(bridges)),
                ),
                policy=(f"-A {policy} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN", f"-A {policy} -j DROP"),
                jumps=1,
            )
            assert expected.across.gate == expected.host.gate and expected.across.jumps == 1
            # not to a bridge: one comparison; then within each network; to none other
            assert len(expected.across.policy or ()) == 1 + 2 * len(bridges)
            assert await installed(group.platform_id) == expected
            assert await first.terminate() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
            # a stopped platform leaves its rules: its bots keep running and must stay off the host meanwhile
            assert await installed(group.platform_id) == expected
            second = await start_serving_everywhere(group)
            assert (await ready(second.client))["checks"]["hostIsolation"]["ok"] is True
            assert await installed(group.platform_id) == expected
            await second.terminate()


async def test_rules_removed_or_changed_behind_its_back_are_put_back(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    """Each way someone else can break the chains (only this test's own: INPUT and the other chains are shared
    with every other platform on the host) is found by the periodic check and put right, counted as a repair."""
    platform = await make_platform(BOT_HOST_CHECK_INTERVAL=0.5)
    bot = await platform.create_bot()
    await platform.wait_for(bot["id"], health="healthy")
    platform_id = platform.settings.platform_id
    isolation = platform.app.state.services.isolation
    firewall = HostFirewall(platform_id)
    expected = await installed(platform_id)
    assert (expected.host.jumps, expected.across.jumps) == (1, 1)
    assert expected.bridges == {await bridge_of(docker, tenant_network(platform))}

    async def back() -> bool:
        return await installed(platform_id) == expected

    async def repaired(count: int) -> bool:  # the platform counts its repair once its rewrite has returned
        return isolation.repairs >= count and await back()

    breakages = [
        ("-D", "INPUT", "-j", firewall.gate),  # the jump taken out
        ("-F", firewall.policy),  # the bots' policy flushed
        ("-F", firewall.gate),  # the bridges forgotten
        ("-I", "INPUT", "1", "-j", firewall.gate),  # the jump twice
        ("-I", firewall.policy, "1", "-j", "RETURN"),  # the policy opened
        ("-t", "mangle", "-D", "FORWARD", "-j", firewall.gate),  # the same in the other table
        ("-t", "mangle", "-F", firewall.policy),
        ("-t", "mangle", "-I", "FORWARD", "1", "-j", firewall.gate),
    ]
    for count, breakage in enumerate(breakages, start=1):
        await iptables(*breakage)
        await eventually(lambda n=count: repaired(n), f"the chains put back after iptables {' '.join(breakage)}", 10)
        assert isolation.repairs == count
    gw = await gateway(docker, tenant_network(platform))
    port = free_port()
    async with listener("0.0.0.0", port):
        assert await answers(bot["containerId"], [(gw, port)]) == {}
    # a whole flush of the chains, as `iptables -F` by someone else would do to them
    await iptables("-F", firewall.gate)
    await iptables("-F", firewall.policy)
    await iptables("-D", "INPUT", "-j", firewall.gate)
    await eventually(back, "the chains put back after a flush", timeout=10)


# --- other tenants' bots -----------------------------------------------------------------------------------


async def test_a_bot_reaches_its_own_tenant_but_never_another_tenants_bots(
    database_url: str, tmp_path: Path, docker: aiodocker.Docker
) -> None:
    """Docker's own isolation chains drop traffic from one bridge to another, except in the moments dockerd
    re-inserts its FORWARD jumps (on every network it creates or removes). The platform's chain in the mangle table,
    which dockerd never rewrites, drops it first, so it holds while networks come and go; its DROP counters show
    it was that rule. Bots of one tenant still talk to each other."""
    async with process_platforms(database_url, tmp_path) as group:
        with group.reporting():
            platform = await start_serving_everywhere(group)
            a1, a2 = await platform_bot(platform, "acme"), await platform_bot(platform, "acme")
            b1 = await platform_bot(platform, "globex")
            net_a, net_b = (f"wopr-{group.platform_id}.{t}.net" for t in ("acme", "globex"))
            ip_a1, ip_a2 = [address(await inspect(docker, bot["containerId"]), net_a) for bot in (a1, a2)]
            ip_b1 = address(await inspect(docker, b1["containerId"]), net_b)
            assert await reaches(a1["containerId"], ip_a2)
            before = await across_drops(group.platform_id)

            churning = asyncio.Event()
            churn = asyncio.create_task(churn_networks(docker, group.platform_id, churning))
            try:
                await churning.wait()
                for _ in range(5):
                    reached = await asyncio.gather(
                        reaches(a1["containerId"], ip_b1),
                        reaches(b1["containerId"], ip_a1),
                        reaches(b1["containerId"], ip_a2),
                    )
                    assert reached == [False, False, False]
            finally:
                churn.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await churn
            assert await across_drops(group.platform_id) > before
            assert await reaches(a2["containerId"], ip_a1)


async def churn_networks(docker: aiodocker.Docker, platform_id: str, started: asyncio.Event) -> None:
    """Create and remove networks (not the platform's: no `wopr.managed` label) until cancelled."""
    while True:
        name = f"churn-{platform_id}-{uuid.uuid4().hex[:6]}"
        network = await docker.networks.create({"Name": name, "Labels": {"wopr.platform": platform_id}})
        started.set()
        await network.delete()


async def across_drops(platform_id: str) -> int:
    """Packets the platform's mangle chain dropped on their way from one tenant network to another."""
    out = subprocess.run(["iptables-save", "-c", "-t", "mangle"], check=True, capture_output=True, text=True).stdout
    policy = HostFirewall(platform_id).policy
    return sum(
        int(line[1:].split(":", 1)[0])
        for line in out.splitlines()
        if f" -A {policy} " in line and line.endswith("-j DROP")
    )


# --- no firewall -------------------------------------------------------------------------------------------


async def test_without_a_usable_firewall_it_is_reported_and_production_refuses_to_start(
    database_url: str, tmp_path: Path
) -> None:
    """Not silent: outside production the platform serves, logs an error and is not ready; in production it does
    not start."""
    async with process_platforms(database_url, tmp_path) as group:
        group.extra_env["PATH"] = str(tmp_path / "no-tools")  # no iptables to be found
        with group.reporting():
            development = await group.start()
            response = await development.client.get("/health/ready")
            assert response.status_code == 503
            assert response.json()["checks"]["hostIsolation"] == {
                "ok": False,
                "enabled": True,
                "reason": "iptables-save is not installed",
            }
            assert await development.terminate() in (0, -signal.SIGTERM)
            assert "bots are not kept off the host" in development.stderr()

            group.extra_env["ENV"] = "production"
            with pytest.raises(AssertionError, match="exited during start-up with 3"):
                await group.start()
            assert "refusing to start in production: bots could reach the host" in group.started[-1].stderr()


async def test_in_production_a_network_the_firewall_cannot_cover_gets_no_bot(
    make_platform: PlatformFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Production fails closed: when iptables is gone after the start, a bot of a new tenant is refused (503)
    rather than started where it could reach the host; a tenant whose network is covered is unaffected."""
    platform = await make_platform(ENV="production")
    first = await platform.create_bot()
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # the platform runs in this process
    async with tenant_client(platform.url, "newcomer") as newcomer:
        response = await newcomer.post("/fleet/bots", json={"name": "refused", "image": first["image"]})
        assert response.status_code == 503, response.text
        assert response.json()["details"]["code"] == "firewall_unavailable"
        assert (await newcomer.get("/fleet/bots")).json()["bots"] == []
    second = await platform.create_bot()  # the default tenant's network is covered already
    assert second["containerId"]
    body = await ready(platform.client)
    assert body["checks"]["hostIsolation"]["ok"] is False, body
