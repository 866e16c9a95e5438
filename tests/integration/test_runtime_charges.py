"""Runtime charges on the real engine and database: the intervals bots really ran, charged once per bot and hour,
by price tier; two replicas charging at once; a process killed in the middle of a charge and started again."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.conftest import STUB_IMAGE, Platform, PlatformFactory
from tests.integration.process import process_platforms
from tests.integration.test_updates import MovableClock
from wopr_platform.billing.runtime import HourlyCharges, RuntimeBilling, hour_of
from wopr_platform.core.faults import CrashPoints
from wopr_platform.db.engine import create_engine, create_sessionmaker
from wopr_platform.db.models import BillingCursor, BotRun, LedgerAccount, LedgerEntry
from wopr_platform.db.unit import Database

SMALL, STANDARD = 7000, 14_000  # the default tiers' prices an hour (512 MB and 1024 MB)
START = datetime(2026, 12, 5, 10, 0, 5, tzinfo=UTC)


def _billing(platform: Platform) -> RuntimeBilling:
    found = platform.app.state.platform.billing
    assert isinstance(found, RuntimeBilling)
    return found


async def _rows(url: str, query: Any) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return list((await connection.execute(query)).all())
    finally:
        await engine.dispose()


def _expected(runs: list[Any], now: datetime) -> dict[tuple[str, str], int]:
    """What each (bot, hour) should cost: the charge's rule applied to the stored runs, hour by hour."""
    cost: dict[tuple[str, str], int] = defaultdict(int)
    for bot_id, price, started, stopped in runs:
        hour = hour_of(started)
        end = stopped or now
        while hour < end:
            ran = int((min(end, hour + timedelta(hours=1)) - max(started, hour)).total_seconds())
            if ran > 0 and hour + timedelta(hours=1, minutes=2) <= now:
                cost[(bot_id, hour.strftime("%Y-%m-%dT%H"))] += price * ran
            hour += timedelta(hours=1)
    return {key: total // 3600 for key, total in cost.items() if total // 3600 > 0}


async def _until_run(url: str, bot_id: str, *, open_: bool) -> None:
    deadline = time.monotonic() + 20
    while True:
        rows = await _rows(url, select(BotRun.stopped_at).where(BotRun.bot_id == bot_id))
        if rows and (rows[-1][0] is None) == open_ and (open_ or all(r[0] is not None for r in rows)):
            return
        assert time.monotonic() < deadline, rows
        await asyncio.sleep(0.1)


async def test_bots_pay_for_the_hours_they_ran_by_tier_once(make_platform: PlatformFactory) -> None:
    clock = MovableClock(START)
    platform = await make_platform(clock=clock, BILLING_ENABLED=True, BILLING_MIN_BALANCE=1, BILLING_INTERVAL=3600)
    url = platform.settings.database_url
    grant = await platform.client.post(
        "/tenants/default/credits/grants", json={"amount": 10_000_000}, headers={"Idempotency-Key": "welcome-1"}
    )
    assert grant.status_code == 201, grant.text
    small = (await platform.client.post("/fleet/bots", json={"name": "small", "image": STUB_IMAGE})).json()["id"]
    big = await platform.client.post(
        "/fleet/bots", json={"name": "big", "image": STUB_IMAGE, "resources": {"memoryMb": 1024}}
    )
    assert big.status_code == 201, big.text
    big_id = big.json()["id"]
    for bot in (small, big_id):
        await _until_run(url, bot, open_=True)

    clock.move_to(START + timedelta(hours=1, minutes=30))
    assert (await platform.client.post(f"/fleet/bots/{small}/stop")).status_code == 200
    await _until_run(url, small, open_=False)
    clock.move_to(START + timedelta(hours=2, minutes=10))
    assert (await platform.client.post(f"/fleet/bots/{small}/start")).status_code == 200
    await _until_run(url, small, open_=True)
    clock.move_to(START + timedelta(hours=4, minutes=3))
    charges = _billing(platform).charges
    assert await charges.charge_due() == 4  # the hours from 10:00 to 14:00
    assert await charges.charge_due() == 0  # nothing is charged twice

    now = clock.now()
    runs = await _rows(url, select(BotRun.bot_id, BotRun.price_per_hour, BotRun.started_at, BotRun.stopped_at))
    assert {(bot, price) for bot, price, _, _ in runs} == {(small, SMALL), (big_id, STANDARD)}
    expected = _expected(runs, now)
    entries = await _rows(url, select(LedgerEntry.reference, LedgerEntry.amount).where(LedgerEntry.kind == "runtime"))
    charged = {tuple(ref.split(":")[1:]): -amount for ref, amount in entries}
    assert charged == expected
    # about right in plain numbers: the big bot ran 4 full hours, the small one 4 h less the 40 min it was stopped
    assert abs(sum(a for (b, _), a in expected.items() if b == big_id) - 4 * STANDARD) <= 50
    small_hours = sum(a for (b, _), a in expected.items() if b == small)
    assert abs(small_hours - SMALL * (4 * 60 - 40) // 60) <= 50, small_hours
    balance = (await platform.client.get("/billing/balance")).json()["balance"]
    assert balance == 10_000_000 - sum(expected.values())
    usage = (await platform.client.get("/billing/usage", params={"days": 1})).json()
    per_bot = {bot: sum(a for (b, _), a in expected.items() if b == bot) for bot in (small, big_id)}
    assert {u["botId"]: u["amount"] for u in usage["byBot"]} == per_bot
    assert usage["byDay"] == [{"day": START.date().isoformat(), "amount": sum(expected.values())}]
    assert usage["total"] == sum(expected.values())
    assert (await platform.client.get("/billing/usage", params={"days": 0})).status_code == 400
    assert (await platform.client.get("/billing/ledger-check")).json()["ok"] is True


async def test_two_replicas_charging_at_once_charge_each_hour_once(platform: Platform) -> None:
    """Two charge runs on their own connections (as two replicas would have) race over the same hours."""
    now = datetime.now(UTC)
    base = hour_of(now) - timedelta(hours=6)
    bots = [str(uuid.uuid4()) for _ in range(30)]
    engine = create_engine(platform.settings.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                BotRun.__table__.insert(),
                [
                    {
                        "bot_id": bot,
                        "tenant_id": f"t{i % 3}",
                        "price_per_hour": 3600 * (i + 1),
                        "started_at": base + timedelta(minutes=i),
                        "stopped_at": base + timedelta(hours=4, minutes=i),
                    }
                    for i, bot in enumerate(bots)
                ],
            )
    finally:
        await engine.dispose()

    def replica() -> tuple[HourlyCharges, Any]:
        own = create_engine(platform.settings.database_url)
        charges = HourlyCharges(
            db=Database(create_sessionmaker(own)), clock=lambda: datetime.now(UTC), crash=CrashPoints(None)
        )
        return charges, own

    (one, e1), (two, e2) = replica(), replica()
    try:
        results = await asyncio.gather(one.charge_due(), two.charge_due())
    finally:
        await e1.dispose()
        await e2.dispose()
    assert sum(results) >= 5, results  # the hours from base that ended (and settled) were charged
    runs = await _rows(
        platform.settings.database_url,
        select(BotRun.bot_id, BotRun.price_per_hour, BotRun.started_at, BotRun.stopped_at),
    )
    expected = _expected(runs, datetime.now(UTC))
    entries = await _rows(platform.settings.database_url, select(LedgerEntry.reference, LedgerEntry.amount))
    assert len(entries) == len({ref for ref, _ in entries}) == len(expected) >= 30 * 4
    assert {tuple(ref.split(":")[1:]): -amount for ref, amount in entries} == expected
    totals = await _rows(
        platform.settings.database_url,
        select(LedgerAccount.id, LedgerAccount.balance).where(LedgerAccount.tenant_id.is_not(None)),
    )
    assert sum(balance for _, balance in totals) == -sum(expected.values())
    check = await platform.client.get("/billing/ledger-check")
    assert check.json()["ok"] is True, check.text


@pytest.mark.slow
async def test_a_process_killed_in_the_middle_of_a_charge_charges_every_hour_once_after_restart(
    stub_image: str, database_url: str, tmp_path: Path
) -> None:
    async with process_platforms(database_url, tmp_path) as group:
        group.extra_env.update({"BILLING_ENABLED": "true", "BILLING_INTERVAL": "3600"})
        first = await group.start()  # migrates the database
        assert await first.terminate() in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
        now = datetime.now(UTC)
        base = hour_of(now) - timedelta(hours=8)
        runs = [
            {
                "bot_id": str(uuid.uuid4()),
                "tenant_id": f"tenant-{i % 4}",
                "price_per_hour": 1000 * (i + 1),
                "started_at": base + timedelta(minutes=7 * i),
                "stopped_at": base + timedelta(hours=3 + i % 4, minutes=i),
            }
            for i in range(40)
        ]
        engine = create_engine(database_url)
        try:
            async with engine.begin() as connection:
                await connection.execute(BotRun.__table__.insert(), runs)
        finally:
            await engine.dispose()

        crashed = await group.start(crash_at="billing.runtime.after_entries")
        assert await crashed.wait_exit() == -9
        assert "crash point reached" in crashed.stderr()
        assert await _rows(database_url, select(func.count()).select_from(LedgerEntry)) == [(0,)]

        again = await group.start()
        deadline = time.monotonic() + 30
        while not await _rows(database_url, select(BillingCursor.at)):
            assert time.monotonic() < deadline, again.stderr()
            await asyncio.sleep(0.2)
        stored = await _rows(
            database_url, select(BotRun.bot_id, BotRun.price_per_hour, BotRun.started_at, BotRun.stopped_at)
        )
        expected = _expected(stored, datetime.now(UTC))
        deadline = time.monotonic() + 30
        while len(entries := await _rows(database_url, select(LedgerEntry.reference, LedgerEntry.amount))) < len(
            expected
        ):
            assert time.monotonic() < deadline, again.stderr()
            await asyncio.sleep(0.2)
        charged = {tuple(ref.split(":")[1:]): -amount for ref, amount in entries}
        assert charged == expected
        check = await again.client.get("/billing/ledger-check")
        assert check.json()["ok"] is True, check.text
        assert await again.terminate() in (0, -signal.SIGTERM)


async def test_spending_caps_notice_at_80_and_100_percent_and_stop_new_bots_at_the_cap(
    make_platform: PlatformFactory,
) -> None:
    clock = MovableClock(START + timedelta(hours=6))
    platform = await make_platform(clock=clock, BILLING_ENABLED=True, BILLING_MIN_BALANCE=1, BILLING_INTERVAL=3600)
    grant = await platform.client.post(
        "/tenants/default/credits/grants", json={"amount": 10_000_000}, headers={"Idempotency-Key": "welcome-2"}
    )
    assert grant.status_code == 201, grant.text
    engine = create_engine(platform.settings.database_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                BotRun.__table__.insert(),
                [
                    {
                        "bot_id": str(uuid.uuid4()),
                        "tenant_id": "default",
                        "price_per_hour": 36_000,
                        "started_at": START,
                        "stopped_at": START + timedelta(hours=3),
                    }
                    for _ in range(3)
                ],
            )
    finally:
        await engine.dispose()
    assert await _billing(platform).charges.charge_due() >= 3
    spent = 3 * 3 * 36_000  # three bots, three hours (from five seconds past the hour to five seconds past)
    limits = (await platform.client.get("/billing/limits")).json()
    assert (limits["spentToday"], limits["spentThisMonth"], limits["notices"]) == (spent, spent, [])

    for bad in ({"dailyCap": 0}, {"dailyCap": -1}, {"monthlyCap": 1.5}, {"dailyCap": "5"}, {"other": 1}):
        refused = await platform.client.put("/billing/limits", json=bad)
        assert refused.status_code == 400, (bad, refused.text)

    set_90 = await platform.client.put("/billing/limits", json={"monthlyCap": spent * 100 // 90})
    assert set_90.status_code == 200, set_90.text
    assert [(n["scope"], n["percent"]) for n in set_90.json()["notices"]] == [("monthly", 80)]
    first = await platform.client.post("/fleet/bots", json={"name": "under-cap", "image": STUB_IMAGE})
    assert first.status_code == 201, first.text

    at_cap = await platform.client.put("/billing/limits", json={"monthlyCap": spent, "dailyCap": spent * 2})
    assert {(n["scope"], n["percent"]) for n in at_cap.json()["notices"]} == {("monthly", 80), ("monthly", 100)}
    refused = await platform.client.post("/fleet/bots", json={"name": "over-cap", "image": STUB_IMAGE})
    assert refused.status_code == 402, refused.text
    assert refused.json()["details"] == {
        "code": "spending_cap_reached",
        "scope": "monthly",
        "cap": spent,
        "spent": spent,
    }
    assert (await platform.client.post(f"/fleet/bots/{first.json()['id']}/restart")).status_code == 402
    again = await platform.client.put("/billing/limits", json={"monthlyCap": spent, "dailyCap": spent * 2})
    assert len(again.json()["notices"]) == 2  # each threshold is noticed once per cap and period

    lifted = await platform.client.put("/billing/limits", json={})
    assert lifted.json()["monthlyCap"] is None
    assert (await platform.client.post("/fleet/bots", json={"name": "no-cap", "image": STUB_IMAGE})).status_code == 201
