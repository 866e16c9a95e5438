"""What the Docker adapter speaks: the project's own view of containers and engine events."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from wopr_platform.core.limits import Limits


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """Everything needed to create one bot container; every name in it was derived by the platform."""

    name: str
    image: str
    env: dict[str, str]
    labels: dict[str, str]
    volume: str
    restart_policy: str
    stop_timeout: int
    network: str
    limits: Limits
    # `name:host-gateway` entries: names the container resolves to the host (the services offered to bots)
    extra_hosts: tuple[str, ...] = ()


@dataclass(slots=True)
class ContainerInfo:
    """One managed container as the engine last described it."""

    id: str
    name: str
    bot_id: str | None
    tenant_id: str | None
    state: str
    image: str
    image_id: str
    created_at: datetime | None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    oom_killed: bool = False
    restart_count: int = 0
    restart_policy: str | None = None  # as the engine applies it (None: not known, the container not inspected)
    ip_address: str | None = None
    networks: tuple[str, ...] | None = None  # the networks it is attached to (None: not known)
    labels: dict[str, str] = field(default_factory=dict)
    env: list[str] = field(default_factory=list)
    detailed: bool = False


@dataclass(frozen=True, slots=True)
class VolumeInfo:
    """A volume the platform made for a bot (it carries the bot's id label)."""

    name: str
    bot_id: str
    tenant_id: str | None


@dataclass(frozen=True, slots=True)
class EngineEvent:
    """A container event from the engine's event stream."""

    action: str
    container_id: str
    bot_id: str | None
    time: datetime
    attributes: dict[str, str]


@dataclass(frozen=True, slots=True)
class ContainerStats:
    """One raw sample of a container's resource counters."""

    cpu_total_ns: int
    system_cpu_ns: int
    online_cpus: int
    memory_usage_bytes: int
    memory_limit_bytes: int
