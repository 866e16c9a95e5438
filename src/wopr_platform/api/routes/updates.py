"""HTTP routes of image updates: parse, call one service method, shape the answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from wopr_platform.api.auth import Operator, PlatformAdmin
from wopr_platform.api.deps import BotId, Updates, checked_id
from wopr_platform.updates.schemas import ImageStatus, RolloutList, RolloutOut, UpdateHistory, UpdateResultOut

router = APIRouter(prefix="/fleet", tags=["updates"])


async def _rollout_id(rollout_id: Annotated[str, Path()]) -> str:
    return checked_id(rollout_id, "rollout")


Limit = Annotated[int, Query(ge=1, le=500)]


@router.post("/bots/{bot_id}/update", response_model=UpdateResultOut, response_model_exclude_unset=True)
async def update_bot(bot_id: BotId, principal: Operator, updates: Updates) -> UpdateResultOut:
    """Update the bot to the newest digest of its image now, gated by its health; rolled back if it fails.

    A finished attempt answers 200 whatever its outcome (`success`, `rolledBack`, `error` say how it went).
    """
    return await updates.update_now(principal.tenant_id, bot_id)


@router.get("/bots/{bot_id}/image-status", response_model=ImageStatus)
async def image_status(bot_id: BotId, principal: Operator, updates: Updates) -> ImageStatus:
    """The deployed and the available digest of the bot's image, and the last registry check."""
    return await updates.image_status(principal.tenant_id, bot_id)


@router.get("/bots/{bot_id}/updates", response_model=UpdateHistory)
async def update_history(bot_id: BotId, principal: Operator, updates: Updates, limit: Limit = 50) -> UpdateHistory:
    """Every update attempt of the bot (when, from, to, outcome, why), newest first."""
    return await updates.updates(principal.tenant_id, bot_id, limit)


@router.get("/rollouts", response_model=RolloutList)
async def list_rollouts(principal: PlatformAdmin, updates: Updates, limit: Limit = 50) -> RolloutList:
    """Fleet rollouts and their waves, newest first (global: waves name every tenant's bots; the platform's
    operator only)."""
    return await updates.rollouts(limit)


@router.get("/rollouts/{rollout_id}", response_model=RolloutOut)
async def get_rollout(
    principal: PlatformAdmin, rollout_id: Annotated[str, Depends(_rollout_id)], updates: Updates
) -> RolloutOut:
    return await updates.rollout(rollout_id)
