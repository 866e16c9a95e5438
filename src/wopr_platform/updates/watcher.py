"""Background loop `image-watcher`: one registry check per image reference per interval, for the whole fleet."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import IntegrityError

from wopr_platform.core.errors import PlatformError, RegistryRateLimited
from wopr_platform.core.metrics import PlatformMetrics
from wopr_platform.core.reference import ImageReference, InvalidReference
from wopr_platform.core.rounds import run_rounds
from wopr_platform.db.models import ImageCheck
from wopr_platform.db.unit import Database
from wopr_platform.registry.client import RegistryClient
from wopr_platform.updates.clock import Clock
from wopr_platform.updates.repository import UpdateRepository

log = logging.getLogger(__name__)

TICK_SECONDS = 1.0
MAX_CONCURRENT_CHECKS = 4
MAX_BACKOFF = timedelta(hours=6)


@dataclass(frozen=True, slots=True)
class CheckResult:
    reference: str
    digest: str | None
    changed: bool
    exception: PlatformError | None


class ImageWatcher:
    """Finds the distinct image references the fleet follows, checks each when its interval is up, and stores
    the digest it found (or the error, with backoff) in `image_checks`.

    A reference used by bots of several channels is checked at the shortest of their intervals; pinned bots
    and images built locally (no registry digest) are not watched. The interval has jitter so that many
    references do not hit a registry in the same second; a failing check backs off exponentially (and never
    sooner than a registry's Retry-After).
    """

    name = "image-watcher"

    def __init__(
        self,
        *,
        db: Database,
        registry: RegistryClient,
        clock: Clock,
        intervals: dict[str, float],
        jitter: float,
        on_new_digest: Callable[[], None] | None = None,
        metrics: PlatformMetrics | None = None,
    ) -> None:
        self._metrics = metrics or PlatformMetrics()
        self._db = db
        self._registry = registry
        self._clock = clock
        self._intervals = intervals
        self._jitter = jitter
        self._on_new_digest = on_new_digest
        self._random = random.Random()  # noqa: S311 - jitter, not cryptography
        self._wake = asyncio.Event()
        self._locks: dict[str, asyncio.Lock] = {}  # one stored check of a reference at a time

    def kick(self) -> None:
        """Look for due references now (e.g. a bot started following a new one)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        await run_rounds(stop, self._wake, TICK_SECONDS, self.poll, "image check round")

    async def poll(self, *, force: bool = False) -> list[CheckResult]:
        """Check every reference whose time has come (every one with `force`); returns what was checked."""
        now = self._clock.now()
        async with self._db.read() as session:
            repo = UpdateRepository(session)
            intervals: dict[str, float] = {}
            for row in await repo.tracked_references():
                image, channel = str(row.image), str(row.release_channel)
                interval = self._intervals.get(channel)
                if interval is not None:
                    intervals[image] = min(interval, intervals.get(image, interval))
            checks = await repo.checks(list(intervals)) if intervals else {}
        due = [
            ref
            for ref in intervals
            if force or (check := checks.get(ref)) is None or check.next_check_at is None or check.next_check_at <= now
        ]
        if not due:
            return []
        limit = asyncio.Semaphore(MAX_CONCURRENT_CHECKS)

        async def one(reference: str) -> CheckResult:
            async with limit:
                return await self.check(reference, interval=intervals[reference])

        results = await asyncio.gather(*(one(ref) for ref in due))
        if any(result.changed for result in results) and self._on_new_digest is not None:
            self._on_new_digest()
        return list(results)

    async def check(self, reference: str, *, interval: float | None = None) -> CheckResult:
        """Ask the registry for the digest `reference` points to now and store the answer (or the error)."""
        if interval is None:
            interval = min(self._intervals.values(), default=1800.0)
        digest: str | None = None
        error: PlatformError | None = None
        try:
            digest = await self._registry.digest(ImageReference.parse(reference))
        except InvalidReference as err:
            error = PlatformError(f"invalid image reference: {err}")
        except PlatformError as err:
            error = err
        lock = self._locks.setdefault(reference, asyncio.Lock())
        async with lock:
            try:
                row, changed = await self._store(reference, interval, digest, error)
            except IntegrityError:  # another replica stored the first check of this reference meanwhile
                row, changed = await self._store(reference, interval, digest, error)
        if not lock.locked():
            self._locks.pop(reference, None)
        self._metrics.image_checks.labels("error" if error is not None else "changed" if changed else "unchanged").inc()
        if error is not None:
            log.warning(
                "image check failed",
                extra={"image": reference, "reason": error.message, "failures": row.failures},
            )
        elif changed:
            log.info("new image digest", extra={"image": reference, "digest": digest})
        return CheckResult(reference, digest, changed, error)

    async def _store(
        self, reference: str, interval: float, digest: str | None, error: PlatformError | None
    ) -> tuple[ImageCheck, bool]:
        now = self._clock.now()
        async with self._db.unit() as session:
            repo = UpdateRepository(session)
            row = await repo.check(reference) or ImageCheck(reference=reference, failures=0)
            changed = False
            if error is None:
                changed = row.digest != digest
                if changed:
                    row.digest, row.digest_seen_at = digest, now
                row.checked_at, row.error, row.error_code, row.failures = now, None, None, 0
                row.next_check_at = now + self._spread(interval)
            else:
                row.failures = (row.failures or 0) + 1
                row.error, row.error_code = error.message, str(error.details.get("code", "registry_error"))
                row.next_check_at = now + self._backoff(interval, row.failures, error)
            await repo.save_check(row)
        return row, changed

    def _spread(self, interval: float) -> timedelta:
        factor = 1 + self._random.uniform(-self._jitter, self._jitter)
        return timedelta(seconds=interval * factor)

    def _backoff(self, interval: float, failures: int, error: PlatformError) -> timedelta:
        wait = timedelta(seconds=interval * 2 ** min(failures - 1, 16))
        wait = min(max(wait, timedelta(seconds=interval)), max(MAX_BACKOFF, timedelta(seconds=interval)))
        if isinstance(error, RegistryRateLimited) and error.retry_after is not None:
            wait = max(wait, timedelta(seconds=error.retry_after))
        return wait
