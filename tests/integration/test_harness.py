"""The test harness itself: a platform that fails to start is an error of the test that started it, and the
next test gets fresh fixtures (a failed start used to escape the event loop and leave pytest's fixtures set up,
so the worker's later tests shared one platform and one database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Platform, PlatformFactory

SEEN: list[str] = []


async def test_a_platform_that_cannot_start_is_an_error_of_its_test(
    make_platform: PlatformFactory, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(RuntimeError, match="exited with status"):
        await make_platform(DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'a-file' / 'platform.db'}")
    started = await make_platform()
    SEEN.append(started.settings.database_url)
    assert (await started.client.get("/fleet/bots")).status_code == 200


async def test_the_next_test_gets_a_platform_of_its_own(platform: Platform) -> None:
    assert platform.settings.database_url not in SEEN
    assert (await platform.client.get("/fleet/bots")).json()["bots"] == []
