"""The gateway's credit leases and batched charges over a real database (SQLite and PostgreSQL): what a stopped
replica left held is given back and its ended calls are charged once; idle leases go back; several replicas share
one balance and hear each other's revocations at once."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tests.conftest import PlatformFactory, several_replicas
from tests.fixtures.fake_provider import FakeProvider
from tests.integration.gateway_support import (
    DOLLAR,
    PROMPT,
    STREAMED,
    STREAMED_ESTIMATE,
    Gateway,
    cost,
    listening,
    start_gateway,
)
from tests.ports import free_port
from wopr_platform.billing.caps import SpendingCaps
from wopr_platform.billing.ledger import PLATFORM_GRANTS, Ledger, Posting, credits
from wopr_platform.core.errors import InsufficientCredits
from wopr_platform.core.settings import Settings
from wopr_platform.crypto.secretbox import SecretBox
from wopr_platform.db.engine import create_engine, create_sessionmaker
from wopr_platform.db.migrate import upgrade
from wopr_platform.db.models import GatewayCall, GatewayLease, LedgerAccount
from wopr_platform.db.unit import Database
from wopr_platform.gateway.breaker import Breakers
from wopr_platform.gateway.calls import Caller, GatewayCalls, Route
from wopr_platform.gateway.charges import CallRecorder
from wopr_platform.gateway.leases import DEAD_SECONDS, IDLE_SECONDS, CreditLeases
from wopr_platform.gateway.metering import Price, Usage
from wopr_platform.providers.client import Upstream

pytestmark = pytest.mark.slow


TENANT = "t-lease"
ROUTE = Route("m", Upstream("p", "openai", "http://127.0.0.1:9/v1", "k"), "m", Price(1_000_000, 2_000_000), False)


class Clocks:
    """The wall clock and the monotonic one, moved by hand."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.offset)

    def monotonic(self) -> float:
        return 1000.0 + self.offset


@dataclass
class Replica:
    calls: GatewayCalls
    leases: CreditLeases
    recorder: CallRecorder


async def _replica(database: Database, clocks: Clocks, settings: Settings) -> Replica:
    caps = SpendingCaps(db=database, clock=clocks.now)
    leases = CreditLeases(
        db=database, caps=caps, clock=clocks.now, most=settings.gateway_lease, buy_url="", monotonic=clocks.monotonic
    )
    recorder = CallRecorder(db=database, leases=leases, clock=clocks.now)
    calls = GatewayCalls(
        db=database,
        box=SecretBox("x" * 32),
        settings=settings,
        clock=clocks.now,
        breakers=Breakers(failures=5, seconds=30),
        leases=leases,
        recorder=recorder,
    )
    return Replica(calls, leases, recorder)


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    engine = create_engine(database_url)
    await upgrade(engine)
    database = Database(create_sessionmaker(engine))
    try:
        yield database
    finally:
        database.close()
        await engine.dispose()


async def _grant(database: Database, amount: int) -> None:
    async with database.unit() as session:
        await Ledger(session).post_many(
            [Posting(f"grant:{uuid.uuid4()}", "grant", TENANT, amount, PLATFORM_GRANTS, "test")], datetime.now(UTC)
        )


async def _account(database: Database) -> tuple[int, int]:
    """(balance, held) of the tenant's credits."""
    async with database.read() as session:
        found = (
            await session.execute(
                select(LedgerAccount.balance, LedgerAccount.held).where(LedgerAccount.id == credits(TENANT))
            )
        ).one()
    return int(found.balance), int(found.held)


async def _count(database: Database, statement: object) -> int:
    async with database.read() as session:
        return int((await session.execute(statement)).scalar_one())  # type: ignore[call-overload]


async def _consistent(database: Database) -> None:
    async with database.read() as session:
        assert await Ledger(session).check() == []


async def test_a_stopped_replicas_lease_is_swept_and_its_ended_calls_are_charged_once(database: Database) -> None:
    clocks = Clocks()
    settings = Settings(GATEWAY_LEASE=100_000)
    stopped, leader = await _replica(database, clocks, settings), await _replica(database, clocks, settings)
    await _grant(database, 1_000_000)
    caller = Caller(TENANT, None, "key")

    ended = await stopped.calls.begin(caller, ROUTE, "chat", 5_000)
    in_flight = await stopped.calls.begin(caller, ROUTE, "chat", 5_000)
    charged = await stopped.calls.finish(ended, Usage(1000, 500))
    assert charged == cost_of(1000, 500)
    balance, held = await _account(database)
    assert balance == 1_000_000 and held == 100_000  # the lease: the most one replica holds
    assert await _count(database, select(func.count()).where(GatewayCall.charged.is_(False))) == 1

    assert await leader.calls.sweep() == 0  # renewed recently: not the sweep's
    clocks.offset = DEAD_SECONDS + 1  # the replica stopped: nothing renews its lease
    assert await leader.calls.sweep() == 1
    assert await _account(database) == (1_000_000 - charged, 0)
    assert await _count(database, select(func.count()).select_from(GatewayLease)) == 0
    assert await _count(database, select(func.count()).where(GatewayCall.charged.is_(False))) == 0

    # the stopped replica comes back: what it still had to post is not charged or given back twice
    assert await stopped.recorder.post() == 1
    assert await _account(database) == (1_000_000 - charged, 0)
    await stopped.leases.renew()  # it learns its lease is gone
    late = await stopped.calls.finish(in_flight, Usage(100, 100))  # charged, its hold went back with the lease
    await stopped.recorder.post()
    assert await _account(database) == (1_000_000 - charged - late, 0)
    again = await stopped.calls.begin(caller, ROUTE, "chat", 5_000)  # a fresh lease
    assert again.reservation is not None and again.reservation.lease is not ended.reservation.lease  # type: ignore[union-attr]
    await stopped.calls.finish(again, None)
    await _consistent(database)


def cost_of(input_tokens: int, output_tokens: int) -> int:
    return ROUTE.price.cost(Usage(input_tokens, output_tokens), Settings().gateway_margin_percent)


async def test_leases_hold_within_the_balance_and_go_back_when_idle(database: Database) -> None:
    clocks = Clocks()
    replica = await _replica(database, clocks, Settings(GATEWAY_LEASE=1_000_000))
    await _grant(database, 30_000)
    caller = Caller(TENANT, None, "key")
    first = await replica.calls.begin(caller, ROUTE, "chat", 10_000)
    assert (await _account(database))[1] == 20_000  # what the call needs and half of the rest
    second = await replica.calls.begin(caller, ROUTE, "chat", 10_000)
    third = await replica.calls.begin(caller, ROUTE, "chat", 10_000)  # the lease grows to the whole balance
    assert await _account(database) == (30_000, 30_000)
    with pytest.raises(InsufficientCredits):
        await replica.calls.begin(caller, ROUTE, "chat", 1)
    for call in (first, second, third):
        await replica.calls.finish(call, Usage(1000, 500))
    assert await replica.leases.give_back_idle() == 0  # charges not posted yet: the costs are still held
    assert await replica.recorder.post() == 3
    assert await _account(database) == (30_000 - 3 * cost_of(1000, 500), 30_000 - 3 * cost_of(1000, 500))
    assert await replica.leases.give_back_idle() == 0  # used a moment ago
    clocks.offset = IDLE_SECONDS + 1
    assert await replica.leases.give_back_idle() == 1
    assert await _account(database) == (30_000 - 3 * cost_of(1000, 500), 0)
    assert await _count(database, select(func.count()).select_from(GatewayLease)) == 0
    await _consistent(database)


async def test_a_capped_bots_call_is_written_when_it_begins_and_finished_once_even_when_free(
    database: Database,
) -> None:
    replica = await _replica(database, Clocks(), Settings())
    await _grant(database, 1_000)
    free = Route("free", ROUTE.upstream, "free", Price(0, 0), False)
    bot = str(uuid.uuid4())
    call = await replica.calls.begin(Caller(TENANT, bot, bot, 100), free, "chat", 0)
    assert await _count(database, select(func.count()).where(GatewayCall.status == "reserved")) == 1
    assert await replica.calls.finish(call, Usage(10, 10)) == 0
    assert await replica.calls.finish(call, Usage(10, 10)) == 0  # a second finish changes nothing
    async with database.read() as session:
        rows = (await session.execute(select(GatewayCall.status, GatewayCall.charged))).all()
    assert [tuple(row) for row in rows] == [("done", True)]


async def test_a_platform_that_stops_posts_what_it_owes_and_gives_its_leases_back(
    make_platform: PlatformFactory, fake_provider: FakeProvider
) -> None:
    gateway = await start_gateway(make_platform, fake_provider, GATEWAY_CHARGE_INTERVAL=60)  # only the stop posts
    await gateway.grant(DOLLAR)
    before = await gateway.balance()
    answer = await gateway.openai().chat.completions.create(model="gpt-4o-mini", messages=PROMPT)  # type: ignore[arg-type]
    assert answer.usage is not None and answer.usage.completion_tokens == 5
    assert await gateway.balance() == before  # written, held, not posted yet
    await gateway.platform.stop()
    engine = create_engine(gateway.platform.settings.database_url)
    database = Database(create_sessionmaker(engine))
    try:
        async with database.read() as session:
            account = (
                await session.execute(
                    select(LedgerAccount.balance, LedgerAccount.held).where(LedgerAccount.id == credits("default"))
                )
            ).one()
        assert (account.balance, account.held) == (before - cost(4, 5), 0)
        assert await _count(database, select(func.count()).select_from(GatewayLease)) == 0
        assert await _count(database, select(func.count()).where(GatewayCall.charged.is_(False))) == 0
        await _consistent(database)
    finally:
        await engine.dispose()


# --- several replicas (PostgreSQL) ------------------------------------------------------------------------------


@several_replicas
async def test_replicas_share_one_balance_and_hear_each_others_revocations(
    make_platform: PlatformFactory, fake_provider: FakeProvider
) -> None:
    first = await start_gateway(make_platform, fake_provider)
    port = free_port()
    second = await make_platform(
        GATEWAY_ENABLED=True,
        GATEWAY_PORT=port,
        GATEWAY_CHARGE_INTERVAL=0.05,
        BILLING_ENABLED=True,
        BILLING_MIN_BALANCE=0,
        DATABASE_URL=first.platform.settings.database_url,
        WOPR_PLATFORM_ID=first.platform.settings.platform_id,
    )
    other = Gateway(second, fake_provider, f"http://127.0.0.1:{port}", first.key)
    await listening(other.url)
    fake_provider.chunk_delay = 0.2
    await first.grant(3 * STREAMED_ESTIMATE + STREAMED_ESTIMATE // 2)
    before = await first.balance()

    async def call(gateway: Gateway) -> int:
        async with gateway.http() as http:
            response = await http.post(
                "/v1/chat/completions", content=STREAMED, headers={"content-type": "application/json"}
            )
            return response.status_code

    statuses = sorted(await asyncio.gather(*(call(g) for g in (first, other) * 5)))
    assert statuses == [200] * 3 + [402] * 7, statuses
    await first.balance_is(before - 3 * cost(4, 5))

    # a key revoked on one replica is refused at once on the other, which had it in memory
    await first.grant(10 * STREAMED_ESTIMATE)
    fake_provider.chunk_delay = 0.0
    assert await call(other) == 200
    keys = (await first.platform.client.get("/gateway/keys")).json()["keys"]
    assert (await first.platform.client.delete(f"/gateway/keys/{keys[0]['id']}")).status_code == 204
    assert await call(other) == 401
    await first.ledger_is_consistent()
