"""The platform as a real operating-system process (`python -m wopr_platform serve`), for tests that kill it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import aiodocker
import httpx

from tests.conftest import ROOT, TOKEN, remove_firewall_chains, remove_networks
from tests.ports import free_port

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


@dataclass
class PlatformProcess:
    """One `wopr-platform serve` process, its stderr in a file, and an authenticated client."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    client: httpx.AsyncClient

    async def wait_exit(self, timeout: float = STOP_TIMEOUT) -> int:
        """Wait for the process to end; returns its return code (-9 after a SIGKILL)."""
        deadline = time.monotonic() + timeout
        while (code := self.proc.poll()) is None:
            if time.monotonic() > deadline:
                raise AssertionError(f"platform {self.name} did not exit within {timeout} s")
            await asyncio.sleep(0.05)
        await self.client.aclose()
        return code

    async def terminate(self) -> int:
        """SIGTERM, as a supervisor stopping the service would; returns the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return await self.wait_exit()

    def stderr(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class ProcessPlatforms:
    """Starts platform processes sharing one database and platform id; prints their logs when a test fails."""

    database_url: str
    platform_id: str
    logs: Path
    started: list[PlatformProcess] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)  # settings every process of the group gets

    def environment(self, port: int, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("WOPR_CRASH_AT", "NODE_ENV")}
        env.update(
            {
                "PORT": str(port),
                "HOST": "127.0.0.1",
                "ENV": "test",
                "LOG_LEVEL": "info",
                "FLEET_API_TOKEN": TOKEN,
                "DATABASE_URL": self.database_url,
                "WOPR_PLATFORM_ID": self.platform_id,
                "WOPR_DATA_DIR": str(self.logs / "data"),
                "FLEET_IMAGE_ALLOWLIST": "localhost/wopr-stub",
                "FLEET_RECONCILE_INTERVAL": "1",
                "FLEET_STOP_TIMEOUT": "5",
                "FLEET_HEALTH_INTERVAL": "1",
                "FLEET_STATS_INTERVAL": "1",
                "PROXY_ENABLED": "false",  # tenant routing only where a test brings its own Caddy
                **self.extra_env,
                **extra,
            }
        )
        return env

    async def start(self, *, crash_at: str | None = None) -> PlatformProcess:
        """Start a process (with WOPR_CRASH_AT when given) and wait until `/health` answers."""
        port = free_port()
        name = chr(ord("A") + len(self.started))
        log = self.logs / f"platform-{name}.stderr"
        extra = {"WOPR_CRASH_AT": crash_at} if crash_at else {}
        with log.open("wb") as sink:
            proc = subprocess.Popen(
                [sys.executable, "-m", "wopr_platform", "serve"],
                cwd=ROOT,
                env=self.environment(port, **extra),
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        client = httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60, trust_env=False
        )
        process = PlatformProcess(name=name, proc=proc, url=url, log=log, client=client)
        self.started.append(process)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                if crash_at:  # the crash point lies in work the platform does on its own at start-up
                    return process
                raise AssertionError(f"platform {name} exited during start-up with {proc.returncode}")
            try:
                if (await client.get("/health", timeout=2)).status_code == 200:
                    return process
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"platform {name} did not answer /health within {START_TIMEOUT} s")
            await asyncio.sleep(0.05)

    async def close(self) -> None:
        """Kill whatever still runs (a test that failed half-way)."""
        for process in self.started:
            if process.proc.poll() is None:
                process.proc.kill()
                process.proc.wait(timeout=STOP_TIMEOUT)
            await process.client.aclose()

    @contextmanager
    def reporting(self) -> Iterator[None]:
        """Print every process's stderr when the block fails (pytest shows it with the failure)."""
        try:
            yield
        except BaseException:
            print(self.report())
            raise

    def report(self) -> str:
        return "\n".join(
            f"----- platform {p.name} (exit {p.proc.returncode}) stderr -----\n{p.stderr()}" for p in self.started
        )


async def remove_platform_objects(platform_id: str) -> None:
    """Remove every container, volume and network labelled with the platform id, and its firewall chains."""
    async with aiodocker.Docker() as client:
        label = f"wopr.platform={platform_id}"
        for container in await client.containers.list(all=True, filters={"label": [label]}):
            try:
                await container.delete(force=True)
            except aiodocker.DockerError as err:
                if err.status not in (404, 409):  # gone, or being removed by a platform that was just stopped
                    raise
        for _ in range(100):  # removals a stopped platform left in progress
            if not await client.containers.list(all=True, filters={"label": [label]}):
                break
            await asyncio.sleep(0.1)
        volumes = await client.volumes.list(filters={"label": [label]})
        for volume in volumes.get("Volumes") or []:
            await (await client.volumes.get(volume["Name"])).delete()
        await remove_networks(client, label)
    await remove_firewall_chains(platform_id)


@asynccontextmanager
async def process_platforms(database_url: str, logs: Path) -> AsyncIterator[ProcessPlatforms]:
    """Platform processes on one database and a platform id of their own; killed and cleaned up after."""
    group = ProcessPlatforms(database_url=database_url, platform_id="c-" + uuid.uuid4().hex[:10], logs=logs)
    try:
        yield group
    finally:
        await group.close()
        await remove_platform_objects(group.platform_id)
