"""The console as an ASGI app, mounted by the platform under `/ui`: its pages and actions, and its static files
(htmx, vendored from its npm package, the console's script and stylesheet)."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from wopr_platform.web.console import PREFIX, Console
from wopr_platform.web.routes import admin, bot, bots, money, session, templates, tenant
from wopr_platform.web.upstream import Upstream

STATIC = Path(__file__).parent / "static"

__all__ = ["PREFIX", "create_console"]


def create_console(api: ASGIApp, *, secure: bool, session_max_age: int, checkout_origin: str) -> Starlette:
    """The console, calling `api` (the platform's whole app) for everything it shows and does; a buyer of credits
    is sent to Stripe's payment pages at `checkout_origin`."""
    app = Starlette(
        routes=[
            *session.routes,
            *bots.routes,
            *bot.routes,
            *templates.routes,
            *tenant.routes,
            *money.routes,
            *admin.routes,
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
    app.state.console = Console(
        Upstream(api), secure=secure, session_max_age=session_max_age, checkout_origin=checkout_origin
    )
    return app
