"""Crash points: named places in multi-step operations where tests kill the real process.

Only honoured when the platform runs with ENV=test and WOPR_CRASH_AT names the point; the kill is a real
SIGKILL of the process, so what the next start finds is exactly what a power cut would leave.
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)


class CrashPoints:
    def __init__(self, target: str | None) -> None:
        self._target = target or None

    def reached(self, name: str) -> None:
        """Kill this process with SIGKILL if `name` is the configured crash point."""
        if self._target is not None and name == self._target:
            log.warning("crash point reached; killing the process", extra={"point": name})
            for handler in logging.getLogger().handlers:
                handler.flush()
            os.kill(os.getpid(), signal.SIGKILL)
