"""The console's calls are marked as the API's rate limit expects (two layers that may not import each other)."""

from __future__ import annotations

from wopr_platform.api import ratelimit
from wopr_platform.web import upstream


def test_the_console_marks_its_calls_with_the_key_the_rate_limit_reads() -> None:
    assert upstream.CONSOLE_CALL == ratelimit.CONSOLE_CALL
