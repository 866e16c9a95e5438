"""The profile templates bots are made from: the catalog, and what one template holds."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from wopr_platform.web.console import View, page


@page
async def templates_page(view: View) -> Response:
    found = await view.get("/fleet/templates")
    return await view.page("templates_list.html", templates=found["templates"], errors=found["errors"])


@page
async def template_page(view: View) -> Response:
    """One template as written: placeholders name the secrets it needs, never their values."""
    template = await view.get(f"/fleet/templates/{view.request.path_params['name']}")
    sections = [
        ("channel plugin", template["channel"]["plugin"], template["channel"].get("config") or {}),
        ("provider plugin", template["provider"]["plugin"], template["provider"].get("config") or {}),
        ("env", None, template.get("env") or {}),
    ]
    return await view.page("templates_one.html", shown=template, sections=sections)


routes: list[BaseRoute] = [
    Route("/templates", templates_page, methods=["GET"]),
    Route("/templates/{name}", template_page, methods=["GET"]),
]
