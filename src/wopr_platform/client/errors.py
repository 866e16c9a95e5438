"""What can go wrong in the command line, each with the exit code that tells a script what happened."""

from __future__ import annotations

from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """The exit codes of `wopr`, documented in its help and in docs/cli.md."""

    OK = 0
    REFUSED = 1  # the API refused (4xx other than 401 and 404) or failed (5xx)
    USAGE = 2  # a wrong command line (Typer's own)
    NOT_LOGGED_IN = 3  # no stored or given credentials, or the API answered 401
    NOT_FOUND = 4  # the API answered 404
    UNREACHABLE = 5  # the server cannot be reached


class ClientError(Exception):
    """Base of the failures `wopr` reports as one line on stderr and an exit code, never a traceback."""

    exit_code: ExitCode = ExitCode.REFUSED

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotLoggedIn(ClientError):
    """No URL or key to call the API with."""

    exit_code = ExitCode.NOT_LOGGED_IN


class Unreachable(ClientError):
    """The server did not answer: refused connection, unknown host, timeout."""

    exit_code = ExitCode.UNREACHABLE


class ApiError(ClientError):
    """The API answered with an error status and its `{"error", "details"}` body."""

    def __init__(self, status: int, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.status = status
        self.details = details
        if status == 401:
            self.exit_code = ExitCode.NOT_LOGGED_IN
        elif status == 404:
            self.exit_code = ExitCode.NOT_FOUND

    @property
    def code(self) -> str | None:
        """The API's stable machine-readable code of the error, when it gave one."""
        code = self.details.get("code")
        return code if isinstance(code, str) else None


class UnexpectedAnswer(ClientError):
    """The server answered something that is not the platform's API (a proxy's page, another service)."""
