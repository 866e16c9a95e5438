"""Bearer-token authentication of the operator on `/fleet/*`, the tenant it acts for (`X-Tenant-Id`), and who may
take the platform's global actions (`PlatformAdmin`)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Request

from wopr_platform.core.errors import Forbidden, Unauthorized, ValidationFailed
from wopr_platform.core.naming import DEFAULT_TENANT, TENANT_RE

TENANT_HEADER = "X-Tenant-Id"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and for which tenant."""

    subject: str
    tenant_id: str

    @property
    def platform_admin(self) -> bool:
        """May act beyond its tenant (actions and state of the whole platform, every tenant's).

        Until there are roles, the one rule for it: the operator acting for the default tenant. An operator acting
        for another tenant (`X-Tenant-Id`) gets only what that tenant may do.
        """
        return self.subject == "operator" and self.tenant_id == DEFAULT_TENANT


def require_operator(
    request: Request,
    tenant: Annotated[
        str | None,
        Header(
            alias=TENANT_HEADER,
            description="the tenant the operator acts for (default: `default`); another tenant's bots are 404",
        ),
    ] = None,
) -> Principal:
    """Accept only `Authorization: Bearer <FLEET_API_TOKEN>`; with no token configured, refuse everyone.

    The operator acts for the `default` tenant, or for the one `X-Tenant-Id` names (checked only once the
    token is, so an anonymous caller learns nothing from it).
    """
    configured = request.app.state.settings.fleet_api_token
    if configured is None or not configured.get_secret_value():
        raise Unauthorized(
            "fleet API is disabled: no FLEET_API_TOKEN is configured", details={"code": "auth_not_configured"}
        )
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("missing bearer token")
    if not hmac.compare_digest(token.strip().encode(), configured.get_secret_value().encode()):
        raise Unauthorized("invalid bearer token")
    if tenant is not None and not TENANT_RE.match(tenant):
        raise ValidationFailed(
            f"{TENANT_HEADER} must be a tenant id: 1-63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit",
            details={"header": TENANT_HEADER},
        )
    principal = Principal(subject="operator", tenant_id=tenant or DEFAULT_TENANT)
    request.state.principal = principal  # for the audit log, which records who made each change
    return principal


Operator = Annotated[Principal, Depends(require_operator)]


def require_platform_admin(principal: Operator) -> Principal:
    """Global actions (they affect or show every tenant): 403 for a caller acting for one tenant."""
    if not principal.platform_admin:
        raise Forbidden(
            "this action affects every tenant: only the platform's operator acting for the default tenant may take it",
            details={"code": "platform_admin_required"},
        )
    return principal


PlatformAdmin = Annotated[Principal, Depends(require_platform_admin)]
