"""HTTP routes of the fleet: parse, call one service method, shape the answer."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse, StreamingResponse

from wopr_platform.api.auth import Operator, Principal
from wopr_platform.api.deps import AllServices, BotId, Fleet, Templates, TenantQuotas, checked_id
from wopr_platform.api.routes.templates import CreateBotBody
from wopr_platform.core.errors import Forbidden, ValidationFailed
from wopr_platform.core.naming import TENANT_RE
from wopr_platform.fleet.lifecycle.listing import ALL_TENANTS, MAX_PAGE, BotQuery
from wopr_platform.fleet.observation.events import sse_stream
from wopr_platform.fleet.schemas import (
    BotDetail,
    BotList,
    BotListHealth,
    BotListState,
    BotPatch,
    BotProfile,
    DriftReport,
    Ok,
    TenantQuota,
)
from wopr_platform.templates.schemas import TemplateBotCreate

router = APIRouter(prefix="/fleet", tags=["fleet"])
LEADING_INT_RE = re.compile(r"\s*([+-]?)0*([0-9]+)")
# more digits than this is far past any limit; not converting them keeps int() off its digit cap
INT_DIGITS = 12


def _leading_int(value: str | None) -> int | None:
    """The integer `value` starts with, as JavaScript's parseInt reads it ("12abc" is 12, "1.5" is 1, "abc" is
    None): the original service read query numbers that way, so its clients may send such values."""
    match = LEADING_INT_RE.match(value) if value is not None else None
    if match is None:
        return None
    sign, digits = match.groups()
    number = int(digits) if len(digits) <= INT_DIGITS else 10**INT_DIGITS
    return -number if sign == "-" else number


@router.get("/bots", response_model=BotList)
async def list_bots(
    principal: Operator,
    fleet: Fleet,
    limit: Annotated[int | None, Query(ge=1, le=MAX_PAGE, description="At most this many bots: a page.")] = None,
    after: Annotated[str | None, Query(max_length=200, description="The `nextAfter` of the page before.")] = None,
    state: Annotated[BotListState | None, Query(description="Only bots whose container is in this state.")] = None,
    health: Annotated[BotListHealth | None, Query(description="Only bots of this health.")] = None,
    name_prefix: Annotated[str | None, Query(alias="namePrefix", max_length=63)] = None,
    image: Annotated[str | None, Query(max_length=512, description="Only bots of this image reference.")] = None,
    template: Annotated[str | None, Query(max_length=63, description="Only bots made from this template.")] = None,
    tenant: Annotated[
        str | None,
        Query(
            max_length=63,
            description="Platform admins only: the bots of this tenant, or `*` for every tenant's (each bot's "
            "`tenantId` says whose it is).",
        ),
    ] = None,
) -> Response:
    """All bots of the caller's tenant with their live status (rendered by the service: this list can be long).
    With a page or a filter asked for, the answer adds `nextAfter` (the cursor of the next page, null on the
    last) and `counts` (the listed bots by state)."""
    query = BotQuery(limit, after, state, health, name_prefix, image, template)
    return Response(await fleet.list_bots_json(_listed_tenant(principal, tenant), query), media_type="application/json")


def _listed_tenant(principal: Principal, tenant: str | None) -> str | None:
    """The tenant whose bots are listed (None: every tenant's)."""
    if tenant is None:
        return principal.tenant_id
    if not principal.platform_admin:
        raise Forbidden(
            "only a platform admin may list another tenant's bots", details={"code": "platform_admin_required"}
        )
    if tenant == ALL_TENANTS:
        return None
    if not TENANT_RE.match(tenant):
        raise ValidationFailed("tenant must be a tenant id or `*`", details={"field": "tenant"})
    return tenant


@router.post("/bots", status_code=201, response_model=BotProfile)
async def create_bot(body: CreateBotBody, principal: Operator, fleet: Fleet, templates: Templates) -> BotProfile:
    """Create a bot and start it; with `template`, from that profile template plus the body's overrides."""
    if isinstance(body, TemplateBotCreate):
        return await templates.create_bot(principal.tenant_id, body)
    return await fleet.create_bot(principal.tenant_id, body)


@router.get("/bots/{bot_id}", response_model=BotDetail)
async def get_bot(bot_id: BotId, principal: Operator, fleet: Fleet) -> BotDetail:
    return await fleet.get_bot(principal.tenant_id, bot_id)


@router.patch("/bots/{bot_id}", response_model=BotProfile)
async def patch_bot(bot_id: BotId, body: BotPatch, principal: Operator, fleet: Fleet) -> BotProfile:
    """Change a bot's profile; its container is recreated only when that is needed."""
    return await fleet.patch_bot(principal.tenant_id, bot_id, body)


@router.delete("/bots/{bot_id}", status_code=204, response_class=Response)
async def delete_bot(
    bot_id: BotId,
    principal: Operator,
    fleet: Fleet,
    remove_volumes: Annotated[bool, Query(alias="removeVolumes", strict=False)] = False,
) -> Response:
    """Remove a bot and its container; `removeVolumes=true` also removes its data volume. 204, no body (as the
    original service answered)."""
    await fleet.delete_bot(principal.tenant_id, bot_id, remove_volumes=remove_volumes)
    return Response(status_code=204)


@router.post("/bots/{bot_id}/start", response_model=Ok)
async def start_bot(bot_id: BotId, principal: Operator, fleet: Fleet) -> Ok:
    await fleet.start_bot(principal.tenant_id, bot_id)
    return Ok()


@router.post("/bots/{bot_id}/stop", response_model=Ok)
async def stop_bot(bot_id: BotId, principal: Operator, fleet: Fleet) -> Ok:
    await fleet.stop_bot(principal.tenant_id, bot_id)
    return Ok()


@router.post("/bots/{bot_id}/restart", response_model=Ok)
async def restart_bot(bot_id: BotId, principal: Operator, fleet: Fleet) -> Ok:
    await fleet.restart_bot(principal.tenant_id, bot_id)
    return Ok()


@router.get("/quota", response_model=TenantQuota)
async def quota(principal: Operator, quotas: TenantQuotas) -> TenantQuota:
    """The caller's tenant's quota: the limits in force, its overrides and what its bots use now."""
    return await quotas.quota(principal.tenant_id)


@router.get("/drift", response_model=DriftReport)
async def drift(principal: Operator, services: AllServices) -> DriftReport:
    """What differs between desired and observed state right now, and what the reconciler did about it."""
    return services.reconciler.report(principal.tenant_id, platform_wide=principal.platform_admin)


@router.get("/events", response_class=StreamingResponse)
async def events(
    principal: Operator,
    services: AllServices,
    bot_id: Annotated[str | None, Query(alias="botId", max_length=64)] = None,
) -> StreamingResponse:
    """Server-sent events of bot state changes (`?botId=` for one bot); ends when the platform shuts down."""
    if bot_id is not None:
        bot_id = checked_id(bot_id, "bot")
    return StreamingResponse(
        sse_stream(
            services.events, bot_id=bot_id, tenant_id=principal.tenant_id, platform_wide=principal.platform_admin
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/bots/{bot_id}/logs", response_class=PlainTextResponse)
async def bot_logs(
    bot_id: BotId,
    principal: Operator,
    fleet: Fleet,
    tail: Annotated[
        str | None,
        Query(
            description="lines to read: a number above 10000 reads 10000; none, zero, a negative number or "
            "text that does not start with a number reads 100",
        ),
    ] = None,
) -> PlainTextResponse:
    """The last `tail` lines of the bot's output (clamped, never refused, as by the original service)."""
    return PlainTextResponse(await fleet.logs(principal.tenant_id, bot_id, _leading_int(tail)))
