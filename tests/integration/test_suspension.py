"""A tenant out of credits on the real engine, database and Caddy: suspended after the grace (its running bots
stopped, data kept, its traffic answered with a 402 page), resumed by a top-up (exactly those bots started again),
and after the retention its bots removed."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import aiodocker

from tests.conftest import STUB_IMAGE, Platform, PlatformFactory
from tests.fixtures.caddy import DOMAIN, Caddy
from tests.integration.proxy_support import host, proxy_client, until_answer, wait_ready
from tests.integration.test_runtime_charges import START
from tests.integration.test_updates import MovableClock
from wopr_platform.billing.runtime import RuntimeBilling
from wopr_platform.proxy.config import BODY_SUSPENDED

SETTINGS = {
    "BILLING_ENABLED": True,
    "BILLING_MIN_BALANCE": 1000,
    "BILLING_GRACE": 3600,
    "BILLING_RETENTION": 7200,
    "BILLING_REMOVAL_WARNING": 1800,
    "BILLING_INTERVAL": 3600,
}


async def _move(platform: Platform, amount: int) -> None:
    path = "grants" if amount > 0 else "corrections"
    response = await platform.client.post(
        f"/tenants/default/credits/{path}",
        json={"amount": amount, "memo": "test"},
        headers={"Idempotency-Key": "k-" + uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text


async def _standing(platform: Platform) -> dict[str, Any]:
    body: dict[str, Any] = (await platform.client.get("/billing/balance")).json()["standing"]
    return body


def _past(standing: dict[str, Any], moment: str, seconds: float = 1) -> datetime:
    """A moment just after one the standing announces: the clock flows in real time from START, so a test that
    jumps to a fixed offset from START races the time the test itself took (minutes on a loaded machine)."""
    return datetime.fromisoformat(standing[moment]) + timedelta(seconds=seconds)


async def _running(docker: aiodocker.Docker, platform_id: str) -> set[str]:
    found = await docker.containers.list(filters={"label": [f"wopr.platform={platform_id}"], "status": ["running"]})
    return {c["Labels"]["wopr.bot-id"] for c in found}


async def test_out_of_credits_suspends_after_the_grace_a_top_up_resumes_and_the_retention_removes(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    clock = MovableClock(START)
    platform = await make_platform(clock=clock, **SETTINGS)
    found = platform.app.state.platform.billing
    assert isinstance(found, RuntimeBilling)
    suspensions = found.suspensions
    platform_id = platform.settings.platform_id
    await _move(platform, 2000)
    bots = []
    for name in ("one", "two", "idle"):
        created = await platform.client.post("/fleet/bots", json={"name": name, "image": STUB_IMAGE})
        assert created.status_code == 201, created.text
        bots.append(created.json()["id"])
    assert (await platform.client.post(f"/fleet/bots/{bots[2]}/stop")).status_code == 200
    assert await _running(docker, platform_id) == set(bots[:2])

    await _move(platform, -2000)  # out of credits
    await suspensions.round()
    standing = await _standing(platform)
    assert standing["state"] == "grace", standing
    assert await _running(docker, platform_id) == set(bots[:2])  # the grace: nothing stops yet
    refused = await platform.client.post(f"/fleet/bots/{bots[2]}/start")
    assert refused.status_code == 402, refused.text  # the gate holds meanwhile

    events = platform.app.state.services.events.subscribe(bot_id=None, tenant_id="default")
    clock.move_to(_past(standing, "suspendsAt"))
    await suspensions.round()
    standing = await _standing(platform)
    assert standing["state"] == "suspended", standing
    announced = set()
    while len(announced) < 3:
        event = await asyncio.wait_for(anext(events), timeout=10)
        if event.kind == "suspended":
            assert event.detail["reason"] == "out of credits" and event.detail["removalAt"].endswith("Z")
            announced.add(event.bot_id)
    events.close()
    assert announced == set(bots)  # every bot of the tenant is told, the idle one too
    assert await _running(docker, platform_id) == set()
    assert len((await platform.client.get("/fleet/bots")).json()["bots"]) == 3  # stopped, not removed

    await _move(platform, 500)  # not enough to run a bot: still suspended
    await suspensions.round()
    assert (await _standing(platform))["state"] == "suspended"
    await _move(platform, 5000)  # topped up
    await suspensions.round()
    assert (await _standing(platform))["state"] == "active"
    assert await _running(docker, platform_id) == set(bots[:2])  # exactly the bots the suspension stopped

    # out of credits again, suspended, warned, and at the end of the retention removed with their data
    await _move(platform, -5500)
    clock.move_to(START + timedelta(hours=2))
    await suspensions.round()
    standing = await _standing(platform)
    assert standing["state"] == "grace", standing
    clock.move_to(_past(standing, "suspendsAt"))
    await suspensions.round()
    standing = await _standing(platform)
    assert standing["state"] == "suspended", standing
    clock.move_to(_past(standing, "removalAt", -SETTINGS["BILLING_REMOVAL_WARNING"] + 60))
    await suspensions.round()  # the warning
    clock.move_to(_past(standing, "removalAt"))
    await suspensions.round()
    standing = await _standing(platform)
    assert standing["state"] == "removed", standing
    assert (await platform.client.get("/fleet/bots")).json()["bots"] == []
    volumes = (await docker.volumes.list(filters={"label": [f"wopr.platform={platform_id}"]})).get("Volumes") or []
    assert volumes == []


async def test_a_suspended_tenants_traffic_through_caddy_answers_402_and_flows_again_after_a_top_up(
    make_platform: PlatformFactory, caddy: Caddy
) -> None:
    clock = MovableClock(START)
    platform = await make_platform(clock=clock, **caddy.settings(**SETTINGS))
    await wait_ready(platform)
    found = platform.app.state.platform.billing
    assert isinstance(found, RuntimeBilling)
    await _move(platform, 2000)
    bot = await platform.create_bot(env={"STUB_MESSAGE": "paid"})
    name = host(bot["subdomain"])
    async with proxy_client(caddy) as client:
        await until_answer(client, name, "/hello", 200, contains="paid")
        await _move(platform, -2000)
        await found.suspensions.round()
        await until_answer(client, name, "/hello", 200, contains="paid")  # the grace: still served
        clock.move_to(_past(await _standing(platform), "suspendsAt"))
        await found.suspensions.round()
        suspended = await until_answer(client, name, "/hello", 402, timeout=10)
        assert suspended.text == BODY_SUSPENDED and suspended.headers["content-type"].startswith("text/plain")
        by_path = await until_answer(client, DOMAIN, f"/instance/{bot['id']}/hello", 402, timeout=10)
        assert by_path.text == BODY_SUSPENDED
        routes = (await platform.client.get("/proxy/routes")).json()["routes"]
        assert [r["state"] for r in routes] == ["suspended"]
        await _move(platform, 5000)
        await found.suspensions.round()
        await until_answer(client, name, "/hello", 200, contains="paid", timeout=15)
