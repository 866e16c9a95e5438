"""Resource limits of one bot container, and the bounds any limit must stay within."""

from __future__ import annotations

from dataclasses import dataclass

# the least a bot may be given (what the engine accepts and an instance can start with), and an absolute ceiling
MIN_MEMORY_MB = 32
MIN_CPUS = 0.05
MIN_PIDS = 16
CEILING_MEMORY_MB = 1_048_576
CEILING_CPUS = 1024.0
CEILING_PIDS = 4_194_304


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits of one container: memory (MiB, no swap beyond it), CPUs, processes."""

    memory_mb: int
    cpus: float
    pids: int
