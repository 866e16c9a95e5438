"""The ASGI app: HTTP middleware and routes, and a lifespan that builds the platform (`app.build`) and runs its
background loops."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI
from starlette.types import ASGIApp

from wopr_platform import __version__
from wopr_platform.api.ambiguity import Unambiguous
from wopr_platform.api.audit import AuditMiddleware
from wopr_platform.api.auth import authorize
from wopr_platform.api.clients import ClientAddress
from wopr_platform.api.errors import install_error_handlers
from wopr_platform.api.headers import ResponseHeaders
from wopr_platform.api.limits import BodySizeLimit
from wopr_platform.api.metrics import RequestMetrics
from wopr_platform.api.openapi import document_errors
from wopr_platform.api.ratelimit import RateLimit
from wopr_platform.api.routes.accounts import router as accounts_router
from wopr_platform.api.routes.audit import router as audit_router
from wopr_platform.api.routes.backups import STREAMED_BODIES
from wopr_platform.api.routes.backups import router as backups_router
from wopr_platform.api.routes.billing import router as billing_router
from wopr_platform.api.routes.fleet import router as fleet_router
from wopr_platform.api.routes.gateway import router as gateway_router
from wopr_platform.api.routes.health import router as health_router
from wopr_platform.api.routes.metrics import router as metrics_router
from wopr_platform.api.routes.proxy import router as proxy_router
from wopr_platform.api.routes.templates import router as templates_router
from wopr_platform.api.routes.tenants import router as tenants_router
from wopr_platform.api.routes.updates import router as updates_router
from wopr_platform.api.routes.users import router as users_router
from wopr_platform.app.build import build
from wopr_platform.app.loops import supervise, supervise_while_leading
from wopr_platform.audit.writer import AuditWriter
from wopr_platform.core.metrics import PlatformMetrics
from wopr_platform.core.settings import Settings
from wopr_platform.fleet.observation.events import EventBus
from wopr_platform.updates.clock import Clock, SystemClock
from wopr_platform.web.app import PREFIX as CONSOLE_PREFIX
from wopr_platform.web.app import create_console

log = logging.getLogger(__name__)

GC_YOUNG_THRESHOLD = 5000


class PlatformAPI(FastAPI):
    """FastAPI with the response headers as the outermost layer, so even the last-resort 500 carries them, and an
    OpenAPI document that shows the API's own error answers."""

    def build_middleware_stack(self) -> ASGIApp:
        settings: Settings = self.state.settings
        docs = [path for path in (self.docs_url, self.redoc_url, self.swagger_ui_oauth2_redirect_url) if path]
        return ResponseHeaders(
            super().build_middleware_stack(),
            https=settings.https,
            docs_paths=docs,
            console=CONSOLE_PREFIX,
            console_form_targets=(settings.stripe_checkout_origin,),
        )

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = document_errors(super().openapi())
        return self.openapi_schema


def address(settings: Settings) -> str:
    """Where a person on this machine reaches the platform."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    return f"http://{host}:{settings.port}"


def welcome(settings: Settings) -> str:
    """What a newcomer needs on a platform nobody has signed up to yet: where it answers and how to get in."""
    url = address(settings)
    token = "or use FLEET_API_TOKEN as the operator's key" if settings.fleet_api_token else "FLEET_API_TOKEN is unset"
    return (
        f"welcome: open the console at {url}{CONSOLE_PREFIX}/signup and sign up: nobody has yet, and the first to "
        f"sign up becomes the platform's admin. The API answers at {url} (its reference: {url}/docs; "
        f"`wopr login --url {url} --email <it>` for the command line); {token}"
    )


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    """Build the ASGI app; services are created in its lifespan, not at import time.

    `clock` is the wall clock of the update schedules (tests move it to a nightly window).
    """
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        platform = await build(settings, clock=clock, events=events, audit=audit, metrics=metrics)
        app.state.platform = platform
        app.state.services = platform.services
        leadership, watcher, reconciler = platform.leadership, platform.watcher, platform.reconciler
        stop = asyncio.Event()
        tasks = [asyncio.create_task(supervise(loop, stop), name=loop.name) for loop in platform.loops]
        tasks += [
            asyncio.create_task(supervise_while_leading(loop, stop, leadership), name=loop.name)
            for loop in platform.leader_loops
        ]
        # give the first resync a moment so the first requests see containers, without blocking on a dead engine
        try:
            async with asyncio.timeout(5):
                await watcher.connected.wait()
                await leadership.decided.wait()
            # the leader settles what a crash interrupted before the first request (retried if this fails)
            if leadership.is_leader:
                async with asyncio.timeout(60):
                    await reconciler.recovered.wait()
        except TimeoutError:
            log.warning(
                "Docker engine not reachable at start-up; will keep trying",
                extra={"url": settings.docker_host},
            )
        # Everything built so far lives as long as the process: keep it out of the collector's full passes,
        # which otherwise pause request handling for tens of milliseconds on a large fleet.
        gc.collect()
        gc.freeze()
        # Young collections stay frequent; full passes (which scan every live object) become rarer.
        gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 100)
        log.info(
            "wopr-platform started",
            extra={"version": __version__, "port": settings.port, "console": f"{address(settings)}{CONSOLE_PREFIX}/"},
        )
        if not await platform.services.accounts.has_users():
            log.info(welcome(settings))
        try:
            yield
        finally:
            stop.set()
            events.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await platform.close_clients()
            await audit.close()  # after the last request: every audit record is stored
            await platform.close_database()
            log.info("wopr-platform stopped")

    app = PlatformAPI(
        dependencies=[Depends(authorize)],  # every route's need (api/permissions.py) is checked before it runs
        title="wopr-platform",
        version=__version__,
        description="Control plane for fleets of WOPR bot instances.",
        lifespan=lifespan,
    )
    events = EventBus()
    audit = AuditWriter()
    metrics = PlatformMetrics()
    app.state.settings = settings
    app.state.events = events
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(fleet_router)
    app.include_router(templates_router)
    app.include_router(backups_router)
    app.include_router(updates_router)
    app.include_router(proxy_router)
    app.include_router(audit_router)
    app.include_router(accounts_router)
    app.include_router(users_router)
    app.include_router(tenants_router)
    app.include_router(billing_router)
    app.include_router(gateway_router)
    # the web console: pages for people, a client of the routes above (it calls them in this process)
    console = create_console(
        app,
        secure=settings.https,
        session_max_age=settings.session_max_age,
        checkout_origin=settings.stripe_checkout_origin,
    )
    app.mount(CONSOLE_PREFIX, console)
    # outermost last: the client's address is settled first, then the timing, rate limits, the body limit,
    # ambiguity, audit
    app.add_middleware(AuditMiddleware, writer=audit)
    app.add_middleware(Unambiguous)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, streamed=STREAMED_BODIES)
    token = settings.fleet_api_token.get_secret_value() if settings.fleet_api_token else None
    app.add_middleware(RateLimit, limit=settings.rate_limit, window=settings.rate_window, token=token)
    # timed inside the client's address (which may copy the request's scope: the route the router notes on it
    # must be seen here), around every other layer
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(ClientAddress, trusted=settings.trusted_networks)
    return app
