"""Profile templates: the loaded catalog, bots created from a template, and seeding of the standard fleet.

A template becomes an ordinary `BotCreate` (its plugins and their config turned into the env the WOPR runtime
reads) and goes through `FleetService.create_bot`; the template's name, version and secret env keys, and for a
seed its seed record, are written in the same transaction that reserves the bot, so a seed is never half-made
and two seeds never make the same bot twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from wopr_platform.core.errors import Conflict, PlatformError, ValidationFailed
from wopr_platform.db.unit import Database
from wopr_platform.fleet.lifecycle.service import FleetService
from wopr_platform.fleet.schemas import BotCreate, BotOrigin, BotProfile, HealthCheck
from wopr_platform.templates import placeholders
from wopr_platform.templates.errors import MissingVariables, TemplateNotFound
from wopr_platform.templates.loader import Catalog, Loaded, load_directory
from wopr_platform.templates.repository import CREATED, CREATING, SeedRecord, SeedRepository
from wopr_platform.templates.schemas import (
    CHANNEL_PLUGIN_ENV,
    PLUGINS_ENV,
    PROVIDER_PLUGIN_ENV,
    ReloadResult,
    SeedRequest,
    SeedResult,
    Template,
    TemplateBotCreate,
    TemplateList,
    TemplateView,
)
from wopr_platform.templates.secrets import SecretStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A template with its overrides applied and its variables resolved, ready for the fleet."""

    request: BotCreate


def plugin_env(template: Template) -> dict[str, str]:
    """The env that tells the WOPR runtime which plugins to load: channel first, then provider."""
    return {
        PLUGINS_ENV: f"{template.channel.plugin},{template.provider.plugin}",
        CHANNEL_PLUGIN_ENV: template.channel.plugin,
        PROVIDER_PLUGIN_ENV: template.provider.plugin,
    }


def _health_check(template: Template, override: HealthCheck | None) -> HealthCheck | None:
    """The template's health check with the fields the request sets laid over it."""
    if template.health_check is None and override is None:
        return None
    merged = template.health_check.stored() if template.health_check else {}
    if override is not None:
        merged.update(override.model_dump(by_alias=True, exclude_unset=True))
    return HealthCheck.model_validate(merged)


class TemplateService:
    """List and reload templates, create bots from them, and seed one bot per template."""

    def __init__(
        self,
        *,
        directory: Path,
        secrets: SecretStore,
        fleet: FleetService,
        db: Database,
        provided: frozenset[str] = frozenset(),
    ) -> None:
        self._directory = directory
        # variables the platform gives every bot itself (the AI gateway's URL and key): a template's entry that
        # needs one no one gave a value for is left to the platform
        self._provided = provided
        self._secrets = secrets
        self._fleet = fleet
        self._db = db
        self._catalog = Catalog(directory)
        self._loading = asyncio.Lock()

    @asynccontextmanager
    async def _seeds(self) -> AsyncIterator[SeedRepository]:
        async with self._db.unit() as session:
            yield SeedRepository(session)

    # the catalog --------------------------------------------------------------------------------------------

    async def load(self) -> Catalog:
        """(Re)read the templates folder and use what it holds now; each bad file is logged and skipped."""
        async with self._loading:
            catalog = await asyncio.to_thread(load_directory, self._directory)
            self._catalog = catalog
        for error in catalog.errors:
            log.warning("template skipped", extra={"file": error.file, "field": error.field, "reason": error.reason})
        log.info(
            "templates loaded",
            extra={
                "directory": str(catalog.directory),
                "templates": list(catalog.templates),
                "errors": len(catalog.errors),
            },
        )
        return catalog

    def list_templates(self) -> TemplateList:
        """Every loaded template (placeholders as written, never values) and the current load errors."""
        catalog = self._catalog
        return TemplateList.model_validate(
            {
                "templates": [loaded.template.view(loaded.file) for loaded in catalog.templates.values()],
                "errors": [error.view() for error in catalog.errors],
            }
        )

    def get_template(self, name: str) -> TemplateView:
        loaded = self._find(name)
        return TemplateView.model_validate(loaded.template.view(loaded.file))

    async def reload(self) -> ReloadResult:
        """Re-read the folder without a restart: what loaded and what did not."""
        catalog = await self.load()
        return ReloadResult.model_validate(
            {"loaded": list(catalog.templates), "errors": [error.view() for error in catalog.errors]}
        )

    # bots from templates ------------------------------------------------------------------------------------

    async def create_bot(self, tenant_id: str, request: TemplateBotCreate) -> BotProfile:
        """Create and start a bot from a template and the request's overrides; nothing is made if a value is missing."""
        template = self._find(request.template).template
        rendered = await self._render(template, request)
        profile = await self._fleet.create_bot(
            tenant_id, rendered.request, origin=BotOrigin(template=template.name, version=template.version)
        )
        log.info(
            "bot created from template",
            extra={"bot_id": profile.id, "template": template.name, "template_version": template.version},
        )
        return profile

    async def seed(self, tenant_id: str, request: SeedRequest) -> SeedResult:
        """Create one running bot for each template (or each named one) that has none yet."""
        catalog = self._catalog
        names = sorted(set(request.templates)) if request.templates is not None else list(catalog.templates)
        unknown = [name for name in names if name not in catalog.templates]
        if unknown:
            raise TemplateNotFound(f"unknown templates: {', '.join(unknown)}", details={"unknown": unknown})
        async with self._seeds() as seeds:
            records = await seeds.records(tenant_id)
            in_use = await seeds.templates_in_use(tenant_id)
        created: list[str] = []
        skipped: list[str] = []
        failed: list[dict[str, Any]] = []
        for name in names:
            template = catalog.templates[name].template
            try:
                made = await self._seed_one(tenant_id, template, request, records.get(name), name in in_use)
            except PlatformError as err:
                failed.append(self._failure(name, err))
                continue
            (created if made else skipped).append(name)
        log.info(
            "seed finished", extra={"seeded": created, "skipped": skipped, "failed": [f["template"] for f in failed]}
        )
        return SeedResult.model_validate({"created": created, "skipped": skipped, "failed": failed})

    async def _seed_one(
        self, tenant_id: str, template: Template, request: SeedRequest, record: SeedRecord | None, in_use: bool
    ) -> bool:
        """Seed one template; False when it already has its bot (or had one the operator removed)."""
        stale: str | None = None
        if record is not None:
            if record.bot_exists:
                if record.state == CREATING:  # a seed that stopped after its bot was made
                    async with self._seeds() as seeds:
                        await seeds.mark_created(tenant_id, template.name, record.bot_id)
                return False
            if record.state == CREATED:  # the operator removed the seeded bot: respect that
                return False
            stale = record.bot_id  # a seed that never finished making its bot: take its place
        if in_use:
            return False
        overrides = TemplateBotCreate(template=template.name, image=request.image, variables=dict(request.variables))
        rendered = await self._render(template, overrides)
        origin = BotOrigin(template=template.name, version=template.version, seed=True, stale_seed=stale)
        try:
            profile = await self._fleet.create_bot(tenant_id, rendered.request, origin=origin)
        except Conflict as err:
            if err.details.get("code") == "already_seeded":
                return False  # another seed won the race
            if err.details.get("field") == "name" and await self._seeded(tenant_id, template.name):
                return False  # another seed won the race for the name
            raise
        async with self._seeds() as seeds:
            await seeds.mark_created(tenant_id, template.name, profile.id)
        log.info(
            "bot seeded",
            extra={"bot_id": profile.id, "template": template.name, "template_version": template.version},
        )
        return True

    async def _seeded(self, tenant_id: str, template: str) -> bool:
        async with self._seeds() as seeds:
            return template in await seeds.records(tenant_id)

    # helpers ------------------------------------------------------------------------------------------------

    def _find(self, name: str) -> Loaded:
        loaded = self._catalog.templates.get(name)
        if loaded is None:
            raise TemplateNotFound("template not found", details={"template": name[:64]})
        return loaded

    async def _render(self, template: Template, overrides: TemplateBotCreate) -> Rendered:
        """Resolve the template's variables (request first, then the platform's secrets) and apply the overrides."""
        raw: dict[str, str] = {}
        for _, values in template.sections():
            raw.update(values)
        wanted = placeholders.names_in(raw.values())
        secrets = await asyncio.to_thread(self._secrets.values) if wanted - overrides.variables.keys() else {}
        values, missing = placeholders.resolve(wanted, overrides.variables, secrets)
        by_platform = {name for name in missing if name in self._provided}
        missing = [name for name in missing if name not in by_platform]
        if missing:
            raise MissingVariables(template.name, missing)
        # an entry naming a variable the platform provides (the gateway's ANTHROPIC_API_KEY, ...) is left out of the
        # profile: the platform's env hook sets it in the container (test_gateway's template bot proves it)
        raw = {key: value for key, value in raw.items() if not placeholders.names(value) & by_platform}
        env = {key: placeholders.substitute(value, values) for key, value in raw.items()}
        env.update(plugin_env(template))
        env.update(overrides.env)
        # values filled from variables are secrets (they may come from the platform's own secrets)
        secret_keys = sorted(
            {key for key, value in raw.items() if placeholders.names(value)} | set(overrides.secret_env)
        )
        volume = overrides.volume_name or (template.volumes[0].name if template.volumes else None)
        try:
            request = BotCreate.model_validate(
                {
                    "name": overrides.name or template.name,
                    "image": overrides.image or template.image,
                    "description": template.description if overrides.description is None else overrides.description,
                    "env": env,
                    "secretEnv": secret_keys,
                    "restartPolicy": overrides.restart_policy or template.restart_policy,
                    "volumeName": volume,
                    "releaseChannel": overrides.release_channel or template.release,
                    "updatePolicy": overrides.update_policy or template.update_policy,
                    "healthCheck": _health_check(template, overrides.health_check),
                    "subdomain": overrides.subdomain,
                    "resources": overrides.resources,
                }
            )
        except ValidationError as err:
            # never echo the input: resolved values may be secrets
            problems = [
                {
                    "field": ".".join(str(p) for p in item["loc"]),
                    "message": str(item["msg"]).removeprefix("Value error, "),
                }
                for item in err.errors()
            ]
            raise ValidationFailed(
                f"template {template.name} makes an invalid bot: {problems[0]['field']}: {problems[0]['message']}",
                details={"template": template.name, "errors": problems},
            ) from None
        return Rendered(request)

    @staticmethod
    def _failure(template: str, err: PlatformError) -> dict[str, Any]:
        failure: dict[str, Any] = {
            "template": template,
            "reason": err.message,
            "code": err.details.get("code", err.code),
        }
        if isinstance(err, MissingVariables):
            failure["missing"] = err.missing
        return failure
