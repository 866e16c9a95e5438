"""Bearer-token authentication of `/fleet/*`; the health routes stay open."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiodocker
import httpx
import pytest

from tests.conftest import STUB_IMAGE, TOKEN, Platform, PlatformFactory

SOME_ID = str(uuid.uuid4())
FLEET_ROUTES: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/fleet/bots", {}),
    ("POST", "/fleet/bots", {"json": {"name": "auth-bot", "image": STUB_IMAGE}}),
    ("GET", f"/fleet/bots/{SOME_ID}", {}),
    ("PATCH", f"/fleet/bots/{SOME_ID}", {"json": {"description": "x"}}),
    ("DELETE", f"/fleet/bots/{SOME_ID}", {}),
    ("POST", f"/fleet/bots/{SOME_ID}/start", {}),
    ("POST", f"/fleet/bots/{SOME_ID}/stop", {}),
    ("POST", f"/fleet/bots/{SOME_ID}/restart", {}),
    ("GET", f"/fleet/bots/{SOME_ID}/logs", {}),
]
ROUTE_IDS = [f"{method} {path.replace(SOME_ID, '{id}')}" for method, path, _ in FLEET_ROUTES]


def assert_401(response: httpx.Response) -> dict[str, Any]:
    """A 401 in the error shape, naming the scheme to use (`WWW-Authenticate: Bearer`, as the original sent)."""
    assert response.status_code == 401, response.text
    assert response.headers.get_list("www-authenticate") == ["Bearer"], response.headers
    body = response.json()
    assert set(body) == {"error", "details"} and isinstance(body["error"], str) and body["error"]
    assert isinstance(body["details"], dict)
    return dict(body)


@pytest.fixture
async def anonymous(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the default platform that sends no Authorization header."""
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False, timeout=30) as client:
        yield client


async def _without_token(
    make_platform: PlatformFactory, monkeypatch: pytest.MonkeyPatch, token: str | None
) -> Platform:
    monkeypatch.delenv("FLEET_API_TOKEN", raising=False)
    platform = await make_platform(FLEET_API_TOKEN=token)
    assert (platform.settings.fleet_api_token is None) == (token is None)
    return platform


@pytest.mark.parametrize("token", [None, ""], ids=["unset", "empty"])
@pytest.mark.parametrize(("method", "path", "kwargs"), FLEET_ROUTES, ids=ROUTE_IDS)
async def test_with_no_token_configured_every_fleet_route_is_401(
    make_platform: PlatformFactory,
    monkeypatch: pytest.MonkeyPatch,
    token: str | None,
    method: str,
    path: str,
    kwargs: dict[str, Any],
) -> None:
    """With no FLEET_API_TOKEN the operator token is disabled: a caller presenting some bearer token is told so, and
    a caller presenting nothing is refused (accounts and keys still work: tests/integration/test_accounts.py)."""
    platform = await _without_token(make_platform, monkeypatch, token)
    for headers, code in (
        ({}, "unauthorized"),
        ({"Authorization": f"Bearer {TOKEN}"}, "auth_not_configured"),
        ({"Authorization": "Bearer"}, "unauthorized"),
    ):
        async with httpx.AsyncClient(base_url=platform.url, trust_env=False, headers=headers) as client:
            body = assert_401(await client.request(method, path, **kwargs))
        assert body["details"]["code"] == code, (headers, body)


async def test_with_no_token_configured_health_still_answers(
    make_platform: PlatformFactory, monkeypatch: pytest.MonkeyPatch, docker: aiodocker.Docker
) -> None:
    """A platform without a token still serves /health and /health/ready, and a refused create made nothing."""
    platform = await _without_token(make_platform, monkeypatch, None)
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False) as client:
        assert (await client.get("/health")).json() == {"status": "ok", "service": "wopr-platform"}
        assert (await client.get("/health/ready")).status_code == 200
        assert_401(await client.post("/fleet/bots", json={"name": "x", "image": STUB_IMAGE}))
    label = f"wopr.platform={platform.settings.platform_id}"
    assert await docker.containers.list(all=True, filters={"label": [label]}) == []


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        TOKEN,
        f"Basic {TOKEN}",
        f"Token {TOKEN}",
        "Bearer",
        "Bearer wrong",
        f"Bearer {TOKEN}x",
        f"Bearer x{TOKEN}",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {TOKEN.upper()}",
        f"Bearer {TOKEN} {TOKEN}",
        f"Bearer {TOKEN},Bearer {TOKEN}",
        "Bearer t\xf6k\xe9n",
    ],
    ids=repr,
)
@pytest.mark.parametrize(("method", "path", "kwargs"), FLEET_ROUTES[:2], ids=ROUTE_IDS[:2])
async def test_bad_credentials_are_401(
    anonymous: httpx.AsyncClient,
    platform: Platform,
    authorization: str | None,
    method: str,
    path: str,
    kwargs: dict[str, Any],
) -> None:
    """Missing header, another scheme, a wrong, longer, shorter or re-cased token: all 401, nothing created."""
    headers = {} if authorization is None else {"Authorization": authorization.encode("latin-1")}
    body = assert_401(await anonymous.request(method, path, headers=headers, **kwargs))
    assert body["details"]["code"] == "unauthorized"
    assert TOKEN not in str(body)
    assert (await platform.client.get("/fleet/bots")).json() == {"bots": []}


@pytest.mark.parametrize("authorization", [f"Bearer {TOKEN}", f"bearer {TOKEN}", f"BEARER {TOKEN}"])
async def test_the_right_token_is_accepted(anonymous: httpx.AsyncClient, authorization: str) -> None:
    """The configured token under the Bearer scheme (scheme case-insensitive, RFC 7235) is let in."""
    response = await anonymous.get("/fleet/bots", headers={"Authorization": authorization})
    assert response.status_code == 200, response.text
    assert response.json() == {"bots": []}


async def test_the_right_token_reaches_every_route(platform: Platform) -> None:
    """Control for the 401s: with the token, every route answers with something other than 401."""
    for method, path, kwargs in FLEET_ROUTES:
        response = await platform.client.request(method, path, **kwargs)
        assert response.status_code != 401, f"{method} {path}: {response.text}"


@pytest.mark.parametrize("path", ["/health", "/health/ready", "/openapi.json"])
async def test_health_and_openapi_need_no_token(anonymous: httpx.AsyncClient, path: str) -> None:
    """Probes and the API document answer without credentials."""
    response = await anonymous.get(path)
    assert response.status_code == 200, response.text
