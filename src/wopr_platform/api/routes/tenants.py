"""HTTP routes of the platform's operator about tenants: their quotas."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from wopr_platform.api.auth import PlatformAdmin
from wopr_platform.api.deps import TenantQuotas
from wopr_platform.core.errors import ValidationFailed
from wopr_platform.core.naming import TENANT_RE
from wopr_platform.fleet.schemas import QuotaOverrides, TenantQuota

router = APIRouter(prefix="/tenants", tags=["tenants"])


async def _tenant_id(tenant_id: Annotated[str, Path(max_length=63)]) -> str:
    if not TENANT_RE.match(tenant_id):
        raise ValidationFailed(
            "tenant id must be 1-63 lowercase letters, digits or '-', starting and ending with a letter or digit",
            details={"field": "tenantId"},
        )
    return tenant_id


TenantId = Annotated[str, Depends(_tenant_id)]  # checked after the caller (a route's parameters in order)


@router.get("/{tenant_id}/quota", response_model=TenantQuota)
async def get_quota(_admin: PlatformAdmin, tenant_id: TenantId, quotas: TenantQuotas) -> TenantQuota:
    """A tenant's limits in force, its overrides and its usage (the platform's operator only)."""
    return await quotas.quota(tenant_id)


@router.put("/{tenant_id}/quota", response_model=TenantQuota)
async def put_quota(
    _admin: PlatformAdmin, tenant_id: TenantId, body: QuotaOverrides, quotas: TenantQuotas
) -> TenantQuota:
    """Set a tenant's own limits; a null or missing one is the platform's default (the platform's operator only)."""
    return await quotas.set_overrides(tenant_id, body)
