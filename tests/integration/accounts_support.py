"""Users, sessions and keys for tests: signed up, signed in and made through the API itself."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.conftest import Platform

PASSWORD = "correct horse battery staple"


def email(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:8]}@example.test"


@dataclass
class User:
    """A signed-in user: a client carrying the session cookie and sending the CSRF token on every call."""

    email: str
    id: str
    client: httpx.AsyncClient
    csrf: str
    tenants: dict[str, str] = field(default_factory=dict)

    async def close(self) -> None:
        await self.client.aclose()


async def sign_up(platform: Platform, who: str, tenant: str | None = None, password: str = PASSWORD) -> str:
    address = email(who)
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False) as anonymous:
        body: dict[str, Any] = {"email": address, "password": password}
        if tenant is not None:
            body["tenantId"] = tenant
        response = await anonymous.post("/auth/signup", json=body)
    assert response.status_code == 202, response.text
    return address


async def sign_in(platform: Platform, address: str, password: str = PASSWORD, tenant: str | None = None) -> User:
    client = httpx.AsyncClient(base_url=platform.url, trust_env=False, timeout=60)
    response = await client.post("/auth/login", json={"email": address, "password": password})
    assert response.status_code == 200, response.text
    body = response.json()
    client.headers["X-CSRF-Token"] = body["csrfToken"]
    if tenant is not None:
        client.headers["X-Tenant-Id"] = tenant
    return User(
        email=address,
        id=body["user"]["id"],
        client=client,
        csrf=body["csrfToken"],
        tenants={m["tenantId"]: m["role"] for m in body["user"]["tenants"]},
    )


async def new_user(platform: Platform, who: str, tenant: str | None = None) -> User:
    return await sign_in(platform, await sign_up(platform, who, tenant), tenant=tenant)


def key_client(platform: Platform, secret: str, **headers: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=platform.url,
        headers={"Authorization": f"Bearer {secret}", **headers},
        trust_env=False,
        timeout=60,
    )


async def new_key(user: User, scopes: list[str], **fields: Any) -> dict[str, Any]:
    response = await user.client.post("/keys", json={"name": "k-" + uuid.uuid4().hex[:6], "scopes": scopes, **fields})
    assert response.status_code == 201, response.text
    return dict(response.json())
