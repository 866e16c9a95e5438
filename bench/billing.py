"""Billing at scale, on SQLite and on PostgreSQL side by side: the hourly runtime charge for `--bots` running
bots, and `--debits` concurrent debits against one tenant's balance.

- **Hourly charge**: `--bots` runs overlapping one hour (a third of them stopping within it) are stored, then
  the hour is charged by `HourlyCharges.charge_next` (one transaction: bulk entries, lines, one balance update per
  account). Baseline beside it: the same charges posted one entry per transaction, as a per-bot loop would.
  Target: under 10 s for 10,000 bots on both databases.
- **Concurrent debits**: `--debits` tasks each post one debit (its own transaction and idempotency reference)
  against one tenant at once; then every balance is checked against its lines. Target: the balance exact.

PostgreSQL is a throwaway server (initdb + pg_ctl on a free port, as the tests start it).

    uv run python bench/billing.py [--bots 10000] [--debits 1000] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

from wopr_platform.billing.ledger import PLATFORM_REVENUE, Ledger, Posting
from wopr_platform.billing.repository import RunRepository
from wopr_platform.billing.runtime import HourlyCharges, hour_of
from wopr_platform.core.faults import CrashPoints
from wopr_platform.db.engine import create_engine, create_sessionmaker
from wopr_platform.db.migrate import upgrade
from wopr_platform.db.models import BotRun
from wopr_platform.db.unit import Database

SECTION = "billing"
TARGET_SECONDS = 10.0


@contextlib.asynccontextmanager
async def database(kind: str, pg_port: int) -> AsyncIterator[Database]:
    if kind == "SQLite":
        folder = Path(tempfile.mkdtemp(prefix="wopr-bench-"))
        url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    else:
        import asyncpg

        name = "b_" + uuid.uuid4().hex[:10]
        admin = await asyncpg.connect(host="127.0.0.1", port=pg_port, user="postgres", database="postgres")
        await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:{pg_port}/{name}"
    engine = create_engine(url)
    await upgrade(engine)
    try:
        yield Database(create_sessionmaker(engine))
    finally:
        await engine.dispose()
        if kind == "SQLite":
            shutil.rmtree(folder, ignore_errors=True)


async def hourly_charge(kind: str, pg_port: int, bots: int) -> dict[str, float]:
    hour = hour_of(datetime.now(UTC)) - timedelta(hours=3)
    rows = [
        {
            "bot_id": str(uuid.uuid4()),
            "tenant_id": f"tenant-{i % max(1, bots // 10)}",
            "price_per_hour": 7000 + 7000 * (i % 3),
            "started_at": hour - timedelta(minutes=5),
            "stopped_at": hour + timedelta(minutes=20) if i % 3 == 0 else None,
        }
        for i in range(bots)
    ]
    results: dict[str, float] = {}
    for mode in ("batched", "per bot"):
        async with database(kind, pg_port) as db:
            async with db.unit() as session:
                for start in range(0, len(rows), 2000):
                    await session.execute(BotRun.__table__.insert(), rows[start : start + 2000])
            charges = HourlyCharges(db=db, clock=lambda: datetime.now(UTC), crash=CrashPoints(None))
            if mode == "batched":
                began = time.perf_counter()
                posted = await charges.charge_next()
                results[mode] = time.perf_counter() - began
                assert posted == bots, posted
            else:
                async with db.read() as session:
                    overlapping = await RunRepository(session).overlapping(hour, hour + timedelta(hours=1))
                postings = HourlyCharges._postings(list(overlapping), hour, hour + timedelta(hours=1))
                began = time.perf_counter()
                for posting in postings:
                    async with db.unit() as session:
                        await Ledger(session).post(posting, datetime.now(UTC))
                results[mode] = time.perf_counter() - began
            async with db.read() as session:
                assert await Ledger(session).check() == []
    return results


async def concurrent_debits(kind: str, pg_port: int, debits: int) -> dict[str, float | bool | int]:
    async with database(kind, pg_port) as db:
        start = 10**9

        async def one(reference: str, amount: int) -> None:
            async with db.unit() as session:
                await Ledger(session).post(
                    Posting(reference, "usage", "acme", amount, PLATFORM_REVENUE, "bench"), datetime.now(UTC)
                )

        await one("seed", start)
        began = time.perf_counter()
        await asyncio.gather(*(one(f"debit-{i}", -(i % 7 + 1)) for i in range(debits)))
        elapsed = time.perf_counter() - began
        async with db.read() as session:
            balance = await Ledger(session).balance("acme")
            mismatches = await Ledger(session).check()
        expected = start - sum(i % 7 + 1 for i in range(debits))
        return {"seconds": elapsed, "exact": balance == expected and not mismatches, "balance": balance}


async def main(args: argparse.Namespace) -> int:
    facts = await harness.machine_facts()
    rows = []
    debit_rows = []
    met = True
    with harness.postgres_server() as port:
        for kind in ("SQLite", "PostgreSQL"):
            harness.log(f"{kind}: charging one hour of {args.bots} bots")
            charge = await hourly_charge(kind, port, args.bots)
            ok = charge["batched"] < TARGET_SECONDS
            met &= ok
            rows.append(
                (
                    kind,
                    f"{charge['batched']:.2f}",
                    f"{charge['per bot']:.2f}",
                    f"{charge['per bot'] / charge['batched']:.0f}x",
                    "met" if ok else "**missed**",
                )
            )
            harness.log(f"{kind}: {args.debits} concurrent debits")
            debits = await concurrent_debits(kind, port, args.debits)
            met &= bool(debits["exact"])
            debit_rows.append((kind, f"{debits['seconds']:.2f}", "yes" if debits["exact"] else "**no**"))
    scale = (
        ""
        if args.bots >= 10_000 and args.debits >= 1000
        else ("> **Validation run** at reduced scale; the numbers are indicative only.\n\n")
    )
    text = "\n".join(
        [
            "## Billing: the hourly runtime charge, and concurrent debits on one balance",
            "",
            scale + "\n".join(harness.facts_lines(facts)),
            f"- Parameters: `--bots {args.bots} --debits {args.debits}`; both databases in one run, each a fresh "
            "database (SQLite WAL in a temp dir; PostgreSQL 15 started for the run, fsync off)",
            "",
            f"Charging one hour of {args.bots} running bots (one entry each; a third stopped within the hour), "
            "against the baseline of one transaction per bot:",
            "",
            harness.table(
                ("database", "batched charge s", "per-bot baseline s", "speed-up", f"target < {TARGET_SECONDS:.0f} s"),
                rows,
            ),
            "",
            f"{args.debits} debits posted at once against one tenant, each its own transaction and reference:",
            "",
            harness.table(("database", "wall s", "balance exact, ledger balanced"), debit_rows),
            "",
            f"Targets: **{'met' if met else 'missed'}**.",
        ]
    )
    harness.publish(SECTION, text, write=not args.no_write)
    return 0 if met else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bots", type=int, default=10_000)
    parser.add_argument("--debits", type=int, default=1000)
    parser.add_argument("--no-write", action="store_true")
    parsed = parser.parse_args()
    sys.exit(harness.run(lambda: main(parsed)))
