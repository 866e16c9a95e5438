"""Every answer carries the security headers (successes, errors, 404, 413, 429, the last-resort 500), no Server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.conftest import TOKEN, Platform, PlatformFactory
from wopr_platform.api import permissions

API_POLICY = "default-src 'none'; frame-ancestors 'none'"
FIXED = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def assert_secured(response: httpx.Response, *, policy: str = API_POLICY) -> None:
    """The fixed headers, the API's CSP, a request id, no HSTS (plain HTTP) and nothing naming the server."""
    where = f"{response.request.method} {response.request.url} -> {response.status_code}"
    for name, value in FIXED.items():
        assert response.headers.get(name) == value, f"{where}: {name}={response.headers.get(name)!r}"
    assert response.headers.get("content-security-policy") == policy, where
    assert response.headers.get("x-request-id"), where
    assert "strict-transport-security" not in response.headers, where
    assert "server" not in response.headers, f"{where}: server={response.headers.get('server')!r}"
    for name in ("cache-control", "content-security-policy", "x-request-id"):
        assert len(response.headers.get_list(name)) == 1, f"{where}: {name} sent twice"


@pytest.fixture
async def limited(make_platform: PlatformFactory) -> Platform:
    """A platform whose requests are limited to 3 per minute (per token, and per address without one)."""
    return await make_platform(FLEET_RATE_LIMIT=3, FLEET_RATE_WINDOW=60)


@pytest.fixture
async def anonymous(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False, timeout=30) as client:
        yield client


async def test_successful_answers_carry_the_headers(platform: Platform, anonymous: httpx.AsyncClient) -> None:
    """Health, the bot list, a created bot and the API document are all secured."""
    assert_secured(await anonymous.get("/health"))
    assert_secured(await anonymous.get("/health/ready"))
    assert_secured(await anonymous.get("/openapi.json"))
    assert_secured(await platform.client.get("/fleet/bots"))
    created = await platform.client.post("/fleet/bots", json={"name": "hdr-" + uuid.uuid4().hex[:6], "image": ""})
    assert created.status_code == 400
    assert_secured(created)


async def test_error_answers_carry_the_headers(platform: Platform, anonymous: httpx.AsyncClient) -> None:
    """401, 404 (unknown route, unknown bot), 405, 400 and 413 are secured like any answer."""
    assert_secured(await anonymous.get("/fleet/bots"))
    assert_secured(await anonymous.get("/nothing/here"))
    assert_secured(await platform.client.get(f"/fleet/bots/{uuid.uuid4()}"))
    assert_secured(await platform.client.put("/fleet/bots"))
    assert_secured(
        await platform.client.post("/fleet/bots", content=b"{", headers={"content-type": "application/json"})
    )
    too_big = await platform.client.post("/fleet/bots", content=b"x" * (1_048_576 + 1))
    assert too_big.status_code == 413
    assert_secured(too_big)


async def test_the_last_resort_500_carries_the_headers(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unhandled exception (injected: a route added by the test that raises) still gets the headers.

    The injected route is declared in the table of needs, as every route must be (an undeclared one is refused)."""

    async def injected_fault() -> None:
        raise RuntimeError("injected fault")

    monkeypatch.setitem(permissions.ROUTES, "GET /injected-fault", "read")
    platform.app.add_api_route("/injected-fault", injected_fault, methods=["GET"])
    response = await platform.client.get("/injected-fault")
    assert response.status_code == 500
    assert response.json() == {"error": "internal error", "details": {"code": "internal_error"}}
    assert_secured(response)


async def test_a_rate_limited_answer_carries_the_headers(limited: Platform) -> None:
    for _ in range(3):
        assert (await limited.client.get("/fleet/bots")).status_code == 200
    refused = await limited.client.get("/fleet/bots")
    assert refused.status_code == 429
    assert_secured(refused)


async def test_an_event_stream_is_not_stored_either(platform: Platform) -> None:
    """The stream's own `Cache-Control: no-cache` becomes `no-store` (one value, not two)."""
    async with platform.client.stream("GET", "/fleet/events") as response:
        assert response.status_code == 200
        assert_secured(response)


async def test_the_docs_page_may_load_its_assets(anonymous: httpx.AsyncClient) -> None:
    """/docs and /redoc get a policy that admits their CDN scripts and styles; still no framing, no plugins."""
    for path in ("/docs", "/redoc"):
        response = await anonymous.get(path)
        assert response.status_code == 200
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
        assert "script-src 'unsafe-inline' https://cdn.jsdelivr.net" in policy
        assert "connect-src 'self'" in policy
        assert response.headers["x-frame-options"] == "DENY"
        assert "server" not in response.headers
    assert_secured(await anonymous.get("/docs/other"))


async def test_hsts_only_when_served_over_https(make_platform: PlatformFactory) -> None:
    platform = await make_platform(PLATFORM_HTTPS=True)
    for response in (await platform.client.get("/fleet/bots"), await platform.client.get("/nothing")):
        assert response.headers["strict-transport-security"] == "max-age=31536000"


async def test_request_ids_are_always_the_platforms_own(platform: Platform) -> None:
    """A caller's X-Request-ID never becomes the request's id (it could reuse another request's); the audit log
    keeps it apart (tests/integration/test_audit.py)."""
    given = await platform.client.get("/fleet/bots", headers={"X-Request-ID": "req-123.abc"})
    assert given.headers["x-request-id"] != "req-123.abc"
    assert len(given.headers["x-request-id"]) == 32
    for bad in ("x" * 65, "a b", "<script>", "ünï"):
        response = await platform.client.get("/fleet/bots", headers={"X-Request-ID": bad.encode()})
        assert response.headers["x-request-id"] != bad
        assert len(response.headers["x-request-id"]) == 32
    one, two = await platform.client.get("/health"), await platform.client.get("/health")
    assert one.headers["x-request-id"] != two.headers["x-request-id"]


async def test_the_token_is_never_echoed(anonymous: httpx.AsyncClient) -> None:
    """A wrong or right token appears in no header or body of the answer."""
    for token in (TOKEN, TOKEN + "x"):
        response = await anonymous.get("/fleet/nothing", headers={"Authorization": f"Bearer {token}"})
        assert token not in response.text and all(token not in v for v in response.headers.values())
