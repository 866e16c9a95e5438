"""What the background loops share: rounds of work paced by an interval, started early by a kick."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def run_rounds(
    stop: asyncio.Event, wake: asyncio.Event, interval: float, work: Callable[[], Awaitable[object]], what: str
) -> None:
    """Run `work` until `stop`, then again after `interval` seconds or as soon as `wake` is set.

    A failing round is logged (as `what` failed) and the next one comes on schedule: a loop never dies of it.
    """
    while not stop.is_set():
        try:
            await work()
        except Exception:
            log.exception("%s failed", what)
        wake.clear()
        try:
            async with asyncio.timeout(interval):
                await wake.wait()
        except TimeoutError:
            pass


async def first_set(*events: asyncio.Event) -> None:
    """Return as soon as any of `events` is set."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


async def catch_up(step: Callable[[], Awaitable[object | None]], most: int) -> int:
    """Run `step` until it has nothing left to do (it returns None) or `most` times; how many steps did work (a
    leader that was away catches up on the periods that ended, a bounded number of them per round)."""
    done = 0
    for _ in range(most):
        if await step() is None:
            break
        done += 1
    return done
