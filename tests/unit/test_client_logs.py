"""Following a bot's output by reading its last lines again: only new lines are printed, and a gone bot ends it."""

from __future__ import annotations

import httpx
import pytest

from wopr_platform.client import logs
from wopr_platform.client.api import Api
from wopr_platform.client.errors import ApiError

BOT = "0b9d2a4c-6f0e-4a43-9a8e-2f6f1d7c5e11"


def _lines(first: int, last: int) -> list[str]:
    return [f"line {n}" for n in range(first, last + 1)]


@pytest.mark.parametrize(
    ("seen", "window", "fresh", "joined"),
    [
        ([], [], [], True),
        ([], ["a"], ["a"], True),  # nothing printed before: all is new
        (["a", "b"], ["a", "b"], [], True),  # nothing new
        (["a", "b"], ["a", "b", "c"], ["c"], True),  # the whole log fits the window
        (_lines(1, 5), _lines(3, 7), ["line 6", "line 7"], True),  # the window moved on by two
        (_lines(1, 5), _lines(9, 13), _lines(9, 13), False),  # more new lines than the window: a gap
        (["old 1", "old 2"], ["new 1"], ["new 1"], False),  # a new container, a new log
        (["x", "y", "x"], ["x", "y", "x", "y"], ["y"], True),  # repeated lines align on the longest overlap
    ],
)
def test_new_lines_are_those_past_the_overlap(
    seen: list[str], window: list[str], fresh: list[str], joined: bool
) -> None:
    assert logs.new_lines(seen, window) == (fresh, joined)


class _Log:
    """A bot whose log grows by the lines given for each read, served as the API serves `GET .../logs?tail=N`."""

    def __init__(self, growth: list[list[str]], removed_after: int | None = None) -> None:
        self.lines: list[str] = []
        self.growth = growth
        self.reads = 0
        self.tails: list[int] = []
        self.removed_after = removed_after

    def handle(self, request: httpx.Request) -> httpx.Response:
        gone = self.removed_after is not None and self.reads >= self.removed_after
        if gone:
            return httpx.Response(404, json={"error": "bot not found", "details": {"code": "not_found"}})
        if request.url.path.endswith("/logs"):
            if self.reads < len(self.growth):
                self.lines += self.growth[self.reads]
            self.reads += 1
            tail = int(request.url.params["tail"])
            self.tails.append(tail)
            return httpx.Response(200, text="".join(f"{line}\n" for line in self.lines[-tail:]))
        return httpx.Response(200, json={"id": BOT})


def _follow(log: _Log, tail: int, polls: int) -> tuple[list[str], int]:
    """Follow for `polls` reads after the first; what was printed and how many gaps were noted."""
    printed: list[str] = []
    gaps: list[None] = []
    sleeps = 0

    def sleep(_seconds: float) -> None:
        nonlocal sleeps
        sleeps += 1
        if sleeps > polls:
            raise KeyboardInterrupt

    transport = httpx.MockTransport(log.handle)
    with Api("http://platform.test", "key", transport=transport) as api, pytest.raises(KeyboardInterrupt):
        logs.follow(api, BOT, tail, 0.0, printed.extend, lambda: gaps.append(None), sleep=sleep)
    return printed, len(gaps)


def test_follow_prints_the_tail_then_each_new_line_once() -> None:
    log = _Log([_lines(1, 300), [], _lines(301, 302), _lines(303, 303), []])
    printed, gaps = _follow(log, tail=3, polls=4)
    assert printed == _lines(298, 303)
    assert gaps == 0
    assert set(log.tails) == {logs.FOLLOW_WINDOW}  # the same window every time, so reads overlap


def test_follow_notes_a_gap_when_more_lines_came_than_one_read_holds() -> None:
    log = _Log([_lines(1, 2), _lines(3, 3 + logs.FOLLOW_WINDOW)])
    printed, gaps = _follow(log, tail=10, polls=1)
    assert printed == _lines(1, 2) + _lines(4, 3 + logs.FOLLOW_WINDOW)
    assert gaps == 1


def test_a_tail_longer_than_the_window_is_read_whole() -> None:
    log = _Log([_lines(1, 500)])
    printed, _ = _follow(log, tail=450, polls=0)
    assert printed == _lines(51, 500)
    assert log.tails == [450]


def test_follow_ends_with_not_found_when_the_bot_is_removed() -> None:
    log = _Log([["a"], ["b"]], removed_after=2)
    with Api("http://platform.test", "key", transport=httpx.MockTransport(log.handle)) as api:
        printed: list[str] = []
        with pytest.raises(ApiError) as raised:
            logs.follow(api, BOT, 10, 0.0, printed.extend, lambda: None, sleep=lambda _s: None)
    assert raised.value.status == 404
    assert printed == ["a", "b"]
