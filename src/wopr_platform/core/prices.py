"""The hourly price of a running bot, by resource tier: parsed from BILLING_RUNTIME_PRICES."""

from __future__ import annotations

from dataclasses import dataclass

MAX_PRICE_PER_HOUR = 1_000_000_000  # micro-dollars: 1,000 USD an hour


@dataclass(frozen=True, slots=True)
class Tier:
    """Bots whose effective memory limit is at most `memory_mb` pay `per_hour` micro-dollars an hour."""

    name: str
    memory_mb: int
    per_hour: int


@dataclass(frozen=True, slots=True)
class RuntimePrices:
    """The tiers, smallest first; a bot pays the first tier its memory fits (the largest when it fits none)."""

    tiers: tuple[Tier, ...]

    @classmethod
    def parse(cls, text: str) -> RuntimePrices:
        """`name:memoryMb:microsPerHour,...`, e.g. `small:512:7000,standard:1024:14000`; ValueError when bad."""
        tiers = []
        for part in (p.strip() for p in text.split(",") if p.strip()):
            fields = part.split(":")
            if len(fields) != 3 or not fields[0].isidentifier():
                raise ValueError(f"{part!r} is not name:memoryMb:microsPerHour")
            try:
                memory, price = int(fields[1]), int(fields[2])
            except ValueError:
                raise ValueError(f"{part!r}: memory and price must be whole numbers") from None
            if memory < 1 or not 0 <= price <= MAX_PRICE_PER_HOUR:
                raise ValueError(f"{part!r}: memory must be at least 1 MB and the price 0..{MAX_PRICE_PER_HOUR}")
            tiers.append(Tier(fields[0], memory, price))
        if not tiers:
            raise ValueError("at least one tier is needed")
        tiers.sort(key=lambda tier: tier.memory_mb)
        if len({tier.memory_mb for tier in tiers}) != len(tiers) or len({t.name for t in tiers}) != len(tiers):
            raise ValueError("tier names and memory sizes must be unique")
        return cls(tuple(tiers))

    def tier(self, memory_mb: int) -> Tier:
        """The tier of a bot with this effective memory limit."""
        for tier in self.tiers:
            if memory_mb <= tier.memory_mb:
                return tier
        return self.tiers[-1]

    def text(self) -> str:
        return ",".join(f"{t.name}:{t.memory_mb}:{t.per_hour}" for t in self.tiers)
