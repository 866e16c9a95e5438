"""The metered AI gateway, end to end: the official `openai` and `anthropic` SDKs call the platform's gateway
listener, which calls the fake provider (tests/fixtures/fake_provider.py) and charges the tenant's credits in the
real ledger. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import openai
import pytest

from tests.conftest import STUB_IMAGE, TOKEN, PlatformFactory
from tests.figures import figure, scrape
from tests.fixtures.fake_provider import FakeProvider
from tests.integration.gateway_support import (
    DOLLAR,
    PLATFORM_KEY,
    PRICES,
    PROMPT,
    STREAMED,
    STREAMED_ESTIMATE,
    Gateway,
    cost,
    start_gateway,
)
from tests.integration.test_hardening import docker_exec

pytestmark = pytest.mark.slow


def sent_key(headers: dict[str, str]) -> str:
    """The key a request carried to the fake: `x-api-key`, or a bearer token (what this anthropic SDK sends)."""
    return headers.get("x-api-key") or headers["authorization"].removeprefix("Bearer ")


@pytest.fixture
async def gateway(make_platform: PlatformFactory, fake_provider: FakeProvider) -> AsyncIterator[Gateway]:
    found = await start_gateway(make_platform, fake_provider)
    await found.grant(10 * DOLLAR)
    yield found


# --- the official SDKs --------------------------------------------------------------------------------------


async def test_openai_sdk_chat_whole_and_streamed_is_metered_and_charged(gateway: Gateway) -> None:
    before = await gateway.balance()
    client = gateway.openai()
    answer = await client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)  # type: ignore[arg-type]
    assert answer.choices[0].message.content == "tok " * 5
    assert answer.usage is not None and (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (4, 5)
    sent = gateway.fake.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {PLATFORM_KEY}"  # the platform's key, never the caller's
    # written before the answer came back, charged within the charge interval
    recorded = (await gateway.usage())["usage"]
    assert [(r["calls"], r["inputTokens"], r["outputTokens"], r["cost"]) for r in recorded] == [(1, 4, 5, cost(4, 5))]
    await gateway.balance_is(before - cost(4, 5))

    text = ""
    stream = await client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT, stream=True)  # type: ignore[arg-type]
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
    assert text == "tok " * 5
    assert gateway.fake.requests[-1].body["stream_options"] == {"include_usage": True}  # asked for the usage
    await gateway.balance_is(before - 2 * cost(4, 5))

    usage = await gateway.usage()
    assert [(r["model"], r["calls"], r["inputTokens"], r["outputTokens"]) for r in usage["usage"]] == [
        ("gpt-4o-mini", 2, 8, 10)
    ]
    assert usage["totalCost"] == 2 * cost(4, 5)
    transactions = (await gateway.platform.client.get("/billing/transactions")).json()["transactions"]
    assert [t["amount"] for t in transactions if t["kind"] == "usage"] == [-cost(4, 5)] * 2
    await gateway.ledger_is_consistent()
    samples = await scrape(gateway.platform.client)  # what the operator's figures say of the same two calls
    assert figure(samples, "wopr_gateway_calls_total", outcome="done") == 2
    assert figure(samples, "wopr_gateway_tokens_total", direction="input") == 8
    assert figure(samples, "wopr_gateway_tokens_total", direction="output") == 10
    assert figure(samples, "wopr_gateway_charged_micros_total") == 2 * cost(4, 5)
    assert figure(samples, "wopr_ledger_balance_micros", account="platform:revenue") == 2 * cost(4, 5)


async def test_anthropic_sdk_messages_whole_and_streamed(gateway: Gateway) -> None:
    before = await gateway.balance()
    client = gateway.anthropic()
    message = await client.messages.create(
        model="claude-3-5-haiku-latest",
        max_tokens=3,
        messages=PROMPT,  # type: ignore[arg-type]
    )
    assert message.content[0].text == "tok " * 3  # type: ignore[union-attr]
    assert (message.usage.input_tokens, message.usage.output_tokens) == (4, 3)
    assert sent_key(gateway.fake.requests[-1].headers) == PLATFORM_KEY
    async with client.messages.stream(
        model="claude-3-5-haiku-latest",
        max_tokens=100,
        messages=PROMPT,  # type: ignore[arg-type]
    ) as stream:
        text = "".join([part async for part in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "tok " * 5 and final.usage.output_tokens == 5
    await gateway.balance_is(before - cost(4, 3) - cost(4, 5))
    await gateway.ledger_is_consistent()


async def test_embeddings_and_the_model_list(gateway: Gateway) -> None:
    client = gateway.openai()
    models = sorted([model.id async for model in client.models.list()])
    assert models == ["claude-3-5-haiku-latest", "gpt-4o-mini", "text-embedding-3-small"]
    before = await gateway.balance()
    embedded = await client.embeddings.create(model="text-embedding-3-small", input=["one two", "three"])
    assert len(embedded.data) == 2 and len(embedded.data[0].embedding) == 8
    await gateway.balance_is(before - cost(3, 0))


# --- what is refused, and changes nothing -------------------------------------------------------------------


async def test_bad_calls_are_clear_errors_and_charge_nothing(gateway: Gateway) -> None:
    before, calls_before = await gateway.balance(), len(gateway.fake.requests)
    body = {"model": "gpt-4o-mini", "messages": PROMPT}
    async with gateway.http() as http, gateway.http("wgk_t_0123456789abcdef_" + "0" * 64) as stranger:
        cases = [
            (await stranger.post("/v1/chat/completions", json=body), 401, "gateway_key_invalid"),
            (await http.post("/v1/chat/completions", json={**body, "model": "nope"}), 404, "model_unknown"),
            (await http.post("/v1/chat/completions", json={"messages": PROMPT}), 404, "model_unknown"),
            (
                await http.post("/v1/messages", json={**body, "max_tokens": 5}),
                400,
                "validation_failed",
            ),  # an OpenAI-style model on the Anthropic endpoint
            (await http.post("/v1/chat/completions", content=b"{not json"), 400, "malformed_json"),
            (await http.post("/v1/chat/completions", json=[1, 2]), 400, "validation_failed"),
            (await http.post("/v1/chat/completions", content=b"x" * (5 * 1024 * 1024)), 413, "payload_too_large"),
            (await http.get("/v1/chat/completions"), 400, "validation_failed"),
            (await http.post("/v2/anything", json=body), 404, "not_found"),
        ]
        unauthenticated = await httpx.AsyncClient(trust_env=False).post(gateway.url + "/v1/chat/completions", json=body)
    cases.append((unauthenticated, 401, "gateway_key_invalid"))
    for response, status, code in cases:
        assert response.status_code == status, response.text
        assert response.json()["details"]["code"] == code, response.text
    assert len(gateway.fake.requests) == calls_before
    await gateway.balance_is(before)
    assert (await gateway.usage())["usage"] == []


async def test_the_management_api_never_answers_on_the_gateway_and_gateway_keys_are_no_api_keys(
    gateway: Gateway,
) -> None:
    async with gateway.http(TOKEN) as operator_token_at_gateway:
        assert (await operator_token_at_gateway.get("/fleet/bots")).status_code == 404
        refused = await operator_token_at_gateway.post("/v1/chat/completions", json={"model": "gpt-4o-mini"})
        assert refused.status_code == 401
    api_with_gateway_key = await gateway.platform.client.get(
        "/fleet/bots", headers={"Authorization": f"Bearer {gateway.key}"}
    )
    assert api_with_gateway_key.status_code == 401


async def test_a_failed_provider_call_costs_nothing_and_a_failing_provider_is_cut_off(
    make_platform: PlatformFactory, fake_provider: FakeProvider
) -> None:
    gateway = await start_gateway(make_platform, fake_provider, GATEWAY_BREAKER_FAILURES=2, GATEWAY_BREAKER_SECONDS=1)
    await gateway.grant(DOLLAR)
    before = await gateway.balance()
    fake_provider.fail_next(2, 500)
    body = {"model": "gpt-4o-mini", "messages": PROMPT}
    async with gateway.http() as http:
        for _ in range(2):
            failed = await http.post("/v1/chat/completions", json=body)
            assert failed.status_code == 502 and failed.json()["details"]["code"] == "provider_error", failed.text
        reached = len(fake_provider.requests)
        cut_off = await http.post("/v1/chat/completions", json=body)
        assert cut_off.status_code == 503 and cut_off.json()["details"]["code"] == "provider_unavailable"
        assert len(fake_provider.requests) == reached  # refused without calling it
        state = (await gateway.platform.client.get("/gateway/providers")).json()["providers"]
        assert {p["name"]: p["state"] for p in state}["fakeai"] == "open"
        await asyncio.sleep(1.2)
        recovered = await http.post("/v1/chat/completions", json=body)  # the one call that tries it again
        assert recovered.status_code == 200, recovered.text
        # the provider refusing the request itself (a 4xx) is passed on and does not cut it off
        fake_provider.fail_next(1, 400)
        refused = await http.post("/v1/chat/completions", json=body)
        assert refused.status_code == 400 and refused.json()["details"]["providerStatus"] == 400
    await gateway.balance_is(before - cost(4, 5))  # only the call that succeeded
    usage = (await gateway.usage())["usage"]
    assert [(row["calls"], row["cost"]) for row in usage] == [(1, cost(4, 5))]
    await gateway.ledger_is_consistent()


async def test_a_keys_rate_is_limited_with_retry_after(
    make_platform: PlatformFactory, fake_provider: FakeProvider
) -> None:
    gateway = await start_gateway(make_platform, fake_provider, GATEWAY_RATE_LIMIT=2)
    await gateway.grant(DOLLAR)
    body = {"model": "gpt-4o-mini", "messages": PROMPT}
    async with gateway.http() as http:
        statuses = [(await http.post("/v1/chat/completions", json=body)) for _ in range(3)]
    assert [r.status_code for r in statuses] == [200, 200, 429]
    assert int(statuses[2].headers["retry-after"]) >= 1
    assert statuses[2].json()["details"]["code"] == "rate_limited"


# --- budgets ------------------------------------------------------------------------------------------------


async def test_out_of_credits_is_402_before_the_provider_is_called(
    make_platform: PlatformFactory, fake_provider: FakeProvider
) -> None:
    gateway = await start_gateway(make_platform, fake_provider)  # no credits granted
    with pytest.raises(openai.APIStatusError) as refused:
        await gateway.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)  # type: ignore[arg-type]
    assert refused.value.status_code == 402
    assert fake_provider.requests == []


async def test_concurrent_calls_never_reserve_more_than_the_balance(
    make_platform: PlatformFactory, fake_provider: FakeProvider
) -> None:
    """Each call reserves its most possible cost; ten at once on credits for three get three through."""
    gateway = await start_gateway(make_platform, fake_provider)
    fake_provider.chunk_delay = 0.2  # every call holds its reservation for a second
    raw = (
        b'{"model":"gpt-4o-mini","max_tokens":5,"stream":true,'
        b'"messages":[{"role":"user","content":"say five words please"}]}'
    )
    estimate = cost(len(raw) // 3 + 16, 5)
    await gateway.grant(3 * estimate + estimate // 2)
    before = await gateway.balance()

    async def call(http: httpx.AsyncClient) -> int:
        response = await http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"})
        return response.status_code

    async with gateway.http() as http:
        statuses = sorted(await asyncio.gather(*(call(http) for _ in range(10))))
    assert statuses == [200] * 3 + [402] * 7, statuses
    await gateway.balance_is(before - 3 * cost(4, 5))
    await gateway.ledger_is_consistent()


async def ten_at_once(http: httpx.AsyncClient) -> list[tuple[int, str | None]]:
    """Ten slow calls at once: their statuses and error codes, sorted."""

    async def call() -> tuple[int, str | None]:
        response = await http.post(
            "/v1/chat/completions", content=STREAMED, headers={"content-type": "application/json"}
        )
        return response.status_code, (response.json()["details"]["code"] if response.status_code != 200 else None)

    return sorted(await asyncio.gather(*(call() for _ in range(10))), key=lambda status: (status[0], status[1] or ""))


async def test_concurrent_calls_never_pass_the_tenants_spending_cap(
    make_platform: PlatformFactory, fake_provider: FakeProvider
) -> None:
    """The cap is checked against what was spent plus everything reserved, in the reserving transaction."""
    gateway = await start_gateway(make_platform, fake_provider)
    fake_provider.chunk_delay = 0.2
    await gateway.grant(100 * STREAMED_ESTIMATE)  # the credits are not what stops them
    cap = 3 * STREAMED_ESTIMATE + STREAMED_ESTIMATE // 2
    limits = await gateway.platform.client.put("/billing/limits", json={"dailyCap": cap})
    assert limits.status_code == 200, limits.text
    async with gateway.http() as http:
        statuses = await ten_at_once(http)
    assert statuses == [(200, None)] * 3 + [(402, "spending_cap_reached")] * 7, statuses
    await gateway.balance_is(100 * STREAMED_ESTIMATE - 3 * cost(4, 5))
    spent = (await gateway.platform.client.get("/billing/limits")).json()["spentToday"]
    assert spent == 3 * cost(4, 5) <= cap
    await gateway.ledger_is_consistent()


async def bot_key(gateway: Gateway) -> tuple[str, str]:
    """A running bot of the default tenant and the gateway key its container was given."""
    created = await gateway.platform.client.post("/fleet/bots", json={"name": "capped", "image": STUB_IMAGE})
    assert created.status_code == 201, created.text
    bot = await gateway.platform.wait_for(created.json()["id"], state="running")
    code, key = await docker_exec(bot["containerId"], "sh", "-c", "echo -n $WOPR_GATEWAY_KEY")
    assert code == 0 and key.startswith("wgk_b_"), key
    return bot["id"], key


async def test_concurrent_calls_of_a_bot_never_pass_its_daily_cap(
    make_platform: PlatformFactory, fake_provider: FakeProvider
) -> None:
    gateway = await start_gateway(make_platform, fake_provider)
    fake_provider.chunk_delay = 0.2
    await gateway.grant(100 * STREAMED_ESTIMATE)
    bot_id, key = await bot_key(gateway)
    client = gateway.platform.client
    cap = 3 * STREAMED_ESTIMATE + STREAMED_ESTIMATE // 2
    set_cap = await client.put(f"/fleet/bots/{bot_id}/gateway-limits", json={"dailyCap": cap})
    assert set_cap.status_code == 200 and set_cap.json()["dailyCap"] == cap, set_cap.text
    before = await gateway.balance()
    async with gateway.http(key) as http:
        statuses = await ten_at_once(http)
    assert statuses == [(200, None)] * 3 + [(402, "bot_cap_reached")] * 7, statuses
    limits = (await client.get(f"/fleet/bots/{bot_id}/gateway-limits")).json()
    assert (limits["spentToday"], limits["reserved"]) == (3 * cost(4, 5), 0)
    await gateway.balance_is(before - 3 * cost(4, 5))

    # the cap is the bot's: the tenant's own key is not held to it
    async with gateway.http() as http:
        assert (await http.post("/v1/chat/completions", content=STREAMED)).status_code == 200
    # bad caps change nothing; another tenant sees no such bot
    for bad in ({"dailyCap": 0}, {"dailyCap": -5}, {"dailyCap": "10"}, {"cap": 10}):
        refused = await client.put(f"/fleet/bots/{bot_id}/gateway-limits", json=bad)
        assert refused.status_code == 400, (bad, refused.text)
    for method, body in (("GET", None), ("PUT", {"dailyCap": 10**9})):
        other = await client.request(
            method, f"/fleet/bots/{bot_id}/gateway-limits", json=body, headers={"X-Tenant-Id": "acme"}
        )
        assert other.status_code == 404, other.text
    assert (await client.get(f"/fleet/bots/{bot_id}/gateway-limits")).json()["dailyCap"] == cap
    # lifted: the bot calls again
    lifted = await client.put(f"/fleet/bots/{bot_id}/gateway-limits", json={"dailyCap": None})
    assert lifted.status_code == 200 and lifted.json()["dailyCap"] is None
    async with gateway.http(key) as http:
        assert (await http.post("/v1/chat/completions", content=STREAMED)).status_code == 200
    await gateway.ledger_is_consistent()


async def test_a_caller_that_goes_away_mid_stream_pays_for_what_was_produced(
    make_platform: PlatformFactory, fake_provider: FakeProvider
) -> None:
    gateway = await start_gateway(make_platform, fake_provider)
    await gateway.grant(DOLLAR)
    before = await gateway.balance()
    fake_provider.output_tokens, fake_provider.chunk_delay = 40, 0.05
    body = {"model": "gpt-4o-mini", "messages": PROMPT, "stream": True}
    async with gateway.http() as http, http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200
        seen = 0
        async for line in response.aiter_lines():
            seen += line.startswith("data:")
            if seen == 6:
                break
    deadline = time.monotonic() + 10
    while True:
        rows = (await gateway.usage())["usage"]
        if rows and rows[0]["cost"] > 0:
            break
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.05)
    produced = rows[0]["outputTokens"]
    assert 5 <= produced < 40, rows  # charged for the deltas that passed, not the 40 asked for
    assert rows[0]["inputTokens"] > 0
    await gateway.balance_is(before - rows[0]["cost"])
    deadline = time.monotonic() + 10
    while fake_provider.streams_cancelled < 1:  # the provider's stream was closed too
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    await gateway.ledger_is_consistent()


async def test_a_tenants_own_provider_key_is_used_and_costs_nothing(gateway: Gateway) -> None:
    own = "sk-tenant-own-" + uuid.uuid4().hex
    put = await gateway.platform.client.put("/gateway/provider-keys/fakeai", json={"apiKey": own})
    assert put.status_code == 204, put.text
    listed = await gateway.platform.client.get("/gateway/provider-keys")
    assert listed.json() == {"providers": ["fakeai"]} and own not in listed.text
    before = await gateway.balance()
    await gateway.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)  # type: ignore[arg-type]
    assert gateway.fake.requests[-1].headers["authorization"] == f"Bearer {own}"
    await gateway.balance_is(before)
    rows = (await gateway.usage())["usage"]
    assert [(r["calls"], r["outputTokens"], r["cost"]) for r in rows] == [(1, 5, 0)]
    # the other provider still uses (and charges for) the platform's key
    await gateway.anthropic().messages.create(model="claude-3-5-haiku-latest", max_tokens=5, messages=PROMPT)  # type: ignore[arg-type]
    assert sent_key(gateway.fake.requests[-1].headers) == PLATFORM_KEY
    await gateway.balance_is(before - cost(4, 5))
    assert (await gateway.platform.client.delete("/gateway/provider-keys/fakeai")).status_code == 204
    assert (await gateway.platform.client.delete("/gateway/provider-keys/fakeai")).status_code == 404
    bad = await gateway.platform.client.put("/gateway/provider-keys/nosuch", json={"apiKey": own})
    assert bad.status_code == 404


async def test_a_revoked_key_is_refused_at_once(gateway: Gateway) -> None:
    listed = (await gateway.platform.client.get("/gateway/keys")).json()["keys"]
    assert len(listed) == 1 and "key" not in listed[0] and gateway.key not in str(listed)
    client = gateway.openai()
    await client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)  # type: ignore[arg-type]
    assert (await gateway.platform.client.delete(f"/gateway/keys/{listed[0]['id']}")).status_code == 204
    with pytest.raises(openai.AuthenticationError):
        await client.chat.completions.create(model="gpt-4o-mini", messages=PROMPT)  # type: ignore[arg-type]
    assert (await gateway.platform.client.delete(f"/gateway/keys/{listed[0]['id']}")).status_code == 404


async def test_only_the_platform_admin_sets_providers_and_prices(gateway: Gateway) -> None:
    async with httpx.AsyncClient(
        base_url=gateway.platform.url,
        headers={"Authorization": f"Bearer {TOKEN}", "X-Tenant-Id": "acme"},
        trust_env=False,
    ) as acme:
        assert (
            await acme.put("/gateway/models", json={"model": "m", "provider": "fakeai", **PRICES})
        ).status_code == 403
        assert (await acme.get("/gateway/providers")).status_code == 403
        assert (await acme.get("/gateway/models")).status_code == 200
        own = (await acme.post("/gateway/keys", json={"name": "acme"})).json()
        assert (await acme.get("/gateway/usage")).json()["usage"] == []
    # the default tenant cannot revoke acme's key: it is not found for it
    assert (await gateway.platform.client.delete(f"/gateway/keys/{own['id']}")).status_code == 404
    for bad in (
        {"kind": "other", "baseUrl": "http://x", "apiKey": "12345678"},
        {"kind": "openai", "baseUrl": "ftp://x", "apiKey": "12345678"},
        {"kind": "openai", "baseUrl": "http://x", "apiKey": "short"},
    ):
        assert (await gateway.platform.client.put("/gateway/providers/p", json=bad)).status_code == 400
    refused = await gateway.platform.client.put("/gateway/models", json={"model": "m", "provider": "nosuch", **PRICES})
    assert refused.status_code == 400
    negative = await gateway.platform.client.put(
        "/gateway/models", json={"model": "m", "provider": "fakeai", "inputPrice": -1, "outputPrice": 1}
    )
    assert negative.status_code == 400
    in_use = await gateway.platform.client.delete("/gateway/providers/fakeai")
    assert in_use.status_code == 400


# --- bots ---------------------------------------------------------------------------------------------------


async def test_a_bot_from_a_standard_template_reaches_a_model_with_its_own_key(gateway: Gateway) -> None:
    platform = gateway.platform
    created = await platform.client.post(
        "/fleet/bots",
        json={"template": "telegram-anthropic", "image": STUB_IMAGE, "variables": {"TELEGRAM_BOT_TOKEN": "t-1"}},
    )
    assert created.status_code == 201, created.text  # ANTHROPIC_API_KEY came from the platform
    bot = await platform.wait_for(created.json()["id"], state="running")
    before = await gateway.balance()
    request = (
        'wget -q -O- --header "x-api-key: $ANTHROPIC_API_KEY" --header "content-type: application/json" '
        '--post-data \'{"model":"claude-3-5-haiku-latest","max_tokens":4,'
        '"messages":[{"role":"user","content":"hello from a bot"}]}\' '
        '"$ANTHROPIC_BASE_URL/v1/messages"'
    )
    code, output = await docker_exec(bot["containerId"], "sh", "-c", request)
    assert code == 0 and '"output_tokens":4' in output.replace(" ", ""), output
    await gateway.balance_is(before - cost(4, 4))
    rows = (await gateway.usage(botId=bot["id"]))["usage"]
    assert [(r["botId"], r["calls"]) for r in rows] == [(bot["id"], 1)]

    # a rotated key: the old one stops at once, the container is made again with the new one
    _, old_key = await docker_exec(bot["containerId"], "sh", "-c", "echo -n $WOPR_GATEWAY_KEY")
    rotated = await platform.client.post(f"/fleet/bots/{bot['id']}/gateway-key")
    assert rotated.status_code == 200 and rotated.json()["epoch"] == 1, rotated.text
    async with gateway.http(old_key) as old:
        assert (await old.get("/v1/models")).status_code == 401
    deadline = time.monotonic() + 30
    while True:
        current = await platform.bot(bot["id"])
        if current["containerId"] not in (None, bot["containerId"]) and current["state"] == "running":
            break
        assert time.monotonic() < deadline, current
        await asyncio.sleep(0.2)
    code, output = await docker_exec(current["containerId"], "sh", "-c", request)
    assert code == 0 and "tok" in output, output
    # another tenant's bot id cannot be rotated from here
    other = await platform.client.post(f"/fleet/bots/{bot['id']}/gateway-key", headers={"X-Tenant-Id": "acme"})
    assert other.status_code == 404
    # removing the bot ends its key
    _, new_key = await docker_exec(current["containerId"], "sh", "-c", "echo -n $WOPR_GATEWAY_KEY")
    assert (await platform.client.delete(f"/fleet/bots/{bot['id']}")).status_code == 204
    async with gateway.http(new_key) as gone:
        assert (await gone.get("/v1/models")).status_code == 401
