"""Bearer-token authentication of the operator on `/fleet/*`."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from wopr_platform.errors import Unauthorized
from wopr_platform.fleet.naming import DEFAULT_TENANT


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and for which tenant."""

    subject: str
    tenant_id: str


def require_operator(request: Request) -> Principal:
    """Accept only `Authorization: Bearer <FLEET_API_TOKEN>`; with no token configured, refuse everyone."""
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
    return Principal(subject="operator", tenant_id=DEFAULT_TENANT)


Operator = Annotated[Principal, Depends(require_operator)]
