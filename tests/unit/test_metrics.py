"""The platform's figures (core/metrics.py): each platform counts in a registry of its own, samplers fill the
gauges at each reading, and a sampler that fails leaves the other figures readable."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from wopr_platform.core.metrics import PlatformMetrics

DOCS = Path(__file__).resolve().parents[2] / "docs"
FIGURE = re.compile(r"\bwopr_[a-z_]+")


def _values(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


async def test_two_platforms_count_apart_and_samplers_run_at_each_reading() -> None:
    first, second = PlatformMetrics(), PlatformMetrics()
    first.updates.labels("updated").inc()
    readings = 0

    async def bots() -> None:
        nonlocal readings
        readings += 1
        first.bots.labels("running").set(readings)

    first.sample("bots", bots)
    assert _values(await first.render())[("wopr_updates_total", (("outcome", "updated"),))] == 1
    assert ("wopr_updates_total", (("outcome", "updated"),)) not in _values(await second.render())
    assert _values(await first.render())[("wopr_bots", (("state", "running"),))] == 2


async def test_a_failing_sampler_hides_no_other_figure() -> None:
    metrics = PlatformMetrics()

    async def broken() -> None:
        raise RuntimeError("the database is away")

    async def fine() -> None:
        metrics.ledger.labels("platform:revenue").set(42)

    metrics.sample("broken", broken)
    metrics.sample("fine", fine)
    metrics.drift.labels("stopped", "ok").inc(3)
    values = _values(await metrics.render())
    assert values[("wopr_ledger_balance_micros", (("account", "platform:revenue"),))] == 42
    assert values[("wopr_reconcile_drift_total", (("kind", "stopped"), ("outcome", "ok")))] == 3


def _names() -> set[str]:
    """Every series name the platform can serve (a histogram's with its suffixes)."""
    names = set()
    for family in PlatformMetrics().registry.collect():
        names.add(family.name)
        suffixes = ("_bucket", "_count", "_sum") if family.type == "histogram" else ("_total",)
        names.update(family.name + suffix for suffix in suffixes)
    return names


def test_the_dashboard_and_the_docs_name_only_figures_that_exist_and_the_docs_every_one() -> None:
    served = _names()
    dashboard = json.loads((DOCS / "grafana" / "wopr-platform.json").read_text())
    used = {name for panel in dashboard["panels"] for t in panel["targets"] for name in FIGURE.findall(t["expr"])}
    assert used and used <= served, used - served
    documented = set(re.findall(r"^\| `(wopr_[a-z_]+)`", (DOCS / "metrics.md").read_text(), re.MULTILINE))
    families = {family.name for family in PlatformMetrics().registry.collect()}
    counters = {f.name + "_total" for f in PlatformMetrics().registry.collect() if f.type == "counter"}
    assert documented == (families - {c.removesuffix("_total") for c in counters}) | counters
