"""Rate limits per bearer token, and per client address for callers without a valid token; /health is never limited."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import STUB_IMAGE, Platform, PlatformFactory

LIMIT = 5


@pytest.fixture
async def limited(make_platform: PlatformFactory) -> Platform:
    return await make_platform(FLEET_RATE_LIMIT=LIMIT, FLEET_RATE_WINDOW=60)


@pytest.fixture
async def stranger(limited: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the limited platform with a wrong token (same address as the operator's client)."""
    async with httpx.AsyncClient(
        base_url=limited.url, trust_env=False, headers={"Authorization": "Bearer wrong"}
    ) as client:
        yield client


def assert_429(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    body = response.json()
    assert set(body) == {"error", "details"} and body["error"]
    assert body["details"]["code"] == "rate_limited"
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert body["details"]["retryAfter"] == retry_after
    return retry_after


async def test_a_token_gets_429_with_retry_after_past_its_limit(limited: Platform) -> None:
    """LIMIT requests pass (whatever they are), the next is a 429 that says when to come back."""
    for _ in range(LIMIT - 1):
        assert (await limited.client.get("/fleet/bots")).status_code == 200
    assert (await limited.client.post("/fleet/bots", json={})).status_code == 400
    retry_after = assert_429(await limited.client.get("/fleet/bots"))
    assert retry_after == math.ceil(60 / LIMIT)
    refused = await limited.client.post("/fleet/bots", json={"name": "late", "image": STUB_IMAGE})
    assert_429(refused)


async def test_health_is_never_limited(limited: Platform) -> None:
    for _ in range(LIMIT):
        await limited.client.get("/fleet/bots")
    assert_429(await limited.client.get("/fleet/bots"))
    for _ in range(3 * LIMIT):
        assert (await limited.client.get("/health")).status_code == 200
    assert (await limited.client.get("/health/ready")).status_code == 200


async def test_wrong_tokens_are_limited_per_address_without_touching_the_token(
    limited: Platform, stranger: httpx.AsyncClient
) -> None:
    """Guessing tokens spends the address's bucket; the real token's own bucket is untouched."""
    for _ in range(LIMIT):
        assert (await stranger.get("/fleet/bots")).status_code == 401
    assert_429(await stranger.get("/fleet/bots"))
    # another wrong token from the same address is the same bucket: rotating guesses does not help
    assert_429(await stranger.get("/fleet/bots", headers={"Authorization": "Bearer another-guess"}))
    assert_429(await stranger.get("/openapi.json", headers={"Authorization": ""}))
    for _ in range(LIMIT):
        assert (await limited.client.get("/fleet/bots")).status_code == 200
    assert_429(await limited.client.get("/fleet/bots"))


async def test_a_spent_token_does_not_limit_other_callers(limited: Platform, stranger: httpx.AsyncClient) -> None:
    for _ in range(LIMIT):
        await limited.client.get("/fleet/bots")
    assert_429(await limited.client.get("/fleet/bots"))
    assert (await stranger.get("/fleet/bots")).status_code == 401
    async with httpx.AsyncClient(base_url=limited.url, trust_env=False) as anonymous:
        assert (await anonymous.get("/openapi.json")).status_code == 200


async def test_the_bucket_refills(make_platform: PlatformFactory) -> None:
    platform = await make_platform(FLEET_RATE_LIMIT=2, FLEET_RATE_WINDOW=1)
    for _ in range(2):
        assert (await platform.client.get("/fleet/bots")).status_code == 200
    assert assert_429(await platform.client.get("/fleet/bots")) == 1
    await asyncio.sleep(0.6)  # one token every 0.5 s
    assert (await platform.client.get("/fleet/bots")).status_code == 200


async def test_zero_turns_the_limit_off(make_platform: PlatformFactory) -> None:
    platform = await make_platform(FLEET_RATE_LIMIT=0)
    statuses = await asyncio.gather(*(platform.client.get("/fleet/bots") for _ in range(50)))
    assert {r.status_code for r in statuses} == {200}


async def test_the_default_allows_a_busy_operator(platform: Platform) -> None:
    """600 per minute by default: a burst of 100 requests is not refused."""
    assert platform.settings.rate_limit == 600 and platform.settings.rate_window == 60
    statuses = await asyncio.gather(*(platform.client.get("/fleet/bots") for _ in range(100)))
    assert {r.status_code for r in statuses} == {200}
