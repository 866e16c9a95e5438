"""Credits held for a tenant's calls, so that reserving a call's estimate is a subtraction in memory, not a
transaction.

A lease is an amount of a tenant's credits that this replica holds on the tenant's ledger account (its `held`,
taken by one guarded UPDATE while the balance not yet held covers it, so the leases of every replica together
never pass the balance). A call reserves its estimate from the lease; when it ends, its reservation becomes its
cost, still held in the lease (`owed`) until the charge is posted to the ledger, which takes the cost out of the
lease and out of the account's `held` in the same transaction (`Charges`). Nothing is ever spent that was not
held first, so concurrent calls never spend more than the balance, nor (the caps being checked whenever a lease
grows) more than a spending cap.

- A call that does not fit tops the lease up: one transaction that holds what is missing plus some room for the
  calls to come (at most `GATEWAY_LEASE`, half of what the tenant has not yet reserved, and half of what its caps
  still allow), so a busy tenant's calls touch the database once in many calls.
- A lease no call has used for `IDLE_SECONDS` is given back. A replica renews its leases every `RENEW_SECONDS`;
  the leader sweeps a lease not renewed for `DEAD_SECONDS` (its replica stopped): the charges of the calls that
  ended in it are posted and the rest is given back. A replica does not reserve from a lease it has not
  renewed for `TRUST_SECONDS`, well before the sweep could take it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.billing.caps import SpendingCaps
from wopr_platform.billing.ledger import Ledger
from wopr_platform.core.errors import InsufficientCredits
from wopr_platform.db.models import GatewayLease
from wopr_platform.db.unit import Database

log = logging.getLogger(__name__)

IDLE_SECONDS = 15.0
RENEW_SECONDS = 15.0
TRUST_SECONDS = 60.0
DEAD_SECONDS = 180.0


@dataclass(slots=True)
class Lease:
    id: str
    tenant_id: str
    amount: int  # held on the tenant's account for this lease (what its row says)
    reserved: int = 0  # by calls in flight
    owed: int = 0  # the costs of ended calls whose charges are not posted yet
    used_at: float = 0.0  # monotonic
    renewed_at: float = 0.0  # monotonic: when its row was last seen
    closed: bool = False  # given back or swept: no call reserves from it any more

    @property
    def free(self) -> int:
        return self.amount - self.reserved - self.owed


@dataclass(frozen=True, slots=True)
class Reservation:
    lease: Lease
    amount: int


class CreditLeases:
    """This replica's leases, one per tenant with calls."""

    def __init__(
        self,
        *,
        db: Database,
        caps: SpendingCaps,
        clock: Callable[[], datetime],
        most: int,
        buy_url: str,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._caps = caps
        self._now = clock
        self._most = most
        self._buy_url = buy_url
        self._monotonic = monotonic
        self._leases: dict[str, Lease] = {}
        self._locks: dict[str, asyncio.Lock] = {}  # per tenant: one change of its lease at a time

    def _usable(self, lease: Lease | None, amount: int) -> bool:
        return (
            lease is not None
            and not lease.closed
            and lease.free >= amount
            and self._monotonic() - lease.renewed_at < TRUST_SECONDS
        )

    def _take(self, lease: Lease, amount: int) -> Reservation:
        lease.reserved += amount
        lease.used_at = self._monotonic()
        return Reservation(lease, amount)

    async def reserve(self, tenant_id: str, amount: int) -> Reservation:
        """Reserve `amount` of the tenant's credits for a call (402 when its credits or a spending cap do not
        allow it); from memory unless the lease must grow."""
        lease = self._leases.get(tenant_id)
        if self._usable(lease, amount):
            assert lease is not None
            return self._take(lease, amount)
        lock = self._locks.setdefault(tenant_id, asyncio.Lock())
        async with lock:
            lease = self._leases.get(tenant_id)
            if self._usable(lease, amount):
                assert lease is not None
                return self._take(lease, amount)
            lease = await self._grow(tenant_id, lease if lease is not None and not lease.closed else None, amount)
            return self._take(lease, amount)

    def settle(self, reservation: Reservation, cost: int) -> None:
        """The call ended: its reservation gives way to its cost (0: nothing to charge), held until posted."""
        lease = reservation.lease
        lease.reserved -= reservation.amount
        lease.owed += cost
        lease.used_at = self._monotonic()

    async def _grow(self, tenant_id: str, lease: Lease | None, amount: int) -> Lease:
        now = self._now()
        async with self._db.unit() as session:
            if lease is not None:
                alive = await session.execute(
                    update(GatewayLease)
                    .where(GatewayLease.id == lease.id)
                    .values(renewed_at=now)
                    .execution_options(synchronize_session=False)
                )
                if not getattr(alive, "rowcount", 0):  # swept meanwhile: what it held went back with it
                    lease.closed = True
                    lease = None
            missing = amount - (lease.free if lease is not None else 0)
            ledger = Ledger(session)
            held = await ledger.hold(tenant_id, missing)  # locks the account's row to the end
            if held is None:
                raise InsufficientCredits(
                    "the tenant's credits do not cover this call",
                    details={"required": amount, "buyUrl": self._buy_url},
                )
            extra = await self._room(session, ledger, tenant_id, held, missing + (lease.amount if lease else 0))
            if extra > 0:
                more = await ledger.hold(tenant_id, extra)
                if more is not None:
                    held, missing = more, missing + extra
            await self._caps.admit_within(session, tenant_id, held)
            if lease is None:
                lease = Lease(str(uuid.uuid4()), tenant_id, 0)
                session.add(
                    GatewayLease(id=lease.id, tenant_id=tenant_id, amount=missing, created_at=now, renewed_at=now)
                )
            else:
                await session.execute(
                    update(GatewayLease)
                    .where(GatewayLease.id == lease.id)
                    .values(amount=GatewayLease.amount + missing)
                    .execution_options(synchronize_session=False)
                )
        lease.amount += missing
        lease.renewed_at = self._monotonic()
        self._leases[tenant_id] = lease
        return lease

    async def _room(self, session: AsyncSession, ledger: Ledger, tenant_id: str, held: int, leased: int) -> int:
        """How much more to hold for the calls to come (the lease holding `leased` now): the lease within `most`,
        and at most half of the credits still unreserved and half of what the caps still allow."""
        extra = min(self._most - leased, (await ledger.balance(tenant_id) - held) // 2)
        room = await self._caps.room(session, tenant_id)
        if room is not None:
            extra = min(extra, (room - held) // 2)
        return max(0, extra)

    # what the charges loop does ------------------------------------------------------------------------------

    async def take_out(self, session: AsyncSession, lease: Lease, cost: int) -> int:
        """In the transaction that posts charges of calls that ended in `lease`: take their `cost` out of it, and
        what it held of that out of the tenant's account (0 when the lease was swept: the sweep gave it back)."""
        part = min(cost, lease.amount)
        if part <= 0:
            return 0
        done = await session.execute(
            update(GatewayLease)
            .where(GatewayLease.id == lease.id)
            .values(amount=GatewayLease.amount - part)
            .execution_options(synchronize_session=False)
        )
        if not getattr(done, "rowcount", 0):
            return 0
        await Ledger(session).release(lease.tenant_id, part)
        return part

    async def touch(self, session: AsyncSession, lease_ids: Sequence[str]) -> None:
        """In the charges' transaction, first: lock these leases (and renew them)."""
        if lease_ids:
            await session.execute(
                update(GatewayLease)
                .where(GatewayLease.id.in_(lease_ids))
                .values(renewed_at=self._now())
                .execution_options(synchronize_session=False)
            )

    @staticmethod
    def taken_out(lease: Lease, cost: int, part: int) -> None:
        """After that transaction committed."""
        lease.owed -= cost
        lease.amount -= part

    async def renew(self) -> None:
        """Tell the sweep this replica still holds its leases; forget those it swept (this replica was away)."""
        if not self._leases:
            return
        ids = [lease.id for lease in self._leases.values()]
        async with self._db.unit() as session:
            alive = set(
                (
                    await session.execute(
                        update(GatewayLease)
                        .where(GatewayLease.id.in_(ids))
                        .values(renewed_at=self._now())
                        .returning(GatewayLease.id)
                        .execution_options(synchronize_session=False)
                    )
                ).scalars()
            )
        now = self._monotonic()
        for tenant_id, lease in list(self._leases.items()):
            if lease.id in alive:
                lease.renewed_at = now
            elif lease.id in ids:
                lease.closed = True
                del self._leases[tenant_id]
                log.warning("a gateway lease was swept while this replica held it", extra={"tenant": tenant_id})

    async def give_back_idle(self, everything: bool = False) -> int:
        """Give back the leases no call has used for IDLE_SECONDS (all with nothing in flight, at shutdown)."""
        now = self._monotonic()
        given = 0
        for tenant_id, lease in list(self._leases.items()):
            lock = self._locks.get(tenant_id)
            if lease.reserved or lease.owed or (lock is not None and lock.locked()):
                continue
            if not everything and now - lease.used_at < IDLE_SECONDS:
                continue
            lease.closed = True  # from here no call reserves from it
            try:
                await self._give_back(lease)
            except Exception:
                lease.closed = False
                raise
            if self._leases.get(tenant_id) is lease:
                del self._leases[tenant_id]
            if lock is not None and not lock.locked():
                self._locks.pop(tenant_id, None)
            given += 1
        return given

    async def _give_back(self, lease: Lease) -> None:
        async with self._db.unit() as session:
            amount = (
                await session.execute(
                    delete(GatewayLease).where(GatewayLease.id == lease.id).returning(GatewayLease.amount)
                )
            ).scalar_one_or_none()
            if amount:
                await Ledger(session).release(lease.tenant_id, amount)

    # the leader's sweep --------------------------------------------------------------------------------------

    async def dead(self, session: AsyncSession, limit: int = 100) -> Sequence[tuple[str, str, int]]:
        """In the sweep's transaction: remove up to `limit` leases whose replica stopped renewing them; their
        (id, tenant, amount). The caller posts the charges of the calls that ended in them, then gives the
        amounts back."""
        cutoff = self._now() - timedelta(seconds=DEAD_SECONDS)
        oldest = select(GatewayLease.id).where(GatewayLease.renewed_at < cutoff).limit(limit).scalar_subquery()
        rows = await session.execute(
            delete(GatewayLease)
            .where(GatewayLease.id.in_(oldest), GatewayLease.renewed_at < cutoff)
            .returning(GatewayLease.id, GatewayLease.tenant_id, GatewayLease.amount)
            .execution_options(synchronize_session=False)
        )
        return [(row.id, row.tenant_id, int(row.amount)) for row in rows]
