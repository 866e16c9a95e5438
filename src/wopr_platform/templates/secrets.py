"""The platform's own values for template variables: `WOPR_SECRET_<NAME>` env vars and an optional file.

The file (`FLEET_TEMPLATE_SECRETS`) holds `NAME=value` lines; blank lines and `#` comments are ignored, an
`export ` prefix is allowed, and one pair of matching quotes around the value is removed. An env var wins over
the file. The file is read on every use, so a rotated secret applies to the next bot created. Values are never
logged; a bad line is reported by its number only.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Mapping
from pathlib import Path

from wopr_platform.templates.errors import SecretsUnavailable
from wopr_platform.templates.placeholders import VARIABLE_RE

log = logging.getLogger(__name__)

SECRET_ENV_PREFIX = "WOPR_SECRET_"  # noqa: S105 (a name prefix, not a secret)
MAX_SECRETS_FILE_BYTES = 1024 * 1024


def parse_secrets(text: str) -> tuple[dict[str, str], list[int]]:
    """The values in a secrets file's text, and the numbers of the lines that could not be read."""
    values: dict[str, str] = {}
    bad: list[int] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = line.removeprefix("export ").lstrip()
        name, sep, value = line.partition("=")
        name = name.strip()
        if not sep or not VARIABLE_RE.match(name) or "\x00" in value:
            bad.append(number)
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values, bad


class SecretStore:
    """Where `${VAR}` placeholders are looked up when the request does not give a value."""

    def __init__(self, *, environ: Mapping[str, str], file: Path | None) -> None:
        self._environ = environ
        self._file = file
        self._warned_mode = False

    def values(self) -> dict[str, str]:
        """Every configured secret by variable name (blocking: reads the file)."""
        values = self._read_file() if self._file is not None else {}
        for key, value in self._environ.items():
            name = key[len(SECRET_ENV_PREFIX) :]
            if key.startswith(SECRET_ENV_PREFIX) and VARIABLE_RE.match(name):
                values[name] = value
        return values

    def _read_file(self) -> dict[str, str]:
        assert self._file is not None
        try:
            info = self._file.stat()
            if info.st_size > MAX_SECRETS_FILE_BYTES:
                raise SecretsUnavailable("the template secrets file is too large", details={"file": str(self._file)})
            text = self._file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
            log.warning("cannot read the template secrets file", extra={"file": str(self._file), "reason": reason})
            raise SecretsUnavailable(
                "the template secrets file cannot be read", details={"file": self._file.name}
            ) from None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO) and not self._warned_mode:
            self._warned_mode = True
            log.warning("the template secrets file is readable by other users", extra={"file": str(self._file)})
        values, bad = parse_secrets(text)
        if bad:
            log.warning(
                "ignored unreadable lines in the template secrets file", extra={"file": str(self._file), "lines": bad}
            )
        return values
