"""What the engine holds right now, kept in memory so that reads never ask Docker once per bot."""

from __future__ import annotations

import time
from collections import deque

from wopr_platform.docker.types import ContainerInfo

CRASH_LOOP_EXITS = 3
CRASH_LOOP_WINDOW_SECONDS = 120.0


class ObservedState:
    """Managed containers by id, indexed by bot; fed by the event watcher, resyncs and our own operations."""

    def __init__(self) -> None:
        self._containers: dict[str, ContainerInfo] = {}
        self._by_bot: dict[str, set[str]] = {}
        self.synced_at: float | None = None
        self.stale_reason: str | None = "not synchronised yet"
        self._signalled: set[str] = set()
        self._crashes: dict[str, deque[float]] = {}
        # grows with every change of the containers held: the probes, the sampler and the list's census look through
        # them again only when it moved
        self.version = 0

    def note_event(self, action: str, container_id: str, bot_id: str | None, exit_code: str | None) -> None:
        """Remember what the state alone cannot tell: was a container stopped by someone, or did it crash?"""
        if action in ("kill", "stop"):
            self._signalled.add(container_id)
        elif action == "start":
            self._signalled.discard(container_id)
        elif action == "die" and bot_id and container_id not in self._signalled and exit_code not in (None, "0"):
            exits = self._crashes.setdefault(bot_id, deque(maxlen=CRASH_LOOP_EXITS))
            exits.append(time.monotonic())

    def stopped_by_signal(self, container_id: str) -> bool:
        """The container was stopped or killed (by the platform or by hand), not ended by itself."""
        return container_id in self._signalled

    def crash_looping(self, bot_id: str) -> bool:
        """The bot's container exited with an error CRASH_LOOP_EXITS times within the window."""
        exits = self._crashes.get(bot_id)
        if not exits or len(exits) < CRASH_LOOP_EXITS:
            return False
        return time.monotonic() - exits[0] <= CRASH_LOOP_WINDOW_SECONDS

    def apply(self, info: ContainerInfo) -> None:
        """Record (or refresh) one container."""
        self.version += 1
        self._unindex(info.id)
        self._containers[info.id] = info
        if info.bot_id:
            self._by_bot.setdefault(info.bot_id, set()).add(info.id)

    def forget(self, container_id: str) -> None:
        """Drop a container that no longer exists."""
        self.version += 1
        self._signalled.discard(container_id)
        self._unindex(container_id)

    def _unindex(self, container_id: str) -> None:
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
                known.networks = info.networks if info.networks is not None else known.networks
                fresh[info.id] = known
            else:
                fresh[info.id] = info
        self.version += 1  # also when the listing is empty: every container held is gone
        self._containers = {}
        self._by_bot = {}
        self._signalled &= set(fresh)
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
