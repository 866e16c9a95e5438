"""The console's tenant and account pages against a real running platform, driven as a browser would (a client
that keeps cookies, posting the pages' forms): API keys, members and invitations, the audit log, routes, the
password and the second factor. Each outcome is checked on the page and in the API's state afterwards."""

from __future__ import annotations

import html
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pyotp
import pytest

from tests.conftest import Platform, PlatformFactory
from tests.fixtures.smtp import MailServer
from tests.integration.accounts_support import PASSWORD, key_client, new_key, new_user, sign_in, sign_up
from tests.integration.console_support import CSRF_FIELD, console_sign_in, flash_of
from wopr_platform.core.access import SCOPES
from wopr_platform.web.console import CSRF_COOKIE, SESSION_COOKIE
from wopr_platform.web.routes.tenant import SCOPES as CONSOLE_SCOPES

pytestmark = pytest.mark.slow

SECRET = re.compile(r'<p class="secret">([^<]+)</p>')
LISTED_CODE = re.compile(r"<li>([A-Za-z0-9-]+)</li>")
OLDER = re.compile(r'href="(/ui/audit\?[^"]+)" rel="next"')
NEW_PASSWORD = "a new and even longer passphrase"


async def _accounts(make_platform: PlatformFactory, **settings: object) -> Platform:
    """A platform without the API's rate limit whose platform admin exists, so the users made here are ordinary."""
    platform = await make_platform(FLEET_RATE_LIMIT=0, **settings)
    await sign_up(platform, "root")
    return platform


def _words(answer: httpx.Response) -> str:
    """A page's text without its tags, spaces collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", answer.text)))


def _tenant(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:6]}"


async def test_a_key_made_in_the_console_works_its_secret_is_shown_once_and_revoking_it_refuses_it(
    make_platform: PlatformFactory,
) -> None:
    platform = await _accounts(make_platform)
    assert set(CONSOLE_SCOPES) == set(SCOPES)  # the form offers every scope the API takes
    owner = await new_user(platform, "owner", _tenant("keys"))
    console = await console_sign_in(platform, owner.email)
    other = await new_user(platform, "other", _tenant("other"))
    try:
        assert "No API keys yet" in (await console.get("/ui/keys")).text
        expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
        form = {
            "name": "deployer",
            "scope": ["read", "write"],
            "expiresAt": expires,
            "allowedAddresses": "127.0.0.1, ::1",
        }
        made = await console.client.post("/ui/keys", data={**form, "csrf": await console.csrf()})
        assert made.status_code == 201, made.text
        shown = SECRET.search(made.text)
        assert shown is not None and shown.group(1).startswith("wopr_")
        secret = shown.group(1)
        assert "will not be shown again" in made.text
        assert secret not in str(made.headers) and secret not in str(made.url)

        async with key_client(platform, secret) as bearer:
            assert (await bearer.get("/fleet/bots")).status_code == 200
            assert (await bearer.get("/keys")).status_code == 403  # read and write only, as chosen
            (stored,) = (await owner.client.get("/keys")).json()["keys"]
            assert stored["scopes"] == ["read", "write"] and stored["allowedAddresses"] == ["127.0.0.1", "::1"]
            assert stored["expiresAt"].startswith(expires)
            listed = await console.get("/ui/keys")
            assert "deployer" in listed.text and stored["prefix"] in listed.text and secret not in listed.text
            assert f"by {owner.email}" in listed.text

            # what an attacker would try: no CSRF token, another site's form, another tenant's key
            forged = await console.act("/ui/keys", {"name": "sneaky", "scope": "admin"}, csrf=False)
            assert (shown_flash := flash_of(forged)) is not None and shown_flash[0] and "X-CSRF-Token" in shown_flash[1]
            foreign = await console.post(f"/ui/keys/{stored['id']}/revoke", origin="https://evil.example")
            assert foreign.status_code == 403
            theirs = await new_key(other, ["read"])
            assert flash_of(await console.act(f"/ui/keys/{theirs['id']}/revoke")) == (True, "key not found")
            async with key_client(platform, theirs["secret"]) as their_bearer:
                assert (await their_bearer.get("/fleet/bots")).status_code == 200
            assert [k["name"] for k in (await owner.client.get("/keys")).json()["keys"]] == ["deployer"]
            assert (await bearer.get("/fleet/bots")).status_code == 200

            revoked = await console.act(f"/ui/keys/{stored['id']}/revoke")
            assert flash_of(revoked) == (False, "Key revoked: the API refuses it from now on.")
            assert (await bearer.get("/fleet/bots")).status_code == 401
        assert "No API keys yet" in revoked.text

        # the audit log shows the console's own actions, newest first, by whom, filtered and a page at a time
        deletes = _words(await console.get("/ui/audit", action="DELETE"))
        assert "DELETE /keys/{key_id}" in deletes and "POST /keys" not in deletes
        pages: list[str] = []
        following: str | None = "/ui/audit?limit=1"
        while following is not None:
            answer = await console.get(following)
            pages.append(_words(answer))
            older = OLDER.search(answer.text)
            following = html.unescape(older.group(1)) if older else None
        assert len(pages) == 4 and "No older events" in pages[3]
        assert "DELETE /keys/{key_id}" in pages[0] and f"key {stored['id']} 204" in pages[0]
        assert "DELETE /keys/{key_id}" in pages[1] and f"key {theirs['id']} 404 not_found" in pages[1]
        assert "POST /keys" in pages[2] and " 201 " in pages[2] and owner.email in pages[2]
        bad = await console.get("/ui/audit", action="GET /nothing")
        assert bad.status_code == 200 and 'name="action" value="GET /nothing"' in bad.text

        routes = await console.get("/ui/routes")
        assert routes.status_code == 200 and "tenant routing is off" in routes.text
    finally:
        for closing in (console, owner, other):
            await closing.close()


async def test_invited_members_join_change_role_and_a_viewer_sees_the_refusal(
    make_platform: PlatformFactory, smtp: MailServer
) -> None:
    platform = await _accounts(make_platform, PLATFORM_URL="https://app.wopr.test", **smtp.settings())
    tenant = _tenant("team")
    owner = await new_user(platform, "owner", tenant)
    console = await console_sign_in(platform, owner.email)
    invitee = await console_sign_in(platform, await sign_up(platform, "invitee"))
    stranger = await new_user(platform, "stranger", _tenant("elsewhere"))
    try:
        sent = await console.act("/ui/invitations", {"email": invitee.email, "role": "member"})
        assert flash_of(sent) == (False, f"Invitation mailed to {invitee.email}, as member.")
        assert invitee.email in sent.text and "Send the invitation" in sent.text
        (mail,) = await smtp.wait_for(invitee.email)

        offer = await invitee.get("/ui/invitations/accept", token=mail.token())
        assert offer.status_code == 200 and "Join the tenant" in offer.text
        joined = await invitee.act("/ui/invitations/accept", {"token": mail.token()})
        assert flash_of(joined) == (False, f"You joined {tenant} as member; acting for it now.")
        members = {m["email"]: m for m in (await owner.client.get("/members")).json()["members"]}
        assert members[invitee.email]["role"] == "member"
        assert (await owner.client.get("/invitations")).json()["invitations"] == []
        invitee_id = members[invitee.email]["userId"]

        changed = await console.act(f"/ui/members/{invitee_id}/role", {"role": "viewer"})
        assert flash_of(changed) == (False, f"{invitee.email} is now viewer.")
        roles = {m["email"]: m["role"] for m in (await owner.client.get("/members")).json()["members"]}
        assert roles == {owner.email: "owner", invitee.email: "viewer"}
        audit = _words(await console.get("/ui/audit", action="PATCH"))
        assert f"{owner.email} PATCH /members/{{user_id}} role user {invitee.email} 200" in audit

        # a viewer gets the API's refusal shown on a page, and nothing is made
        tried = await invitee.act("/ui/keys", {"name": "mine", "scope": "read"}, status=403)
        assert flash_of(tried) == (True, "this needs the 'admin' scope")
        assert (await owner.client.get("/keys")).json()["keys"] == []
        seen = await invitee.get("/ui/members")
        assert owner.email in seen.text and "Send the invitation" not in seen.text and "Change role" not in seen.text

        # someone of another tenant is not found here, and stays as they were
        missed = await console.act(f"/ui/members/{stranger.id}/role", {"role": "viewer"})
        assert flash_of(missed) == (True, "member not found")
        again = await sign_in(platform, stranger.email)
        assert again.tenants == stranger.tenants
        await again.close()

        # an invitation revoked; a member removed
        await console.act("/ui/invitations", {"email": "later@example.test", "role": "admin"})
        (invitation,) = (await owner.client.get("/invitations")).json()["invitations"]
        revoked = await console.act(f"/ui/invitations/{invitation['id']}/revoke")
        assert flash_of(revoked) == (False, "Invitation revoked: its link no longer works.")
        assert (await owner.client.get("/invitations")).json()["invitations"] == []
        removed = await console.act(f"/ui/members/{invitee_id}/remove")
        assert flash_of(removed) == (False, "Member removed; the keys they made for this tenant are revoked.")
        assert [m["email"] for m in (await owner.client.get("/members")).json()["members"]] == [owner.email]
    finally:
        for closing in (console, invitee, owner, stranger):
            await closing.close()


def _code(secret: str, steps_ahead: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


async def test_the_account_page_sets_up_the_second_factor_and_changes_the_password_keeping_the_session(
    make_platform: PlatformFactory,
) -> None:
    platform = await _accounts(make_platform)
    console = await console_sign_in(platform, await sign_up(platform, "person"))
    try:
        assert "Second factor off" in _words(await console.get("/ui/account"))
        wrong = await console.act("/ui/account/totp", {"password": "not the password"})
        assert flash_of(wrong) == (True, "the password is wrong")  # shown there, still signed in

        begun = await console.post("/ui/account/totp", {"password": PASSWORD})
        assert begun.status_code == 200, begun.text
        secret, uri = (html.unescape(found) for found in SECRET.findall(begun.text))
        assert pyotp.parse_uri(uri).secret == secret
        csrf = CSRF_FIELD.findall(begun.text)[-1]
        valid = {_code(secret, step) for step in (-1, 0, 1)}
        bad_code = next(code for code in ("000000", "111111", "222222", "333333") if code not in valid)
        retry = await console.client.post(
            "/ui/account/totp/confirm", data={"csrf": csrf, "code": bad_code, "secret": secret, "uri": uri}
        )
        assert retry.status_code == 400 and "the code is wrong" in retry.text and secret in retry.text

        old_session, old_csrf = console.client.cookies[SESSION_COOKIE], console.client.cookies[CSRF_COOKIE]
        confirmed = await console.client.post("/ui/account/totp/confirm", data={"csrf": csrf, "code": _code(secret)})
        assert confirmed.status_code == 200, confirmed.text
        codes = LISTED_CODE.findall(confirmed.text)
        assert len(codes) >= 8 and "will not be shown again" in confirmed.text
        # the console keeps the API's new session (the old one has ended) and its CSRF token for the forms
        assert console.client.cookies[SESSION_COOKIE] != old_session
        assert console.client.cookies[CSRF_COOKIE] != old_csrf
        assert CSRF_FIELD.findall(confirmed.text)[-1] == console.client.cookies[CSRF_COOKIE]
        fresh = LISTED_CODE.findall((await console.post("/ui/account/recovery-codes", {"password": PASSWORD})).text)
        assert len(fresh) == len(codes) and not set(fresh) & set(codes)

        changed = await console.act(
            "/ui/account/password",
            {"currentPassword": PASSWORD, "newPassword": NEW_PASSWORD, "repeatPassword": NEW_PASSWORD},
        )
        assert flash_of(changed) == (False, "Password changed; every other session has ended.")
        assert "Second factor on" in _words(changed)
        assert (await console.post("/ui/keys", {"name": "after", "scope": "read"})).status_code == 201

        await console.post("/ui/logout")
        asked = await console.client.post("/ui/login", data={"email": console.email, "password": NEW_PASSWORD})
        assert asked.status_code == 401 and "enter the code of your authenticator app" in asked.text
        assert 'name="code"' in asked.text
        signed = await console.client.post(
            "/ui/login", data={"email": console.email, "password": NEW_PASSWORD, "code": _code(secret, 1)}
        )
        assert signed.status_code == 303 and signed.headers["location"] == "/ui/bots"
        off = await console.act("/ui/account/totp/off", {"password": NEW_PASSWORD})
        assert flash_of(off) == (False, "The second factor is off; the recovery codes no longer work.")
        assert (await console.get("/auth/me")).json()["totp"] is False

        everywhere = await console.act("/ui/account/sign-out-everywhere")
        assert flash_of(everywhere) == (False, "Signed out on every device.")
        gone = await console.get("/ui/account")
        assert gone.status_code == 303 and gone.headers["location"].startswith("/ui/login")
    finally:
        await console.close()
