"""The samplers of the figures whose values live elsewhere: read when `/metrics` is, from memory and (the ledger's
platform accounts, a handful of rows) the database."""

from __future__ import annotations

from collections import Counter
from typing import get_args

from wopr_platform.billing.service import BillingService
from wopr_platform.core.metrics import PlatformMetrics
from wopr_platform.fleet.observation.health import Health, HealthMonitor
from wopr_platform.fleet.observation.observed import ObservedState

STATES = ("created", "running", "paused", "restarting", "removing", "exited", "dead")
HEALTHS: tuple[str, ...] = get_args(Health)


def install_samplers(
    metrics: PlatformMetrics, *, observed: ObservedState, health: HealthMonitor, billing: BillingService | None
) -> None:
    """Bots by state and health from the engine's view in memory; with billing on, the platform's balances."""

    async def bots() -> None:
        states: Counter[str] = Counter()
        healths: Counter[str] = Counter()
        for info in observed.containers():
            if not info.bot_id:
                continue
            states[info.state] += 1
            if info.state == "running":
                healths[health.status(info)] += 1
        for state in {*STATES, *states}:
            metrics.bots.labels(state).set(states[state])
        for status in {*HEALTHS, *healths}:
            metrics.bots_health.labels(status).set(healths[status])

    metrics.sample("bots", bots)
    if billing is not None:

        async def ledger() -> None:
            for account, balance in (await billing.platform_balances()).items():
                metrics.ledger.labels(account).set(balance)

        metrics.sample("ledger", ledger)
