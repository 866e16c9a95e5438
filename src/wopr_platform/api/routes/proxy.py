"""HTTP routes of tenant routing: parse, call the sync loop's table, shape the answer."""

from __future__ import annotations

from fastapi import APIRouter

from wopr_platform.api.auth import Operator
from wopr_platform.api.deps import AllServices
from wopr_platform.core.errors import ServiceUnavailable
from wopr_platform.proxy.schemas import RouteList

router = APIRouter(prefix="/proxy", tags=["proxy"])


@router.get("/routes", response_model=RouteList)
async def list_routes(principal: Operator, services: AllServices) -> RouteList:
    """The caller's tenant's routing table (host and path of each bot, where they lead now) and, for the platform's
    operator only, the proxy's state (it is the whole platform's)."""
    proxy = services.proxy
    if proxy is None:
        raise ServiceUnavailable("tenant routing is off (PROXY_ENABLED=false)", details={"code": "proxy_disabled"})
    return proxy.route_list(principal.tenant_id, with_status=principal.platform_admin)
