"""Background loops under supervision: restarted when they fail, and some run only while this replica leads."""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from wopr_platform.core.rounds import first_set
from wopr_platform.db.leadership import Leadership

log = logging.getLogger(__name__)


class Loop(Protocol):
    name: str

    async def run(self, stop: asyncio.Event) -> None: ...


async def supervise(loop: Loop, stop: asyncio.Event) -> None:
    """Run a background loop; if it ever dies it is logged and restarted, never taking the process down."""
    while not stop.is_set():
        try:
            await loop.run(stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background loop crashed; restarting", extra={"loop": loop.name})
            await asyncio.sleep(1)


async def _set_when_any(target: asyncio.Event, *events: asyncio.Event) -> None:
    await first_set(*events)
    target.set()


async def supervise_while_leading(loop: Loop, stop: asyncio.Event, leadership: Leadership) -> None:
    """Run a loop only during this replica's terms as leader; it is stopped when a term ends."""
    while not stop.is_set():
        await first_set(stop, leadership.leading)
        if stop.is_set():
            return
        ended = asyncio.Event()
        relaying = asyncio.create_task(_set_when_any(ended, stop, leadership.term_over))
        try:
            await supervise(loop, ended)
        finally:
            relaying.cancel()
