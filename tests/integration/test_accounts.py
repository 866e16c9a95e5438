"""Accounts against a real running platform and database: sign-up, sign-in, sessions and their cookie, CSRF,
password change, members and roles, API keys (scopes, expiry, address allowlist, revocation), and what is stored."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text, update

from tests.conftest import STUB_IMAGE, Platform, PlatformFactory, several_replicas
from tests.integration.accounts_support import (
    PASSWORD,
    email,
    key_client,
    new_key,
    new_user,
    sign_in,
    sign_up,
)
from wopr_platform.db import models

pytestmark = pytest.mark.slow


@pytest.fixture
async def accounts(make_platform: PlatformFactory) -> Platform:
    """A platform whose API is not rate-limited (every test user calls from the same address), and whose first
    user (the platform admin) exists already, so the users a test makes are ordinary ones."""
    platform = await make_platform(FLEET_RATE_LIMIT=0)
    await sign_up(platform, "root")
    return platform


def _bot(name: str | None = None) -> dict[str, str]:
    return {"name": name or "bot-" + uuid.uuid4().hex[:8], "image": STUB_IMAGE}


async def _rows(platform: Platform, sql: str) -> list[tuple[object, ...]]:
    async with platform.app.state.services.database.read() as session:
        return [tuple(row) for row in (await session.execute(text(sql))).all()]


async def _update(platform: Platform, where: Any, **values: object) -> None:
    async with platform.app.state.services.database.unit() as session:
        await session.execute(update(models.Session).where(where).values(**values))


# --- sign-up and sign-in ---------------------------------------------------------------------------------


async def test_the_first_user_is_the_platform_admin_and_sign_up_does_not_tell_who_has_an_account(
    make_platform: PlatformFactory,
) -> None:
    accounts = await make_platform(FLEET_RATE_LIMIT=0)
    root = await new_user(accounts, "root")
    again = await sign_up(accounts, "second")
    second = await sign_in(accounts, again)
    me = (await root.client.get("/auth/me")).json()
    assert me["platformAdmin"] is True and list(me["tenants"][0]) == ["tenantId", "role"]
    assert (await second.client.get("/auth/me")).json()["platformAdmin"] is False

    async with httpx.AsyncClient(base_url=accounts.url, trust_env=False) as anonymous:
        taken = await anonymous.post("/auth/signup", json={"email": again, "password": "another long password"})
        fresh = await anonymous.post("/auth/signup", json={"email": email("fresh"), "password": PASSWORD})
    assert taken.status_code == fresh.status_code == 202 and taken.json() == fresh.json()
    assert await _rows(accounts, f"SELECT count(*) FROM users WHERE email = '{again}'") == [(1,)]
    # the original password still signs in; the one sent with the second sign-up does not
    await sign_in(accounts, again)
    async with httpx.AsyncClient(base_url=accounts.url, trust_env=False) as anonymous:
        assert (
            await anonymous.post("/auth/login", json={"email": again, "password": "another long password"})
        ).status_code == 401
    for user in (root, second):
        await user.close()


async def test_a_platform_nobody_signed_up_to_says_how_to_get_in_and_then_no_more(
    make_platform: PlatformFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="wopr_platform.app.asgi")
    platform = await make_platform()
    [welcome] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("welcome:")]
    assert f"{platform.url}/ui/signup" in welcome and f"{platform.url}/docs" in welcome
    assert "the first to sign up becomes the platform's admin" in welcome
    assert "FLEET_API_TOKEN as the operator's key" in welcome
    async with httpx.AsyncClient(trust_env=False) as anonymous:
        assert (await anonymous.get(f"{platform.url}/docs")).status_code == 200
    first = await new_user(platform, "first")
    await first.close()
    await platform.stop()
    caplog.clear()
    await make_platform()  # the same database: someone has signed up
    assert not [r for r in caplog.records if r.getMessage().startswith("welcome:")]


async def test_wrong_password_and_unknown_email_answer_alike(accounts: Platform) -> None:
    address = await sign_up(accounts, "alike")
    async with httpx.AsyncClient(base_url=accounts.url, trust_env=False) as anonymous:
        wrong = await anonymous.post("/auth/login", json={"email": address, "password": "wrong password!!"})
        unknown = await anonymous.post("/auth/login", json={"email": email("nobody"), "password": "wrong password!!"})
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.json()
        == unknown.json()
        == {"error": "wrong email or password", "details": {"code": "invalid_credentials"}}
    )
    assert "set-cookie" not in wrong.headers and "set-cookie" not in unknown.headers


async def test_sign_in_is_throttled_per_account(accounts: Platform) -> None:
    address = await sign_up(accounts, "throttled")
    async with httpx.AsyncClient(base_url=accounts.url, trust_env=False) as anonymous:
        statuses = [
            (
                await anonymous.post("/auth/login", json={"email": address, "password": "guess number " + str(i)})
            ).status_code
            for i in range(12)
        ]
        assert statuses[:10] == [401] * 10 and statuses[10:] == [429, 429], statuses
        # the right password is refused too while the account is throttled
        right = await anonymous.post("/auth/login", json={"email": address, "password": PASSWORD})
    assert right.status_code == 429 and right.json()["details"]["code"] == "login_throttled"


@pytest.mark.parametrize("mode", ["off", "invite"])
async def test_closed_sign_up_admits_only_the_first_user(make_platform: PlatformFactory, mode: str) -> None:
    platform = await make_platform(AUTH_SIGNUP=mode, FLEET_RATE_LIMIT=0)
    await sign_up(platform, "first")
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False) as anonymous:
        refused = await anonymous.post("/auth/signup", json={"email": email("late"), "password": PASSWORD})
    assert refused.status_code == 403 and refused.json()["details"]["code"] == "signup_closed"
    assert await _rows(platform, "SELECT count(*) FROM users") == [(1,)]


# --- sessions ------------------------------------------------------------------------------------------------


async def test_the_session_cookie_is_httponly_lax_and_each_sign_in_makes_a_new_one(accounts: Platform) -> None:
    address = await sign_up(accounts, "cookie")
    planted = {"Cookie": "wopr_session=chosen-by-an-attacker"}  # a session id fixed before sign-in
    async with httpx.AsyncClient(base_url=accounts.url, trust_env=False) as browser:
        assert (await browser.get("/auth/me", headers=planted)).status_code == 401
        response = await browser.post("/auth/login", json={"email": address, "password": PASSWORD}, headers=planted)
        cookie = response.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie and "Secure" not in cookie
        first = response.cookies["wopr_session"]
        assert first != "chosen-by-an-attacker"
        again = await browser.post("/auth/login", json={"email": address, "password": PASSWORD})
        assert again.status_code == 200 and again.cookies["wopr_session"] != first
        assert (await browser.get("/auth/me", headers={"Cookie": f"wopr_session={first}"})).status_code == 200
    stored = await _rows(accounts, "SELECT token_hash FROM sessions")
    assert all(first not in str(row) for row in stored)  # only the hash of the token is kept


async def test_state_changing_calls_with_the_cookie_need_the_csrf_token(accounts: Platform) -> None:
    user = await new_user(accounts, "csrf")
    name = "csrf-" + uuid.uuid4().hex[:6]
    forged = await user.client.post("/fleet/bots", json=_bot(name), headers={"X-CSRF-Token": "nope"})
    assert forged.status_code == 403 and forged.json()["details"]["code"] == "csrf_failed"
    del user.client.headers["X-CSRF-Token"]
    missing = await user.client.post("/fleet/bots", json=_bot(name))
    assert missing.status_code == 403
    assert (await user.client.get("/fleet/bots")).json()["bots"] == []  # reads need no token; nothing was made
    made = await user.client.post("/fleet/bots", json=_bot(name), headers={"X-CSRF-Token": user.csrf})
    assert made.status_code == 201, made.text
    await user.close()


async def test_sign_out_ends_the_session_and_sign_out_everywhere_ends_them_all(accounts: Platform) -> None:
    address = await sign_up(accounts, "signout")
    one, two, three = [await sign_in(accounts, address) for _ in range(3)]
    kept = one.client.cookies["wopr_session"]
    signed_out = await one.client.post("/auth/logout")
    assert signed_out.status_code == 204 and 'wopr_session=""' in signed_out.headers["set-cookie"]
    # the cookie the server told the browser to drop is dead on the server too
    ended = await one.client.get("/auth/me", headers={"Cookie": f"wopr_session={kept}"})
    assert ended.status_code == 401 and ended.json()["details"]["code"] == "session_expired"
    assert (await two.client.get("/auth/me")).status_code == 200
    assert (await two.client.post("/auth/logout-everywhere")).status_code == 204
    for user in (two, three):
        assert (await user.client.get("/auth/me")).status_code == 401
        await user.close()
    await one.close()


async def test_idle_and_old_sessions_end(accounts: Platform) -> None:
    address = await sign_up(accounts, "expiry")
    idle, old = await sign_in(accounts, address), await sign_in(accounts, address)
    sessions = [row[0] for row in await _rows(accounts, f"SELECT id FROM sessions WHERE user_id = '{idle.id}'")]
    one_session = models.Session.id == min(str(s) for s in sessions)
    await _update(accounts, one_session, last_seen_at=datetime.now(UTC) - timedelta(hours=9))
    # the rows were changed behind the platform's back (a change through the API empties the cache itself)
    accounts.app.state.services.accounts.forget()
    results = [(await user.client.get("/auth/me")).status_code for user in (idle, old)]
    assert sorted(results) == [200, 401]  # the one made idle has ended, the other goes on
    await _update(accounts, models.Session.user_id == idle.id, expires_at=datetime.now(UTC))
    accounts.app.state.services.accounts.forget()
    for user in (idle, old):
        assert (await user.client.get("/auth/me")).status_code == 401
        await user.close()


async def test_a_password_change_ends_every_other_session(accounts: Platform) -> None:
    address = await sign_up(accounts, "pw")
    here, elsewhere = await sign_in(accounts, address), await sign_in(accounts, address)
    wrong = await here.client.post(
        "/auth/password", json={"currentPassword": "not it at all", "newPassword": "a brand new password"}
    )
    assert wrong.status_code == 401
    changed = await here.client.post(
        "/auth/password", json={"currentPassword": PASSWORD, "newPassword": "a brand new password"}
    )
    assert changed.status_code == 200, changed.text
    here.client.headers["X-CSRF-Token"] = changed.json()["csrfToken"]
    assert (await here.client.get("/auth/me")).status_code == 200  # this browser got a new session
    assert (await elsewhere.client.get("/auth/me")).status_code == 401
    async with httpx.AsyncClient(base_url=accounts.url, trust_env=False) as anonymous:
        assert (await anonymous.post("/auth/login", json={"email": address, "password": PASSWORD})).status_code == 401
    await sign_in(accounts, address, password="a brand new password")
    for user in (here, elsewhere):
        await user.close()


# --- tenants, members and roles ---------------------------------------------------------------------------


async def test_members_act_with_their_role_and_nobody_else_sees_the_tenant(accounts: Platform) -> None:
    tenant = "acme-" + uuid.uuid4().hex[:6]
    owner = await new_user(accounts, "owner", tenant=tenant)
    viewer = await new_user(accounts, "viewer")
    outsider = await new_user(accounts, "outsider")
    added = await owner.client.post("/members", json={"email": viewer.email, "role": "viewer"})
    assert added.status_code == 201, added.text
    bot = (await owner.client.post("/fleet/bots", json=_bot())).json()

    viewer.client.headers["X-Tenant-Id"] = tenant
    assert [b["id"] for b in (await viewer.client.get("/fleet/bots")).json()["bots"]] == [bot["id"]]
    refused = await viewer.client.post(f"/fleet/bots/{bot['id']}/stop")
    assert refused.status_code == 403 and refused.json()["details"] == {"code": "scope_required", "scope": "write"}

    outsider.client.headers["X-Tenant-Id"] = tenant
    for response in (await outsider.client.get("/fleet/bots"), await outsider.client.get(f"/fleet/bots/{bot['id']}")):
        assert response.status_code == 404 and response.json()["details"]["code"] == "tenant_not_found"
    del outsider.client.headers["X-Tenant-Id"]
    assert (await outsider.client.get(f"/fleet/bots/{bot['id']}")).status_code == 404  # in its own tenant

    promoted = await owner.client.patch(f"/members/{viewer.id}", json={"role": "member"})
    assert promoted.status_code == 200
    assert (await viewer.client.post(f"/fleet/bots/{bot['id']}/stop")).status_code == 200

    # ownership moves; the previous owner becomes an admin and may no longer transfer it
    assert (await owner.client.post(f"/members/{viewer.id}/ownership")).status_code == 200
    roles = {m["email"]: m["role"] for m in (await owner.client.get("/members")).json()["members"]}
    assert roles == {owner.email: "admin", viewer.email: "owner"}
    again = await owner.client.post(f"/members/{owner.id}/ownership")
    assert again.status_code == 403 and again.json()["details"]["code"] == "owner_required"
    for user in (owner, viewer, outsider):
        await user.close()


async def test_removing_a_member_revokes_the_keys_they_made(accounts: Platform) -> None:
    tenant = "keys-" + uuid.uuid4().hex[:6]
    owner = await new_user(accounts, "owner", tenant=tenant)
    admin = await new_user(accounts, "admin")
    await owner.client.post("/members", json={"email": admin.email, "role": "admin"})
    admin.client.headers["X-Tenant-Id"] = tenant
    key = await new_key(admin, ["read"])
    async with key_client(accounts, key["secret"]) as client:
        assert (await client.get("/fleet/bots")).status_code == 200
        assert (await owner.client.delete(f"/members/{admin.id}")).status_code == 204
        assert (await client.get("/fleet/bots")).status_code == 401
    assert (await admin.client.get("/fleet/bots")).status_code == 404
    for user in (owner, admin):
        await user.close()


# --- API keys ----------------------------------------------------------------------------------------------


async def test_a_key_is_shown_once_stored_as_a_hash_and_acts_within_its_scopes(accounts: Platform) -> None:
    owner = await new_user(accounts, "keys")
    key = await new_key(owner, ["read"])
    assert key["secret"].startswith(key["prefix"] + "_") and key["scopes"] == ["read"]
    listed = (await owner.client.get("/keys")).json()["keys"]
    assert [k["prefix"] for k in listed] == [key["prefix"]] and "secret" not in listed[0]
    stored = repr(await _rows(accounts, "SELECT * FROM api_keys"))
    assert key["secret"] not in stored and key["secret"].split("_", 2)[2] not in stored

    async with key_client(accounts, key["secret"]) as client:
        assert (await client.get("/fleet/bots")).status_code == 200
        denied = await client.post("/fleet/bots", json=_bot())
        assert denied.status_code == 403 and denied.json()["details"] == {"code": "scope_required", "scope": "write"}
        assert (await client.get("/auth/me")).status_code == 404  # a key is not a user
        assert (await client.post("/keys", json={"name": "x", "scopes": ["read"]})).status_code == 403
    used = (await owner.client.get("/keys")).json()["keys"][0]
    assert used["lastUsedAt"] is not None

    # a key cannot hold more than its creator: an admin key without write cannot mint a write key
    minter = await new_key(owner, ["admin", "read"])
    async with key_client(accounts, minter["secret"]) as client:
        grab = await client.post("/keys", json={"name": "more", "scopes": ["read", "write"]})
        assert grab.status_code == 403 and grab.json()["details"] == {"code": "scope_not_held", "scopes": ["write"]}
        assert (await client.post("/keys", json={"name": "less", "scopes": ["read"]})).status_code == 201
    await owner.close()


@several_replicas
async def test_a_revoked_key_is_refused_at_once_on_every_replica(make_platform: PlatformFactory) -> None:
    first = await make_platform(FLEET_RATE_LIMIT=0)
    second = await make_platform(
        FLEET_RATE_LIMIT=0, DATABASE_URL=first.settings.database_url, WOPR_PLATFORM_ID=first.settings.platform_id
    )
    owner = await new_user(first, "revoke")
    key = await new_key(owner, ["read", "write"])
    async with key_client(first, key["secret"]) as on_first, key_client(second, key["secret"]) as on_second:
        assert (await on_first.get("/fleet/bots")).status_code == 200
        assert (await on_second.get("/fleet/bots")).status_code == 200
        assert (await owner.client.delete(f"/keys/{key['id']}")).status_code == 204
        for client in (on_first, on_second):
            response = await client.get("/fleet/bots")
            assert response.status_code == 401, response.text
    assert (await owner.client.delete(f"/keys/{key['id']}")).status_code == 404
    await owner.close()


@several_replicas
async def test_a_replica_that_cannot_hear_the_others_does_not_trust_its_cache(make_platform: PlatformFactory) -> None:
    """With the listening connections cut, a revocation made on one replica still holds at once on the other."""
    first = await make_platform(FLEET_RATE_LIMIT=0)
    second = await make_platform(
        FLEET_RATE_LIMIT=0, DATABASE_URL=first.settings.database_url, WOPR_PLATFORM_ID=first.settings.platform_id
    )
    owner = await new_user(first, "deaf")
    key = await new_key(owner, ["read"])
    async with key_client(second, key["secret"]) as on_second:
        for _ in range(3):  # cached on the second replica now
            assert (await on_second.get("/fleet/bots")).status_code == 200
        async with first.app.state.services.database.unit() as session:
            cut = await session.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"),
                {"name": "wopr-broadcast"},
            )
            assert len(cut.all()) >= 2
        await asyncio.sleep(0.2)
        assert (await owner.client.delete(f"/keys/{key['id']}")).status_code == 204
        assert (await on_second.get("/fleet/bots")).status_code == 401
    await owner.close()


async def test_expired_keys_keys_from_other_addresses_and_other_tenants_are_refused(accounts: Platform) -> None:
    owner = await new_user(accounts, "limits")
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    expiring = await new_key(owner, ["read"], expiresAt=soon)
    fenced = await new_key(owner, ["read"], allowedAddresses=["10.0.0.0/8"])
    local = await new_key(owner, ["read"], allowedAddresses=["127.0.0.1"])
    past = await owner.client.post("/keys", json={"name": "p", "scopes": ["read"], "expiresAt": "2020-01-01T00:00:00Z"})
    assert past.status_code == 409
    async with key_client(accounts, fenced["secret"]) as client:
        response = await client.get("/fleet/bots")
        assert response.status_code == 403 and response.json()["details"]["code"] == "address_not_allowed"
    async with key_client(accounts, local["secret"]) as client:
        assert (await client.get("/fleet/bots")).status_code == 200
        other = await client.get("/fleet/bots", headers={"X-Tenant-Id": "someone-else"})
        assert other.status_code == 404 and other.json()["details"]["code"] == "tenant_not_found"
    async with key_client(accounts, expiring["secret"]) as client:
        assert (await client.get("/fleet/bots")).status_code == 200
        await asyncio.sleep(2.5)
        assert (await client.get("/fleet/bots")).status_code == 401
    await owner.close()


async def test_the_audit_log_names_the_user_or_the_key_never_a_secret(accounts: Platform) -> None:
    owner = await new_user(accounts, "audited")
    key = await new_key(owner, ["read", "write"])
    made = await owner.client.post("/fleet/bots", json=_bot())
    async with key_client(accounts, key["secret"]) as client:
        stopped = await client.post(f"/fleet/bots/{made.json()['id']}/stop")
    assert stopped.status_code == 200
    events = (await owner.client.get("/audit")).json()["events"]
    actors = [e["actor"] for e in events]
    assert f"key:{key['id']}" in actors and f"user:{owner.id}" in actors
    stored = repr(await _rows(accounts, "SELECT * FROM audit_events"))
    assert key["secret"] not in stored and owner.csrf not in stored
    await owner.close()


async def test_the_operator_token_still_acts_for_any_tenant(accounts: Platform) -> None:
    owner = await new_user(accounts, "op")
    tenant = next(iter(owner.tenants))
    made = await accounts.client.post("/fleet/bots", json=_bot(), headers={"X-Tenant-Id": tenant})
    assert made.status_code == 201
    assert [b["id"] for b in (await owner.client.get("/fleet/bots")).json()["bots"]] == [made.json()["id"]]
    await owner.close()


async def test_a_platform_admin_lists_users_and_grants_platform_admin(make_platform: PlatformFactory) -> None:
    platform = await make_platform(FLEET_RATE_LIMIT=0)
    root = await new_user(platform, "root")
    ana = await new_user(platform, "ana")
    assert (await ana.client.get("/users")).status_code == 403  # acting for its own tenant, not an admin
    root.client.headers["X-Tenant-Id"] = "default"
    page = (await root.client.get("/users", params={"limit": 1})).json()
    assert len(page["users"]) == 1 and page["nextAfter"] == page["users"][0]["email"]
    rest = (await root.client.get("/users", params={"after": page["nextAfter"]})).json()
    assert {u["email"] for u in page["users"] + rest["users"]} == {root.email, ana.email}

    # ana's session is cached as an ordinary user; the grant reaches it at once
    ana.client.headers["X-Tenant-Id"] = "default"
    assert (await ana.client.get("/users")).status_code == 404  # not a member of default, not an admin
    granted = await root.client.patch(f"/users/{ana.id}", json={"platformAdmin": True})
    assert granted.status_code == 200 and granted.json()["platformAdmin"] is True
    assert (await ana.client.get("/users")).status_code == 200
    # the last admin stays: ana withdraws root, then cannot withdraw herself
    assert (await ana.client.patch(f"/users/{root.id}", json={"platformAdmin": False})).status_code == 200
    last = await ana.client.patch(f"/users/{ana.id}", json={"platformAdmin": False})
    assert last.status_code == 409 and last.json()["details"]["code"] == "last_platform_admin"
    for user in (root, ana):
        await user.close()
