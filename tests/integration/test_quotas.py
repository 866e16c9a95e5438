"""Tenant quotas on the real engine and database: limits at create and PATCH, races, overrides, no drift."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiodocker
import httpx
import pytest
from sqlalchemy import select

from tests.conftest import BROKEN_IMAGE, STUB_IMAGE, TOKEN, Platform, PlatformFactory, several_replicas
from tests.integration.process import process_platforms
from tests.integration.test_templates import _secrets
from wopr_platform.core.settings import Settings
from wopr_platform.db.engine import create_engine
from wopr_platform.db.models import Bot, Operation, TenantQuota
from wopr_platform.fleet import resources

# --- helpers --------------------------------------------------------------------------------------------


def _body(**fields: Any) -> dict[str, Any]:
    return {"name": "q-" + uuid.uuid4().hex[:8], "image": STUB_IMAGE, **fields}


def _tenant_client(platform: Platform, tenant: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=platform.url,
        headers={"Authorization": f"Bearer {TOKEN}", "X-Tenant-Id": tenant},
        timeout=60,
        trust_env=False,
    )


def _refused(response: httpx.Response, quota: str, **expected: Any) -> None:
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["details"]["code"] == "quota_exceeded", body
    assert body["details"]["quota"] == quota, body
    for key, value in expected.items():
        assert body["details"][key] == value, body


async def _engine_objects(docker: aiodocker.Docker, platform_id: str) -> tuple[set[str], set[str]]:
    """(container ids, volume names) carrying the platform id's label."""
    label = f"wopr.platform={platform_id}"
    containers = {c.id for c in await docker.containers.list(all=True, filters={"label": [label]})}
    volumes = await docker.volumes.list(filters={"label": [label]})
    return containers, {v["Name"] for v in volumes.get("Volumes") or []}


async def _stored(settings: Settings) -> tuple[dict[str, tuple[int, int, int]], dict[str, tuple[int, int, int]], int]:
    """(usage rows, a fresh sum over the bots, journal rows), read from the database directly."""
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            rows = (await connection.execute(select(TenantQuota))).all()
            bots = (await connection.execute(select(Bot.tenant_id, Bot.resources))).all()
            journal = len((await connection.execute(select(Operation.id))).all())
    finally:
        await engine.dispose()
    usage = {row.tenant_id: (row.bots, row.memory_mb, row.mcpus) for row in rows if row.bots or row.memory_mb}
    fresh: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for tenant_id, own in bots:
        limits = resources.effective(own, settings.default_limits)
        total = fresh[tenant_id]
        total[0] += 1
        total[1] += limits.memory_mb
        total[2] += round(limits.cpus * 1000)
    return usage, {tenant: (t[0], t[1], t[2]) for tenant, t in fresh.items()}, journal


async def _assert_no_drift(platform: Platform) -> None:
    usage, fresh, journal = await _stored(platform.settings)
    assert usage == fresh
    assert journal == 0


async def _quota(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/fleet/quota")
    assert response.status_code == 200, response.text
    return dict(response.json())


# --- limits ---------------------------------------------------------------------------------------------


async def test_the_bots_quota_refuses_a_create_and_makes_nothing(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    platform = await make_platform(FLEET_TENANT_MAX_BOTS=2)
    first = await platform.create_bot()
    await platform.create_bot()
    before = await _engine_objects(docker, platform.settings.platform_id)

    refused = await platform.client.post("/fleet/bots", json=_body())

    _refused(refused, "bots", limit=2, used=2, requested=1)
    assert await _engine_objects(docker, platform.settings.platform_id) == before
    assert len((await platform.client.get("/fleet/bots")).json()["bots"]) == 2
    quota = await _quota(platform.client)
    assert quota["limits"] == {"maxBots": 2, "maxMemoryMb": 32768, "maxCpus": 32.0}
    assert quota["overrides"] == {"maxBots": None, "maxMemoryMb": None, "maxCpus": None}
    assert quota["usage"] == {"bots": 2, "memoryMb": 1024, "cpus": 2.0}
    await _assert_no_drift(platform)

    # a delete gives its share back
    assert (await platform.client.delete(f"/fleet/bots/{first['id']}")).status_code == 204
    assert (await _quota(platform.client))["usage"]["bots"] == 1
    await platform.create_bot()
    await _assert_no_drift(platform)


async def test_memory_and_cpu_quotas_at_create_and_patch(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    """Sums of effective limits: a bot's own resources, else FLEET_DEFAULT_MEMORY_MB / FLEET_DEFAULT_CPUS."""
    platform = await make_platform(FLEET_TENANT_MAX_MEMORY_MB=1024, FLEET_TENANT_MAX_CPUS=1.5)
    small = await platform.create_bot(resources={"memoryMb": 256, "cpus": 0.5})
    before = await _engine_objects(docker, platform.settings.platform_id)

    _refused(
        await platform.client.post("/fleet/bots", json=_body(resources={"memoryMb": 900})),
        "memoryMb",
        limit=1024,
        used=256,
        requested=900,
    )
    _refused(
        await platform.client.post("/fleet/bots", json=_body(resources={"memoryMb": 64, "cpus": 1.25})),
        "cpus",
        limit=1.5,
        used=0.5,
        requested=1.25,
    )
    assert await _engine_objects(docker, platform.settings.platform_id) == before
    await platform.create_bot()  # the defaults: 512 MB and 1 CPU, which fit exactly
    assert (await _quota(platform.client))["usage"] == {"bots": 2, "memoryMb": 768, "cpus": 1.5}

    # a PATCH that raises a limit past the quota changes nothing: same container, same profile
    small = await platform.wait_for(small["id"], state="running")
    before = await _engine_objects(docker, platform.settings.platform_id)
    raised = await platform.client.patch(f"/fleet/bots/{small['id']}", json={"resources": {"memoryMb": 600}})
    _refused(raised, "memoryMb", limit=1024, used=768, requested=344)
    after = await platform.bot(small["id"])
    assert after["containerId"] == small["containerId"]
    assert after["resources"] == small["resources"]
    assert await _engine_objects(docker, platform.settings.platform_id) == before
    _refused(
        await platform.client.patch(f"/fleet/bots/{small['id']}", json={"resources": {"cpus": 0.75}}),
        "cpus",
        requested=0.25,
    )

    # lowering one amount is never refused; then raising to exactly the limit is allowed
    lowered = await platform.client.patch(f"/fleet/bots/{small['id']}", json={"resources": {"cpus": 0.25}})
    assert lowered.status_code == 200, lowered.text
    back = await platform.client.patch(f"/fleet/bots/{small['id']}", json={"resources": {"memoryMb": None}})
    assert back.status_code == 200, back.text
    assert back.json()["resources"]["memoryMb"] == 512
    assert (await _quota(platform.client))["usage"] == {"bots": 2, "memoryMb": 1024, "cpus": 1.25}
    await _assert_no_drift(platform)


async def test_a_quota_of_zero_is_no_limit(make_platform: PlatformFactory) -> None:
    platform = await make_platform(FLEET_TENANT_MAX_BOTS=0, FLEET_TENANT_MAX_MEMORY_MB=0, FLEET_TENANT_MAX_CPUS=0)
    await platform.create_bot(resources={"memoryMb": 8192, "cpus": 2.0})
    quota = await _quota(platform.client)
    assert quota["limits"] == {"maxBots": 0, "maxMemoryMb": 0, "maxCpus": 0.0}
    assert quota["usage"] == {"bots": 1, "memoryMb": 8192, "cpus": 2.0}


# --- races ----------------------------------------------------------------------------------------------


async def test_twenty_concurrent_creates_reach_a_quota_of_five_exactly(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    platform = await make_platform(FLEET_TENANT_MAX_BOTS=5)

    responses = await asyncio.gather(*(platform.client.post("/fleet/bots", json=_body()) for _ in range(20)))

    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 5 + [409] * 15, [r.text for r in responses if r.status_code not in (201, 409)]
    for response in responses:
        if response.status_code == 409:
            _refused(response, "bots", limit=5, used=5, requested=1)
    created = {r.json()["id"] for r in responses if r.status_code == 201}
    containers, volumes = await _engine_objects(docker, platform.settings.platform_id)
    assert len(containers) == 5 and len(volumes) == 5
    assert {bot["id"] for bot in (await platform.client.get("/fleet/bots")).json()["bots"]} == created
    await _assert_no_drift(platform)


async def test_concurrent_patches_that_each_fit_alone_but_not_together(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    """Both pass the early check; the charge at the replacement's commit lets one through, and the other's old
    container comes back with its profile."""
    platform = await make_platform(FLEET_TENANT_MAX_MEMORY_MB=1024)
    bots = [await platform.create_bot(resources={"memoryMb": 256}) for _ in range(2)]
    bots = [await platform.wait_for(bot["id"], state="running") for bot in bots]

    for _ in range(3):  # the early check sees both as fitting most of the time; either way one must win
        responses = await asyncio.gather(
            *(platform.client.patch(f"/fleet/bots/{bot['id']}", json={"resources": {"memoryMb": 700}}) for bot in bots)
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 409], [r.text for r in responses]
        loser = next(bot for bot, r in zip(bots, responses, strict=True) if r.status_code == 409)
        _refused(next(r for r in responses if r.status_code == 409), "memoryMb", limit=1024)
        kept = await platform.wait_for(loser["id"], state="running")
        assert kept["containerId"] == loser["containerId"] and kept["resources"]["memoryMb"] == 256
        containers, _ = await _engine_objects(docker, platform.settings.platform_id)
        assert len(containers) == 2  # no parked or half-made container left
        await _assert_no_drift(platform)
        # back to the start for the next round
        winner = next(bot for bot, r in zip(bots, responses, strict=True) if r.status_code == 200)
        down = await platform.client.patch(f"/fleet/bots/{winner['id']}", json={"resources": {"memoryMb": 256}})
        assert down.status_code == 200, down.text
        bots = [await platform.wait_for(bot["id"], state="running") for bot in bots]


@several_replicas
async def test_two_replicas_sharing_the_database_never_pass_the_quota(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    """The check is the database's: each replica has its own locks and caches, and together they stop at 5."""
    shared = {"WOPR_PLATFORM_ID": "q-" + uuid.uuid4().hex[:10]}
    first = await make_platform(**shared)
    second = await make_platform(**shared)
    put = await first.client.put("/tenants/acme/quota", json={"maxBots": 5})
    assert put.status_code == 200, put.text

    async with _tenant_client(first, "acme") as one, _tenant_client(second, "acme") as two:
        # the tenant's first bot alone: it makes the tenant's network, which two replicas must not make at once
        assert (await one.post("/fleet/bots", json=_body())).status_code == 201
        responses = await asyncio.gather(
            *((one if i % 2 else two).post("/fleet/bots", json=_body()) for i in range(12))
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [201] * 4 + [409] * 8, [r.json().get("details") for r in responses]
        assert (await _quota(two))["usage"]["bots"] == 5
    containers, _ = await _engine_objects(docker, first.settings.platform_id)
    assert len(containers) == 5
    await _assert_no_drift(first)


# --- overrides ------------------------------------------------------------------------------------------


async def test_the_operator_sets_a_tenants_quota_and_a_tenant_only_reads_its_own(platform: Platform) -> None:
    put = await platform.client.put("/tenants/acme/quota", json={"maxBots": 1, "maxCpus": 2.5})
    assert put.status_code == 200, put.text
    assert put.json()["limits"] == {"maxBots": 1, "maxMemoryMb": 32768, "maxCpus": 2.5}
    assert put.json()["overrides"] == {"maxBots": 1, "maxMemoryMb": None, "maxCpus": 2.5}
    read = await platform.client.get("/tenants/acme/quota")
    assert read.status_code == 200 and read.json() == put.json()
    audited = (await platform.client.get("/audit", params={"action": "PUT /tenants/{tenant_id}/quota"})).json()
    assert [(e["targetKind"], e["targetId"], e["status"]) for e in audited["events"]] == [("tenant", "acme", 200)]

    async with _tenant_client(platform, "acme") as acme:
        assert (await acme.post("/fleet/bots", json=_body())).status_code == 201
        _refused(await acme.post("/fleet/bots", json=_body()), "bots", limit=1, used=1)
        own = await _quota(acme)
        assert own["tenantId"] == "acme" and own["usage"]["bots"] == 1 and own["limits"]["maxBots"] == 1
        # a tenant reads its own quota only, and sets none
        for response in (
            await acme.get("/tenants/acme/quota"),
            await acme.put("/tenants/acme/quota", json={"maxBots": 100}),
            await acme.get("/tenants/default/quota"),
        ):
            assert response.status_code == 403, response.text
            assert response.json()["details"]["code"] == "platform_admin_required"
        assert (await _quota(acme))["limits"]["maxBots"] == 1

    # the default tenant's quota is its own: acme's override does not apply to it
    assert (await _quota(platform.client))["limits"]["maxBots"] == 50
    await platform.create_bot()
    await platform.create_bot()

    # null goes back to the default
    reset = await platform.client.put("/tenants/acme/quota", json={"maxBots": None})
    assert reset.status_code == 200 and reset.json()["limits"]["maxBots"] == 50
    assert reset.json()["overrides"]["maxCpus"] is None  # a PUT replaces every override

    for bad in ({"maxBots": -1}, {"maxBots": "5"}, {"maxMemoryMb": 1.5}, {"unknown": 1}):
        response = await platform.client.put("/tenants/acme/quota", json=bad)
        assert response.status_code == 400, (bad, response.text)
    assert (await platform.client.get("/tenants/Not_A_Tenant/quota")).status_code == 400
    await _assert_no_drift(platform)


async def test_a_quota_lowered_below_the_usage_removes_nothing_and_refuses_growth(platform: Platform) -> None:
    bots = [await platform.create_bot() for _ in range(2)]
    assert (await platform.client.put("/tenants/default/quota", json={"maxBots": 1})).status_code == 200
    _refused(await platform.client.post("/fleet/bots", json=_body()), "bots", limit=1, used=2)
    assert len((await platform.client.get("/fleet/bots")).json()["bots"]) == 2
    # a change that does not grow the usage still goes through
    patched = await platform.client.patch(f"/fleet/bots/{bots[0]['id']}", json={"resources": {"memoryMb": 128}})
    assert patched.status_code == 200, patched.text
    await _assert_no_drift(platform)


# --- templates ------------------------------------------------------------------------------------------


async def test_templates_and_seeding_are_held_to_the_quota(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    platform = await make_platform(FLEET_TENANT_MAX_BOTS=2)
    secrets = _secrets()
    from_template = await platform.client.post(
        "/fleet/bots",
        json={"template": "slack-codex", "image": STUB_IMAGE, "variables": secrets, "name": "from-template"},
    )
    assert from_template.status_code == 201, from_template.text

    seeded = await platform.client.post("/fleet/seed", json={"variables": secrets, "image": STUB_IMAGE})

    assert seeded.status_code == 200, seeded.text
    result = seeded.json()
    assert len(result["created"]) == 1, result
    assert result["failed"] and {failure["code"] for failure in result["failed"]} == {"quota_exceeded"}
    containers, volumes = await _engine_objects(docker, platform.settings.platform_id)
    assert len(containers) == 2 and len(volumes) == 2
    _refused(
        await platform.client.post(
            "/fleet/bots", json={"template": "stable-discord", "image": STUB_IMAGE, "variables": secrets}
        ),
        "bots",
    )
    await _assert_no_drift(platform)


# --- no drift -------------------------------------------------------------------------------------------


async def test_usage_never_drifts_through_creates_failures_patches_and_deletes(platform: Platform) -> None:
    async with _tenant_client(platform, "drift-a") as a, _tenant_client(platform, "drift-b") as b:
        made: list[tuple[httpx.AsyncClient, str]] = []
        for client, fields in (
            (a, {}),
            (a, {"resources": {"memoryMb": 300, "cpus": 0.3}}),
            (b, {"resources": {"cpus": 2.0}}),
            (b, {}),
            (a, {"resources": {"memoryMb": 64}}),
        ):
            response = await client.post("/fleet/bots", json=_body(**fields))
            assert response.status_code == 201, response.text
            made.append((client, response.json()["id"]))
        # creates that fail after their bot was stored and charged: the container cannot start
        for client in (a, b):
            failed = await client.post("/fleet/bots", json=_body(image=BROKEN_IMAGE, resources={"memoryMb": 100}))
            assert failed.status_code >= 400, failed.text
        await _assert_no_drift(platform)
        # patches that raise, lower, reset, fail (rolled back) and leave resources alone
        for (client, bot_id), change in zip(
            made,
            (
                {"resources": {"memoryMb": 1024}},
                {"resources": {"memoryMb": None, "cpus": None}},
                {"resources": {"cpus": 0.5}},
                {"image": BROKEN_IMAGE, "resources": {"memoryMb": 2048}},
                {"description": "only words"},
            ),
            strict=True,
        ):
            await client.patch(f"/fleet/bots/{bot_id}", json=change)
        await _assert_no_drift(platform)
        # a refused create, then deletes
        assert (await a.put("/tenants/drift-a/quota", json={"maxBots": 1})).status_code == 403
        assert (await platform.client.put("/tenants/drift-a/quota", json={"maxBots": 3})).status_code == 200
        _refused(await a.post("/fleet/bots", json=_body()), "bots", limit=3, used=3)
        for client, bot_id in made[:3]:
            assert (await client.delete(f"/fleet/bots/{bot_id}")).status_code == 204
        await _assert_no_drift(platform)
    # and a recount from the bots finds nothing to mend
    assert await platform.app.state.services.quotas.recount() == 0


async def test_an_interrupted_create_gives_its_share_back(stub_image: str, database_url: str, tmp_path: Path) -> None:
    """A create killed after its bot was stored and charged: recovery removes the bot and its usage with it."""
    async with process_platforms(database_url, tmp_path) as platforms:
        with platforms.reporting():
            crashing = await platforms.start(crash_at="create.after_intent")
            with pytest.raises(httpx.TransportError):
                await crashing.client.post("/fleet/bots", json=_body())
            assert await crashing.wait_exit() == -9
            settings = Settings(DATABASE_URL=database_url)
            usage, fresh, _ = await _stored(settings)
            assert usage == fresh == {"default": (1, 512, 1000)}  # the bot is stored until recovery

            recovered = await platforms.start()
            for _ in range(300):
                usage, fresh, journal = await _stored(settings)
                if journal == 0:
                    break
                await asyncio.sleep(0.1)
            assert journal == 0 and usage == fresh == {}
            assert (await _quota(recovered.client))["usage"] == {"bots": 0, "memoryMb": 0, "cpus": 0.0}


async def test_a_start_recounts_usage_from_the_bots(make_platform: PlatformFactory) -> None:
    """Tenants with bots from before quotas (no usage row) get theirs at the next start, and a changed default
    bot limit is followed; the bots keep running either way."""
    shared = {"WOPR_PLATFORM_ID": "q-" + uuid.uuid4().hex[:10]}
    first = await make_platform(**shared)
    await first.create_bot()
    await first.create_bot(resources={"memoryMb": 128, "cpus": 0.5})
    await first.stop()
    engine = create_engine(first.settings.database_url)
    try:
        async with engine.begin() as connection:  # as the migration leaves a database of an older platform
            await connection.execute(TenantQuota.__table__.delete())
    finally:
        await engine.dispose()

    second = await make_platform(**shared, FLEET_DEFAULT_MEMORY_MB=256)

    assert (await _quota(second.client))["usage"] == {"bots": 2, "memoryMb": 384, "cpus": 1.5}
    await _assert_no_drift(second)


async def test_a_tenant_has_no_more_bots_than_its_network_has_addresses(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    """A /29 holds five bots (eight addresses but the network, broadcast and gateway): with no quota at all, the sixth
    create is refused with the quota's answer, before anything is made, rather than failing at the engine."""
    platform = await make_platform(FLEET_TENANT_SUBNET_PREFIX=29, FLEET_TENANT_MAX_BOTS=0)
    for _ in range(5):
        await platform.create_bot()
    before = await _engine_objects(docker, platform.settings.platform_id)

    refused = await platform.client.post("/fleet/bots", json=_body())

    _refused(refused, "bots", limit=5, used=5, requested=1)
    assert await _engine_objects(docker, platform.settings.platform_id) == before
    await _assert_no_drift(platform)
