"""What the engine holds right now, kept in memory so that reads never ask Docker once per bot."""

from __future__ import annotations

import time

from wopr_platform.docker.types import ContainerInfo


class ObservedState:
    """Managed containers by id, indexed by bot; fed by the event watcher, resyncs and our own operations."""

    def __init__(self) -> None:
        self._containers: dict[str, ContainerInfo] = {}
        self._by_bot: dict[str, set[str]] = {}
        self.synced_at: float | None = None
        self.stale_reason: str | None = "not synchronised yet"

    def apply(self, info: ContainerInfo) -> None:
        """Record (or refresh) one container."""
        self.forget(info.id)
        self._containers[info.id] = info
        if info.bot_id:
            self._by_bot.setdefault(info.bot_id, set()).add(info.id)

    def forget(self, container_id: str) -> None:
        """Drop a container that no longer exists."""
        old = self._containers.pop(container_id, None)
        if old and old.bot_id:
            ids = self._by_bot.get(old.bot_id)
            if ids is not None:
                ids.discard(container_id)
                if not ids:
                    del self._by_bot[old.bot_id]

    def replace_all(self, containers: list[ContainerInfo]) -> None:
        """Take a full listing as the new truth, keeping richer detail already known for unchanged ones."""
        fresh: dict[str, ContainerInfo] = {}
        for info in containers:
            known = self._containers.get(info.id)
            if known is not None and known.detailed and known.state == info.state:
                known.ip_address = info.ip_address or known.ip_address
                fresh[info.id] = known
            else:
                fresh[info.id] = info
        self._containers = {}
        self._by_bot = {}
        for info in fresh.values():
            self.apply(info)
        self.synced_at = time.monotonic()
        self.stale_reason = None

    def mark_stale(self, reason: str) -> None:
        """The engine stopped answering: what we hold is the last known state."""
        self.stale_reason = reason

    def get(self, container_id: str) -> ContainerInfo | None:
        return self._containers.get(container_id)

    def for_bot(self, bot_id: str, container_id: str | None = None) -> ContainerInfo | None:
        """The bot's container: the one the database names if known, else any carrying its label."""
        if container_id and container_id in self._containers:
            return self._containers[container_id]
        ids = self._by_bot.get(bot_id)
        if not ids:
            return None
        return self._containers[next(iter(ids))]

    def containers(self) -> list[ContainerInfo]:
        return list(self._containers.values())

    def needing_detail(self) -> list[str]:
        """Containers known only from a listing (no start time, exit code yet)."""
        return [cid for cid, info in self._containers.items() if not info.detailed]
