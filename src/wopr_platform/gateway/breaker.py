"""Circuit breakers, one per provider: after a run of failed calls a provider is cut off for a while (calls to it
are refused at once with 503 instead of waiting on it), then one call tries it again; a success closes it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from wopr_platform.core.errors import ProviderUnavailable


@dataclass(slots=True)
class _State:
    failures: int = 0
    open_until: float = 0.0
    probing: bool = False


class Breakers:
    def __init__(self, *, failures: int, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = failures
        self._seconds = seconds
        self._clock = clock
        self._states: dict[str, _State] = {}

    def admit(self, provider: str) -> None:
        """Return when a call to `provider` may go; ProviderUnavailable (503) while it is cut off."""
        state = self._states.get(provider)
        if state is None or state.failures < self._limit:
            return
        now = self._clock()
        if now < state.open_until or state.probing:
            retry = max(1, round(state.open_until - now)) if now < state.open_until else 1
            raise ProviderUnavailable(
                f"provider {provider} is failing; calls to it are held off",
                details={"provider": provider, "retryAfter": retry},
            )
        state.probing = True  # half open: this call tries it, the others wait for its outcome

    def succeeded(self, provider: str) -> None:
        self._states.pop(provider, None)

    def failed(self, provider: str) -> None:
        state = self._states.setdefault(provider, _State())
        state.failures += 1
        state.probing = False
        if state.failures >= self._limit:
            state.open_until = self._clock() + self._seconds

    def released(self, provider: str) -> None:
        """A call that neither succeeded nor failed at the provider (refused before or by the caller) ends."""
        state = self._states.get(provider)
        if state is not None:
            state.probing = False

    def state(self, provider: str) -> str:
        found = self._states.get(provider)
        if found is None or found.failures < self._limit:
            return "closed"
        return "open" if self._clock() < found.open_until else "half-open"
