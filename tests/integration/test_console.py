"""The console's own rules, over HTTP against a real platform: signing in, where a sign-in may lead, forms from
other sites, the CSRF token, the tenant switcher and the tenant boundary, and the headers of its pages."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import STUB_IMAGE, Platform, PlatformFactory
from tests.fixtures.smtp import MailServer
from tests.integration.accounts_support import PASSWORD, email, sign_up
from tests.integration.console_support import console_sign_in, flash_of, new_console_user

pytestmark = pytest.mark.slow
NEW_PASSWORD = "a brand new password for reset"


async def test_signing_in_leads_only_to_a_console_page_and_a_foreign_form_is_refused(platform: Platform) -> None:
    address = await sign_up(platform, "where")
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False) as browser:
        anonymous = await browser.get("/ui/bots/some-id/row", headers={"HX-Request": "true"})
        assert anonymous.status_code == 204 and anonymous.headers["HX-Redirect"] == "/ui/login"
        assert (await browser.get("/ui/bots")).headers["location"] == "/ui/login?next=%2Fui%2Fbots"

        # a form posted from another site signs nobody in
        foreign = await browser.post(
            "/ui/login", data={"email": address, "password": PASSWORD}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403 and "wopr_session" not in browser.cookies

        wrong = await browser.post("/ui/login", data={"email": address, "password": "not the password"})
        assert wrong.status_code == 401 and "wrong email or password" in wrong.text
        assert "wopr_session" not in browser.cookies

        for target in ("//evil.example/x", "https://evil.example/", "/fleet/bots", "/ui\\..\\x"):
            answer = await browser.post("/ui/login", data={"email": address, "password": PASSWORD, "next": target})
            assert answer.status_code == 303 and answer.headers["location"] == "/ui/bots", target
        answer = await browser.post(
            "/ui/login", data={"email": address, "password": PASSWORD, "next": "/ui/bots?state=running"}
        )
        assert answer.headers["location"] == "/ui/bots?state=running"
        cookies = answer.headers.get_list("set-cookie")
        assert any(c.startswith("wopr_session=") and "HttpOnly" in c and "SameSite=lax" in c for c in cookies)
        assert any(c.startswith("wopr_csrf=") and "HttpOnly" in c for c in cookies)


async def test_an_action_without_the_csrf_token_or_from_another_site_changes_nothing(platform: Platform) -> None:
    console = await new_console_user(platform, "csrf")
    try:
        forged = await console.post("/ui/logout", csrf=False)
        assert forged.status_code == 303
        shown = flash_of(await console.follow(forged))
        assert shown is not None and shown[0] and "X-CSRF-Token" in shown[1]
        assert (await console.get("/auth/me")).status_code == 200  # still signed in

        foreign = await console.post("/ui/logout", origin="https://evil.example")
        assert foreign.status_code == 403
        assert (await console.get("/auth/me")).status_code == 200

        done = await console.post("/ui/logout")
        assert flash_of(await console.follow(done)) == (False, "Signed out.")
        assert (await console.get("/auth/me")).status_code == 401
    finally:
        await console.close()


async def test_the_switcher_acts_for_the_chosen_tenant_and_never_for_anothers(platform: Platform) -> None:
    console = await new_console_user(platform, "two-teams")
    other = await new_console_user(platform, "outsider")
    try:
        made = await console.client.post(
            "/tenants",
            json={"id": "second-team", "name": "Second team"},
            headers={"X-CSRF-Token": await console.csrf()},
        )
        assert made.status_code == 201, made.text
        bot = await platform.create_bot(name="in-second", image=STUB_IMAGE)
        moved = await platform.client.post(
            "/fleet/bots", json={"name": "second-only", "image": STUB_IMAGE}, headers={"X-Tenant-Id": "second-team"}
        )
        assert moved.status_code == 201, moved.text

        switched = await console.post("/ui/tenant", {"tenant": "second-team"})
        assert flash_of(await console.follow(switched)) == (False, "Acting for second-team.")
        page = await console.get("/ui/bots")
        assert "second-only" in page.text and bot["name"] not in page.text
        # the API reads the switcher's choice for this browser's session too (the live page's event stream)
        listed = await console.get("/fleet/bots")
        assert [b["name"] for b in listed.json()["bots"]] == ["second-only"]

        # someone else's tenant: refused by the console, and a forged choice is refused by the API
        refused = await other.post("/ui/tenant", {"tenant": "second-team"})
        assert flash_of(await other.follow(refused)) == (True, "that tenant is not yours")
        assert "second-only" not in (await other.get("/ui/bots")).text
        other.client.cookies.set("wopr_tenant", "second-team")
        forged = await other.get("/ui/bots")
        assert forged.status_code == 303
        assert 'wopr_tenant=""' in forged.headers["set-cookie"] or "Max-Age=0" in forged.headers["set-cookie"]
        assert (await other.get("/fleet/bots")).status_code == 404
        other.client.cookies.delete("wopr_tenant")
        assert "second-only" not in (await other.get("/ui/bots")).text
    finally:
        await console.close()
        await other.close()


async def test_console_pages_are_served_under_a_strict_policy(platform: Platform) -> None:
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False) as browser:
        page = await browser.get("/ui/login")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "style-src 'self';" in policy and "unsafe" not in policy
        # forms post here, or lead (a redirect after a post) to Stripe's payment pages only
        assert "frame-ancestors 'none'" in policy and "form-action 'self' https://checkout.stripe.com;" in policy
        assert page.headers["cache-control"] == "no-store" and page.headers["x-frame-options"] == "DENY"
        # the console's own origin is told to the console (a plain form post's Origin), nothing to other sites
        assert page.headers["referrer-policy"] == "same-origin"
        assert "<script>" not in page.text and " style=" not in page.text and " onclick=" not in page.text

        script = await browser.get("/ui/static/htmx.min.js")
        assert script.status_code == 200 and script.headers["cache-control"] == "no-cache"
        again = await browser.get("/ui/static/htmx.min.js", headers={"If-None-Match": script.headers["etag"]})
        assert again.status_code == 304
        assert (await browser.get("/ui/static/../upstream.py")).status_code == 404

        # the API's answers keep their own policy
        health = await browser.get("/health")
        assert health.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert health.headers["referrer-policy"] == "no-referrer"


async def test_a_page_shows_the_apis_refusal_and_a_bot_of_another_tenant_is_not_found(platform: Platform) -> None:
    theirs = await platform.create_bot(name="not-yours", image=STUB_IMAGE)
    console = await console_sign_in(platform, await sign_up(platform, "nosy"))
    try:
        row = await console.get(f"/ui/bots/{theirs['id']}/row")
        assert row.status_code == 404 and "not-yours" not in row.text
        bad = await console.get("/ui/bots", state="sleeping")
        assert bad.status_code == 400 and "state" in bad.text
    finally:
        await console.close()


async def test_the_mailed_links_lead_to_the_consoles_pages(make_platform: PlatformFactory, smtp: MailServer) -> None:
    platform = await make_platform(FLEET_RATE_LIMIT=0, PLATFORM_URL="https://app.wopr.test", **smtp.settings())
    owner = await new_console_user(platform, "owner")
    newcomer = email("newcomer")
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False) as browser:
        try:
            # a password reset: asked for, mailed, set on the console's page, used to sign in
            asked = await browser.post("/ui/forgot", data={"email": owner.email})
            assert flash_of(await browser.get(asked.headers["location"])) == (
                False,
                "If the address has an account, a link to set a new password is on its way.",
            )
            [mail] = await smtp.wait_for(owner.email)
            link = f"https://app.wopr.test/ui/reset-password?token={mail.token()}"
            assert link in mail.text
            page = await browser.get(link.removeprefix("https://app.wopr.test"))
            assert page.status_code == 200 and f'value="{mail.token()}"' in page.text
            short = await browser.post("/ui/reset-password", data={"token": mail.token(), "password": "short"})
            assert short.status_code == 400 and "newPassword" in short.text
            done = await browser.post("/ui/reset-password", data={"token": mail.token(), "password": NEW_PASSWORD})
            assert done.status_code == 303
            again = await browser.post("/ui/reset-password", data={"token": mail.token(), "password": NEW_PASSWORD})
            assert again.status_code == 400  # the link works once
            await (await console_sign_in(platform, owner.email, NEW_PASSWORD)).close()

            # an invitation to someone with no account: the link, sign-in's offer to sign up with it, membership
            owner = await console_sign_in(platform, owner.email, NEW_PASSWORD)
            invited = await owner.post("/ui/invitations", {"email": newcomer, "role": "viewer"})
            assert invited.status_code == 303
            [invitation] = await smtp.wait_for(newcomer)
            accept = f"/ui/invitations/accept?token={invitation.token()}"
            assert f"https://app.wopr.test{accept}" in invitation.text
            leads = await browser.get(accept)
            login = await browser.get(leads.headers["location"])
            offer = f'/ui/signup?invitation={invitation.token()}"'
            assert offer in login.text
            signup = await browser.get(f"/ui/signup?invitation={invitation.token()}")
            assert "Name of your team" not in signup.text
            made = await browser.post(
                "/ui/signup", data={"email": newcomer, "password": PASSWORD, "invitation": invitation.token()}
            )
            assert made.status_code == 303
            joined = await console_sign_in(platform, newcomer)
            me = (await joined.get("/auth/me")).json()
            tenant = next(iter((await owner.get("/auth/me")).json()["tenants"]))["tenantId"]
            assert [(m["tenantId"], m["role"]) for m in me["tenants"]] == [(tenant, "viewer")]
            await joined.close()
        finally:
            await owner.close()


async def test_a_console_page_costs_one_request_of_the_rate_limit(make_platform: PlatformFactory) -> None:
    platform = await make_platform(FLEET_RATE_LIMIT=6, FLEET_RATE_WINDOW=600)
    address = await sign_up(platform, "counted")  # the API's own request: one of the six
    console = await console_sign_in(platform, address)  # two: the console's sign-in (its call to the API is not)
    try:
        # each page reads who is signed in and the bots through the API: those calls are not counted again
        assert [(await console.get("/ui/bots")).status_code for _ in range(4)] == [200] * 4
        assert (await console.get("/ui/bots")).status_code == 429
    finally:
        await console.close()
