"""The tenant's own settings: API keys, members and invitations, the audit log, routes; the person's account (password,
second factor, sessions).

One-time secrets (a new key's secret, a TOTP secret, recovery codes) are in the answer to the post that made them,
never in a flash, a URL or a log. The API answers a password change and a confirmed second factor with a new
session (every other one ends): the console keeps it as sign-in does, the API's session cookie as the API set it
and the new CSRF token in the console's own cookie.
"""

from __future__ import annotations

from dataclasses import replace
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urlencode

from starlette.responses import Response
from starlette.routing import Route

from wopr_platform.web.console import PREFIX, SESSION_COOKIE, View, action, page
from wopr_platform.web.upstream import Answer, Refused

KEYS = f"{PREFIX}/keys"
MEMBERS = f"{PREFIX}/members"
ACCOUNT = f"{PREFIX}/account"
# the scopes a key may hold (the API's `Scope`), and the roles a member may be given (the owner is made by a transfer)
SCOPES = ("read", "read:secrets", "write", "deploy", "admin")
ROLES = ("admin", "member", "viewer")
MANAGERS = frozenset({"owner", "admin"})
AUDIT_FILTERS = ("botId", "action", "since", "until")
AUDIT_PAGE = 50
AUDIT_MAX = 500  # the API's largest page


def _form_list(view: View, name: str) -> list[str]:
    """Every value of a repeated field (checkboxes)."""
    if view.form is None:
        return []
    return [value.strip() for value in view.form.getlist(name) if isinstance(value, str) and value.strip()]


def _utc(moment: str) -> str:
    """A `datetime-local` value (it has no offset) as the UTC instant the form's label says it is."""
    return f"{moment}Z"


async def _role(view: View) -> str | None:
    """The person's role in the tenant acted for (`owner` for a platform admin, who may do what an owner may)."""
    me = await view.me()
    tenant = view.current_tenant(me)
    if me.platform_admin:
        return "owner"
    return me.tenants.get(tenant) if tenant else None


async def _people(view: View) -> dict[str, str]:
    """The tenant's members' emails by user id, to name people rather than ids (someone no longer a member stays
    an id)."""
    return {member["userId"]: member["email"] for member in (await view.get("/members"))["members"]}


# --- API keys --------------------------------------------------------------------------------------------------------


async def _keys(view: View, *, created: dict[str, Any] | None = None) -> Response:
    listed = await view.get("/keys")
    return await view.page(
        "tenant_keys.html",
        status=201 if created else 200,
        keys=listed["keys"],
        people=await _people(view),
        scopes=SCOPES,
        created=created,
    )


@page
async def keys_page(view: View) -> Response:
    return await _keys(view)


@action(back=KEYS)
async def create_key(view: View) -> Response:
    """A new key: its secret is in this answer only."""
    body: dict[str, Any] = {"name": view.field("name"), "scopes": _form_list(view, "scope")}
    if expires := view.field("expiresAt"):
        body["expiresAt"] = _utc(expires)
    if addresses := view.field("allowedAddresses"):
        body["allowedAddresses"] = addresses.replace(",", " ").split()
    created = await view.send("POST", "/keys", body)
    return await _keys(view, created=created)


@action(back=KEYS)
async def revoke_key(view: View) -> Response:
    await view.send("DELETE", f"/keys/{view.request.path_params['key_id']}")
    return view.redirect(KEYS, message="Key revoked: the API refuses it from now on.")


# --- members and invitations -----------------------------------------------------------------------------------------


@page
async def members_page(view: View) -> Response:
    members = (await view.get("/members"))["members"]
    role = await _role(view)
    manage = role in MANAGERS
    invitations = (await view.get("/invitations"))["invitations"] if manage else []
    return await view.page(
        "tenant_members.html",
        members=members,
        invitations=invitations,
        manage=manage,
        owner=role == "owner",
        roles=ROLES,
    )


@action(back=MEMBERS)
async def add_member(view: View) -> Response:
    """Add someone who has an account already, by email."""
    added = await view.send("POST", "/members", {"email": view.field("email"), "role": view.field("role")})
    return view.redirect(MEMBERS, message=f"{added['email']} is now a member, as {added['role']}.")


@action(back=MEMBERS)
async def change_role(view: View) -> Response:
    changed = await view.send("PATCH", f"/members/{view.request.path_params['user_id']}", {"role": view.field("role")})
    return view.redirect(MEMBERS, message=f"{changed['email']} is now {changed['role']}.")


@action(back=MEMBERS)
async def remove_member(view: View) -> Response:
    await view.send("DELETE", f"/members/{view.request.path_params['user_id']}")
    return view.redirect(MEMBERS, message="Member removed; the keys they made for this tenant are revoked.")


@action(back=MEMBERS)
async def transfer_ownership(view: View) -> Response:
    await view.send("POST", f"/members/{view.request.path_params['user_id']}/ownership")
    return view.redirect(MEMBERS, message="Ownership transferred; you are an admin of this tenant now.")


@action(back=MEMBERS)
async def invite(view: View) -> Response:
    sent = await view.send("POST", "/invitations", {"email": view.field("email"), "role": view.field("role")})
    return view.redirect(MEMBERS, message=f"Invitation mailed to {sent['email']}, as {sent['role']}.")


@action(back=MEMBERS)
async def revoke_invitation(view: View) -> Response:
    await view.send("DELETE", f"/invitations/{view.request.path_params['invitation_id']}")
    return view.redirect(MEMBERS, message="Invitation revoked: its link no longer works.")


@page
async def accept_page(view: View) -> Response:
    """Where an invitation's link leads: a button that accepts it as the signed-in person."""
    return await view.page("tenant_accept.html", token=view.request.query_params.get("token", ""))


@action(back=f"{PREFIX}/bots")
async def accept(view: View) -> Response:
    joined = await view.send("POST", "/invitations/accept", {"token": view.field("token")})
    tenant = joined["tenantId"]
    response = view.redirect(f"{PREFIX}/bots", message=f"You joined {tenant} as {joined['role']}; acting for it now.")
    view.choose_tenant(response, tenant)
    return response


# --- audit log and routes --------------------------------------------------------------------------------------------


@page
async def audit_page(view: View) -> Response:
    params = view.request.query_params
    chosen = {name: params.get(name, "").strip() for name in AUDIT_FILTERS}
    kept = {name: value for name, value in chosen.items() if value}
    raw = params.get("limit", "")
    limit = max(1, min(AUDIT_MAX, int(raw))) if raw.isdigit() else AUDIT_PAGE
    events: list[dict[str, Any]] = []
    people: dict[str, str] = {}
    following = None
    error = None
    try:
        found = await view.get("/audit", limit=limit, before=params.get("before"), **kept)
    except Refused as err:
        if err.status not in (400, 422):
            raise
        error = err.error  # a filter the API does not take: the form stays, to correct it
    else:
        events = found["events"]
        people = await _people(view)
        if found.get("nextBefore"):
            following = "?" + urlencode({**kept, "limit": limit, "before": found["nextBefore"]})
    return await view.page(
        "tenant_audit.html",
        events=events,
        people=people,
        actors={f"user:{user_id}": address for user_id, address in people.items()},
        chosen=chosen,
        filtered=bool(kept),
        following=following,
        older=bool(params.get("before")),
        limit=limit,
        error=error,
    )


@page
async def routes_page(view: View) -> Response:
    try:
        listed = await view.get("/proxy/routes")
    except Refused as err:
        if err.code != "proxy_disabled":
            raise
        return await view.page("tenant_routes.html", routes=[], off=err.error)
    return await view.page("tenant_routes.html", routes=listed["routes"], off=None)


# --- the person's account --------------------------------------------------------------------------------------------


async def _reentered(view: View, method: str, path: str, body: dict[str, Any]) -> Answer:
    """A call that confirms the person with their password or a code: a wrong one is the form's mistake (shown
    there), not the end of the session."""
    answer = await view.console.upstream.call(
        replace(view.credentials, csrf=view.field("csrf") or None), method, path, body=body
    )
    if answer.ok:
        return answer
    err = Refused.of(answer)
    if err.code == "invalid_credentials":
        raise Refused(400, err.error, err.details)
    raise err


def _adopt(view: View, answer: Answer) -> None:
    """Act, for the rest of this request, with the new session the API opened (the old one has ended) and its CSRF
    token."""
    for header in answer.cookies():
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(header)
        except CookieError:
            continue
        if SESSION_COOKIE in jar:
            view.credentials = replace(view.credentials, cookie=f"{SESSION_COOKIE}={jar[SESSION_COOKIE].value}")
    view.credentials = replace(view.credentials, csrf=answer.json()["csrfToken"])


async def _account(view: View, *, codes: list[str] | None = None) -> Response:
    return await view.page("account.html", codes=codes)


@page
async def account_page(view: View) -> Response:
    return await _account(view)


@action(back=ACCOUNT)
async def change_password(view: View) -> Response:
    new = view.field("newPassword")
    if new != view.field("repeatPassword"):
        return view.redirect(ACCOUNT, message="the new password and its repetition differ", error=True)
    body = {"currentPassword": view.field("currentPassword"), "newPassword": new}
    answer = await _reentered(view, "POST", "/auth/password", body)
    _adopt(view, answer)
    done = view.redirect(ACCOUNT, message="Password changed; every other session has ended.")
    view.keep_session(done, answer)
    return done


@action(back=ACCOUNT)
async def begin_totp(view: View) -> Response:
    """The secret for the authenticator app, shown in this answer (and the next if the code is wrong)."""
    setup = (await _reentered(view, "POST", "/auth/totp", {"password": view.field("password")})).json()
    return await view.page("account_totp.html", secret=setup["secret"], uri=setup["uri"], error=None)


@action(back=ACCOUNT)
async def confirm_totp(view: View) -> Response:
    """Turn the second factor on; the recovery codes are in this answer only."""
    try:
        answer = await _reentered(view, "POST", "/auth/totp/confirm", {"code": view.field("code")})
    except Refused as err:
        if err.details.get("field") != "code":
            raise
        secret, uri = view.field("secret"), view.field("uri")  # the pending secret, still to be confirmed
        return await view.page("account_totp.html", status=err.status, secret=secret, uri=uri, error=err.error)
    _adopt(view, answer)
    shown = await _account(view, codes=answer.json()["recoveryCodes"])
    view.keep_session(shown, answer)
    return shown


@action(back=ACCOUNT)
async def disable_totp(view: View) -> Response:
    await _reentered(view, "DELETE", "/auth/totp", {"password": view.field("password")})
    return view.redirect(ACCOUNT, message="The second factor is off; the recovery codes no longer work.")


@action(back=ACCOUNT)
async def new_recovery_codes(view: View) -> Response:
    made = (await _reentered(view, "POST", "/auth/recovery-codes", {"password": view.field("password")})).json()
    return await _account(view, codes=made["recoveryCodes"])


@action(back=ACCOUNT)
async def sign_out_everywhere(view: View) -> Response:
    await view.send("POST", "/auth/logout-everywhere")
    response = view.redirect(f"{PREFIX}/login", message="Signed out on every device.")
    view.forget_session(response)
    return response


routes = [
    Route("/keys", keys_page, methods=["GET"]),
    Route("/keys", create_key, methods=["POST"]),
    Route("/keys/{key_id}/revoke", revoke_key, methods=["POST"]),
    Route("/members", members_page, methods=["GET"]),
    Route("/members", add_member, methods=["POST"]),
    Route("/members/{user_id}/role", change_role, methods=["POST"]),
    Route("/members/{user_id}/remove", remove_member, methods=["POST"]),
    Route("/members/{user_id}/ownership", transfer_ownership, methods=["POST"]),
    Route("/invitations", invite, methods=["POST"]),
    Route("/invitations/{invitation_id}/revoke", revoke_invitation, methods=["POST"]),
    Route("/invitations/accept", accept_page, methods=["GET"]),
    Route("/invitations/accept", accept, methods=["POST"]),
    Route("/audit", audit_page, methods=["GET"]),
    Route("/routes", routes_page, methods=["GET"]),
    Route("/account", account_page, methods=["GET"]),
    Route("/account/password", change_password, methods=["POST"]),
    Route("/account/totp", begin_totp, methods=["POST"]),
    Route("/account/totp/confirm", confirm_totp, methods=["POST"]),
    Route("/account/totp/off", disable_totp, methods=["POST"]),
    Route("/account/recovery-codes", new_recovery_codes, methods=["POST"]),
    Route("/account/sign-out-everywhere", sign_out_everywhere, methods=["POST"]),
]
