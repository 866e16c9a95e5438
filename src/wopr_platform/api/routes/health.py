"""Liveness and readiness of the platform itself (no authentication)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from wopr_platform.api.deps import AllServices
from wopr_platform.core.errors import PlatformError

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict[str, str]:
    """The process answers: always 200 while it runs, whatever the engine does."""
    return {"status": "ok", "service": "wopr-platform"}


@router.get("/health/ready")
async def ready(services: AllServices) -> JSONResponse:
    """200 when the database, the Docker engine and (with tenant routing on) Caddy answer; 503 naming what does not."""
    state = services
    checks: dict[str, Any] = {}
    try:
        async with state.database.read() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = {"ok": True}
    except Exception as err:  # any driver error means "not ready"
        checks["database"] = {"ok": False, "reason": type(err).__name__}
    try:
        await state.docker.ping()
        checks["docker"] = {"ok": True}
    except PlatformError as err:
        checks["docker"] = {"ok": False, "reason": err.message}
    observed = state.observed
    checks["observedState"] = {"ok": observed.stale_reason is None, "reason": observed.stale_reason}
    proxy = state.proxy
    if proxy is None:
        checks["proxy"] = {"ok": True, "enabled": False}
    else:
        routable, reason = proxy.readiness()
        checks["proxy"] = {"ok": routable, "enabled": True, "reason": reason, "adminUrl": proxy.status()["adminUrl"]}
    ok = all(check["ok"] for check in checks.values())
    return JSONResponse(
        {
            "status": "ready" if ok else "not_ready",
            "service": "wopr-platform",
            "checks": checks,
            # the leader runs the reconciler, registry checks and rollouts; every replica serves the API
            "leader": state.leadership.is_leader,
        },
        status_code=200 if ok else 503,
    )
