"""The bots page: the tenant's bots at a glance (state, health, image, uptime, resource use), filtered and paged by
the API, each row refreshed live from the platform's event stream. A platform admin may list another tenant's bots
or every tenant's (`tenant=*`): that view is not live (a row's refresh reads the bot as the tenant acted for)."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.responses import Response
from starlette.routing import Route

from wopr_platform.web.console import View, page

PAGE_SIZE = 100
MAX_PAGE = 1000
FILTERS = ("state", "health", "namePrefix", "image", "template")
STATES = ("running", "created", "restarting", "paused", "exited", "dead", "stopped", "removing")
HEALTHS = ("healthy", "unhealthy", "starting", "none")


def _limit(raw: str | None) -> int:
    if raw is not None and raw.isdigit():
        return max(1, min(MAX_PAGE, int(raw)))
    return PAGE_SIZE


@page
async def bots(view: View) -> Response:
    params = view.request.query_params
    me = await view.me()
    names = (*FILTERS, "tenant") if me.platform_admin else FILTERS  # a platform admin may look across tenants
    chosen = {name: params.get(name, "").strip() for name in names}
    limit = _limit(params.get("limit"))
    found = await view.get("/fleet/bots", limit=limit, after=params.get("after"), **chosen)
    kept = {name: value for name, value in chosen.items() if value}
    following = None
    if found.get("nextAfter"):
        following = "?" + urlencode({**kept, "limit": limit, "after": found["nextAfter"]})
    return await view.page(
        "bots.html",
        bots=found["bots"],
        counts=found.get("counts") or {},
        chosen=chosen,
        filtered=bool(kept),
        across=bool(chosen.get("tenant")),
        following=following,
        limit=limit,
        states=STATES,
        healths=HEALTHS,
    )


@page
async def row(view: View) -> Response:
    """One bot's row (what the live page asks for when the bot changes)."""
    bot = await view.get(f"/fleet/bots/{view.request.path_params['bot_id']}")
    return view.fragment("bot_row.html", bot=bot)


routes = [
    Route("/bots", bots, methods=["GET"]),
    Route("/bots/{bot_id}/row", row, methods=["GET"]),
]
