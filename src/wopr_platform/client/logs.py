"""Following a bot's output. The API has no streaming logs route (`GET /fleet/bots/{id}/logs` answers the last lines
as text, without timestamps, and `GET /fleet/events` carries state changes, not output), so `wopr bots logs -f`
reads the same window of last lines again and again and prints what lies past its overlap with the one before."""

from __future__ import annotations

import time
from collections.abc import Callable

from wopr_platform.client.api import Api, segment
from wopr_platform.client.errors import ApiError

FOLLOW_WINDOW = 200  # lines read at each poll: more new lines than this between two polls leave a gap
MAX_TAIL = 10_000  # the most lines the API reads at once


def read(api: Api, bot_id: str, tail: int) -> list[str]:
    """The bot's last `tail` lines."""
    return api.get(f"/fleet/bots/{segment(bot_id)}/logs", params={"tail": str(tail)}).text.splitlines()


def new_lines(seen: list[str], window: list[str]) -> tuple[list[str], bool]:
    """The lines of `window` (the log's last lines now) past the end of `seen` (its last lines before, read with the
    same window), and whether the two overlapped. Without timestamps a line cannot be told from an identical one,
    so the longest overlap is taken: a new line identical to the ones just before it may be taken as seen."""
    for overlap in range(min(len(seen), len(window)), 0, -1):
        if seen[-overlap:] == window[:overlap]:
            return window[overlap:], True
    return window, not seen


def follow(
    api: Api,
    bot_id: str,
    tail: int,
    interval: float,
    out: Callable[[list[str]], None],
    gap: Callable[[], None],
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Print the last `tail` lines, then the new ones every `interval` seconds until interrupted. A poll that finds
    the bot without a container (being replaced) waits for the next; a bot that is gone ends it (ApiError 404)."""
    window = min(max(tail, FOLLOW_WINDOW), MAX_TAIL)
    seen = read(api, bot_id, window)
    out(seen[-tail:])
    while True:
        sleep(interval)
        try:
            current = read(api, bot_id, window)
        except ApiError as err:
            if err.status != 404:
                raise
            api.get(f"/fleet/bots/{segment(bot_id)}")  # raises the 404 when the bot itself is gone
            continue
        fresh, joined = new_lines(seen, current)
        if not joined:
            gap()
        out(fresh)
        seen = current
