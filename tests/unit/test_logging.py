"""The two log formats (core/logging.py): JSON objects for machines, plain lines for a person."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from wopr_platform.core.logging import ConsoleFormatter, JsonFormatter, for_people


def _record(message: str, exc: bool = False, **extra: object) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("wopr.test", logging.WARNING, __file__, 1, message, None, exc_info)
    record.__dict__.update(extra)
    return record


def test_a_plain_line_holds_the_message_and_every_extra_field_as_one_token() -> None:
    line = ConsoleFormatter(colour=False).format(_record("drift repaired", bot_id="b1", reason="no space left", n=3))
    assert " warning drift repaired  " in line
    assert line.endswith('bot_id=b1 reason="no space left" n=3')
    assert "\x1b[" not in line
    failed = ConsoleFormatter(colour=True).format(_record("failed", exc=True))
    assert "\x1b[33mwarning" in failed and failed.splitlines()[-1] == "ValueError: boom"


def test_the_json_line_keeps_the_fields() -> None:
    entry = json.loads(JsonFormatter().format(_record("drift repaired", bot_id="b1")))
    assert (entry["level"], entry["message"], entry["bot_id"]) == ("warning", "drift repaired", "b1")


@pytest.mark.parametrize(
    ("log_format", "env", "terminal", "plain"),
    [
        ("auto", "development", True, True),
        ("auto", "development", False, False),
        ("auto", "production", True, False),
        ("console", "production", False, True),
        ("json", "development", True, False),
    ],
)
def test_plain_lines_are_for_a_terminal_outside_production_or_when_asked(
    log_format: str, env: str, terminal: bool, plain: bool
) -> None:
    assert for_people(log_format, env=env, terminal=terminal) is plain
