"""Plans: what a tenant's plan lets it run (quotas, resource tiers, release channels), parsed from BILLING_PLANS."""

from __future__ import annotations

from dataclasses import dataclass

CHANNELS = frozenset({"canary", "staging", "stable", "pinned"})


@dataclass(frozen=True, slots=True)
class Plan:
    """A plan's quotas (None: the platform's defaults) and the tiers and channels its bots may use (None: all)."""

    name: str
    max_bots: int | None = None
    max_memory_mb: int | None = None
    max_cpus: float | None = None
    tiers: frozenset[str] | None = None
    channels: frozenset[str] | None = None


def _whole(part: str, key: str, value: str) -> int:
    if not value.isdigit():
        raise ValueError(f"{part!r}: {key} must be a whole number")
    return int(value)


def parse_plans(text: str, tiers: frozenset[str]) -> dict[str, Plan]:
    """`name=key:value,key:value;name=...` with keys bots, memoryMb, cpus, tiers and channels (alternatives
    joined by `|`), e.g. `starter=bots:3,memoryMb:2048,cpus:2,tiers:small,channels:stable`; ValueError when bad."""
    plans: dict[str, Plan] = {}
    for part in (p.strip() for p in text.split(";") if p.strip()):
        name, _, body = part.partition("=")
        name = name.strip()
        if not name.isidentifier() or name in plans:
            raise ValueError(f"{part!r}: a plan needs a unique name (letters, digits, _)")
        fields: dict[str, object] = {}
        for item in (i.strip() for i in body.split(",") if i.strip()):
            key, _, value = item.partition(":")
            if key == "bots":
                fields["max_bots"] = _whole(part, key, value)
            elif key == "memoryMb":
                fields["max_memory_mb"] = _whole(part, key, value)
            elif key == "cpus":
                try:
                    fields["max_cpus"] = float(value)
                except ValueError:
                    raise ValueError(f"{part!r}: cpus must be a number") from None
            elif key in ("tiers", "channels"):
                names = frozenset(v.strip() for v in value.split("|") if v.strip())
                known = tiers if key == "tiers" else CHANNELS
                if not names or not names <= known:
                    raise ValueError(f"{part!r}: {key} must be some of {', '.join(sorted(known))}")
                fields[key] = names
            else:
                raise ValueError(f"{part!r}: unknown key {key!r} (bots, memoryMb, cpus, tiers, channels)")
        plans[name] = Plan(name, **fields)  # type: ignore[arg-type]
    return plans
