"""The platform's figures for Prometheus (the operator's: see api/permissions.py)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from wopr_platform.api.deps import AllServices
from wopr_platform.core.metrics import CONTENT_TYPE

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
async def metrics(services: AllServices) -> Response:
    """This replica's figures in the Prometheus text format: request latency by route, bots by state and health,
    reconciler passes and drift, registry checks and rate limits, updates and rollouts, route lookups, the
    platform's ledger balances and the gateway's calls. Each replica serves its own."""
    return Response(await services.metrics.render(), media_type=CONTENT_TYPE)
