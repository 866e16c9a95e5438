"""A bot's daily cap on what its gateway calls cost: reservations against it, taken and settled in the call's own
transactions, so that concurrent calls of one bot never pass the cap (a call's real cost is at most its estimate,
the output being bounded by the tokens it asks for).

One row per capped bot and UTC day holds what was spent and what calls in flight reserved; a call is admitted by
one guarded UPDATE of that row (spent + held + estimate <= cap), never by a read followed by a write.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Update, update
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from wopr_platform.db.models import GatewayBotSpend


def _insert(session: AsyncSession) -> Any:
    return postgres_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


class BotBudgets:
    """The capped bots' spending, in the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def hold(self, bot_id: str, day: str, amount: int, cap: int) -> bool:
        """Reserve `amount` of the bot's cap for `day` (False: spent + reserved + amount would pass it)."""
        await self._session.execute(
            _insert(self._session)(GatewayBotSpend)
            .values(bot_id=bot_id, day=day, spent=0, held=0)
            .on_conflict_do_nothing(index_elements=["bot_id", "day"])
        )
        result = await self._session.execute(
            update(GatewayBotSpend)
            .where(
                GatewayBotSpend.bot_id == bot_id,
                GatewayBotSpend.day == day,
                GatewayBotSpend.spent + GatewayBotSpend.held + amount <= cap,
            )
            .values(held=GatewayBotSpend.held + amount)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def settle(self, bot_id: str, day: str, held: int, cost: int) -> None:
        """The call is over: give back what it reserved and count what it cost."""
        await self._session.execute(settling(bot_id, day, held, cost).execution_options(synchronize_session=False))


def settling(bot_id: str, day: str, held: int, cost: int) -> Update:
    """The statement that settles a call of a capped bot (also run on a Core connection)."""
    return (
        update(GatewayBotSpend)
        .where(GatewayBotSpend.bot_id == bot_id, GatewayBotSpend.day == day)
        .values(held=GatewayBotSpend.held - held, spent=GatewayBotSpend.spent + cost)
    )
