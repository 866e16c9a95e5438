"""A bot's resource limits: the platform's defaults, overridden per bot within the platform's bounds.

A profile stores only its own overrides (camelCase keys as on the wire: `memoryMb`, `cpus`, `pids`); what a
container gets is those over the defaults of the moment (`FLEET_DEFAULT_*`), so a changed default reaches
every bot that does not override it (the spec hash changes, the reconciler recreates).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wopr_platform.core.errors import ValidationFailed
from wopr_platform.core.limits import (
    Limits,
)

KEYS = ("memoryMb", "cpus", "pids")


def effective(overrides: Mapping[str, Any] | None, defaults: Limits) -> Limits:
    """The limits a container runs with: the bot's overrides over the defaults."""
    given = overrides or {}
    return Limits(
        memory_mb=int(given.get("memoryMb", defaults.memory_mb)),
        cpus=float(given.get("cpus", defaults.cpus)),
        pids=int(given.get("pids", defaults.pids)),
    )


def wire(limits: Limits) -> dict[str, Any]:
    return {"memoryMb": limits.memory_mb, "cpus": limits.cpus, "pids": limits.pids}


def check(overrides: Mapping[str, Any], maximum: Limits) -> None:
    """Refuse (400) overrides above the platform's bounds (`FLEET_MAX_*`); the minimums are the schema's."""
    bounds = wire(maximum)
    for key in KEYS:
        value = overrides.get(key)
        if value is not None and value > bounds[key]:
            raise ValidationFailed(
                f"resources.{key} must be at most {bounds[key]}",
                details={"field": f"resources.{key}", "value": value, "maximum": bounds[key]},
            )


def merge(stored: Mapping[str, Any] | None, change: Mapping[str, Any]) -> dict[str, Any] | None:
    """A PATCH's `resources` applied to the stored overrides: given keys replace, null ones fall back to the default."""
    merged = {**(stored or {}), **change}
    kept = {key: merged[key] for key in KEYS if merged.get(key) is not None}
    return kept or None
