"""Tenant isolation: each tenant's bots share a bridge network of their own, and the API scopes bots to tenants.

Reachability is checked with real containers: a bot execs busybox `nc` against another bot's address.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import aiodocker
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import STUB_IMAGE, TOKEN, Platform, PlatformFactory
from tests.integration.test_hardening import docker_exec, inspect, tenant_network
from tests.integration.test_lifecycle import _instance_get
from tests.integration.test_reconciler import (
    FAST,
    eventually,
    remove_quietly,
    repairs_for,
    wait_for_passes,
    wait_for_repair,
)
from wopr_platform.templates.loader import packaged_directory


def as_tenant(platform: Platform, tenant: str) -> httpx.AsyncClient:
    """A client of the platform acting for `tenant` (the operator token plus X-Tenant-Id)."""
    return httpx.AsyncClient(
        base_url=platform.url,
        headers={"Authorization": f"Bearer {TOKEN}", "X-Tenant-Id": tenant},
        timeout=60,
        trust_env=False,
    )


async def create_for(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"name": "bot-" + uuid.uuid4().hex[:8], "image": STUB_IMAGE, **fields}
    response = await client.post("/fleet/bots", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def healthy(client: httpx.AsyncClient, bot_id: str) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        status = (await client.get(f"/fleet/bots/{bot_id}")).json()
        return dict(status) if status.get("health") == "healthy" else None

    found: dict[str, Any] = await eventually(check, f"bot {bot_id} healthy")
    return found


def address(info: dict[str, Any], network: str) -> str:
    return str(info["NetworkSettings"]["Networks"][network]["IPAddress"])


async def reaches(container_id: str, ip: str) -> bool:
    """Can the container get the instance's /health at `ip` (3 s to connect)? (busybox nc: the static
    busybox's wget crashes in its resolver)"""
    request = f"printf 'GET /health HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 7437"
    code, output = await docker_exec(container_id, "sh", "-c", request)
    return code == 0 and '{"status":"ok"}' in output


async def test_a_bot_reaches_its_own_tenant_only_and_the_platform_reaches_every_bot(
    platform: Platform, docker: aiodocker.Docker
) -> None:
    async with as_tenant(platform, "acme") as acme, as_tenant(platform, "globex") as globex:
        a1, a2 = await create_for(acme), await create_for(acme)
        b1 = await create_for(globex)
        for client, bot in ((acme, a1), (acme, a2), (globex, b1)):
            await healthy(client, bot["id"])  # probed by the platform, from the host, on the tenant network
    net_a, net_b = tenant_network(platform, "acme"), tenant_network(platform, "globex")
    info_a1, info_a2, info_b1 = [await inspect(docker, bot["containerId"]) for bot in (a1, a2, b1)]
    assert list(info_a1["NetworkSettings"]["Networks"]) == [net_a]
    assert list(info_a2["NetworkSettings"]["Networks"]) == [net_a]
    assert list(info_b1["NetworkSettings"]["Networks"]) == [net_b]
    assert info_b1["Config"]["Labels"]["wopr.tenant"] == "globex"
    assert info_b1["Config"]["Labels"]["wopr.network"] == net_b

    for name, tenant in ((net_a, "acme"), (net_b, "globex")):
        network = await (await docker.networks.get(name)).show()
        assert network["Driver"] == "bridge" and network["Internal"] is False
        assert network["Labels"] == {
            "wopr.managed": "true",
            "wopr.platform": platform.settings.platform_id,
            "wopr.tenant": tenant,
        }
        assert network["Options"].get("com.docker.network.bridge.enable_icc") == "true"

    # the address the platform probes and routes to is the one on the tenant network
    observed = platform.app.state.services.observed
    for bot, info, network in ((a1, info_a1, net_a), (b1, info_b1, net_b)):
        assert observed.for_bot(bot["id"], bot["containerId"]).ip_address == address(info, network)
        assert (await _instance_get(docker, bot["containerId"], "/health")).json() == {"status": "ok"}

    # within a tenant bots may talk; across tenants nothing gets through, either way
    assert await reaches(a1["containerId"], address(info_a2, net_a))
    assert not await reaches(a1["containerId"], address(info_b1, net_b))
    assert not await reaches(b1["containerId"], address(info_a1, net_a))
    assert not await reaches(b1["containerId"], address(info_a2, net_a))


async def test_a_container_on_the_default_bridge_cannot_reach_a_bot(
    platform: Platform, docker: aiodocker.Docker
) -> None:
    bot = await platform.create_bot()
    await platform.wait_for(bot["id"], health="healthy")
    ip = address(await inspect(docker, bot["containerId"]), tenant_network(platform))
    outsider = await docker.containers.create(
        {
            "Image": STUB_IMAGE,
            "Entrypoint": ["/bin/sleep", "60"],
            "Labels": {"wopr.platform": platform.settings.platform_id},  # removed with the test's objects
        },
        name="outsider-" + uuid.uuid4().hex[:8],
    )
    try:
        await outsider.start()
        assert not await reaches(outsider.id, ip)
    finally:
        await remove_quietly(docker, outsider.id)


PER_BOT_ROUTES = [
    ("get", "", None),
    ("patch", "", {"description": "taken over"}),
    ("patch", "", {"resources": {"memoryMb": 64}}),
    ("delete", "", None),
    ("delete", "?removeVolumes=true", None),
    ("post", "/start", None),
    ("post", "/stop", None),
    ("post", "/restart", None),
    ("get", "/logs?tail=10", None),
    ("post", "/update", None),
    ("get", "/image-status", None),
    ("get", "/updates", None),
]


async def test_another_tenants_bot_is_a_404_on_every_route_and_lists_are_scoped(
    platform: Platform, docker: aiodocker.Docker
) -> None:
    async with as_tenant(platform, "a") as tenant_a, as_tenant(platform, "b") as tenant_b:
        bot = await create_for(tenant_a, description="a's")
        await healthy(tenant_a, bot["id"])
        for method, suffix, body in PER_BOT_ROUTES:
            response = await tenant_b.request(method, f"/fleet/bots/{bot['id']}{suffix}", json=body)
            assert response.status_code == 404, (method, suffix, response.text)
            assert response.json()["details"]["code"] == "not_found"
        # the default tenant (no header) is another tenant too
        assert (await platform.client.get(f"/fleet/bots/{bot['id']}")).status_code == 404

        assert (await tenant_b.get("/fleet/bots")).json() == {"bots": []}
        assert (await platform.client.get("/fleet/bots")).json() == {"bots": []}
        listed = (await tenant_a.get("/fleet/bots")).json()["bots"]
        assert [b["id"] for b in listed] == [bot["id"]]
        assert [d for d in (await tenant_b.get("/fleet/drift")).json()["drift"] if d["botId"] == bot["id"]] == []

        # nothing b did touched a's bot
        status = (await tenant_a.get(f"/fleet/bots/{bot['id']}")).json()
        assert status["containerId"] == bot["containerId"] and status["state"] == "running"
        assert status["description"] == "a's" and status["desiredState"] == "running"
        assert status["updatedAt"] == bot["updatedAt"]
        info = await inspect(docker, bot["containerId"])
        assert info["State"]["Running"] is True
        volume = [m["Name"] for m in info["Mounts"] if m["Destination"] == "/data"]
        assert volume == [f"wopr-{platform.settings.platform_id}.a.data-{bot['id']}"]

        # one name per tenant: b may use the name a uses
        again = await create_for(tenant_b, name=bot["name"])
        assert again["id"] != bot["id"]


async def test_global_actions_are_the_platform_operators_only(make_platform: PlatformFactory, tmp_path: Path) -> None:
    """Actions and reads that reach beyond one tenant (reloading the templates every tenant uses, the fleet's
    rollouts) are a 403 for a caller acting for another tenant, and nothing happens; the operator acting for the
    default tenant (no header, or `default`) may take them."""
    folder = tmp_path / "templates"
    folder.mkdir()
    shutil.copy(packaged_directory() / "whatsapp-opencode.yaml", folder)
    platform = await make_platform(FLEET_TEMPLATES_DIR=str(folder))
    shutil.copy(packaged_directory() / "telegram-anthropic.yaml", folder)  # picked up by the next reload only
    rollout = f"/fleet/rollouts/{uuid.uuid4()}"

    async with as_tenant(platform, "acme") as acme, as_tenant(platform, "default") as default:
        for method, url in (("POST", "/fleet/templates/reload"), ("GET", "/fleet/rollouts"), ("GET", rollout)):
            response = await acme.request(method, url)
            assert response.status_code == 403, (method, url, response.text)
            assert set(response.json()) == {"error", "details"}
            assert response.json()["details"]["code"] == "platform_admin_required"
        listed = (await acme.get("/fleet/templates")).json()["templates"]  # the shared catalog stays readable
        assert [t["name"] for t in listed] == ["whatsapp-opencode"]  # the refused reload did nothing

        reloaded = await default.post("/fleet/templates/reload")
        assert reloaded.status_code == 200, reloaded.text
        assert reloaded.json()["loaded"] == ["telegram-anthropic", "whatsapp-opencode"]
        assert (await default.get("/fleet/rollouts")).json() == {"rollouts": []}
        assert (await platform.client.get("/fleet/rollouts")).status_code == 200
        assert (await platform.client.get(rollout)).status_code == 404
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False) as anonymous:
        assert (await anonymous.post("/fleet/templates/reload")).status_code == 401


@pytest.mark.parametrize("tenant", ["", "A", "a.b", "a_b", "-a", "a-", "../a", "a b", "a" * 64, "tënant", "a\tb"])
async def test_an_invalid_x_tenant_id_is_a_400(platform: Platform, tenant: str) -> None:
    response = await platform.client.get("/fleet/bots", headers={"X-Tenant-Id": tenant.encode()})
    assert response.status_code == 400, response.text
    assert "X-Tenant-Id" in response.json()["error"]
    # the token is checked first: an anonymous caller learns nothing from the header
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False) as anonymous:
        response = await anonymous.get("/fleet/bots", headers={"X-Tenant-Id": tenant.encode()})
    assert response.status_code == 401


async def test_a_valid_x_tenant_id_is_accepted_and_documented(platform: Platform) -> None:
    for tenant in ("a", "default", "acme-2", "0", "z" * 63):
        response = await platform.client.get("/fleet/bots", headers={"X-Tenant-Id": tenant})
        assert response.status_code == 200, response.text
    document = (await platform.client.get("/openapi.json")).json()
    parameters = document["paths"]["/fleet/bots/{bot_id}"]["get"]["parameters"]
    assert any(p["in"] == "header" and p["name"] == "X-Tenant-Id" for p in parameters)


# --- drift: the network is part of what a container must match -------------------------------------------------


def _legacy_hash(image: str, env: dict[str, str], volume: str, restart: str) -> str:
    """The spec hash as platforms before tenant networks and hardening stamped it."""
    payload = json.dumps({"image": image, "env": env, "volume": volume, "restart": restart}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


async def test_a_bot_made_before_tenant_networks_is_moved_onto_its_network_once(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    """An upgrade: the bot's container was made the old way (default bridge, no hardening, old hash)."""
    first = await make_platform(**FAST)
    bot = await first.create_bot(env={"STUB_MESSAGE": "kept"})
    await first.wait_for(bot["id"], health="healthy")
    await first.stop()

    current = await inspect(docker, bot["containerId"])
    volume = next(m["Name"] for m in current["Mounts"] if m["Destination"] == "/data")
    labels = {k: v for k, v in current["Config"]["Labels"].items() if k != "wopr.network"}
    labels["wopr.spec-hash"] = _legacy_hash(STUB_IMAGE, {"STUB_MESSAGE": "kept"}, volume, "unless-stopped")
    await remove_quietly(docker, bot["containerId"])
    await (await docker.networks.get(tenant_network(first))).delete()  # there was no tenant network yet
    legacy = await docker.containers.create(
        {
            "Image": STUB_IMAGE,
            "Env": current["Config"]["Env"],
            "Labels": labels,
            "HostConfig": {
                "Init": True,
                "RestartPolicy": {"Name": "unless-stopped"},
                "Mounts": [{"Type": "volume", "Source": volume, "Target": "/data"}],
            },
        },
        name=f"wopr-{bot['id']}",
    )
    await legacy.start()
    engine = create_async_engine(first.settings.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE bots SET container_id = :container WHERE id = :bot"),
                {"container": legacy.id, "bot": bot["id"]},
            )
    finally:
        await engine.dispose()
    assert list((await inspect(docker, legacy.id))["NetworkSettings"]["Networks"]) == ["bridge"]

    second = await make_platform(**FAST, WOPR_PLATFORM_ID=first.settings.platform_id)
    await wait_for_repair(second, bot["id"], "changed", "recreated")

    async def moved() -> dict[str, Any] | None:
        status = await second.bot(bot["id"])
        fresh = status["containerId"] != legacy.id and status["health"] == "healthy"
        return status if fresh else None

    status = await eventually(moved, "the bot on its tenant network and healthy")
    info = await inspect(docker, status["containerId"])
    assert list(info["NetworkSettings"]["Networks"]) == [tenant_network(second)]
    assert info["HostConfig"]["ReadonlyRootfs"] is True and info["HostConfig"]["CapDrop"] == ["ALL"]
    # the same volume (the boot counter goes on), the legacy container gone, and no further repair
    assert (await _instance_get(docker, status["containerId"], "/state")).json() == {"boots": 3}
    containers = await docker.containers.list(all=True, filters={"label": [f"wopr.bot-id={bot['id']}"]})
    assert [c.id for c in containers] == [status["containerId"]]
    await wait_for_passes(second, 3)
    assert (await second.bot(bot["id"]))["containerId"] == status["containerId"]
    assert len(await repairs_for(second, bot["id"])) == 1


async def test_a_bot_joined_to_another_network_behind_our_back_is_recreated(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    platform = await make_platform(**FAST, FLEET_RESYNC_INTERVAL=1)
    async with as_tenant(platform, "a") as tenant_a, as_tenant(platform, "b") as tenant_b:
        bot_a = await create_for(tenant_a)
        bot_b = await create_for(tenant_b)
        await healthy(tenant_a, bot_a["id"])
        await healthy(tenant_b, bot_b["id"])
        # someone with engine access bridges a's bot into b's network
        other = await docker.networks.get(tenant_network(platform, "b"))
        await other.connect({"Container": bot_a["containerId"]})

        async def repaired() -> bool:
            repairs = (await tenant_a.get("/fleet/drift")).json()["repairs"]  # the drift report is per tenant
            return any(r["botId"] == bot_a["id"] and r["kind"] == "changed" and r["outcome"] == "ok" for r in repairs)

        await eventually(repaired, "the bridged container recreated")
        status = await healthy(tenant_a, bot_a["id"])
        assert status["containerId"] != bot_a["containerId"]
        networks = (await inspect(docker, status["containerId"]))["NetworkSettings"]["Networks"]
        assert list(networks) == [tenant_network(platform, "a")]
        assert (await tenant_b.get(f"/fleet/bots/{bot_b['id']}")).json()["containerId"] == bot_b["containerId"]


async def test_a_tenant_network_is_removed_when_its_last_bot_is_gone_and_made_again_when_needed(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    platform = await make_platform(**FAST)
    label = f"wopr.platform={platform.settings.platform_id}"

    async def networks() -> set[str]:
        return {n["Name"] for n in await docker.networks.list(filters={"label": [label]})}

    async with as_tenant(platform, "gone") as gone, as_tenant(platform, "stays") as stays:
        leaving = await create_for(gone)
        staying = await create_for(stays)
        await healthy(gone, leaving["id"])
        assert await networks() == {tenant_network(platform, "gone"), tenant_network(platform, "stays")}
        assert (await gone.delete(f"/fleet/bots/{leaving['id']}")).status_code == 204

        async def swept() -> bool:
            return await networks() == {tenant_network(platform, "stays")}

        await eventually(swept, "the empty tenant's network removed")
        await wait_for_passes(platform, 2)
        assert await networks() == {tenant_network(platform, "stays")}  # a tenant with a bot keeps its network
        assert (await stays.get(f"/fleet/bots/{staying['id']}")).json()["health"] == "healthy"

        back = await create_for(gone)
        await healthy(gone, back["id"])
        assert tenant_network(platform, "gone") in await networks()
