"""Credits on the real database: the ledger, grants and corrections, the payment gate, paging, and debits racing
on one balance."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiodocker
import httpx
import pytest

from tests.conftest import STUB_IMAGE, TOKEN, Platform, PlatformFactory
from tests.figures import figure, scrape
from tests.integration.accounts_support import key_client, new_key, new_user

DOLLAR = 1_000_000
BILLING = {"BILLING_ENABLED": True, "BILLING_MIN_BALANCE": DOLLAR}


def _key() -> dict[str, str]:
    return {"Idempotency-Key": "k-" + uuid.uuid4().hex}


def _tenant(platform: Platform, tenant: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=platform.url,
        headers={"Authorization": f"Bearer {TOKEN}", "X-Tenant-Id": tenant},
        timeout=60,
        trust_env=False,
    )


async def _grant(platform: Platform, tenant: str, amount: int, **headers: str) -> httpx.Response:
    return await platform.client.post(
        f"/tenants/{tenant}/credits/grants", json={"amount": amount, "memo": "welcome"}, headers=headers or _key()
    )


async def _balance(platform: Platform, tenant: str) -> int:
    response = await platform.client.get(f"/tenants/{tenant}/credits")
    assert response.status_code == 200, response.text
    return int(response.json()["balance"])


async def _check(platform: Platform) -> dict[str, Any]:
    response = await platform.client.get("/billing/ledger-check")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["ok"] is True and body["mismatches"] == [], body
    return body


def _bot() -> dict[str, Any]:
    return {"name": "b-" + uuid.uuid4().hex[:8], "image": STUB_IMAGE}


async def _containers(docker: aiodocker.Docker, platform_id: str) -> list[Any]:
    return list(await docker.containers.list(all=True, filters={"label": [f"wopr.platform={platform_id}"]}))


async def test_billing_is_off_by_default_and_needs_no_stripe(platform: Platform) -> None:
    balance = await platform.client.get("/billing/balance")
    assert balance.status_code == 200, balance.text
    assert balance.json()["balance"] == 0
    created = await platform.client.post("/fleet/bots", json=_bot())
    assert created.status_code == 201, created.text  # no gate while billing is off
    checkout = await platform.client.post("/billing/checkout", json={"amountCents": 1000}, headers=_key())
    assert checkout.status_code == 503, checkout.text
    assert checkout.json()["details"]["code"] == "payments_unavailable"


async def test_a_grant_is_given_once_per_key_and_a_reused_key_must_carry_the_same_request(
    make_platform: PlatformFactory,
) -> None:
    platform = await make_platform(**BILLING)
    key = _key()
    first = await _grant(platform, "acme", 5 * DOLLAR, **key)
    assert first.status_code == 201, first.text
    again = await _grant(platform, "acme", 5 * DOLLAR, **key)
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert await _balance(platform, "acme") == 5 * DOLLAR
    other = await _grant(platform, "acme", 6 * DOLLAR, **key)
    assert other.status_code == 409, other.text
    assert other.json()["details"]["field"] == "Idempotency-Key"
    # the same key for another tenant is another grant
    assert (await _grant(platform, "globex", 1 * DOLLAR, **key)).status_code == 201
    assert await _balance(platform, "acme") == 5 * DOLLAR
    assert await _balance(platform, "globex") == 1 * DOLLAR
    body = await _check(platform)
    assert body["entries"] == 2 and body["lines"] == 4
    # the platform's side of the two grants, in the operator's figures
    samples = await scrape(platform.client)
    assert figure(samples, "wopr_ledger_balance_micros", account="platform:grants") == -6 * DOLLAR
    audit = await platform.client.get("/audit", params={"action": "POST /tenants/{tenant_id}/credits/grants"})
    assert audit.status_code == 200, audit.text
    targets = [(e["targetId"], e["status"]) for e in audit.json()["events"]]
    assert ("acme", 201) in targets and ("acme", 409) in targets, targets


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("grants", {"amount": 1000}, {}),  # no Idempotency-Key
        ("grants", {"amount": 1000}, {"Idempotency-Key": "short"}),
        ("grants", {"amount": 1000}, {"Idempotency-Key": "bad key with spaces"}),
        ("grants", {"amount": 0}, None),
        ("grants", {"amount": -5}, None),
        ("grants", {"amount": 1.5}, None),
        ("grants", {"amount": "100"}, None),
        ("grants", {"amount": 10**13}, None),
        ("grants", {"amount": 100, "memo": "a\x00b"}, None),
        ("corrections", {"amount": 0, "memo": "x"}, None),
        ("corrections", {"amount": -100}, None),  # a correction says why
        ("corrections", {"amount": -100, "memo": ""}, None),
        ("refunds", {"paymentIntentId": "pi_1; drop"}, None),
    ],
)
async def test_bad_money_requests_are_400_and_move_nothing(
    make_platform: PlatformFactory, path: str, body: dict[str, Any], headers: dict[str, str] | None
) -> None:
    platform = await make_platform(**BILLING)
    response = await platform.client.post(
        f"/tenants/acme/credits/{path}", json=body, headers=_key() if headers is None else headers
    )
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error", "details"}
    assert await _balance(platform, "acme") == 0
    assert (await _check(platform))["entries"] == 0


async def test_only_the_platform_operator_moves_credits_and_a_tenant_sees_only_its_own(
    make_platform: PlatformFactory,
) -> None:
    platform = await make_platform(**BILLING)
    root = await new_user(platform, "root")  # the first user is the platform admin: not the one tried here
    await root.close()
    owner = await new_user(platform, "owner", tenant="acme")
    try:
        assert (await _grant(platform, "acme", 3 * DOLLAR)).status_code == 201
        assert (await _grant(platform, "globex", 7 * DOLLAR)).status_code == 201
        mine = await owner.client.get("/billing/balance")
        assert mine.status_code == 200, mine.text
        assert mine.json()["balance"] == 3 * DOLLAR and mine.json()["tenantId"] == "acme"
        history = await owner.client.get("/billing/transactions")
        assert [t["amount"] for t in history.json()["transactions"]] == [3 * DOLLAR]
        for call in (
            owner.client.post("/tenants/acme/credits/grants", json={"amount": 5}, headers=_key()),
            owner.client.post("/tenants/acme/credits/corrections", json={"amount": 5, "memo": "x"}, headers=_key()),
            owner.client.get("/tenants/globex/credits"),
            owner.client.get("/billing/ledger-check"),
        ):
            refused = await call
            assert refused.status_code == 403, refused.text
        # acting for another tenant is refused for a user who is not its member
        other = await owner.client.get("/billing/balance", headers={"X-Tenant-Id": "globex"})
        assert other.status_code in (403, 404), other.text
        reader = await new_key(owner, ["read"])
        async with key_client(platform, reader["secret"]) as client:
            assert (await client.get("/billing/balance")).json()["balance"] == 3 * DOLLAR
            checkout = await client.post("/billing/checkout", json={"amountCents": 1000}, headers=_key())
            assert checkout.status_code == 403, checkout.text
        assert await _balance(platform, "acme") == 3 * DOLLAR
    finally:
        await owner.close()


async def test_the_gate_refuses_create_and_start_below_the_minimum_and_leaves_nothing(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    platform = await make_platform(**BILLING)
    refused = await platform.client.post("/fleet/bots", json=_bot())
    assert refused.status_code == 402, refused.text
    details = refused.json()["details"]
    assert details == {
        "code": "insufficient_credits",
        "balance": 0,
        "required": DOLLAR,
        "buyUrl": f"{platform.url}/ui/billing",
    }
    assert (await platform.client.get("/fleet/bots")).json()["bots"] == []
    assert await _containers(docker, platform.settings.platform_id) == []
    quota = await platform.client.get("/fleet/quota")
    assert quota.json()["usage"]["bots"] == 0  # nothing was charged against the quota either

    assert (await _grant(platform, "default", 2 * DOLLAR)).status_code == 201
    created = await platform.client.post("/fleet/bots", json=_bot())
    assert created.status_code == 201, created.text
    bot = created.json()["id"]
    assert (await platform.client.post(f"/fleet/bots/{bot}/stop")).status_code == 200
    taken = await platform.client.post(
        "/tenants/default/credits/corrections", json={"amount": -1_500_000, "memo": "test"}, headers=_key()
    )
    assert taken.status_code == 201, taken.text
    for action in ("start", "restart"):
        again = await platform.client.post(f"/fleet/bots/{bot}/{action}")
        assert again.status_code == 402, again.text
        assert again.json()["details"]["balance"] == 500_000
    listed = (await platform.client.get(f"/fleet/bots/{bot}")).json()
    assert listed["state"] in ("exited", "stopped"), listed
    # stopping and deleting stay open to a tenant without credits
    assert (await platform.client.delete(f"/fleet/bots/{bot}")).status_code == 204


async def test_transactions_are_paged_newest_first_with_an_opaque_cursor(make_platform: PlatformFactory) -> None:
    platform = await make_platform(**BILLING)
    for amount in range(1, 6):
        assert (await _grant(platform, "acme", amount)).status_code == 201
    seen: list[int] = []
    cursor = None
    async with _tenant(platform, "acme") as client:
        while True:
            params: dict[str, Any] = {"limit": 2, **({"after": cursor} if cursor else {})}
            page = await client.get("/billing/transactions", params=params)
            assert page.status_code == 200, page.text
            seen += [t["amount"] for t in page.json()["transactions"]]
            cursor = page.json()["next"]
            if cursor is None:
                break
        assert seen == [5, 4, 3, 2, 1]
        for bad in ("not-a-cursor", "bm90fGE", "MjAyNi0xMi0wNXwx" + "\x00"):
            response = await client.get("/billing/transactions", params={"after": bad})
            assert response.status_code == 400, (bad, response.text)
    async with _tenant(platform, "globex") as other:
        assert (await other.get("/billing/transactions")).json()["transactions"] == []


async def test_racing_debits_and_replays_on_one_balance_leave_it_exact(make_platform: PlatformFactory) -> None:
    platform = await make_platform(**BILLING)
    assert (await _grant(platform, "acme", 1000)).status_code == 201
    debits = 150
    replayed = {"Idempotency-Key": "same-key-for-all"}

    async def debit(headers: dict[str, str]) -> int:
        response = await platform.client.post(
            "/tenants/acme/credits/corrections", json={"amount": -3, "memo": "race"}, headers=headers
        )
        assert response.status_code in (200, 201), response.text
        return response.status_code

    statuses = await asyncio.gather(*(debit(_key()) for _ in range(debits)), *(debit(replayed) for _ in range(20)))
    assert statuses.count(201) == debits + 1  # the replayed key moved money once
    assert await _balance(platform, "acme") == 1000 - 3 * (debits + 1)
    body = await _check(platform)
    assert body["entries"] == debits + 2
