"""Backups against the real engine and both stores (a local directory, and moto's S3 server): snapshots of a paused
bot, download and upload, restore into a fresh volume (into the same bot or another one), tenant boundaries,
quotas, hostile archives, schedules and retention."""

from __future__ import annotations

import asyncio
import io
import os
import tarfile
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiodocker
import httpx
import pytest
from aiobotocore.session import get_session

from tests.conftest import TEST_PLATFORM_SECRET, Platform, PlatformFactory
from tests.integration.engine_support import run_in
from tests.integration.test_tenants import as_tenant
from wopr_platform.backups.archive import Manifest, pack
from wopr_platform.billing.runtime import RuntimeBilling
from wopr_platform.crypto.stream import StreamKeys

pytestmark = pytest.mark.slow


async def _bucket(url: str) -> str:
    bucket = "wopr-" + uuid.uuid4().hex[:12]
    async with get_session().create_client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test"
    ) as client:
        await client.create_bucket(Bucket=bucket)
    return bucket


@pytest.fixture(params=["local", "s3"])
async def store_settings(request: pytest.FixtureRequest, s3_server: str) -> dict[str, Any]:
    """The settings of one backup store: the default local directory, or a bucket of moto's S3 server."""
    if request.param == "local":
        return {}
    return {
        "BACKUP_STORE": "s3",
        "BACKUP_S3_ENDPOINT": s3_server,
        "BACKUP_S3_BUCKET": await _bucket(s3_server),
        "BACKUP_S3_ACCESS_KEY": "test",
        "BACKUP_S3_SECRET_KEY": "test",
        "BACKUP_S3_PREFIX": "backups",
    }


# --- helpers --------------------------------------------------------------------------------------------


async def write_note(docker: aiodocker.Docker, platform: Platform, bot_id: str, text: str) -> None:
    bot = await platform.bot(bot_id)
    await run_in(
        docker, bot["containerId"], f"echo {text} > /data/note && mkdir -p /data/deep/er && echo x > /data/deep/er/f"
    )


async def read_note(docker: aiodocker.Docker, platform: Platform, bot_id: str) -> str:
    bot = await platform.wait_for(bot_id, state="running")
    return (await run_in(docker, bot["containerId"], "cat /data/note 2>/dev/null || echo none")).strip()


async def mounts(docker: aiodocker.Docker, container_id: str) -> list[str]:
    info = await docker.containers.container(container_id).show()
    return [m["Name"] for m in info["Mounts"]]


async def bot_volumes(docker: aiodocker.Docker, platform: Platform, bot_id: str) -> list[str]:
    found = await docker.volumes.list(
        filters={"label": [f"wopr.platform={platform.settings.platform_id}", f"wopr.bot-id={bot_id}"]}
    )
    return sorted(v["Name"] for v in found.get("Volumes") or [])


async def backup(platform: Platform, bot_id: str, client: httpx.AsyncClient | None = None) -> dict[str, Any]:
    response = await (client or platform.client).post("/backups", json={"botId": bot_id})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def download(platform: Platform, backup_id: str) -> bytes:
    response = await platform.client.get(f"/backups/{backup_id}/archive")
    assert response.status_code == 200, response.text
    return response.content


async def sealed(tar: bytes, *, tenant: str = "default", bot_id: str = "x") -> bytes:
    """An archive sealed with the test platform's key (what only someone holding PLATFORM_SECRET can make)."""

    async def chunks() -> AsyncIterator[bytes]:
        yield tar

    facts = {"bot_id": bot_id, "tenant_id": tenant, "image": "x", "created_at": datetime.now(UTC).isoformat()}
    made: list[Manifest] = []
    return b"".join([part async for part in pack(StreamKeys(TEST_PLATFORM_SECRET), chunks(), facts, made)])


def tar_of(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return out.getvalue()


def entry(name: str, data: bytes = b"", **fields: Any) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in fields.items():
        setattr(info, key, value)
    return info, data


# --- tests ----------------------------------------------------------------------------------------------


async def test_a_backup_is_made_downloaded_and_restored_into_a_fresh_volume(
    make_platform: PlatformFactory, docker: aiodocker.Docker, store_settings: dict[str, Any]
) -> None:
    platform = await make_platform(**store_settings)
    bot = await platform.create_bot()
    bot_id = bot["id"]
    await platform.wait_for(bot_id, state="running", health="healthy")
    await write_note(docker, platform, bot_id, "before")

    made = await backup(platform, bot_id)
    assert made["state"] == "ready" and made["kind"] == "manual" and made["botId"] == bot_id
    assert made["pauseMs"] is not None and made["pauseMs"] >= 0  # the running bot was paused for the copy
    assert made["tarBytes"] > 0 and len(made["sha256"]) == 64 and made["archiveBytes"] > 0
    # the bot runs on, unpaused
    assert (await platform.wait_for(bot_id, state="running", health="healthy"))["containerId"] == bot["containerId"]

    archive = await download(platform, made["id"])
    assert len(archive) == made["archiveBytes"]
    assert b"before" not in archive  # sealed: the data is not readable in it

    await write_note(docker, platform, bot_id, "after")
    volume_before = await mounts(docker, bot["containerId"])
    response = await platform.client.post(f"/backups/{made['id']}/restore")
    assert response.status_code == 200, response.text
    restored = await platform.wait_for(bot_id, state="running", health="healthy")
    assert restored["containerId"] != bot["containerId"]
    assert await read_note(docker, platform, bot_id) == "before"
    assert (await run_in(docker, restored["containerId"], "cat /data/deep/er/f")).strip() == "x"
    # the bot moved onto a fresh volume; the one it left is gone
    volume_after = await mounts(docker, restored["containerId"])
    assert volume_after != volume_before and volume_after[0].endswith("..1")
    assert await bot_volumes(docker, platform, bot_id) == volume_after

    listed = (await platform.client.get("/backups", params={"botId": bot_id})).json()["backups"]
    assert [b["id"] for b in listed] == [made["id"]]
    response = await platform.client.delete(f"/backups/{made['id']}")
    assert response.status_code == 204
    assert (await platform.client.get(f"/backups/{made['id']}")).status_code == 404
    assert (await platform.client.get(f"/backups/{made['id']}/archive")).status_code == 404


async def test_an_upload_is_checked_whole_and_restores_into_another_bot(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    platform = await make_platform()
    source = (await platform.create_bot())["id"]
    clone = (await platform.create_bot())["id"]
    await platform.wait_for(source, state="running", health="healthy")
    await platform.wait_for(clone, state="running", health="healthy")
    await write_note(docker, platform, source, "cloned")
    archive = await download(platform, (await backup(platform, source))["id"])

    response = await platform.client.post(
        "/backups/upload",
        params={"botId": clone},
        content=archive,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    uploaded = response.json()
    assert uploaded["kind"] == "upload" and uploaded["botId"] == clone and uploaded["state"] == "ready"
    response = await platform.client.post(f"/backups/{uploaded['id']}/restore")
    assert response.status_code == 200, response.text
    assert await read_note(docker, platform, clone) == "cloned"

    # restore straight into another bot (a clone) from the original backup too
    third = (await platform.create_bot())["id"]
    await platform.wait_for(third, state="running")
    assert (await platform.client.post(f"/fleet/bots/{third}/stop")).status_code == 200
    original = (await platform.client.get("/backups", params={"botId": source})).json()["backups"][0]
    response = await platform.client.post(f"/backups/{original['id']}/restore", json={"botId": third})
    assert response.status_code == 200, response.text
    await platform.client.post(f"/fleet/bots/{third}/start")
    assert await read_note(docker, platform, third) == "cloned"


async def test_tampered_and_hostile_archives_are_refused_and_change_nothing(
    make_platform: PlatformFactory, docker: aiodocker.Docker
) -> None:
    platform = await make_platform(BACKUP_MAX_VOLUME_BYTES=4 * 1024 * 1024)
    bot_id = (await platform.create_bot())["id"]
    await platform.wait_for(bot_id, state="running", health="healthy")
    good = await download(platform, (await backup(platform, bot_id))["id"])

    async def refused(body: bytes) -> dict[str, Any]:
        response = await platform.client.post("/backups/upload", params={"botId": bot_id}, content=body)
        assert response.status_code == 400, response.text
        answer = response.json()
        assert set(answer) == {"error", "details"}
        return dict(answer["details"])

    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0x01
    assert (await refused(bytes(flipped)))["reason"] == "seal"
    assert (await refused(good[: len(good) - 40]))["reason"] == "seal"  # cut short
    assert (await refused(b"not an archive at all"))["reason"] == "seal"
    root = "wopr-volume"
    hostile = {
        "path": tar_of(entry(f"{root}/"), entry(f"{root}/../../etc/passwd", b"x")),
        "link": tar_of(entry(f"{root}/l", type=tarfile.SYMTYPE, linkname="../../../etc")),
        "device": tar_of(entry(f"{root}/dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3)),
    }
    for reason, tar in hostile.items():
        assert (await refused(await sealed(tar)))["reason"] == reason, reason
    absolute = tar_of(entry("/etc/passwd", b"x"))
    assert (await refused(await sealed(absolute)))["reason"] == "path"
    outside = tar_of(entry("elsewhere/file", b"x"))
    assert (await refused(await sealed(outside)))["reason"] == "path"
    big = tar_of(entry(f"{root}/big", os.urandom(5 * 1024 * 1024)))
    assert (await refused(await sealed(big)))["reason"] == "too_large"
    foreign = tar_of(entry(f"{root}/", b""), entry(f"{root}/note", b"hi"))
    assert (await refused(await sealed(foreign, tenant="someone-else")))["reason"] == "tenant"
    # nothing was kept: only the one good backup is listed
    assert len((await platform.client.get("/backups")).json()["backups"]) == 1


async def test_a_bad_archive_in_the_store_leaves_the_bot_on_its_data(
    make_platform: PlatformFactory, docker: aiodocker.Docker, tmp_path: Path
) -> None:
    platform = await make_platform()
    bot = await platform.create_bot()
    await platform.wait_for(bot["id"], state="running", health="healthy")
    await write_note(docker, platform, bot["id"], "kept")
    made = await backup(platform, bot["id"])
    # the stored object is damaged behind the platform's back
    [stored] = list((tmp_path / "backups").rglob(made["id"]))
    data = bytearray(stored.read_bytes())
    data[-100] ^= 0x01
    stored.write_bytes(bytes(data))
    volumes = await bot_volumes(docker, platform, bot["id"])

    response = await platform.client.post(f"/backups/{made['id']}/restore")
    assert response.status_code == 400, response.text
    assert response.json()["details"]["reason"] == "seal" and response.json()["details"]["rolledBack"] is True
    status = await platform.wait_for(bot["id"], state="running", health="healthy")
    assert status["containerId"] == bot["containerId"]  # the old container is back, on its old volume
    assert await read_note(docker, platform, bot["id"]) == "kept"
    assert await bot_volumes(docker, platform, bot["id"]) == volumes  # no fresh volume left behind


async def test_backups_are_the_tenants_own(make_platform: PlatformFactory) -> None:
    platform = await make_platform()
    bot_id = (await platform.create_bot())["id"]
    await platform.wait_for(bot_id, state="running")
    made = await backup(platform, bot_id)
    async with as_tenant(platform, "other") as other:
        assert (await other.get("/backups")).json()["backups"] == []
        for method, path in (
            ("GET", f"/backups/{made['id']}"),
            ("GET", f"/backups/{made['id']}/archive"),
            ("POST", f"/backups/{made['id']}/restore"),
            ("DELETE", f"/backups/{made['id']}"),
        ):
            response = await other.request(method, path)
            assert response.status_code == 404, (method, path, response.text)
        assert (await other.post("/backups", json={"botId": bot_id})).status_code == 404
        response = await other.post("/backups/upload", params={"botId": bot_id}, content=b"x")
        assert response.status_code == 404
        own = (await other.post("/fleet/bots", json={"name": "theirs", "image": "localhost/wopr-stub:latest"})).json()
        # another tenant's backup cannot be restored into one's own bot either
        response = await other.post(f"/backups/{made['id']}/restore", json={"botId": own["id"]})
        assert response.status_code == 404
    assert (await platform.client.get(f"/backups/{made['id']}")).status_code == 200
    assert (await platform.client.get("/backups/not-a-uuid")).status_code == 404
    response = await platform.client.post("/backups", json={"botId": bot_id, "extra": 1})
    assert response.status_code in (400, 422) and set(response.json()) == {"error", "details"}


async def test_a_tenant_over_its_storage_quota_cannot_back_up(make_platform: PlatformFactory) -> None:
    platform = await make_platform()
    bot_id = (await platform.create_bot())["id"]
    await platform.wait_for(bot_id, state="running")
    response = await platform.client.put("/backups/policy", json={"quotaBytes": 1})
    assert response.status_code == 200, response.text
    assert response.json()["effective"]["quotaBytes"] == 1
    await backup(platform, bot_id)  # the first fits (nothing stored yet); it takes the whole quota
    response = await platform.client.post("/backups", json={"botId": bot_id})
    assert response.status_code == 409 and response.json()["details"]["code"] == "quota_exceeded"
    usage = (await platform.client.get("/backups/usage")).json()
    assert usage["quotaBytes"] == 1 and usage["storedBytes"] > 1
    assert len((await platform.client.get("/backups")).json()["backups"]) == 1


class MovableClock:
    def __init__(self) -> None:
        self._offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def move(self, by: timedelta) -> None:
        self._offset += by


async def test_schedules_back_up_and_retention_keeps_the_newest(make_platform: PlatformFactory) -> None:
    clock = MovableClock()
    platform = await make_platform(clock=clock, BACKUP_INTERVAL=0.2)
    bots = [(await platform.create_bot())["id"] for _ in range(2)]
    for bot_id in bots:
        await platform.wait_for(bot_id, state="running")
    response = await platform.client.put("/backups/policy", json={"schedule": "0 * * * *", "keepLast": 2})
    assert response.status_code == 200, response.text
    response = await platform.client.put(f"/fleet/bots/{bots[1]}/backup-policy", json={"keepLast": 1})
    effective = {"schedule": "0 * * * *", "keepLast": 1, "maxAgeDays": 30, "quotaBytes": 20 * 1024**3}
    assert response.json()["effective"] == effective
    assert (await platform.client.put("/backups/policy", json={"schedule": "every hour"})).status_code in (400, 422)

    async def scheduled(bot_id: str) -> list[dict[str, Any]]:
        found = (await platform.client.get("/backups", params={"botId": bot_id})).json()["backups"]
        return [b for b in found if b["kind"] == "scheduled"]

    newest: str | None = None
    for hour in range(3):
        clock.move(timedelta(hours=1))
        deadline = asyncio.get_running_loop().time() + 30
        while True:
            first, second = await scheduled(bots[0]), await scheduled(bots[1])
            if len(first) == min(hour + 1, 2) and len(second) == 1 and first[0]["id"] != newest:
                newest = first[0]["id"]
                break
            assert asyncio.get_running_loop().time() < deadline, (hour, len(first), len(second))
            await asyncio.sleep(0.2)
    assert len(await scheduled(bots[0])) == 2 and len(await scheduled(bots[1])) == 1

    # max age: a backup older than maxAgeDays goes, but never a bot's newest one
    await platform.client.put("/backups/policy", json={"maxAgeDays": 1})
    clock.move(timedelta(days=3))
    deadline = asyncio.get_running_loop().time() + 30
    while len(await scheduled(bots[0])) != 1:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.2)


async def test_backup_storage_is_charged_once_a_day_when_billing_is_on(make_platform: PlatformFactory) -> None:
    clock = MovableClock()
    platform = await make_platform(
        clock=clock, BILLING_ENABLED=True, BILLING_MIN_BALANCE=1, BILLING_INTERVAL=3600, BILLING_BACKUP_PRICE=10**9
    )
    grant = await platform.client.post(
        "/tenants/default/credits/grants", json={"amount": 100_000_000}, headers={"Idempotency-Key": "storage-1"}
    )
    assert grant.status_code == 201, grant.text
    bot_id = (await platform.create_bot())["id"]
    await platform.wait_for(bot_id, state="running")
    billing = platform.app.state.platform.billing
    assert isinstance(billing, RuntimeBilling) and billing._storage is not None
    storage = billing._storage
    await storage.charge_due()  # the cursor starts today: nothing to charge yet
    stored = (await backup(platform, bot_id))["archiveBytes"]
    clock.move(timedelta(days=1))
    assert await storage.charge_due() == 1
    assert await storage.charge_due() == 0  # a day is charged once
    transactions = (await platform.client.get("/billing/transactions")).json()["transactions"]
    [charge] = [t for t in transactions if t["kind"] == "storage"]
    assert charge["amount"] == -(stored * 10**9 // 1024**3)
    assert (await platform.client.get("/billing/ledger-check")).json()["ok"] is True
