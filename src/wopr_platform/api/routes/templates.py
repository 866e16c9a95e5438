"""HTTP routes of the templates: list, show and reload them, and seed the standard fleet."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from pydantic import PlainValidator

from wopr_platform.api.auth import Operator, PlatformAdmin
from wopr_platform.api.deps import Templates
from wopr_platform.fleet.schemas import BotCreate
from wopr_platform.templates.schemas import (
    ReloadResult,
    SeedRequest,
    SeedResult,
    TemplateBotCreate,
    TemplateList,
    TemplateView,
)

router = APIRouter(prefix="/fleet", tags=["templates"])


def _create_body(value: Any) -> BotCreate | TemplateBotCreate:
    """A body with `template` is a bot from that template plus overrides; any other is a complete profile."""
    if isinstance(value, dict) and "template" in value:
        return TemplateBotCreate.model_validate(value)
    return BotCreate.model_validate(value)


# Documented as BotCreate (the seed's contract); the template form is shown as an example.
CreateBotBody = Annotated[
    BotCreate | TemplateBotCreate,
    PlainValidator(_create_body, json_schema_input_type=BotCreate),
    Body(
        openapi_examples={
            "profile": {
                "summary": "a complete profile",
                "value": {"name": "support-bot", "image": "ghcr.io/wopr-network/wopr:stable", "env": {}},
            },
            "template": {
                "summary": "from a template: `template`, optional overrides (BotCreate fields) and `variables`",
                "value": {"template": "stable-discord", "name": "support-bot", "variables": {"DISCORD_TOKEN": "..."}},
            },
        }
    ),
]


@router.get("/templates", response_model=TemplateList, response_model_exclude_unset=True)
async def list_templates(principal: Operator, templates: Templates) -> TemplateList:
    """Every loaded template (placeholders as written, never their values) and the files that failed to load."""
    return templates.list_templates()


@router.post("/templates/reload", response_model=ReloadResult)
async def reload_templates(principal: PlatformAdmin, templates: Templates) -> ReloadResult:
    """Re-read the templates folder without a restart (global: every tenant's catalog; the platform's operator only)."""
    return await templates.reload()


@router.get("/templates/{name}", response_model=TemplateView, response_model_exclude_unset=True)
async def get_template(name: Annotated[str, Path()], principal: Operator, templates: Templates) -> TemplateView:
    return templates.get_template(name)


@router.post("/seed", response_model=SeedResult)
async def seed(
    principal: Operator, templates: Templates, body: Annotated[SeedRequest | None, Body()] = None
) -> SeedResult:
    """Create one running bot per template that has none yet; failures are listed, never half-made (always 200)."""
    return await templates.seed(principal.tenant_id, body or SeedRequest())
