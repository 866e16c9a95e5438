"""The console's pages for platform admins against a real platform: a tenant's credits granted once per form and its
quota set, users made platform admins, a rollout's waves followed while it runs (a real registry and engine); and
everyone else refused, whatever they send."""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import pytest

from tests.conftest import PlatformFactory
from tests.fixtures.registry import Registry
from tests.integration.billing_support import BILLING, balance
from tests.integration.console_support import hidden_fields, new_console_user
from tests.integration.updates_support import halting_rollout, rollout_bots, update_settings

pytestmark = pytest.mark.slow


async def test_a_platform_admin_grants_credits_once_and_sets_a_tenants_quota(make_platform: PlatformFactory) -> None:
    platform = await make_platform(**BILLING)
    root = await new_console_user(platform, "root")  # the first to sign up: the platform's admin
    customer = await new_console_user(platform, "customer")
    tenant = await customer.own_tenant()
    listed = await root.page("/ui/admin/tenants")
    assert f'href="/ui/admin/tenants/{tenant}"' in listed

    page = await root.page(f"/ui/admin/tenants/{tenant}")
    form = hidden_fields(page, f"/ui/admin/tenants/{tenant}/grants")
    # the same form sent twice (a double click): one grant
    for expected in ("Credits granted.", "nothing given"):
        sent = await root.post(f"/ui/admin/tenants/{tenant}/grants", {**form, "amount": "12.5", "memo": "welcome"})
        assert (sent.status_code, sent.headers["location"]) == (303, f"/ui/admin/tenants/{tenant}"), sent.text
        assert expected in await root.flash()
    assert await balance(platform, tenant) == 12_500_000
    grants = (await platform.client.get("/billing/transactions", headers={"X-Tenant-Id": tenant})).json()
    assert [(t["kind"], t["amount"], t["memo"]) for t in grants["transactions"]] == [("grant", 12_500_000, "welcome")]
    assert "12,500,000" in await root.page(f"/ui/admin/tenants/{tenant}")
    assert "12,500,000" in await customer.page("/ui/billing")  # and the tenant sees it

    # what changes nothing: no CSRF token, another site's form, the tenant itself posting the admin's form
    fresh = hidden_fields(await root.page(f"/ui/admin/tenants/{tenant}"), f"/ui/admin/tenants/{tenant}/grants")
    no_csrf = await root.post(f"/ui/admin/tenants/{tenant}/grants", {"key": fresh["key"], "amount": "5"}, csrf=False)
    assert no_csrf.status_code == 303 and "X-CSRF-Token" in await root.flash()
    foreign = await root.post(f"/ui/admin/tenants/{tenant}/grants", {**fresh, "amount": "5"}, origin="https://x.test")
    assert foreign.status_code == 403
    own = hidden_fields(await customer.page("/ui/billing"), "/ui/billing/limits")
    forged = await customer.post(f"/ui/admin/tenants/{tenant}/grants", {**own, "key": fresh["key"], "amount": "5"})
    assert forged.status_code == 303 and "platform admin" in await customer.flash()
    bad = await root.post(f"/ui/admin/tenants/{tenant}/grants", {**fresh, "amount": "-5"})
    assert bad.status_code == 303 and "positive" in await root.flash()
    assert await balance(platform, tenant) == 12_500_000
    checked = (await platform.client.get("/billing/ledger-check")).json()
    assert checked["ok"] and checked["entries"] == 1

    quota_form = {"csrf": fresh["csrf"], "maxBots": "3", "maxMemoryMb": "", "maxCpus": "1.5"}
    saved = await root.post(f"/ui/admin/tenants/{tenant}/quota", quota_form)
    assert saved.status_code == 303 and await root.flash() == "Quota saved."
    quota = (await platform.client.get(f"/tenants/{tenant}/quota")).json()
    assert quota["overrides"] == {"maxBots": 3, "maxMemoryMb": None, "maxCpus": 1.5}
    assert 'name="maxBots" type="number" min="0" step="1" value="3"' in await root.page(f"/ui/admin/tenants/{tenant}")
    refused = await root.post(f"/ui/admin/tenants/{tenant}/quota", {**quota_form, "maxBots": "-1"})
    assert refused.status_code == 303 and "maxBots" in await root.flash()
    assert (await platform.client.get(f"/tenants/{tenant}/quota")).json()["overrides"]["maxBots"] == 3

    missing = await root.page("/ui/admin/tenants/no-such-tenant", status=404)
    assert "tenant not found" in missing
    assert "tenant id must be" in await root.page("/ui/admin/tenants/Bad_Id", status=400)
    await root.close()
    await customer.close()


async def test_only_a_platform_admin_sees_and_changes_users_and_others_get_a_refusal(
    make_platform: PlatformFactory,
) -> None:
    platform = await make_platform()
    root = await new_console_user(platform, "root")
    other = await new_console_user(platform, "other")
    tenant = await other.own_tenant()
    for path in ("/ui/admin/users", "/ui/rollouts", "/ui/admin/tenants", f"/ui/admin/tenants/{tenant}"):
        refused = await other.page(path, status=403)
        assert "That did not work" in refused and "platform admin" in refused, path
    me = (await other.get("/auth/me")).json()
    csrf = hidden_fields(await other.page("/ui/billing"), "/ui/billing/limits")["csrf"]
    forged = await other.post(f"/ui/admin/users/{me['id']}/platform-admin", {"csrf": csrf, "platformAdmin": "true"})
    assert forged.status_code == 303 and "platform admin" in await other.flash()
    assert (await other.get("/auth/me")).json()["platformAdmin"] is False

    page = await root.page("/ui/admin/users")
    assert me["email"] in page and "(you)" in page
    form = hidden_fields(page, f"/ui/admin/users/{me['id']}/platform-admin")
    made = await root.post(f"/ui/admin/users/{me['id']}/platform-admin", {**form, "platformAdmin": "true"})
    assert made.status_code == 303 and await root.flash() == f"{me['email']} is now a platform admin."
    assert (await other.get("/auth/me")).json()["platformAdmin"] is True
    assert "Rollouts" in await other.page("/ui/rollouts")
    unmade = await root.post(f"/ui/admin/users/{me['id']}/platform-admin", {**form, "platformAdmin": "false"})
    assert unmade.status_code == 303 and "no longer" in await root.flash()
    assert (await other.get("/auth/me")).json()["platformAdmin"] is False
    await root.close()
    await other.close()


@pytest.mark.slow
async def test_the_rollouts_pages_follow_a_rollouts_waves_until_it_is_over(
    make_platform: PlatformFactory, registry: Registry
) -> None:
    repo = "wopr-" + uuid.uuid4().hex[:8]
    await registry.push(repo, "latest", message="v1")
    platform = await make_platform(**update_settings(registry))
    root = await new_console_user(platform, "root")
    assert "No rollout yet." in await root.page("/ui/rollouts")
    bots = await rollout_bots(platform, registry, repo)

    # a digest that never turns healthy: its first wave (the canary) is rolled back and the rollout halts
    rollout_id = (await halting_rollout(platform, registry, repo))["id"]
    listed = await root.page("/ui/rollouts")
    assert f'href="/ui/rollouts/{rollout_id}"' in listed and "None is started from here" in listed
    running = await root.page(f"/ui/rollouts/{rollout_id}")
    assert "<progress" in running and 'hx-trigger="every 2s"' in running, running
    assert f'hx-get="/ui/rollouts/{rollout_id}/progress"' in running
    assert bots[1] in running and bots[0] in running  # the canary's wave, then the rest

    deadline = time.monotonic() + 60
    while "running" in (fragment := await root.page(f"/ui/rollouts/{rollout_id}/progress")):
        assert 'hx-trigger="every 2s"' in fragment
        assert time.monotonic() < deadline
        await asyncio.sleep(0.5)
    assert "<html" not in fragment and "hx-trigger" not in fragment and "<progress" not in fragment
    waves = re.findall(r'<tr class="wave (\w+)">', fragment)
    assert waves == ["done", "cancelled"], fragment
    assert "halted" in fragment and "wave 1: 1 of 1 bot(s) failed" in fragment
    assert "Bots whose update is over: 1 of 2." in fragment
    assert "halted" in await root.page("/ui/rollouts")
    assert "rollout not found" in await root.page(f"/ui/rollouts/{uuid.uuid4()}", status=404)
    await root.close()
