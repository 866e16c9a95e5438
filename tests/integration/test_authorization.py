"""The authorization matrix: every route of the API document, tried by every kind of caller, answers as the one
table of needs (api/permissions.py) says: refused with 401/403/404 exactly when the caller lacks the need."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from tests.conftest import STUB_IMAGE, TOKEN, Platform, PlatformFactory
from tests.integration.accounts_support import User, key_client, new_key, new_user, sign_in
from tests.ports import free_port
from wopr_platform.api.permissions import ROUTES
from wopr_platform.core.access import ROLE_SCOPES
from wopr_platform.db import models

pytestmark = pytest.mark.slow

# what a caller is, for the expectations: its scopes in the tenant it calls for, and its kind
ALL = frozenset(ROLE_SCOPES["owner"])
# routes whose call would end the caller's own session (tried on their own sessions at the end)
SESSION_ENDING = {"POST /auth/logout", "POST /auth/logout-everywhere"}


@dataclass
class Caller:
    name: str
    client: httpx.AsyncClient
    kind: str  # anonymous, operator, user, key, dead
    scopes: frozenset[str] = frozenset()
    owner: bool = False
    platform_admin: bool = False  # acting for the default tenant as a platform admin
    foreign: bool = False  # names a tenant it does not belong to


def expected(caller: Caller, need: str) -> set[int] | None:
    """The refusal statuses a caller must get for a need, or None when it must get through."""
    if need == "public":
        return None
    if caller.kind in ("anonymous", "dead"):
        return {401}
    if caller.foreign:
        return {404}
    if need == "identified":
        return None
    if need == "signed_in":
        return None if caller.kind == "user" else {403}
    if need == "platform_admin":
        return None if caller.platform_admin else {403}
    if need == "owner":
        return None if caller.owner or caller.platform_admin or caller.kind == "operator" else {403}
    return None if need in caller.scopes else {403}


async def _callers(platform: Platform, tenant: str) -> tuple[list[Caller], list[User]]:
    root = await new_user(platform, "root")  # the first user: the platform admin
    root.client.headers["X-Tenant-Id"] = "default"  # else it acts for its own (only) tenant
    owner = await new_user(platform, "owner", tenant=tenant)
    users = [root, owner]
    callers = [
        Caller("anonymous", httpx.AsyncClient(base_url=platform.url, trust_env=False), "anonymous"),
        Caller("operator", platform.client, "operator", ALL, platform_admin=True),
        Caller(
            "operator for the tenant",
            httpx.AsyncClient(
                base_url=platform.url,
                headers={"Authorization": f"Bearer {TOKEN}", "X-Tenant-Id": tenant},
                trust_env=False,
            ),
            "operator",
            ALL,
        ),
        Caller("platform admin user", root.client, "user", ALL, platform_admin=True),
        Caller("owner", owner.client, "user", ALL, owner=True),
    ]
    for role in ("admin", "member", "viewer"):
        user = await new_user(platform, role)
        added = await owner.client.post("/members", json={"email": user.email, "role": role})
        assert added.status_code == 201, added.text
        user.client.headers["X-Tenant-Id"] = tenant
        users.append(user)
        callers.append(Caller(role, user.client, "user", ROLE_SCOPES[role]))  # type: ignore[index]
    outsider = await new_user(platform, "outsider")
    outsider.client.headers["X-Tenant-Id"] = tenant
    users.append(outsider)
    callers.append(Caller("another tenant's owner", outsider.client, "user", foreign=True))
    for scopes in (["read"], ["read", "read:secrets"], ["read", "write"], ["read", "deploy"], ["admin", "read"]):
        key = await new_key(owner, scopes)
        callers.append(Caller(f"key {'+'.join(scopes)}", key_client(platform, key["secret"]), "key", frozenset(scopes)))
    revoked = await new_key(owner, ["read", "write"])
    assert (await owner.client.delete(f"/keys/{revoked['id']}")).status_code == 204
    callers.append(Caller("revoked key", key_client(platform, revoked["secret"]), "dead"))
    expired = await sign_in(platform, owner.email)
    async with platform.app.state.services.database.unit() as session:
        await session.execute(
            update(models.Session).where(models.Session.csrf_token == expired.csrf).values(expires_at=datetime.now(UTC))
        )
    users.append(expired)
    callers.append(Caller("expired session", expired.client, "dead"))
    return callers, users


def _request(method: str, path: str, bot_id: str) -> tuple[str, dict[str, Any]]:
    if method != "GET":  # a change that gets through (a stop takes no body) must not touch the target
        bot_id = str(uuid.uuid4())
    url = path.replace("{bot_id}", bot_id).replace("{rollout_id}", str(uuid.uuid4())).replace("{name}", "nope")
    url = url.replace("{user_id}", str(uuid.uuid4())).replace("{key_id}", str(uuid.uuid4()))
    url = url.replace("{tenant_id}", "untouched-" + uuid.uuid4().hex[:6])
    url = url.replace("{invitation_id}", str(uuid.uuid4()))
    # bodies that pass no validation: a call that gets through answers 400/404 and changes nothing
    return url, ({"json": {"unexpected": True}} if method in ("POST", "PATCH", "PUT") else {})


async def test_every_route_answers_every_kind_of_caller_as_the_table_says(make_platform: PlatformFactory) -> None:
    platform = await make_platform(FLEET_RATE_LIMIT=0, GATEWAY_ENABLED=True, GATEWAY_PORT=free_port())
    tenant = "matrix-" + uuid.uuid4().hex[:6]
    callers, users = await _callers(platform, tenant)
    bot = await platform.client.post(
        "/fleet/bots", json={"name": "target", "image": STUB_IMAGE}, headers={"X-Tenant-Id": tenant}
    )
    assert bot.status_code == 201, bot.text
    bot_id = bot.json()["id"]
    document = platform.app.openapi()["paths"]
    routes = sorted(f"{method.upper()} {path}" for path, ops in document.items() for method in ops)
    assert set(routes) == set(ROUTES), "every route declares its need, and the table names no route that is gone"

    wrong: list[str] = []
    tried = 0
    for route in routes:
        if route in SESSION_ENDING or route == "GET /fleet/events":
            continue
        method, path = route.split(" ", 1)
        url, kwargs = _request(method, path, bot_id)
        for caller in callers:
            response = await caller.client.request(method, url, **kwargs)
            tried += 1
            refused = expected(caller, ROUTES[route])
            status = response.status_code
            if status == 503 and response.json()["details"]["code"] in ("proxy_disabled", "payments_unavailable"):
                status = 200  # got through: routing and payments are off on this test platform
            if status >= 500 or (refused is None and status in (401, 403)) or (refused and status not in refused):
                wrong.append(f"{route} as {caller.name}: {status} {response.text[:160]}")
    assert not wrong, "\n".join(wrong)
    assert tried == (len(routes) - len(SESSION_ENDING) - 1) * len(callers) and len(routes) >= 40

    # the event stream: opened (200) or refused, per the same table
    for caller in callers:
        async with caller.client.stream("GET", "/fleet/events", timeout=10) as response:
            refused = expected(caller, ROUTES["GET /fleet/events"])
            assert (response.status_code == 200) if refused is None else (response.status_code in refused), caller.name

    # the bot nobody may have touched: reads named it, changes named another id or failed validation
    after = (await platform.client.get(f"/fleet/bots/{bot_id}", headers={"X-Tenant-Id": tenant})).json()
    assert after["desiredState"] == "running" and after["name"] == "target"

    # the session-ending routes, each on a session of its own
    for route in sorted(SESSION_ENDING):
        method, path = route.split(" ", 1)
        fresh = await sign_in(platform, users[1].email)
        async with key_client(platform, (await new_key(fresh, ["read"]))["secret"]) as key:
            assert (await key.request(method, path)).status_code == 403
        assert (await fresh.client.request(method, path)).status_code == 204
        await fresh.close()

    for caller in callers:
        if caller.client is not platform.client:
            await caller.client.aclose()
    for user in users:
        await user.close()


def test_the_table_has_a_need_for_every_route_and_only_known_needs() -> None:
    known: set[str] = {"public", "identified", "signed_in", "owner", "platform_admin", *ALL}
    assert set(ROUTES.values()) <= known
    # nothing that changes state is public except signing up and in, a password reset (its mailed token is the
    # credential) and Stripe's webhook (its signature is)
    public_writes = {r for r, need in ROUTES.items() if need == "public" and not r.startswith("GET ")}
    assert public_writes == {
        "POST /auth/signup",
        "POST /auth/login",
        "POST /auth/password-reset",
        "POST /auth/password-reset/confirm",
        "POST /billing/webhook",
    }
