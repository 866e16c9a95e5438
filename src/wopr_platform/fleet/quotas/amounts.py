"""What a bot counts against its tenant's quotas: one bot, its effective memory and its CPUs, all integers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from wopr_platform.core.limits import Limits
from wopr_platform.fleet import resources

MILLI = 1000


def mcpus(cpus: float) -> int:
    """CPUs as whole milli-CPUs (the unit usage is kept in, so sums stay exact)."""
    return round(cpus * MILLI)


def cpus(mcpus: int) -> float:
    return mcpus / MILLI


@dataclass(frozen=True, slots=True)
class Amounts:
    """Bots, memory (MiB) and milli-CPUs: a usage, a limit or a change of usage."""

    bots: int
    memory_mb: int
    mcpus: int

    def __add__(self, other: Amounts) -> Amounts:
        return Amounts(self.bots + other.bots, self.memory_mb + other.memory_mb, self.mcpus + other.mcpus)

    def __sub__(self, other: Amounts) -> Amounts:
        return Amounts(self.bots - other.bots, self.memory_mb - other.memory_mb, self.mcpus - other.mcpus)


NONE = Amounts(0, 0, 0)


def of_bot(own: Mapping[str, Any] | None, defaults: Limits) -> Amounts:
    """What one bot with these own `resources` counts: its effective limits (its own over the defaults)."""
    limits = resources.effective(own, defaults)
    return Amounts(1, limits.memory_mb, mcpus(limits.cpus))
