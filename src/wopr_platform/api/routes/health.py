"""Liveness and readiness of the platform itself (no authentication)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from wopr_platform.api.deps import AllServices
from wopr_platform.api.readiness import Liveness, Readiness, readiness

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Liveness)
async def health() -> Liveness:
    """The process answers: always 200 while it runs, whatever the engine does."""
    return Liveness()


@router.get(
    "/health/ready",
    response_model=Readiness,
    response_model_exclude_unset=True,
    responses={503: {"model": Readiness, "description": "something the platform needs does not answer"}},
)
async def ready(services: AllServices, response: Response) -> Readiness:
    """200 when the database, the Docker engine, (with tenant routing on) Caddy and (with BOT_HOST_ISOLATION on)
    the host firewall answer; 503 naming what does not."""
    answer = await readiness(services)
    if not answer.ok:
        response.status_code = 503
    return answer
