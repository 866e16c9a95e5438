"""The composition root: builds every service from the settings, runs the background loops, serves HTTP."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import FastAPI

from wopr_platform import __version__
from wopr_platform.api.errors import install_error_handlers
from wopr_platform.api.health import router as health_router
from wopr_platform.api.limits import BodySizeLimit
from wopr_platform.config.settings import Settings
from wopr_platform.db.engine import create_engine, create_sessionmaker
from wopr_platform.db.migrate import upgrade
from wopr_platform.docker.engine import DockerEngine
from wopr_platform.fleet.health import HealthMonitor, ProbeConfig
from wopr_platform.fleet.observed import ObservedState
from wopr_platform.fleet.routes import router as fleet_router
from wopr_platform.fleet.service import FleetService
from wopr_platform.fleet.stats import StatsCollector
from wopr_platform.fleet.watcher import EngineWatcher
from wopr_platform.instance.client import InstanceClient

log = logging.getLogger(__name__)


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


def create_app(settings: Settings) -> FastAPI:
    """Build the ASGI app; services are created in its lifespan, not at import time."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = create_engine(settings.database_url)
        await upgrade(db)
        sessions = create_sessionmaker(db)
        docker = DockerEngine(settings.docker_host, timeout=settings.docker_timeout, platform_id=settings.platform_id)
        instances = InstanceClient(timeout=settings.health_timeout)
        observed = ObservedState()
        health = HealthMonitor(
            observed,
            instances,
            defaults=ProbeConfig(
                endpoint="/health",
                interval=settings.health_interval,
                timeout=settings.health_timeout,
                retries=settings.health_retries,
                start_period=settings.health_start_period,
            ),
        )
        stats = StatsCollector(docker, observed, interval=settings.stats_interval)
        watcher = EngineWatcher(docker, observed, health, resync_interval=settings.resync_interval)
        app.state.settings = settings
        app.state.sessions = sessions
        app.state.docker = docker
        app.state.observed = observed
        app.state.watcher = watcher
        app.state.fleet = FleetService(
            sessions=sessions,
            engine=docker,
            observed=observed,
            health=health,
            stats=stats,
            settings=settings,
        )
        await app.state.fleet.load()
        stop = asyncio.Event()
        tasks = [asyncio.create_task(_supervise(loop, stop), name=loop.name) for loop in (watcher, health, stats)]
        # give the first resync a moment so the first requests see containers, without blocking on a dead engine
        try:
            async with asyncio.timeout(5):
                await watcher.connected.wait()
        except TimeoutError:
            log.warning(
                "Docker engine not reachable at start-up; will keep trying",
                extra={"url": settings.docker_host},
            )
        # Everything built so far lives as long as the process: keep it out of the collector's full passes,
        # which otherwise pause request handling for tens of milliseconds on a large fleet.
        gc.collect()
        gc.freeze()
        log.info("wopr-platform started", extra={"version": __version__, "port": settings.port})
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await instances.close()
            await docker.close()
            await db.dispose()
            log.info("wopr-platform stopped")

    app = FastAPI(
        title="wopr-platform",
        version=__version__,
        description="Control plane for fleets of WOPR bot instances.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(health_router)
    app.include_router(fleet_router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
