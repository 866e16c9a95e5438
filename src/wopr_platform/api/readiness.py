"""Whether this replica can serve: the database, the Docker engine, its view of the engine and the proxy answer, and
the host firewall keeps bots off the host."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from wopr_platform.api.deps import Services
from wopr_platform.core.errors import PlatformError


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Liveness(_Wire):
    status: Literal["ok"] = "ok"
    service: str = "wopr-platform"


class Check(_Wire):
    """One dependency: whether it answers, and why not."""

    ok: bool
    reason: str | None = None
    enabled: bool | None = None
    admin_url: str | None = None


class Readiness(_Wire):
    status: Literal["ready", "not_ready"]
    service: str = "wopr-platform"
    checks: dict[str, Check]
    leader: bool  # the leader runs the reconciler, registry checks and rollouts; every replica serves the API

    @property
    def ok(self) -> bool:
        return self.status == "ready"


async def readiness(services: Services) -> Readiness:
    """Ask each dependency once; a failing one is named with its reason."""
    checks: dict[str, Check] = {}
    reason = await services.database.ping()
    checks["database"] = Check(ok=True) if reason is None else Check(ok=False, reason=reason)
    try:
        await services.docker.ping()
        checks["docker"] = Check(ok=True)
    except PlatformError as err:
        checks["docker"] = Check(ok=False, reason=err.message)
    stale = services.observed.stale_reason
    checks["observedState"] = Check(ok=stale is None, reason=stale)
    proxy = services.proxy
    if proxy is None:
        checks["proxy"] = Check(ok=True, enabled=False)
    else:
        routable, why = proxy.readiness()
        checks["proxy"] = Check(ok=routable, enabled=True, reason=why, admin_url=proxy.status()["adminUrl"])
    isolation = services.isolation
    if isolation is None:
        checks["hostIsolation"] = Check(ok=True, enabled=False)
    else:
        isolated, why = isolation.readiness()
        checks["hostIsolation"] = (
            Check(ok=True, enabled=True) if isolated else Check(ok=False, enabled=True, reason=why)
        )
    ok = all(check.ok for check in checks.values())
    return Readiness(
        status="ready" if ok else "not_ready",
        service="wopr-platform",
        checks=checks,
        leader=services.leadership.is_leader,
    )
