"""The platform's own figures, in the Prometheus format: what one replica has done since it started (counters and
histograms, counted where the work happens) and what is true now (gauges, sampled when the figures are read).

Each platform has its own registry (several platforms in one process count apart, as in the tests); counting is
a dictionary lookup and an addition, never I/O. A gauge whose value lives elsewhere (the bots in memory, a
ledger balance in the database) is filled by a sampler just before `render`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
# from a cached GET (a millisecond) to a create that pulls an image (tens of seconds)
REQUEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PASS_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

Sampler = Callable[[], Awaitable[None]]


class PlatformMetrics:
    """Every figure the platform serves at `/metrics`, in a registry of its own."""

    def __init__(self) -> None:
        registry = self.registry = CollectorRegistry(auto_describe=True)
        self._samplers: list[tuple[str, Sampler]] = []
        # HTTP: by the route's template (`/fleet/bots/{bot_id}`), never the raw path (one series per bot)
        self.requests = Histogram(
            "wopr_http_request_duration_seconds",
            "Time to answer an API request, by method, route template and status code.",
            ["method", "route", "status"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        # the fleet
        self.bots = Gauge("wopr_bots", "Bots whose container the engine has, by state.", ["state"], registry=registry)
        self.bots_health = Gauge(
            "wopr_bots_health", "Running bots by the health their probes found.", ["health"], registry=registry
        )
        self.reconcile_pass = Histogram(
            "wopr_reconcile_pass_duration_seconds",
            "Time of one reconciler pass over every bot.",
            buckets=PASS_BUCKETS,
            registry=registry,
        )
        self.drift = Counter(
            "wopr_reconcile_drift_total",
            "Drift the reconciler found and acted on, by kind and outcome.",
            ["kind", "outcome"],
            registry=registry,
        )
        # images and updates
        self.image_checks = Counter(
            "wopr_image_checks_total",
            "Registry checks of an image reference, by outcome (changed, unchanged, error).",
            ["outcome"],
            registry=registry,
        )
        self.registry_requests = Counter(
            "wopr_registry_requests_total",
            "Requests made to registries, by kind (head and get of a manifest, token).",
            ["kind"],
            registry=registry,
        )
        self.registry_rate_limited = Counter(
            "wopr_registry_rate_limited_total",
            "Times a registry said to wait (429, or its quota spent), by registry.",
            ["registry"],
            registry=registry,
        )
        self.registry_wait = Counter(
            "wopr_registry_rate_limit_wait_seconds_total",
            "Seconds of waiting registries asked for, by registry.",
            ["registry"],
            registry=registry,
        )
        self.updates = Counter(
            "wopr_updates_total",
            "Image updates of a bot, by outcome (updated, current, rolled_back, failed).",
            ["outcome"],
            registry=registry,
        )
        self.rollouts = Counter(
            "wopr_rollouts_total",
            "Rollouts that ended, by state (completed, halted, failed).",
            ["state"],
            registry=registry,
        )
        # routing
        self.route_lookups = Counter(
            "wopr_proxy_route_lookups_total",
            "Lookups of a bot's route by the proxy's address service, by result (found, unknown).",
            ["result"],
            registry=registry,
        )
        # money: the platform's own ledger accounts, from the database (the same on every replica)
        self.ledger = Gauge(
            "wopr_ledger_balance_micros",
            "Balance of each of the platform's ledger accounts, in micro-dollars.",
            ["account"],
            registry=registry,
        )
        self.gateway_calls = Counter(
            "wopr_gateway_calls_total",
            "Calls through the AI gateway, by provider and outcome (done, failed).",
            ["provider", "outcome"],
            registry=registry,
        )
        self.gateway_tokens = Counter(
            "wopr_gateway_tokens_total",
            "Tokens the gateway's calls used, by provider and direction (input, output).",
            ["provider", "direction"],
            registry=registry,
        )
        self.gateway_charged = Counter(
            "wopr_gateway_charged_micros_total",
            "What the gateway's calls cost their tenants, in micro-dollars, by provider.",
            ["provider"],
            registry=registry,
        )

    def sample(self, name: str, sampler: Sampler) -> None:
        """Run `sampler` before each `render`: it sets the gauges whose values live elsewhere."""
        self._samplers.append((name, sampler))

    async def render(self) -> bytes:
        """Every figure in the Prometheus text format; a sampler that fails leaves its gauges as they were."""
        for name, sampler in self._samplers:
            try:
                await sampler()
            except Exception as err:  # a figure that cannot be read now must not hide the others
                log.warning("metrics sampler failed", extra={"sampler": name, "reason": f"{type(err).__name__}: {err}"})
        return generate_latest(self.registry)
