"""How `wopr` writes: the API's JSON as sent for scripts, Rich tables and short summaries for people, errors as one
line on stderr, and a spinner only where someone is watching a terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console, RenderableType

from wopr_platform.client.api import Reply
from wopr_platform.client.errors import ApiError, ClientError

# the width of output to a pipe or a file: past any line's length, so a script reads every row on one line, whole
PIPED_WIDTH = 100_000


class Format(StrEnum):
    """What a command prints on stdout."""

    TABLE = "table"
    JSON = "json"


OutputOption = Annotated[
    Format,
    typer.Option(
        "--output",
        "-o",
        help="table: a table or a short summary, for people; json: the API's answer exactly as sent, for scripts.",
    ),
]


def console(*, stderr: bool = False) -> Console:
    """A console on stdout or stderr; on a terminal as wide as it is, elsewhere never wrapped (nor cut)."""
    made = Console(stderr=stderr, highlight=False)
    if not made.is_terminal:
        made.width = PIPED_WIDTH
    return made


def emit(reply: Reply, output: Format, human: Callable[[], RenderableType]) -> None:
    """Print an answer: its body as sent for `--output json`, else what `human` makes of it."""
    if output is Format.JSON:
        write(reply.text)
    else:
        console().print(human(), markup=False)  # a summary's names and messages are text, not markup


def say(message: str) -> None:
    """A short human summary on stdout, printed as is (no Rich markup read in names or messages)."""
    console().print(message, markup=False)


def note(message: str) -> None:
    """A remark on stderr that is not the command's answer (a hint, a warning)."""
    console(stderr=True).print(message, markup=False)


def write(text: str) -> None:
    """Raw text on stdout, flushed at once (followed logs reach a pipe line by line)."""
    sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
    sys.stdout.flush()


@contextmanager
def working(message: str) -> Iterator[None]:
    """A spinner on stderr while a long call runs, only when stderr is a terminal."""
    err = console(stderr=True)
    if not err.is_terminal:
        yield
        return
    with err.status(message):
        yield


def _detail(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_detail(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _problem(item: dict[str, Any]) -> str:
    if "field" in item and "message" in item:
        return f"{item['field']}: {item['message']}"
    return _detail(item)


def error_lines(err: ClientError) -> list[str]:
    """The error as `wopr: <message> (<code>; <detail>=<value>...)`, then one line per further problem the API
    listed (e.g. every invalid field)."""
    if not isinstance(err, ApiError):
        return [f"wopr: {err.message}"]
    inline = [err.code] if err.code else []
    listed: list[str] = []
    for name, value in err.details.items():
        if name == "code":
            continue
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            lines = [_problem(item) for item in value]
            listed += [f"  {line}" for line in lines if line != err.message]  # the first is the message itself
        else:
            inline.append(f"{name}={_detail(value)}")
    head = f"wopr: {err.message}" + (f" ({'; '.join(inline)})" if inline else "")
    return [head, *listed]


def report(err: ClientError) -> None:
    """Print a failure on stderr, without markup, colour or traceback."""
    for line in error_lines(err):
        sys.stderr.write(line + "\n")
    sys.stderr.flush()
