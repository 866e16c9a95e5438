"""Helpers of the tenant-routing tests: a platform routing through the test's Caddy, requests through the proxy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from tests.conftest import Platform, PlatformFactory
from tests.fixtures.caddy import DOMAIN, Caddy


async def routed_platform(make_platform: PlatformFactory, caddy: Caddy, **overrides: Any) -> Platform:
    """A platform routing through `caddy`, once its server blocks are in place and its route DNS answers."""
    platform = await make_platform(**caddy.settings(**overrides))
    await wait_ready(platform)
    return platform


async def wait_ready(platform: Platform, timeout: float = 20.0) -> dict[str, Any]:
    """Poll /health/ready until the proxy check passes; returns that check."""
    deadline = time.monotonic() + timeout
    while True:
        body = (await platform.client.get("/health/ready")).json()
        check = dict(body["checks"]["proxy"])
        if check["ok"]:
            return check
        if time.monotonic() > deadline:
            raise AssertionError(f"the proxy never became ready: {body}")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def proxy_client(caddy: Caddy) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the proxy (keep-alive, no environment proxies); give each request its Host header."""
    async with httpx.AsyncClient(base_url=caddy.proxy_url, timeout=10, trust_env=False) as client:
        yield client


def host(subdomain: str) -> str:
    return f"{subdomain}.{DOMAIN}"


async def until_answer(
    client: httpx.AsyncClient,
    host_header: str,
    path: str,
    status: int,
    *,
    contains: str | None = None,
    timeout: float = 20.0,
) -> httpx.Response:
    """Request `path` with `host_header` through the proxy until the answer has `status` (and `contains`)."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            response = await client.get(path, headers={"Host": host_header})
            if response.status_code == status and (contains is None or contains in response.text):
                return response
            last = (response.status_code, response.text[:200])
        except httpx.TransportError as err:
            last = repr(err)
        if time.monotonic() > deadline:
            raise AssertionError(f"{host_header}{path} never answered {status} {contains or ''}; last {last}")
        await asyncio.sleep(0.05)
