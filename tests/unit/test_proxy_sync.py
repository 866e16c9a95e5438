"""The routing table's refresh: a finished rebuild is never joined (joining it would not yield to the loop)."""

from __future__ import annotations

import asyncio

from wopr_platform.proxy.sync import ProxySync


async def test_a_finished_rebuild_is_not_joined_but_a_new_one_runs() -> None:
    sync = object.__new__(ProxySync)  # only the refresh machinery is exercised here
    rebuilds = 0

    async def rebuild() -> bool:
        nonlocal rebuilds
        rebuilds += 1
        await asyncio.sleep(0)
        return True

    sync.rebuild = rebuild  # type: ignore[method-assign]
    finished: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    finished.set_result(True)
    sync._rebuilding = finished  # done, its done-callback not run yet
    assert await sync.refresh() is True
    assert rebuilds == 1
    # two callers at once share one rebuild under way
    sync._rebuilding = None
    await asyncio.gather(sync.refresh(), sync.refresh())
    assert rebuilds == 2
