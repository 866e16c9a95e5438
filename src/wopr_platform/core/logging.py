"""Logs on stderr: structured JSON, one object per line with the fields passed as `extra={...}` (for machines,
and in production), or one plain line per record for a person at a terminal."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Render a record as one JSON line with time, level, logger, message and any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ConsoleFormatter(logging.Formatter):
    """Render a record for a person: local time, level, message, then the extra fields as `key=value`; coloured
    by level when `colour`."""

    COLOURS = {"debug": "2", "info": "36", "warning": "33", "error": "31", "critical": "1;31"}

    def __init__(self, *, colour: bool) -> None:
        super().__init__()
        self._colour = colour

    def format(self, record: logging.LogRecord) -> str:
        level = record.levelname.lower()
        when = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        shown = f"{level:<7}"
        if self._colour:
            shown = f"\x1b[{self.COLOURS.get(level, '0')}m{shown}\x1b[0m"
        fields = " ".join(
            f"{key}={_plain(value)}"
            for key, value in record.__dict__.items()
            if key not in _STANDARD and not key.startswith("_") and key != "color_message"
        )
        line = f"{when} {shown} {record.getMessage()}" + (f"  {fields}" if fields else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _plain(value: object) -> str:
    """A field's value as one token: quoted when it holds a space or is empty."""
    text = str(value)
    return json.dumps(text) if not text or any(c.isspace() or c == '"' for c in text) else text


def for_people(log_format: str, *, env: str, terminal: bool) -> bool:
    """Whether logs are plain lines: asked for, or `auto` on a terminal outside production."""
    return log_format == "console" or (log_format == "auto" and terminal and env != "production")


def configure_logging(level: str, *, console: bool = False) -> None:
    """Send every logger through one formatter at `level` (uvicorn's included): JSON, or plain lines when
    `console` (coloured when stderr is a terminal)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ConsoleFormatter(colour=sys.stderr.isatty()) if console else JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
