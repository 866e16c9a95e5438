"""Credits in tests: a platform whose bots need them, and a tenant's credits given and read through the API."""

from __future__ import annotations

import uuid

from tests.conftest import Platform

DOLLAR = 1_000_000
BILLING = {"BILLING_ENABLED": True, "BILLING_MIN_BALANCE": DOLLAR}


async def grant(platform: Platform, tenant: str, amount: int, memo: str) -> None:
    response = await platform.client.post(
        f"/tenants/{tenant}/credits/grants",
        json={"amount": amount, "memo": memo},
        headers={"Idempotency-Key": "g-" + uuid.uuid4().hex},
    )
    assert response.status_code == 201, response.text


async def balance(platform: Platform, tenant: str) -> int:
    response = await platform.client.get(f"/tenants/{tenant}/credits")
    assert response.status_code == 200, response.text
    return int(response.json()["balance"])
