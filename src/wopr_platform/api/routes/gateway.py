"""HTTP routes that set the AI gateway up and show what it did (the gateway's own endpoints, which bots call,
are on its own listener: `app/gateway.py`).

The platform's operator names the providers and the models with their prices; a tenant makes keys of its own,
stores its own provider keys (its calls with them cost nothing), rotates a bot's key and reads its usage.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from wopr_platform.api.auth import Operator, PlatformAdmin
from wopr_platform.api.deps import BotId, Gateway, checked_id
from wopr_platform.gateway.schemas import (
    BotLimits,
    BotLimitsIn,
    GatewayUsage,
    KeyCreated,
    KeyIn,
    KeyList,
    KeyRotated,
    ModelIn,
    ModelList,
    ModelOut,
    OwnKeyIn,
    OwnKeyList,
    ProviderIn,
    ProviderList,
    ProviderName,
    ProviderOut,
)

router = APIRouter(tags=["gateway"])
Provider = Annotated[ProviderName, Path(description="the provider's name (a-z 0-9 _ -)")]
Day = Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}-\d{2}$", description="a UTC day, YYYY-MM-DD")]


def _created(created: bool, response: Response) -> None:
    response.status_code = 201 if created else 200


# the platform's operator ------------------------------------------------------------------------------------------


@router.get("/gateway/providers", response_model=ProviderList)
async def providers(principal: PlatformAdmin, gateway: Gateway) -> ProviderList:
    """The providers the gateway calls (their keys are never shown) and whether each is cut off."""
    return await gateway.providers()


@router.put(
    "/gateway/providers/{name}",
    response_model=ProviderOut,
    status_code=200,
    responses={201: {"model": ProviderOut, "description": "added"}},
)
async def put_provider(
    name: Provider, body: ProviderIn, principal: PlatformAdmin, gateway: Gateway, response: Response
) -> ProviderOut:
    """Add or change a provider (201 when added); its key is stored sealed."""
    out, created = await gateway.put_provider(name, body)
    _created(created, response)
    return out


@router.delete("/gateway/providers/{name}", status_code=204, response_class=Response)
async def delete_provider(name: Provider, principal: PlatformAdmin, gateway: Gateway) -> Response:
    await gateway.delete_provider(name)
    return Response(status_code=204)


@router.put(
    "/gateway/models",
    response_model=ModelOut,
    status_code=200,
    responses={201: {"model": ModelOut, "description": "offered for the first time"}},
)
async def put_model(body: ModelIn, principal: PlatformAdmin, gateway: Gateway, response: Response) -> ModelOut:
    """Offer a model (201 when new) or change its provider or prices (micro-dollars per million tokens)."""
    out, created = await gateway.put_model(body)
    _created(created, response)
    return out


@router.delete("/gateway/models", status_code=204, response_class=Response)
async def delete_model(
    principal: PlatformAdmin, gateway: Gateway, model: Annotated[str, Query(min_length=1, max_length=120)]
) -> Response:
    await gateway.delete_model(model)
    return Response(status_code=204)


# a tenant -----------------------------------------------------------------------------------------------------


@router.get("/gateway/models", response_model=ModelList)
async def models(principal: Operator, gateway: Gateway) -> ModelList:
    """The models the gateway offers and their prices (before the margin, which is shown beside them)."""
    return await gateway.models()


@router.get("/gateway/keys", response_model=KeyList)
async def keys(principal: Operator, gateway: Gateway) -> KeyList:
    return await gateway.keys(principal.tenant_id)


@router.post("/gateway/keys", response_model=KeyCreated, status_code=201)
async def create_key(body: KeyIn, principal: Operator, gateway: Gateway) -> KeyCreated:
    """A gateway key of the tenant's own (its calls are the tenant's, without a bot); shown in this answer only."""
    return await gateway.create_key(principal.tenant_id, body.name, principal.user_id or principal.subject)


@router.delete("/gateway/keys/{key_id}", status_code=204, response_class=Response)
async def revoke_key(key_id: Annotated[str, Path(max_length=64)], principal: Operator, gateway: Gateway) -> Response:
    """Revoke a key: its next call, on any replica, is a 401."""
    await gateway.revoke_key(principal.tenant_id, key_id)
    return Response(status_code=204)


@router.get("/gateway/provider-keys", response_model=OwnKeyList)
async def own_keys(principal: Operator, gateway: Gateway) -> OwnKeyList:
    return await gateway.own_keys(principal.tenant_id)


@router.put("/gateway/provider-keys/{name}", status_code=204, response_class=Response)
async def put_own_key(name: Provider, body: OwnKeyIn, principal: Operator, gateway: Gateway) -> Response:
    """The tenant's own key for a provider (stored sealed): its calls to that provider's models use it and are
    not charged."""
    await gateway.put_own_key(principal.tenant_id, name, body.api_key)
    return Response(status_code=204)


@router.delete("/gateway/provider-keys/{name}", status_code=204, response_class=Response)
async def delete_own_key(name: Provider, principal: Operator, gateway: Gateway) -> Response:
    await gateway.delete_own_key(principal.tenant_id, name)
    return Response(status_code=204)


@router.post("/fleet/bots/{bot_id}/gateway-key", response_model=KeyRotated)
async def rotate_bot_key(bot_id: BotId, principal: Operator, gateway: Gateway) -> KeyRotated:
    """Give the bot a new gateway key: the old one stops working at once and the bot's container is made again
    with the new one within moments."""
    return await gateway.rotate_bot_key(principal.tenant_id, bot_id)


@router.get("/fleet/bots/{bot_id}/gateway-limits", response_model=BotLimits)
async def bot_limits(bot_id: BotId, principal: Operator, gateway: Gateway) -> BotLimits:
    """The bot's daily cap on what its gateway calls cost, what they cost today and what calls in flight hold."""
    return await gateway.bot_limits(principal.tenant_id, bot_id)


@router.put("/fleet/bots/{bot_id}/gateway-limits", response_model=BotLimits)
async def set_bot_limits(bot_id: BotId, body: BotLimitsIn, principal: Operator, gateway: Gateway) -> BotLimits:
    """Cap what the bot's gateway calls may cost per UTC day (null lifts the cap). A call that could pass it is
    answered 402 bot_cap_reached; each call reserves its most possible cost, so concurrent calls cannot pass it."""
    return await gateway.set_bot_limits(principal.tenant_id, bot_id, body.daily_cap)


@router.get("/gateway/usage", response_model=GatewayUsage)
async def usage(
    principal: Operator,
    gateway: Gateway,
    since: Day = None,
    until: Day = None,
    bot_id: Annotated[str | None, Query(alias="botId")] = None,
) -> GatewayUsage:
    """The tenant's calls by day, model and bot (default: the last 30 days), with their tokens and cost."""
    return await gateway.usage(
        principal.tenant_id, since, until, checked_id(bot_id, "bot") if bot_id is not None else None
    )
