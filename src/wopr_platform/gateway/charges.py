"""Ended calls written to the database together, and their charges posted to the ledger in batches.

- `write`: a call's row (its status, the provider's count of tokens, its cost) is committed before the end of its
  answer reaches the caller. Calls that end while a write is under way are written together by the next one
  (group commit): one transaction however many calls end at once.
- `post`: the charges of written calls are posted every `GATEWAY_CHARGE_INTERVAL` seconds (sooner when many
  wait), in one transaction: the calls not yet charged are marked charged (so a round retried after a commit it
  could not confirm finds none left), one ledger entry per tenant and bot for them (`charge_entries`), and each
  cost taken out of the lease that held it and out of the account's `held`. Until then the cost stays held, so
  the tenant cannot spend it twice. Each call's own tokens and cost are in its row (the usage views).
- `ChargesLoop` posts them, renews this replica's leases and gives back idle ones; at shutdown it posts what is
  left and gives the leases back. What a stopped replica left unposted, the leader's sweep posts
  (`GatewayCalls.sweep`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import Connection, insert, update

from wopr_platform.billing.ledger import PLATFORM_REVENUE, Ledger, Posting
from wopr_platform.db.models import GatewayCall
from wopr_platform.db.unit import Database
from wopr_platform.gateway.budgets import settling
from wopr_platform.gateway.leases import RENEW_SECONDS, CreditLeases, Lease, Reservation

log = logging.getLogger(__name__)

POST_BATCH = 500  # charges in one transaction at most
# what a call's end sets on a row written when it began (a capped bot's call)
_ENDED_COLUMNS = ("status", "input_tokens", "output_tokens", "cost", "finished_at", "lease_id", "charged")


@dataclass(frozen=True, slots=True)
class Charge:
    """What one ended call costs its tenant."""

    call_id: str
    tenant_id: str
    bot_id: str | None
    cost: int


def charge_entries(charges: Iterable[Charge]) -> list[Posting]:
    """The ledger movements that charge these calls: one per tenant and bot (its reference derived from the
    calls: the first of their ids and how many they are)."""
    groups: dict[tuple[str, str | None], list[Charge]] = defaultdict(list)
    for charge in charges:
        if charge.cost > 0:
            groups[(charge.tenant_id, charge.bot_id)].append(charge)
    postings = []
    for (tenant_id, bot_id), group in groups.items():
        first = min(charge.call_id for charge in group)
        postings.append(
            Posting(
                reference=f"gateway:{first}:{len(group)}",
                kind="usage",
                tenant_id=tenant_id,
                amount=-sum(charge.cost for charge in group),
                counter=PLATFORM_REVENUE,
                actor="gateway",
                memo=f"AI gateway: {len(group)} call{'s' if len(group) != 1 else ''}",
                subject=bot_id,
            )
        )
    return postings


@dataclass(slots=True)
class Ended:
    """A call that ended, as it is written: `row` holds every column of its row."""

    row: dict[str, Any]
    written_before: bool  # a capped bot's call: its row was written when it began, and is updated
    bot_hold: tuple[str, str, int] | None  # (bot, day, what it held of the bot's cap) to settle
    reservation: Reservation | None
    charge: Charge | None  # None: nothing to charge

    @property
    def cost(self) -> int:
        return self.charge.cost if self.charge is not None else 0


class CallRecorder:
    def __init__(self, *, db: Database, leases: CreditLeases | None, clock: Callable[[], datetime]) -> None:
        self._db = db
        self._leases = leases
        self._now = clock
        self._waiting: list[tuple[Ended, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._charges: list[Ended] = []
        self.many_waiting = asyncio.Event()

    async def write(self, ended: Ended) -> None:
        """Return once the call's row is committed (raises if it could not be: the call is then not charged)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((ended, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_waiting())
        await asyncio.shield(future)

    async def _write_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                skipped = await self._write([ended for ended, _ in batch])
            except Exception as err:
                log.exception("gateway calls could not be written", extra={"calls": len(batch)})
                for ended, future in batch:
                    if ended.reservation is not None and self._leases is not None:
                        self._leases.settle(ended.reservation, 0)
                    if not future.done():
                        future.set_exception(err)
                continue
            for ended, future in batch:
                if ended.row["id"] in skipped:  # ended before (or swept): not charged again
                    ended.charge = None
                if ended.reservation is not None and self._leases is not None:
                    self._leases.settle(ended.reservation, ended.cost)
                if ended.charge is not None:
                    self._charges.append(ended)
                if not future.done():
                    future.set_result(None)
            if len(self._charges) >= POST_BATCH:
                self.many_waiting.set()

    async def _write(self, batch: list[Ended]) -> set[str]:
        """One transaction for the batch; the ids of calls written before that had ended already."""
        return await self._db.core_unit(partial(_write_rows, batch))

    async def flush_writes(self) -> None:
        """Wait for the writes under way (at shutdown)."""
        writer = self._writer
        if writer is not None and not writer.done():
            await asyncio.wait({writer}, timeout=30)

    async def post(self) -> int:
        """Post the charges of the calls written so far (not those written meanwhile: they wait for the next
        round); how many were posted (failures are kept for later)."""
        posted = 0
        due = len(self._charges)
        while posted < due and self._charges:
            batch, self._charges = self._charges[:POST_BATCH], self._charges[POST_BATCH:]
            try:
                await self._post(batch)
            except Exception as err:
                self._charges = batch + self._charges
                log.warning("gateway charges could not be posted; kept", extra={"reason": type(err).__name__})
                break
            posted += len(batch)
        return posted

    async def _post(self, batch: list[Ended]) -> None:
        leases = sorted({ended.reservation.lease.id for ended in batch if ended.reservation is not None})
        async with self._db.unit() as session:
            if self._leases is not None:  # rows locked in one order: leases, calls, accounts (as the sweep does)
                await self._leases.touch(session, leases)
            fresh = set(
                (
                    await session.execute(
                        update(GatewayCall)
                        .where(GatewayCall.id.in_([ended.row["id"] for ended in batch]), GatewayCall.charged.is_(False))
                        .values(charged=True)
                        .returning(GatewayCall.id)
                        .execution_options(synchronize_session=False)
                    )
                ).scalars()
            )
            by_lease: dict[str, tuple[Lease, int]] = {}
            for ended in batch:
                if ended.reservation is not None and ended.row["id"] in fresh:
                    lease = ended.reservation.lease
                    by_lease[lease.id] = (lease, by_lease.get(lease.id, (lease, 0))[1] + ended.cost)
            parts: dict[str, int] = {}
            if self._leases is not None:
                for lease_id in sorted(by_lease):
                    lease, cost = by_lease[lease_id]
                    parts[lease_id] = await self._leases.take_out(session, lease, cost)
            charges = [ended.charge for ended in batch if ended.charge is not None and ended.row["id"] in fresh]
            await Ledger(session).post_many(charge_entries(charges), self._now())
        for ended in batch:  # what the lease still owes for these calls: nothing (posted now, or by the sweep)
            if ended.reservation is not None and ended.row["id"] not in fresh:
                CreditLeases.taken_out(ended.reservation.lease, ended.cost, 0)
        for lease_id, (lease, cost) in by_lease.items():
            CreditLeases.taken_out(lease, cost, parts.get(lease_id, 0))


class ChargesLoop:
    """Every replica: posts its calls' charges, renews its leases, gives back idle ones."""

    name = "gateway-charges"

    def __init__(
        self,
        recorder: CallRecorder,
        leases: CreditLeases | None,
        interval: float,
        drained: asyncio.Event | None = None,
    ) -> None:
        self._recorder = recorder
        self._leases = leases
        self._interval = interval
        self._drained = drained  # set when the gateway's listener has stopped (its last calls ended)

    async def run(self, stop: asyncio.Event) -> None:
        renewed = time.monotonic()
        try:
            while not stop.is_set():
                await self._pause(stop)
                try:
                    await self._recorder.post()
                    if self._leases is not None:
                        if time.monotonic() - renewed >= RENEW_SECONDS:
                            await self._leases.renew()
                            renewed = time.monotonic()
                        await self._leases.give_back_idle()
                except Exception as err:
                    log.warning("gateway charges round failed", extra={"reason": type(err).__name__})
        finally:
            if self._drained is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._drained.wait(), 15)
            await self._recorder.flush_writes()
            await self._recorder.post()
            if self._leases is not None:
                with contextlib.suppress(Exception):
                    await self._leases.give_back_idle(everything=True)

    async def _pause(self, stop: asyncio.Event) -> None:
        many = self._recorder.many_waiting
        waits = {asyncio.ensure_future(stop.wait()), asyncio.ensure_future(many.wait())}
        try:
            await asyncio.wait(waits, timeout=self._interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        many.clear()


def _write_rows(batch: list[Ended], connection: Connection) -> set[str]:
    """On a Core connection (a hot path: `Database.core_unit`): the rows of calls that ended, inserted, or for
    calls written when they began, updated with their ends and their bots' holds settled."""
    fresh = [ended.row for ended in batch if not ended.written_before]
    if fresh:
        connection.execute(insert(GatewayCall), fresh)
    skipped: set[str] = set()
    for ended in batch:
        if not ended.written_before:
            continue
        row = ended.row
        done = connection.execute(
            update(GatewayCall)
            .where(GatewayCall.id == row["id"], GatewayCall.status == "reserved")
            .values({name: row[name] for name in _ENDED_COLUMNS})
        )
        if not done.rowcount:
            skipped.add(row["id"])
        elif ended.bot_hold is not None:
            bot_id, day, held = ended.bot_hold
            connection.execute(settling(bot_id, day, held, ended.cost))
    return skipped
