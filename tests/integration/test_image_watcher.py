"""The image watcher over a real database, against a registry that rate-limits (a fault faked on purpose)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from tests.fakes.rate_limited_registry import FakeRateLimitedRegistry
from wopr_platform.core.errors import RegistryRateLimited
from wopr_platform.db.engine import create_engine, create_sessionmaker
from wopr_platform.db.migrate import upgrade
from wopr_platform.db.models import Bot, ImageCheck
from wopr_platform.db.unit import Database
from wopr_platform.registry.client import RegistryClient
from wopr_platform.registry.credentials import CredentialStore
from wopr_platform.updates.clock import SystemClock
from wopr_platform.updates.watcher import ImageWatcher

DIGEST = "sha256:" + "a" * 64


async def test_a_rate_limited_registry_is_left_alone_until_retry_after(database_url: str) -> None:
    """429 with Retry-After: 30 → the error is stored, the next check waits at least 30 s, and polls meanwhile
    send nothing to the registry."""
    db = create_engine(database_url)
    await upgrade(db)
    sessions = create_sessionmaker(db)
    registry = RegistryClient(credentials=CredentialStore())
    try:
        async with FakeRateLimitedRegistry(retry_after="30") as fake:
            image = f"{fake.host}/team/app:stable"
            now = datetime.now(UTC)
            async with sessions() as session, session.begin():
                for index in range(3):  # three bots share the reference: one request
                    bot_id = str(uuid.uuid4())
                    session.add(
                        Bot(
                            id=bot_id,
                            tenant_id="default",
                            name=f"rl-{index}",
                            image=image,
                            env={},
                            restart_policy="unless-stopped",
                            volume_name=f"data-{bot_id}",
                            release_channel="stable",
                            update_policy="on-push",
                            desired_state="stopped",
                            image_digest=DIGEST,
                            created_at=now,
                            updated_at=now,
                        )
                    )
            watcher = ImageWatcher(
                db=Database(sessions), registry=registry, clock=SystemClock(), intervals={"stable": 1.0}, jitter=0
            )
            [result] = await watcher.poll()
            assert isinstance(result.exception, RegistryRateLimited)
            assert result.exception.retry_after == 30
            assert fake.requests == ["HEAD /v2/team/app/manifests/stable"]
            async with sessions() as session:
                check = await session.get(ImageCheck, image)
            assert check is not None
            assert (check.error_code, check.failures, check.digest) == ("registry_rate_limited", 1, None)
            assert check.next_check_at is not None
            assert check.next_check_at - datetime.now(UTC) > timedelta(seconds=28)
            assert await watcher.poll() == []  # not due: nothing is sent
            assert len(fake.requests) == 1
    finally:
        await registry.close()
        await db.dispose()
