"""The metered AI gateway in tests: a platform with its gateway listening in front of the fake provider
(tests/fixtures/fake_provider.py), the prices it charges and what calls cost."""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import openai

from tests.conftest import Platform, PlatformFactory
from tests.fixtures.fake_provider import FakeProvider
from tests.ports import free_port

DOLLAR = 1_000_000
CHARGE_INTERVAL = 0.05  # seconds between the postings of calls' charges (GATEWAY_CHARGE_INTERVAL)
PLATFORM_KEY = "sk-platform-" + uuid.uuid4().hex
# micro-dollars per million tokens: 1 USD in, 2 USD out; with the default 20% margin a call of i input and o output
# tokens costs ceil((i + 2 o) * 1.2) micro-dollars
PRICES = {"inputPrice": DOLLAR, "outputPrice": 2 * DOLLAR}
PROMPT = [{"role": "user", "content": "say five words please"}]  # 4 words: 4 input tokens at the fake


def cost(input_tokens: int, output_tokens: int) -> int:
    return -(-(input_tokens + 2 * output_tokens) * 120 // 100)


@dataclass
class Gateway:
    platform: Platform
    fake: FakeProvider
    url: str  # the gateway's base URL, without /v1
    key: str  # a gateway key of the default tenant

    def openai(self, key: str | None = None) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.url + "/v1", api_key=key or self.key, max_retries=0)

    def anthropic(self, key: str | None = None) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=key or self.key, max_retries=0)

    def http(self, key: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {key or self.key}"}, timeout=30, trust_env=False
        )

    async def balance(self, tenant: str = "default") -> int:
        response = await self.platform.client.get(f"/tenants/{tenant}/credits")
        assert response.status_code == 200, response.text
        return int(response.json()["balance"])

    async def balance_is(self, expected: int, tenant: str = "default") -> None:
        """The balance becomes `expected` once the calls' charges are posted (within the charge interval), and
        stays there."""
        deadline = time.monotonic() + 10
        while (found := await self.balance(tenant)) != expected and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert found == expected, (found, expected)
        await asyncio.sleep(3 * CHARGE_INTERVAL)  # nothing is charged twice
        assert await self.balance(tenant) == expected

    async def grant(self, amount: int, tenant: str = "default") -> None:
        response = await self.platform.client.post(
            f"/tenants/{tenant}/credits/grants",
            json={"amount": amount, "memo": "test"},
            headers={"Idempotency-Key": "g-" + uuid.uuid4().hex},
        )
        assert response.status_code == 201, response.text

    async def usage(self, **params: str) -> dict[str, Any]:
        response = await self.platform.client.get("/gateway/usage", params=params)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def ledger_is_consistent(self) -> None:
        response = await self.platform.client.get("/billing/ledger-check")
        assert response.status_code == 200, response.text
        assert response.json()["ok"] is True, response.text


async def start_gateway(make_platform: PlatformFactory, fake: FakeProvider, **overrides: Any) -> Gateway:
    port = free_port()
    settings: dict[str, Any] = {"GATEWAY_CHARGE_INTERVAL": CHARGE_INTERVAL, **overrides}
    platform = await make_platform(
        GATEWAY_ENABLED=True, GATEWAY_PORT=port, BILLING_ENABLED=True, BILLING_MIN_BALANCE=0, **settings
    )
    fake.expected_key = None
    client = platform.client
    for name, kind, base in (("fakeai", "openai", fake.base_url + "/v1"), ("fakeclaude", "anthropic", fake.base_url)):
        response = await client.put(
            f"/gateway/providers/{name}", json={"kind": kind, "baseUrl": base, "apiKey": PLATFORM_KEY}
        )
        assert response.status_code == 201, response.text
    for model, provider in (
        ("gpt-4o-mini", "fakeai"),
        ("text-embedding-3-small", "fakeai"),
        ("claude-3-5-haiku-latest", "fakeclaude"),
    ):
        response = await client.put("/gateway/models", json={"model": model, "provider": provider, **PRICES})
        assert response.status_code == 201, response.text
    made = await client.post("/gateway/keys", json={"name": "tests"})
    assert made.status_code == 201, made.text
    url = f"http://127.0.0.1:{port}"
    await listening(url)
    return Gateway(platform, fake, url, made.json()["key"])


async def listening(url: str) -> None:
    """Return once the gateway at `url` answers."""
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient(trust_env=False) as probe:
        while True:
            try:
                await probe.get(url + "/v1/models")
                return
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise AssertionError("the gateway never listened") from None
                await asyncio.sleep(0.05)


STREAMED = (
    b'{"model":"gpt-4o-mini","max_tokens":5,"stream":true,'
    b'"messages":[{"role":"user","content":"say five words please"}]}'
)
STREAMED_ESTIMATE = cost(len(STREAMED) // 3 + 16, 5)  # what the gateway reserves for one such call
