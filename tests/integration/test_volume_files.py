"""A volume's files through the real engine (docker/engine.py): read as a tar stream, packed into a sealed archive,
unpacked with every entry checked, and written into a fresh volume that then holds the same files; a hostile
archive leaves the fresh volume as it was."""

from __future__ import annotations

import io
import os
import tarfile
import uuid
from collections.abc import AsyncIterator

import aiodocker
import pytest

from tests.conftest import STUB_IMAGE
from wopr_platform.backups.archive import Manifest, TarGuard, pack, unpack
from wopr_platform.core.errors import ArchiveRefused
from wopr_platform.core.networks import SubnetPool
from wopr_platform.crypto.stream import StreamKeys
from wopr_platform.docker.engine import LABEL_VOLUME_HELPER, VOLUME_ROOT, DockerEngine

pytestmark = pytest.mark.slow

KEYS = StreamKeys("v" * 40)
FACTS = {"bot_id": "b", "tenant_id": "t", "image": STUB_IMAGE, "created_at": "2026-12-06T00:00:00Z"}


def _tar(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        root = tarfile.TarInfo(VOLUME_ROOT)
        root.type, root.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(root)
        for name, data in files.items():
            info = tarfile.TarInfo(f"{VOLUME_ROOT}/{name}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(f"{VOLUME_ROOT}/{name}")
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return out.getvalue()


async def _once(data: bytes) -> AsyncIterator[bytes]:
    for at in range(0, len(data), 100_000):
        yield data[at : at + 100_000]


async def _files(engine: DockerEngine, volume: str) -> dict[str, bytes]:
    raw = b"".join([chunk async for chunk in engine.volume_files(volume, STUB_IMAGE)])
    found = {}
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for member in tar:
            if member.isreg():
                extracted = tar.extractfile(member)
                assert extracted is not None
                found[member.name.removeprefix(VOLUME_ROOT + "/")] = extracted.read()
            elif member.issym():
                found[member.name.removeprefix(VOLUME_ROOT + "/")] = b"-> " + member.linkname.encode()
    return found


@pytest.fixture
async def engine(stub_image: str, docker: aiodocker.Docker) -> AsyncIterator[DockerEngine]:
    platform_id = "vf-" + uuid.uuid4().hex[:8]
    engine = DockerEngine(
        "unix:///var/run/docker.sock",
        timeout=30,
        platform_id=platform_id,
        subnets=SubnetPool.parse(["10.200.0.0/14"], 27),
    )
    made: list[str] = []
    engine.made = made  # type: ignore[attr-defined]
    try:
        yield engine
    finally:
        for volume in made:
            await engine.remove_volume(volume)
        await engine.close()
        helpers = await docker.containers.list(all=True, filters={"label": [f"wopr.platform={platform_id}"]})
        assert helpers == [], "a volume helper container was left behind"


async def _volume(engine: DockerEngine) -> str:
    name = "wopr-test-vf-" + uuid.uuid4().hex[:10]
    await engine.ensure_volume(name, {"wopr.test": "volume-files"})
    engine.made.append(name)  # type: ignore[attr-defined]
    return name


async def test_a_volume_goes_through_a_sealed_archive_into_a_fresh_volume_whole(engine: DockerEngine) -> None:
    files = {"config.json": b'{"name": "bot"}', "memory/notes.md": os.urandom(3 * 1024 * 1024), "empty": b""}
    source = await _volume(engine)
    await engine.write_volume_files(source, STUB_IMAGE, _once(_tar(files, {"current": "memory/notes.md"})))
    expected = {**files, "current": b"-> memory/notes.md"}
    assert await _files(engine, source) == expected

    made: list[Manifest] = []
    archive = b"".join([part async for part in pack(KEYS, engine.volume_files(source, STUB_IMAGE), FACTS, made)])
    fresh = await _volume(engine)
    opened: list[Manifest] = []
    guard = TarGuard(most_bytes=64 * 1024 * 1024, most_entries=1000)
    await engine.write_volume_files(fresh, STUB_IMAGE, unpack(KEYS, _once(archive), guard, opened))
    assert opened == made
    assert await _files(engine, fresh) == expected
    labelled = await engine.client.containers.list(all=True, filters={"label": [LABEL_VOLUME_HELPER]})
    assert [c for c in labelled if c["Labels"].get(LABEL_VOLUME_HELPER) in (source, fresh)] == []


async def test_a_hostile_archive_is_refused_while_it_is_written(engine: DockerEngine) -> None:
    hostile = io.BytesIO()
    with tarfile.open(fileobj=hostile, mode="w") as tar:
        info = tarfile.TarInfo(f"{VOLUME_ROOT}/../../etc/evil")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    archive = b"".join([part async for part in pack(KEYS, _once(hostile.getvalue()), FACTS, [])])
    fresh = await _volume(engine)
    guard = TarGuard(most_bytes=1024 * 1024, most_entries=100)
    with pytest.raises(ArchiveRefused) as refused:
        await engine.write_volume_files(fresh, STUB_IMAGE, unpack(KEYS, _once(archive), guard, []))
    assert refused.value.details["reason"] == "path"
    assert await _files(engine, fresh) == {}
