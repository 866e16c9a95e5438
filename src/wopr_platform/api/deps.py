"""What the HTTP layer is handed by the composition root: the services, typed, and one dependency per service.

Routes take `Fleet`, `Templates`, `Updates`, ... as parameters; nothing else in the HTTP layer reads `app.state`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Path, Request

from wopr_platform.accounts.service import AccountService
from wopr_platform.accounts.users import UserAdmin
from wopr_platform.audit.service import AuditService
from wopr_platform.backups.policies import BackupPolicies
from wopr_platform.backups.service import Backups
from wopr_platform.billing.service import BillingService
from wopr_platform.billing.webhooks import StripeWebhooks
from wopr_platform.core.errors import NotFound, ServiceUnavailable
from wopr_platform.core.metrics import PlatformMetrics
from wopr_platform.db.leadership import Leadership
from wopr_platform.db.unit import Database
from wopr_platform.docker.engine import DockerEngine
from wopr_platform.fleet.isolation import HostIsolation
from wopr_platform.fleet.lifecycle.service import FleetService
from wopr_platform.fleet.observation.events import EventBus
from wopr_platform.fleet.observation.observed import ObservedState
from wopr_platform.fleet.quotas.service import Quotas
from wopr_platform.fleet.reconciliation.reconciler import Reconciler
from wopr_platform.gateway.admin import GatewayAdmin
from wopr_platform.proxy.sync import ProxySync
from wopr_platform.templates.service import TemplateService
from wopr_platform.updates.service import UpdateService

UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True, slots=True)
class Services:
    """Every service a route may call, built once per process by the composition root (`wopr_platform.app`)."""

    fleet: FleetService
    quotas: Quotas
    backups: Backups
    backup_policies: BackupPolicies
    templates: TemplateService
    updates: UpdateService
    audit: AuditService
    accounts: AccountService
    users: UserAdmin
    billing: BillingService
    webhooks: StripeWebhooks
    reconciler: Reconciler
    events: EventBus
    proxy: ProxySync | None  # None when tenant routing is off
    # what readiness checks
    database: Database
    docker: DockerEngine
    observed: ObservedState
    leadership: Leadership
    isolation: HostIsolation | None = None  # None when BOT_HOST_ISOLATION=false
    gateway: GatewayAdmin | None = None  # None when GATEWAY_ENABLED=false
    metrics: PlatformMetrics = field(default_factory=PlatformMetrics)  # this replica's figures (GET /metrics)


def services(request: Request) -> Services:
    """The process's services (set by the app's lifespan before the first request)."""
    found = request.app.state.services
    assert isinstance(found, Services)
    return found


# Dependencies are coroutines, even those that only look something up: FastAPI runs a plain function in its thread
# pool, and a hop to a worker thread and back costs each request far more than the lookup (and waits for the OS
# to schedule the thread when the machine is busy).


async def _services(request: Request) -> Services:
    return services(request)


async def _fleet(request: Request) -> FleetService:
    return services(request).fleet


async def _quotas(request: Request) -> Quotas:
    return services(request).quotas


async def _templates(request: Request) -> TemplateService:
    return services(request).templates


async def _updates(request: Request) -> UpdateService:
    return services(request).updates


async def _audit(request: Request) -> AuditService:
    return services(request).audit


async def _accounts(request: Request) -> AccountService:
    return services(request).accounts


async def _users(request: Request) -> UserAdmin:
    return services(request).users


async def _billing(request: Request) -> BillingService:
    return services(request).billing


async def _webhooks(request: Request) -> StripeWebhooks:
    return services(request).webhooks


async def _backups(request: Request) -> Backups:
    return services(request).backups


async def _backup_policies(request: Request) -> BackupPolicies:
    return services(request).backup_policies


async def _gateway(request: Request) -> GatewayAdmin:
    found = services(request).gateway
    if found is None:
        raise ServiceUnavailable("the AI gateway is off (GATEWAY_ENABLED=false)", details={"code": "gateway_off"})
    return found


def checked_id(value: str, what: str) -> str:
    """An id must be a UUID; anything else cannot name one, so it is a 404 (`what` names it in the answer)."""
    if not UUID_RE.match(value):
        raise NotFound(f"{what} not found", details={f"{what}Id": value[:64]})
    return value.lower()


async def _bot_id(bot_id: Annotated[str, Path()]) -> str:
    return checked_id(bot_id, "bot")


async def _backup_id(backup_id: Annotated[str, Path()]) -> str:
    return checked_id(backup_id, "backup")


AllServices = Annotated[Services, Depends(_services)]
Fleet = Annotated[FleetService, Depends(_fleet)]
Templates = Annotated[TemplateService, Depends(_templates)]
TenantQuotas = Annotated[Quotas, Depends(_quotas)]
Updates = Annotated[UpdateService, Depends(_updates)]
Audit = Annotated[AuditService, Depends(_audit)]
Accounts = Annotated[AccountService, Depends(_accounts)]
Users = Annotated[UserAdmin, Depends(_users)]
Billing = Annotated[BillingService, Depends(_billing)]
Webhooks = Annotated[StripeWebhooks, Depends(_webhooks)]
BotId = Annotated[str, Depends(_bot_id)]
BackupId = Annotated[str, Depends(_backup_id)]
BackupsService = Annotated[Backups, Depends(_backups)]
BackupPolicyService = Annotated[BackupPolicies, Depends(_backup_policies)]
Gateway = Annotated[GatewayAdmin, Depends(_gateway)]
