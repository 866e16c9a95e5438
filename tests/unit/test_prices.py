"""Runtime price tiers: parsing BILLING_RUNTIME_PRICES and choosing a bot's tier."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from wopr_platform.billing.runtime import HourlyCharges
from wopr_platform.core.plans import Plan, parse_plans
from wopr_platform.core.prices import RuntimePrices
from wopr_platform.core.settings import Settings


def test_tiers_are_sorted_and_a_bot_pays_the_first_its_memory_fits() -> None:
    prices = RuntimePrices.parse("large:4096:56000, small:512:7000,standard:1024:14000")
    assert [t.name for t in prices.tiers] == ["small", "standard", "large"]
    assert prices.tier(64).name == "small"
    assert prices.tier(512).name == "small"
    assert prices.tier(513).name == "standard"
    assert prices.tier(100_000).name == "large"  # above every tier: the largest
    assert RuntimePrices.parse(prices.text()) == prices


@pytest.mark.parametrize(
    "text",
    [
        "",
        "small",
        "small:512",
        "small:x:1",
        "small:512:-1",
        "small:0:5",
        "a:1:1,a:2:2",
        "a:1:1,b:1:2",
        "s p:1:1",
        "small:512:1000000001",
    ],
)
def test_bad_tiers_are_refused_with_a_reason(text: str) -> None:
    with pytest.raises(ValueError):
        RuntimePrices.parse(text)


def test_the_setting_reads_tiers_and_refuses_bad_ones() -> None:
    assert Settings(BILLING_RUNTIME_PRICES="a:256:1").billing_runtime_prices.tier(100).per_hour == 1
    with pytest.raises(ValueError):
        Settings(BILLING_RUNTIME_PRICES="nonsense")


def test_an_hour_is_charged_from_the_seconds_each_run_overlaps_it_in_whole_micro_dollars() -> None:
    hour = datetime(2026, 12, 5, 10, tzinfo=UTC)
    end = hour + timedelta(hours=1)
    rows = [
        ("a", "t1", 3600, hour - timedelta(minutes=5), hour + timedelta(minutes=30)),  # 1800 s of this hour
        ("a", "t1", 7200, hour + timedelta(minutes=45), None),  # still running: 900 s
        ("b", "t2", 1000, hour + timedelta(seconds=1), hour + timedelta(seconds=2)),  # 1 s: under a micro-dollar
        ("c", "t2", 1000, end, None),  # starts when the hour ends: nothing
    ]
    postings = HourlyCharges._postings(rows, hour, end)
    assert [(p.reference, p.tenant_id, p.amount, p.kind) for p in postings] == [
        ("runtime:a:2026-12-05T10", "t1", -(3600 * 1800 + 7200 * 900) // 3600, "runtime")
    ]


def test_plans_are_parsed_against_the_tiers_and_channels() -> None:
    plans = parse_plans(
        "a=bots:2,memoryMb:512,cpus:1.5,tiers:small|large,channels:stable; b=", frozenset({"small", "large"})
    )
    assert plans["a"] == Plan("a", 2, 512, 1.5, frozenset({"small", "large"}), frozenset({"stable"}))
    assert plans["b"] == Plan("b")
    for bad in ("a=tiers:huge", "a=channels:nightly", "a=bots:-1", "a=cpus:x", "a=colour:red", "1a=", "a=;a="):
        with pytest.raises(ValueError):
            parse_plans(bad, frozenset({"small", "large"}))


def test_the_settings_refuse_bad_plans_and_an_unknown_default_plan() -> None:
    assert Settings(BILLING_PLANS="a=bots:1", BILLING_DEFAULT_PLAN="a").billing_plans["a"].max_bots == 1
    with pytest.raises(ValueError):
        Settings(BILLING_PLANS="a=tiers:huge")
    with pytest.raises(ValueError):
        Settings(BILLING_PLANS="a=bots:1", BILLING_DEFAULT_PLAN="b")
