"""For platform admins: rollouts and their waves, tenants (quota, credits, grants), users (platform admin or not).

These are actions of the whole platform, which the API allows a platform admin acting for the default tenant: the
pages act for it whatever tenant the switcher chose. Anyone else calls as themselves and gets the API's refusal.

Rollouts start by themselves (the image updater, when a followed image has a new digest); the API only reads them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from wopr_platform.web.console import PREFIX, View, action, page
from wopr_platform.web.routes.money import fresh_key, micros, post_keyed

PLATFORM_TENANT = "default"  # the tenant a platform admin acts for to act on the whole platform (the API's rule)
TENANTS = f"{PREFIX}/admin/tenants"
USERS = f"{PREFIX}/admin/users"
USERS_PAGE = 100
ROLLOUTS_SHOWN = 50
QUOTA_FIELDS = ("maxBots", "maxMemoryMb", "maxCpus")


async def _acting_for(view: View) -> str | None:
    """The default tenant for a platform admin (where the API's platform-wide routes are); else the one acted for."""
    return PLATFORM_TENANT if (await view.me()).platform_admin else None


async def _get(view: View, path: str, **query: str | int | None) -> Any:
    return await view.get(path, tenant=await _acting_for(view), **query)


async def _send(view: View, method: str, path: str, body: Any) -> Any:
    return await view.send(method, path, body, tenant=await _acting_for(view))


# --- rollouts ----------------------------------------------------------------------------------------------------


def _progress(rollout: dict[str, Any]) -> dict[str, int | bool]:
    """How far a rollout is: bots whose update is over (waves finish as a whole), of all its bots."""
    waves = rollout["waves"]
    total = sum(len(wave.get("botIds", ())) for wave in waves)
    over = sum(
        int(wave.get("updated", 0)) + int(wave.get("failed", 0)) + int(wave.get("skipped", 0))
        for wave in waves
        if wave.get("state") == "done"
    )
    return {"total": total, "over": over, "running": rollout["state"] == "running"}


@page
async def rollouts(view: View) -> Response:
    listed = await _get(view, "/fleet/rollouts", limit=ROLLOUTS_SHOWN)
    return await view.page(
        "admin_rollouts.html",
        rollouts=[{**rollout, "progress": _progress(rollout)} for rollout in listed["rollouts"]],
        shown=ROLLOUTS_SHOWN,
    )


@page
async def rollout(view: View) -> Response:
    found = await _get(view, f"/fleet/rollouts/{view.request.path_params['rollout_id']}")
    return await view.page("admin_rollout.html", rollout=found, progress=_progress(found))


@page
async def rollout_progress(view: View) -> Response:
    """A rollout's state, progress and waves (what its page polls while it runs)."""
    found = await _get(view, f"/fleet/rollouts/{view.request.path_params['rollout_id']}")
    return view.fragment("admin_rollout_progress.html", rollout=found, progress=_progress(found))


# --- tenants -----------------------------------------------------------------------------------------------------


def _tenant_page(request: Request) -> str:
    return f"{TENANTS}/{request.path_params['tenant_id']}"


@page
async def tenants(view: View) -> Response:
    if not (await view.me()).platform_admin:  # the API would list their own tenants: not this page's purpose
        return await view.page("error.html", status=403, error="only a platform admin sees every tenant", code=403)
    listed = await _get(view, "/tenants")
    return await view.page("admin_tenants.html", tenants=listed["tenants"])


@page
async def tenant(view: View) -> Response:
    tenant_id = view.request.path_params["tenant_id"]
    quota, credits, listed = await asyncio.gather(
        _get(view, f"/tenants/{tenant_id}/quota"), _get(view, f"/tenants/{tenant_id}/credits"), _get(view, "/tenants")
    )
    found = [t for t in listed["tenants"] if t["id"] == tenant_id]
    if not found:
        return await view.page("error.html", status=404, error="tenant not found", code=404)
    return await view.page(
        "admin_tenant.html", shown=found[0], quota=quota, credits=credits, key=fresh_key(), fields=QUOTA_FIELDS
    )


@action(back=_tenant_page)
async def grant(view: View) -> Response:
    """Give the tenant credits; the form's idempotency key makes a second post of it give nothing again."""
    back = _tenant_page(view.request)
    amount = micros(view.field("amount"))
    if amount is None:
        return view.redirect(back, message="the amount: a positive number with at most 6 decimals", error=True)
    answer = await post_keyed(
        view,
        f"/tenants/{view.request.path_params['tenant_id']}/credits/grants",
        {"amount": amount, "memo": view.field("memo")},
        tenant=await _acting_for(view),
    )
    if answer.status == 200:
        return view.redirect(back, message="That grant was made already (the same form sent again): nothing given.")
    return view.redirect(back, message="Credits granted.")


def _quota_value(name: str, raw: str) -> int | float | None:
    """A quota field: empty is the platform's default; a number otherwise (the API checks its bounds)."""
    if not raw:
        return None
    try:
        return float(raw) if name == "maxCpus" else int(raw)
    except ValueError:
        raise ValueError(f"{name}: a number, 0 for no limit, or empty for the platform's default") from None


@action(back=_tenant_page)
async def set_quota(view: View) -> Response:
    back = _tenant_page(view.request)
    try:
        body = {name: _quota_value(name, view.field(name)) for name in QUOTA_FIELDS}
    except ValueError as err:
        return view.redirect(back, message=str(err), error=True)
    await _send(view, "PUT", f"/tenants/{view.request.path_params['tenant_id']}/quota", body)
    return view.redirect(back, message="Quota saved.")


# --- users -------------------------------------------------------------------------------------------------------


@page
async def users(view: View) -> Response:
    after = view.request.query_params.get("after") or None
    listed = await _get(view, "/users", after=after, limit=USERS_PAGE)
    return await view.page(
        "admin_users.html", users=listed["users"], following=listed["nextAfter"], paged=after is not None
    )


@action(back=USERS)
async def set_platform_admin(view: View) -> Response:
    """Grant or withdraw platform admin (the API keeps the last one)."""
    granted = view.field("platformAdmin") == "true"
    changed = await _send(view, "PATCH", f"/users/{view.request.path_params['user_id']}", {"platformAdmin": granted})
    verb = "is now a platform admin" if granted else "is no longer a platform admin"
    return view.redirect(USERS, message=f"{changed['email']} {verb}.")


routes = [
    Route("/rollouts", rollouts, methods=["GET"]),
    Route("/rollouts/{rollout_id}", rollout, methods=["GET"]),
    Route("/rollouts/{rollout_id}/progress", rollout_progress, methods=["GET"]),
    Route("/admin/tenants", tenants, methods=["GET"]),
    Route("/admin/tenants/{tenant_id}", tenant, methods=["GET"]),
    Route("/admin/tenants/{tenant_id}/grants", grant, methods=["POST"]),
    Route("/admin/tenants/{tenant_id}/quota", set_quota, methods=["POST"]),
    Route("/admin/users", users, methods=["GET"]),
    Route("/admin/users/{user_id}/platform-admin", set_platform_admin, methods=["POST"]),
]
