"""The composition root: builds every service from the settings, runs the background loops, serves HTTP."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, Protocol

from fastapi import FastAPI
from starlette.types import ASGIApp

from wopr_platform import __version__
from wopr_platform.api.errors import install_error_handlers
from wopr_platform.api.headers import ResponseHeaders
from wopr_platform.api.health import router as health_router
from wopr_platform.api.limits import BodySizeLimit
from wopr_platform.api.openapi import document_errors
from wopr_platform.api.ratelimit import RateLimit
from wopr_platform.audit.middleware import AuditMiddleware
from wopr_platform.audit.routes import router as audit_router
from wopr_platform.audit.service import AuditService
from wopr_platform.audit.writer import AuditWriter
from wopr_platform.background import first_set
from wopr_platform.config.settings import Settings
from wopr_platform.crypto.keys import secret_box
from wopr_platform.db.engine import CommitCounter, create_engine, create_sessionmaker
from wopr_platform.db.leadership import Leadership
from wopr_platform.db.migrate import upgrade
from wopr_platform.docker.engine import DockerEngine
from wopr_platform.fleet.containers import BotContainers
from wopr_platform.fleet.events import EventBus
from wopr_platform.fleet.faults import CrashPoints
from wopr_platform.fleet.health import HealthMonitor, ProbeConfig
from wopr_platform.fleet.journal import Journal
from wopr_platform.fleet.locks import BotLocks
from wopr_platform.fleet.observed import ObservedState
from wopr_platform.fleet.reconciler import Reconciler
from wopr_platform.fleet.recovery import Recovery
from wopr_platform.fleet.routes import router as fleet_router
from wopr_platform.fleet.secret_env import SecretEnv
from wopr_platform.fleet.service import FleetService
from wopr_platform.fleet.stats import StatsCollector
from wopr_platform.fleet.watcher import EngineWatcher
from wopr_platform.images.registry import CredentialStore, RegistryClient
from wopr_platform.instance.client import InstanceClient
from wopr_platform.proxy.caddy import CaddyAdmin
from wopr_platform.proxy.routes import router as proxy_router
from wopr_platform.proxy.sync import ProxySync
from wopr_platform.templates.loader import packaged_directory
from wopr_platform.templates.routes import router as templates_router
from wopr_platform.templates.secrets import SecretStore
from wopr_platform.templates.service import TemplateService
from wopr_platform.updates.clock import Clock, SystemClock
from wopr_platform.updates.rollouts import RolloutRules, RolloutScheduler
from wopr_platform.updates.routes import router as updates_router
from wopr_platform.updates.service import UpdateService
from wopr_platform.updates.updater import Updater
from wopr_platform.updates.watcher import ImageWatcher

log = logging.getLogger(__name__)

GC_YOUNG_THRESHOLD = 5000


class Loop(Protocol):
    name: str

    async def run(self, stop: asyncio.Event) -> None: ...


async def _supervise(loop: Loop, stop: asyncio.Event) -> None:
    """Run a background loop; if it ever dies it is logged and restarted, never taking the process down."""
    while not stop.is_set():
        try:
            await loop.run(stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background loop crashed; restarting", extra={"loop": loop.name})
            await asyncio.sleep(1)


async def _set_when_any(target: asyncio.Event, *events: asyncio.Event) -> None:
    await first_set(*events)
    target.set()


async def _supervise_while_leading(loop: Loop, stop: asyncio.Event, leadership: Leadership) -> None:
    """Run a loop only during this replica's terms as leader; it is stopped when a term ends."""
    while not stop.is_set():
        await first_set(stop, leadership.leading)
        if stop.is_set():
            return
        ended = asyncio.Event()
        relaying = asyncio.create_task(_set_when_any(ended, stop, leadership.term_over))
        try:
            await _supervise(loop, ended)
        finally:
            relaying.cancel()


class PlatformAPI(FastAPI):
    """FastAPI with the response headers as the outermost layer, so even the last-resort 500 carries them, and an
    OpenAPI document that shows the API's own error answers."""

    def build_middleware_stack(self) -> ASGIApp:
        settings: Settings = self.state.settings
        docs = [path for path in (self.docs_url, self.redoc_url, self.swagger_ui_oauth2_redirect_url) if path]
        return ResponseHeaders(super().build_middleware_stack(), https=settings.https, docs_paths=docs)

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = document_errors(super().openapi())
        return self.openapi_schema


def create_app(settings: Settings, *, clock: Clock | None = None) -> FastAPI:
    """Build the ASGI app; services are created in its lifespan, not at import time.

    `clock` is the wall clock of the update schedules (tests move it to a nightly window).
    """
    clock = clock or SystemClock()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = create_engine(settings.database_url)
        await upgrade(db)
        sessions = create_sessionmaker(db)
        audit.start(sessions)
        app.state.audit = AuditService(sessions=sessions, writer=audit)
        docker = DockerEngine(settings.docker_host, timeout=settings.docker_timeout, platform_id=settings.platform_id)
        instances = InstanceClient(timeout=settings.health_timeout)
        observed = ObservedState()
        health = HealthMonitor(
            observed,
            instances,
            events=events,
            defaults=ProbeConfig(
                endpoint="/health",
                interval=settings.health_interval,
                timeout=settings.health_timeout,
                retries=settings.health_retries,
                start_period=settings.health_start_period,
            ),
        )
        stats = StatsCollector(docker, observed, interval=settings.stats_interval)
        crash = CrashPoints(settings.crash_at if settings.env == "test" else None)
        locks = BotLocks()
        journal = Journal(sessions)
        credentials = CredentialStore.from_file(settings.registry_credentials_file)
        registry = RegistryClient(
            credentials=credentials, insecure_hosts=settings.registry_insecure, timeout=settings.registry_timeout
        )
        secret_env = SecretEnv(await asyncio.to_thread(secret_box, settings))
        containers = BotContainers(
            engine=docker,
            observed=observed,
            health=health,
            settings=settings,
            crash=crash,
            secrets=secret_env,
            registry_auth=credentials.engine_auth,
        )
        recovery = Recovery(
            sessions=sessions, journal=journal, containers=containers, engine=docker, locks=locks, events=events
        )
        reconciler = Reconciler(
            sessions=sessions,
            containers=containers,
            observed=observed,
            locks=locks,
            events=events,
            recovery=recovery,
            interval=settings.reconcile_interval,
            orphan_grace=settings.orphan_grace,
        )
        watcher = EngineWatcher(
            docker, observed, health, events, resync_interval=settings.resync_interval, on_change=reconciler.kick
        )
        app.state.sessions = sessions
        app.state.docker = docker
        app.state.observed = observed
        app.state.watcher = watcher
        app.state.reconciler = reconciler
        app.state.fleet = FleetService(
            sessions=sessions,
            containers=containers,
            observed=observed,
            health=health,
            stats=stats,
            events=events,
            journal=journal,
            locks=locks,
            crash=crash,
            commits=CommitCounter(db),
            settings=settings,
            secrets=secret_env,
        )
        await app.state.fleet.load()
        app.state.templates = TemplateService(
            directory=settings.templates_dir or packaged_directory(),
            secrets=SecretStore(environ=os.environ, file=settings.template_secrets_file),
            fleet=app.state.fleet,
            sessions=sessions,
        )
        await app.state.templates.load()  # a bad template file is logged and skipped, never fatal
        updater = Updater(
            sessions=sessions,
            containers=containers,
            instances=instances,
            health=health,
            journal=journal,
            locks=locks,
            events=events,
            crash=crash,
            clock=clock,
            health_timeout=settings.update_health_timeout,
        )
        window = timedelta(seconds=settings.update_window)
        scheduler = RolloutScheduler(
            sessions=sessions,
            updater=updater,
            events=events,
            clock=clock,
            rules=RolloutRules(
                waves=settings.rollout_waves,
                max_failure_rate=settings.rollout_max_failure_rate,
                parallel=settings.rollout_parallel,
                nightly_at=settings.update_nightly_at,
                window=window,
            ),
            ready=reconciler.recovered,
        )
        images = ImageWatcher(
            sessions=sessions,
            registry=registry,
            clock=clock,
            intervals={
                "canary": settings.update_interval_canary,
                "staging": settings.update_interval_staging,
                "stable": settings.update_interval_stable,
            },
            jitter=settings.update_jitter,
            on_new_digest=scheduler.kick,
        )
        app.state.registry = registry
        app.state.image_watcher = images
        app.state.rollouts = scheduler
        app.state.updates = UpdateService(
            sessions=sessions,
            watcher=images,
            updater=updater,
            clock=clock,
            nightly_at=settings.update_nightly_at,
            window=window,
        )
        stop = asyncio.Event()
        leadership = Leadership(settings.database_url, settings.platform_id)
        app.state.leadership = leadership
        # tenant routing: the routing table and the DNS that Caddy asks (every replica), Caddy's config (put back
        # by the leader); a missing Caddy is reported in /health/ready and retried, never a reason not to start
        caddy = CaddyAdmin(settings.caddy_admin_url) if settings.proxy_enabled else None
        proxy = None
        if caddy is not None:
            proxy = ProxySync(
                settings=settings,
                sessions=sessions,
                commits=CommitCounter(db),
                observed=observed,
                health_of=health.status,
                caddy=caddy,
                may_write=lambda: leadership.is_leader,
            )
        app.state.proxy = proxy
        # every replica keeps its own view of the engine; only the leader changes the fleet
        loops: tuple[Loop, ...] = (leadership, watcher, health, stats)
        if proxy is not None:
            loops += (proxy,)
        tasks = [asyncio.create_task(_supervise(loop, stop), name=loop.name) for loop in loops]
        tasks += [
            asyncio.create_task(_supervise_while_leading(loop, stop, leadership), name=loop.name)
            for loop in (reconciler, images, scheduler)
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
        log.info("wopr-platform started", extra={"version": __version__, "port": settings.port})
        try:
            yield
        finally:
            stop.set()
            events.close()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await instances.close()
            if caddy is not None:
                await caddy.close()
            await registry.close()
            await docker.close()
            await audit.close()  # after the last request: every audit record is stored
            await db.dispose()
            log.info("wopr-platform stopped")

    app = PlatformAPI(
        title="wopr-platform",
        version=__version__,
        description="Control plane for fleets of WOPR bot instances.",
        lifespan=lifespan,
    )
    events = EventBus()
    audit = AuditWriter()
    app.state.settings = settings
    app.state.events = events
    app.state.proxy = None  # the routing loop, once the lifespan has built it (when PROXY_ENABLED)
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(fleet_router)
    app.include_router(templates_router)
    app.include_router(updates_router)
    app.include_router(proxy_router)
    app.include_router(audit_router)
    app.add_middleware(AuditMiddleware, writer=audit)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    token = settings.fleet_api_token.get_secret_value() if settings.fleet_api_token else None
    app.add_middleware(RateLimit, limit=settings.rate_limit, window=settings.rate_window, token=token)
    return app
