"""A backup's spool (backups/spool.py): what the engine sends is read back whole and in order; the source is
closed whatever happens; the spool leaves no file behind; an unusable spool directory is a 503 with its reason."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wopr_platform.backups.spool import Spool
from wopr_platform.core.errors import SpoolFailed


async def _chunks(count: int, *, fail_at: int | None = None) -> AsyncIterator[bytes]:
    for number in range(count):
        if number == fail_at:
            raise OSError(5, "the engine's stream broke")
        yield bytes([number % 256]) * (1000 + number * 37)


async def test_what_was_spooled_comes_back_whole_and_in_order_and_leaves_no_file(tmp_path: Path) -> None:
    expected = b"".join([chunk async for chunk in _chunks(300)])
    async with Spool(tmp_path) as spool:
        await spool.fill(_chunks(300))
        assert os.listdir(tmp_path) == []  # the spool file has no name
        read = [chunk async for chunk in spool.drain()]
    assert b"".join(read) == expected
    assert max(len(chunk) for chunk in read) <= 256 * 1024


async def test_a_failed_read_is_not_drained(tmp_path: Path) -> None:
    async with Spool(tmp_path) as spool:
        with pytest.raises(OSError, match="stream broke"):
            await spool.fill(_chunks(50, fail_at=20))
        with pytest.raises(RuntimeError):
            await anext(spool.drain())


async def test_a_source_that_is_abandoned_is_closed(tmp_path: Path) -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        try:
            while True:
                await asyncio.sleep(0)
                yield b"x" * 100
        finally:
            closed.set()

    async with Spool(tmp_path) as spool:
        filling = asyncio.create_task(spool.fill(endless()))
        await asyncio.sleep(0.01)
        filling.cancel()
        with pytest.raises(asyncio.CancelledError):
            await filling
    assert closed.is_set()


async def test_a_spool_directory_that_cannot_be_used_is_a_503(tmp_path: Path) -> None:
    with pytest.raises(SpoolFailed) as failed:
        async with Spool(tmp_path / "missing"):
            pass
    assert failed.value.status == 503
    assert str(tmp_path) not in str(failed.value.details)
