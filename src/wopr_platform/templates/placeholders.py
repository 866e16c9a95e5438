"""`${VAR}` placeholders in template values: find them, check them, and substitute them.

`$${` stands for a literal `${`, so a value can contain the text `${X}` without naming a variable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

VARIABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,255}\Z")
_TOKEN = re.compile(r"\$\$\{|\$\{([^${}]*)\}|\$\{")


class PlaceholderError(ValueError):
    """A value holds a malformed placeholder."""


def _scan(value: str) -> list[tuple[re.Match[str], str | None]]:
    """Every token of `value`: (match, variable name) for a placeholder, (match, None) for an escaped `$${`."""
    found: list[tuple[re.Match[str], str | None]] = []
    for match in _TOKEN.finditer(value):
        text = match.group(0)
        if text == "$${":
            found.append((match, None))
            continue
        name = match.group(1)
        if name is None:
            raise PlaceholderError("unterminated placeholder: '${' without a closing '}'")
        if not VARIABLE_RE.match(name):
            raise PlaceholderError(f"placeholder ${{{name[:64]}}} does not name a variable ([A-Za-z_][A-Za-z0-9_]*)")
        found.append((match, name))
    return found


def check(value: str) -> None:
    """Raise PlaceholderError if `value` holds a malformed placeholder."""
    _scan(value)


def names(value: str) -> set[str]:
    """The variables `value` refers to."""
    return {name for _, name in _scan(value) if name is not None}


def names_in(values: Iterable[str]) -> set[str]:
    """The variables any of `values` refers to."""
    found: set[str] = set()
    for value in values:
        found |= names(value)
    return found


def substitute(value: str, variables: Mapping[str, str]) -> str:
    """`value` with each placeholder replaced from `variables` (every name must be present) and `$${` unescaped."""
    parts: list[str] = []
    position = 0
    for match, name in _scan(value):
        parts.append(value[position : match.start()])
        parts.append("${" if name is None else variables[name])
        position = match.end()
    parts.append(value[position:])
    return "".join(parts)


def resolve(wanted: Iterable[str], *sources: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Look each wanted variable up in `sources`, first source first; return (values, sorted missing names)."""
    values: dict[str, str] = {}
    missing: list[str] = []
    for name in sorted(set(wanted)):
        for source in sources:
            if name in source:
                values[name] = source[name]
                break
        else:
            missing.append(name)
    return values, missing
