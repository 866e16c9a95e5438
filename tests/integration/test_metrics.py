"""GET /metrics: the platform's figures in the Prometheus format, read by Prometheus's own parser, for the
operator only; requests by route template, bots by state and health, reconciler passes and the drift they
repaired, as the platform really did them."""

from __future__ import annotations

import asyncio
import time

import aiodocker
import httpx

from tests.conftest import Platform, PlatformFactory
from tests.figures import Samples, figure, label_values, scrape
from tests.integration.accounts_support import key_client, new_key, new_user

WAIT_SECONDS = 30.0


async def _until(platform: Platform, ready: str, check: object) -> Samples:
    """Scrape until `check(samples)` holds; fail naming `ready` after WAIT_SECONDS."""
    assert callable(check)
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        samples = await scrape(platform.client)
        if check(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"the figures never showed {ready}")
        await asyncio.sleep(0.2)


async def test_requests_bots_and_reconciler_passes_are_counted(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    platform = await make_platform(FLEET_RECONCILE_INTERVAL=0.5)
    bot = await platform.create_bot()
    await platform.wait_for(bot["id"], state="running", health="healthy")
    assert (await platform.client.get(f"/fleet/bots/{bot['id']}")).status_code == 200
    assert (await platform.client.get("/no/such/route")).status_code == 404

    samples = await _until(
        platform,
        "one running healthy bot and a reconciler pass",
        lambda s: (
            figure(s, "wopr_bots_health", health="healthy") == 1
            and figure(s, "wopr_reconcile_pass_duration_seconds_count") >= 1
        ),
    )
    assert figure(samples, "wopr_bots", state="running") == 1
    assert figure(samples, "wopr_bots", state="exited") == 0
    one_bot = {"method": "GET", "route": "/fleet/bots/{bot_id}", "status": "200"}
    assert figure(samples, "wopr_http_request_duration_seconds_count", **one_bot) >= 1
    assert figure(samples, "wopr_http_request_duration_seconds_count", route="/fleet/bots", status="201") == 1
    assert figure(samples, "wopr_http_request_duration_seconds_count", route="unmatched", status="404") == 1
    # one series per route, never one per bot
    routes = label_values(samples, "wopr_http_request_duration_seconds_count", "route")
    assert not any(bot["id"] in route for route in routes), routes

    # a bot stopped behind the platform's back is drift the reconciler repairs, and counts
    await docker.containers.container(bot["containerId"]).stop(t=1)
    samples = await _until(
        platform,
        "a repaired `stopped` drift",
        lambda s: figure(s, "wopr_reconcile_drift_total", kind="stopped", outcome="ok") >= 1,
    )
    await platform.wait_for(bot["id"], state="running")
    assert figure(samples, "wopr_reconcile_drift_total", outcome="failed") == 0


async def test_the_figures_are_the_operators_alone(platform: Platform) -> None:
    async with httpx.AsyncClient(base_url=platform.url, trust_env=False) as anonymous:
        refused = await anonymous.get("/metrics")
    assert refused.status_code == 401
    assert set(refused.json()) == {"error", "details"}
    await new_user(platform, "first")  # the platform's first user is its admin: the next one is not
    tenant = await new_user(platform, "tenant", tenant="metrics-" + platform.settings.platform_id[:8])
    try:
        key = await new_key(tenant, ["read", "write", "admin"])
        async with key_client(platform, key["secret"]) as keyed:
            forbidden = await keyed.get("/metrics")
        assert forbidden.status_code == 403, forbidden.text
        assert (await tenant.client.get("/metrics")).status_code == 403
    finally:
        await tenant.close()
