"""The local object store (objectstore/local.py): objects written whole or not at all, keys that cannot leave the
directory, leftovers of interrupted writes swept."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from wopr_platform.core.errors import NotFound, ValidationFailed
from wopr_platform.objectstore.local import LocalStore


async def _chunks(data: bytes, fail_after: int | None = None) -> AsyncIterator[bytes]:
    for index, at in enumerate(range(0, len(data), 100_000)):
        if fail_after is not None and index == fail_after:
            raise RuntimeError("the source broke off")
        yield data[at : at + 100_000]


async def _read(store: LocalStore, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.get(key)])


async def test_an_object_is_written_read_replaced_and_deleted(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "backups")
    data = os.urandom(2_500_000)
    assert await store.put("t-acme/b1.wbk", _chunks(data)) == len(data)
    assert await _read(store, "t-acme/b1.wbk") == data
    assert await store.size("t-acme/b1.wbk") == len(data)
    assert await store.put("t-acme/b1.wbk", _chunks(b"smaller")) == 7
    assert await _read(store, "t-acme/b1.wbk") == b"smaller"
    assert await store.delete("t-acme/b1.wbk") is True
    assert await store.delete("t-acme/b1.wbk") is False
    assert await store.size("t-acme/b1.wbk") is None
    with pytest.raises(NotFound):
        await _read(store, "t-acme/b1.wbk")


async def test_a_write_that_breaks_off_leaves_the_object_as_it_was(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    await store.put("t/b.wbk", _chunks(b"the old object"))
    with pytest.raises(RuntimeError):
        await store.put("t/b.wbk", _chunks(os.urandom(1_000_000), fail_after=3))
    assert await _read(store, "t/b.wbk") == b"the old object"
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["b.wbk"]  # no temporary file left


async def test_keys_cannot_name_a_path_outside_the_directory(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    for key in ("../escape", "t/../../escape", "/etc/passwd", "t/.hidden", "t", "t/b/c", "", "t/b\x00", ".."):
        with pytest.raises(ValidationFailed):
            await store.put(key, _chunks(b"x"))
        with pytest.raises(ValidationFailed):
            await store.delete(key)
    assert not (tmp_path / "escape").exists()


async def test_leftovers_of_interrupted_writes_are_swept(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    await store.put("t/kept.wbk", _chunks(b"kept"))
    (tmp_path / "t" / ".part-0123").write_bytes(b"half")
    assert await store.sweep() == 1
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["kept.wbk"]
    assert await LocalStore(tmp_path / "nothing-yet").sweep() == 0
