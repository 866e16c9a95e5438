"""The object stores, each test on both: the local directory (objectstore/local.py) and S3 (objectstore/s3.py)
against a real S3 server, moto's, started by the tests. Objects are written whole or not at all, keys cannot leave
the store, leftovers of interrupted writes are swept."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from wopr_platform.core.errors import NotFound, ValidationFailed
from wopr_platform.objectstore.local import LocalStore
from wopr_platform.objectstore.s3 import PART_BYTES, S3Store

Store = LocalStore | S3Store


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, s3_server: str) -> AsyncIterator[Store]:
    if request.param == "local":
        yield LocalStore(tmp_path / "store")
        return
    s3 = await _s3_store(s3_server)
    try:
        yield s3
    finally:
        await s3.close()


async def _s3_store(url: str) -> S3Store:
    """A store on a bucket of its own."""
    bucket = "wopr-" + uuid.uuid4().hex[:12]
    s3 = S3Store(bucket=bucket, endpoint_url=url, region="us-east-1", access_key="test", secret_key="test", prefix="b")
    client: Any = await s3._s3()
    await client.create_bucket(Bucket=bucket)
    return s3


async def _chunks(data: bytes, fail_after: int | None = None) -> AsyncIterator[bytes]:
    for index, at in enumerate(range(0, len(data), 100_000)):
        if fail_after is not None and index == fail_after:
            raise RuntimeError("the source broke off")
        yield data[at : at + 100_000]


async def _read(store: Store, key: str) -> bytes:
    return b"".join([chunk async for chunk in store.get(key)])


async def test_an_object_is_written_read_replaced_and_deleted(store: Store) -> None:
    data = os.urandom(2 * PART_BYTES + 12_345)  # in parts, on S3
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


async def test_a_write_that_breaks_off_leaves_the_object_as_it_was(store: Store, tmp_path: Path) -> None:
    await store.put("t/b.wbk", _chunks(b"the old object"))
    with pytest.raises(RuntimeError):  # after a part went up, on S3
        await store.put("t/b.wbk", _chunks(os.urandom(PART_BYTES + 500_000), fail_after=86))
    assert await _read(store, "t/b.wbk") == b"the old object"
    if isinstance(store, LocalStore):
        assert sorted(p.name for p in (tmp_path / "store" / "t").iterdir()) == ["b.wbk"]  # no temporary file
    else:
        client: Any = await store._s3()
        assert (await client.list_multipart_uploads(Bucket=store._bucket)).get("Uploads", []) == []  # aborted


async def test_keys_cannot_name_a_path_outside_the_store(store: Store, tmp_path: Path) -> None:
    for key in ("../escape", "t/../../escape", "/etc/passwd", "t/.hidden", "t", "t/b/c", "", "t/b\x00", ".."):
        with pytest.raises(ValidationFailed):
            await store.put(key, _chunks(b"x"))
        with pytest.raises(ValidationFailed):
            await store.delete(key)
    assert not (tmp_path / "escape").exists()


async def test_leftovers_of_interrupted_local_writes_are_swept(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    await store.put("t/kept.wbk", _chunks(b"kept"))
    (tmp_path / "t" / ".part-0123").write_bytes(b"half")
    assert await store.sweep() == 0  # it may be a write in progress: kept until it is an hour old
    assert await store.sweep(older_than=timedelta(0)) == 1
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["kept.wbk"]
    assert await LocalStore(tmp_path / "nothing-yet").sweep() == 0


async def test_uploads_left_open_on_s3_are_swept(s3_server: str) -> None:
    store = await _s3_store(s3_server)
    client: Any = await store._s3()
    await client.create_multipart_upload(Bucket=store._bucket, Key="b/t/left.wbk")
    # (moto reports every upload as begun in 2010: "older than a century" stays, "older than nothing" goes)
    assert await store.sweep(older_than=timedelta(days=36_500)) == 0
    assert await store.sweep(older_than=timedelta(0)) == 1
    assert (await client.list_multipart_uploads(Bucket=store._bucket)).get("Uploads", []) == []
    await store.close()
