"""Plans on the real engine and database: a tenant's plan sets its quotas and the tiers and channels its bots may
use, at create and at PATCH; changing the plan changes all of it."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import STUB_IMAGE, Platform, PlatformFactory

PLANS = "starter=bots:2,memoryMb:2048,cpus:2,tiers:small,channels:stable|pinned;pro=bots:10,tiers:small|standard|large"


async def _platform(make_platform: PlatformFactory) -> Platform:
    platform = await make_platform(BILLING_ENABLED=True, BILLING_MIN_BALANCE=1, BILLING_PLANS=PLANS)
    grant = await platform.client.post(
        "/tenants/default/credits/grants", json={"amount": 10_000_000}, headers={"Idempotency-Key": "plans-grant"}
    )
    assert grant.status_code == 201, grant.text
    return platform


def _bot(**fields: Any) -> dict[str, Any]:
    return {"name": "p-" + uuid.uuid4().hex[:8], "image": STUB_IMAGE, **fields}


def _not_in_plan(response: Any, field: str) -> None:
    assert response.status_code == 403, response.text
    details = response.json()["details"]
    assert details["code"] == "not_in_plan" and details["field"] == field, details


async def test_a_plan_sets_quotas_tiers_and_channels_and_changing_it_changes_them(
    make_platform: PlatformFactory,
) -> None:
    platform = await _platform(make_platform)
    listed = (await platform.client.get("/billing/plans")).json()
    assert [p["name"] for p in listed["plans"]] == ["pro", "starter"] and listed["default"] is None
    assert (await platform.client.get("/billing/plan")).json()["plan"] is None  # no plan: no restrictions

    on = await platform.client.put("/tenants/default/plan", json={"plan": "starter"})
    assert on.status_code == 200, on.text
    assert on.json()["plan"]["tiers"] == ["small"] and on.json()["plan"]["channels"] == ["pinned", "stable"]
    limits = (await platform.client.get("/fleet/quota")).json()["limits"]
    assert (limits["maxBots"], limits["maxMemoryMb"], limits["maxCpus"]) == (2, 2048, 2.0)

    _not_in_plan(await platform.client.post("/fleet/bots", json=_bot(resources={"memoryMb": 1024})), "resources")
    _not_in_plan(await platform.client.post("/fleet/bots", json=_bot(releaseChannel="canary")), "releaseChannel")
    assert (await platform.client.get("/fleet/bots")).json()["bots"] == []  # refused before anything was made
    created = await platform.client.post("/fleet/bots", json=_bot())
    assert created.status_code == 201, created.text
    bot = created.json()["id"]
    _not_in_plan(await platform.client.patch(f"/fleet/bots/{bot}", json={"releaseChannel": "canary"}), "releaseChannel")
    _not_in_plan(await platform.client.patch(f"/fleet/bots/{bot}", json={"resources": {"memoryMb": 1024}}), "resources")
    assert (await platform.client.patch(f"/fleet/bots/{bot}", json={"releaseChannel": "pinned"})).status_code == 200
    assert (await platform.client.post("/fleet/bots", json=_bot())).status_code == 201
    third = await platform.client.post("/fleet/bots", json=_bot())
    assert third.status_code == 409 and third.json()["details"]["quota"] == "bots", third.text

    up = await platform.client.put("/tenants/default/plan", json={"plan": "pro"})
    assert up.status_code == 200, up.text
    bigger = await platform.client.post("/fleet/bots", json=_bot(resources={"memoryMb": 1024}, releaseChannel="canary"))
    assert bigger.status_code == 201, bigger.text
    assert (await platform.client.get("/fleet/quota")).json()["limits"]["maxBots"] == 10

    off = await platform.client.put("/tenants/default/plan", json={"plan": None})
    assert off.status_code == 200 and off.json()["plan"] is None
    for bad in ({"plan": "gold"}, {"plan": "a b"}, {"plan": 5}, {}):
        refused = await platform.client.put("/tenants/default/plan", json=bad)
        assert refused.status_code == 400, (bad, refused.text)


async def test_the_default_plan_applies_to_a_tenant_given_none(make_platform: PlatformFactory) -> None:
    platform = await make_platform(
        BILLING_ENABLED=True, BILLING_MIN_BALANCE=1, BILLING_PLANS=PLANS, BILLING_DEFAULT_PLAN="starter"
    )
    await platform.client.post(
        "/tenants/default/credits/grants", json={"amount": 10_000_000}, headers={"Idempotency-Key": "plans-grant2"}
    )
    assert (await platform.client.get("/billing/plan")).json()["plan"]["name"] == "starter"
    _not_in_plan(await platform.client.post("/fleet/bots", json=_bot(releaseChannel="staging")), "releaseChannel")
