"""Backups (issue 16): snapshot and restore of a bot's volume against a raw `tar` of the same volume.

A real platform in-process (local store in its temp data dir) with one running stub bot whose volume is filled
with `--mib` MiB (default 512): half of it random bytes (incompressible: photos, models, encrypted stores), half
text (logs, JSON, notes), in files of 8 MiB plus a thousand small ones.

Each round, interleaved (ABBA):

- **snapshot**: `POST /backups` (the bot paused while its files are read, streamed from the engine through zstd and
  the seal into the store); the answer's `pauseMs` is the bot's pause;
- **raw tar**: `tar -cf <file> -C <the volume's directory on the host> .`, the same bytes uncompressed to the same
  disk, by the host's own tar;
- **restore**: `POST /backups/{id}/restore` (the archive opened and checked as it streams into a fresh volume, the
  bot stopped, moved onto it and started again);
- **raw untar**: `tar -xf <file> -C <an empty directory>`;
- **engine out** and **engine in**: `docker cp <the bot's container>:/data - > <file>` and `docker cp - <a container
  on a fresh volume>:/ < <file>`, the Docker engine's own archive endpoints the platform reads and writes through:
  what any copy through the Docker API (not from the host's disk) costs at least.

The platform's memory during both is its process's resident set size sampled every 10 ms (the benchmark and the
platform are one process: its growth over the level just before is what a snapshot or a restore costs).
Goals: snapshot and restore within 1.5x of the raw tar and untar; pause under 2 s; memory bounded (a few MiB
whatever the volume's size).

    uv run python bench/backups.py [--mib 512] [--rounds 3] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiodocker

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

SECTION = "backups"
SMALL_FILES = 1000


async def exec_in(docker: aiodocker.Docker, container_id: str, script: str) -> None:
    execution = await docker.containers.container(container_id).exec(["sh", "-c", script], stdout=True, stderr=True)
    async with execution.start(detach=False) as stream:
        while await stream.read_out() is not None:
            pass
    inspected = await execution.inspect()
    if inspected.get("ExitCode"):
        raise RuntimeError(f"{script!r} failed with {inspected['ExitCode']}")


async def fill(docker: aiodocker.Docker, container_id: str, mib: int) -> None:
    """Half random, half text, in 8 MiB files, and SMALL_FILES small ones."""
    files = max(1, mib // 8)
    script = (
        f"i=0; while [ $i -lt {files // 2} ]; do dd if=/dev/urandom of=/data/blob$i bs=1M count=8 2>/dev/null;"
        " i=$((i+1)); done;"
        f" i=0; while [ $i -lt {files - files // 2} ]; do"
        ' yes "$i the bot noted something about a user, its memory, its plugins and config" | head -c 8388608'
        " > /data/log$i; i=$((i+1)); done;"
        f" mkdir -p /data/notes; i=0; while [ $i -lt {SMALL_FILES} ]; do echo note $i > /data/notes/n$i;"
        " i=$((i+1)); done"
    )
    await exec_in(docker, container_id, script)


class MemoryWatch:
    """The process's RSS sampled every 10 ms while a block runs: the peak over the level when it began."""

    def __init__(self) -> None:
        self.peak_mb = 0.0

    async def around(self, work: Awaitable[Any]) -> Any:
        base = harness.rss_mb()
        peak = base
        done = False

        async def sample() -> None:
            nonlocal peak
            while not done:
                peak = max(peak, harness.rss_mb())
                await asyncio.sleep(0.01)

        sampler = asyncio.create_task(sample())
        try:
            return await work
        finally:
            done = True
            await sampler
            self.peak_mb = max(self.peak_mb, peak - base)


async def timed(action: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    began = time.perf_counter()
    result = await action()
    return time.perf_counter() - began, result


def run_tar(*args: str) -> None:
    subprocess.run(["tar", *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def docker_cp(source: str, target: str, *, stdin: Path | None = None, stdout: Path | None = None) -> None:
    with (stdin or Path("/dev/null")).open("rb") as given, (stdout or Path("/dev/null")).open("wb") as taken:
        subprocess.run(["docker", "cp", source, target], check=True, stdin=given, stdout=taken)


async def measure(mib: int, rounds: int) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="wopr-bench-backups-"))
    results: dict[str, list[float]] = {
        key: [] for key in ("snapshot", "tar", "engine_out", "restore", "untar", "engine_in", "pause")
    }
    memory = {"snapshot": MemoryWatch(), "restore": MemoryWatch()}
    sizes: dict[str, int] = {}
    made: list[tuple[str, str]] = []  # scratch containers and volumes the engine-in runs wrote into
    docker = aiodocker.Docker()
    try:
        async with harness.running_platform(FLEET_STATS_INTERVAL="3600", BACKUP_INTERVAL="3600") as platform:
            created = await platform.client.post(
                "/fleet/bots", json={"name": "bench-backup", "image": harness.STUB_IMAGE}
            )
            created.raise_for_status()
            bot_id = created.json()["id"]
            harness.log(f"filling the bot's volume with {mib} MiB")
            await fill(docker, created.json()["containerId"], mib)

            async def mountpoint() -> str:
                bot = (await platform.client.get(f"/fleet/bots/{bot_id}")).json()
                info = await docker.containers.container(bot["containerId"]).show()
                return str(next(m["Source"] for m in info["Mounts"] if m["Destination"] == "/data"))

            async def snapshot() -> dict[str, Any]:
                response = await platform.client.post("/backups", json={"botId": bot_id})
                response.raise_for_status()
                return dict(response.json())

            async def restore(backup_id: str) -> None:
                response = await platform.client.post(f"/backups/{backup_id}/restore")
                response.raise_for_status()

            async def raw_tar() -> None:
                source = await mountpoint()
                await asyncio.to_thread(run_tar, "-cf", str(work / "raw.tar"), "-C", source, ".")

            async def raw_untar() -> None:
                target = work / "untarred"
                shutil.rmtree(target, ignore_errors=True)
                target.mkdir()
                await asyncio.to_thread(run_tar, "-xf", str(work / "raw.tar"), "-C", str(target))

            async def engine_out() -> None:
                bot = (await platform.client.get(f"/fleet/bots/{bot_id}")).json()
                await asyncio.to_thread(docker_cp, f"{bot['containerId']}:/data", "-", stdout=work / "engine.tar")

            async def scratch() -> str:
                volume = await docker.volumes.create({"Labels": {"wopr.bench": "backups"}})
                container = await docker.containers.create(
                    {"Image": harness.STUB_IMAGE, "HostConfig": {"Binds": [f"{volume.name}:/data"]}}
                )
                made.append((container.id, volume.name))
                return str(container.id)

            async def engine_in(container_id: str) -> None:
                await asyncio.to_thread(docker_cp, "-", f"{container_id}:/", stdin=work / "engine.tar")

            for round_ in range(rounds):
                order = ("platform", "raw") if round_ % 2 == 0 else ("raw", "platform")
                backup: dict[str, Any] = {}
                for side in order:
                    if side == "platform":
                        elapsed, backup = await timed(lambda: memory["snapshot"].around(snapshot()))
                        results["snapshot"].append(elapsed)
                        results["pause"].append(backup["pauseMs"] / 1000.0)
                        sizes = {"tar": backup["tarBytes"], "archive": backup["archiveBytes"]}
                    else:
                        elapsed, _ = await timed(raw_tar)
                        results["tar"].append(elapsed)
                        elapsed, _ = await timed(engine_out)
                        results["engine_out"].append(elapsed)
                for side in order:
                    if side == "platform":
                        elapsed, _ = await timed(lambda b=backup: memory["restore"].around(restore(b["id"])))
                        results["restore"].append(elapsed)
                    else:
                        elapsed, _ = await timed(raw_untar)
                        results["untar"].append(elapsed)
                        target = await scratch()
                        elapsed, _ = await timed(lambda c=target: engine_in(c))
                        results["engine_in"].append(elapsed)
                await platform.client.delete(f"/backups/{backup['id']}")
                harness.log(
                    f"round {round_ + 1}: snapshot {results['snapshot'][-1]:.2f} s (pause {results['pause'][-1]:.2f}"
                    f" s), tar {results['tar'][-1]:.2f} s, engine out {results['engine_out'][-1]:.2f} s, restore"
                    f" {results['restore'][-1]:.2f} s, untar {results['untar'][-1]:.2f} s, engine in"
                    f" {results['engine_in'][-1]:.2f} s"
                )
    finally:
        for container_id, volume_name in made:
            await docker.containers.container(container_id).delete(force=True)
            await (await docker.volumes.get(volume_name)).delete()
        await docker.close()
        shutil.rmtree(work, ignore_errors=True)
    return {"results": results, "memory": {k: v.peak_mb for k, v in memory.items()}, "sizes": sizes}


def report(facts: dict[str, str], data: dict[str, Any], mib: int, rounds: int) -> str:
    results, memory, sizes = data["results"], data["memory"], data["sizes"]
    median = {key: statistics.median(values) for key, values in results.items()}
    mib_s = {key: (sizes["tar"] / 1024**2) / median[key] for key in results if key != "pause"}
    snapshot_ratio = median["snapshot"] / median["tar"]
    restore_ratio = median["restore"] / median["untar"]
    pause = max(results["pause"])
    met = snapshot_ratio <= 1.5 and restore_ratio <= 1.5 and pause < 2.0
    rows = [
        (
            "snapshot `POST /backups`",
            f"{median['snapshot']:.2f}",
            f"{mib_s['snapshot']:.0f}",
            f"{memory['snapshot']:.1f}",
        ),
        ("raw `tar -c` to a file", f"{median['tar']:.2f}", f"{mib_s['tar']:.0f}", "-"),
        (
            "engine out: `docker cp` from the container to a file",
            f"{median['engine_out']:.2f}",
            f"{mib_s['engine_out']:.0f}",
            "-",
        ),
        (
            "restore `POST /backups/{id}/restore`",
            f"{median['restore']:.2f}",
            f"{mib_s['restore']:.0f}",
            f"{memory['restore']:.1f}",
        ),
        ("raw `tar -x` from the file", f"{median['untar']:.2f}", f"{mib_s['untar']:.0f}", "-"),
        (
            "engine in: `docker cp` from the file into a fresh volume",
            f"{median['engine_in']:.2f}",
            f"{mib_s['engine_in']:.0f}",
            "-",
        ),
    ]
    lines = [
        "## Backups: snapshot and restore of a volume against a raw tar",
        "",
        *harness.facts_lines(facts),
        f"- Parameters: `--mib {mib} --rounds {rounds}`; volume of {sizes['tar'] / 1024**2:.0f} MiB as a tar (half"
        f" random, half text, {SMALL_FILES} small files), archive {sizes['archive'] / 1024**2:.0f} MiB; platform and"
        " raw runs interleaved (ABBA); local store on the same disk",
        "",
        harness.table(("median of each", "seconds", "MiB/s", "peak RSS growth, MiB"), rows),
        "",
        f"Snapshot / raw tar: **{snapshot_ratio:.2f}x**; restore / raw untar: **{restore_ratio:.2f}x**;"
        f" the bot's pause: {', '.join(f'{p:.2f}' for p in results['pause'])} s (longest {pause:.2f} s).",
        "Targets: snapshot and restore within 1.5x of raw, pause under 2 s: **" + ("met" if met else "missed") + "**.",
        f"Against the engine's own archive endpoints (the floor of any copy through the Docker API): snapshot /"
        f" engine out **{median['snapshot'] / median['engine_out']:.2f}x**, restore / engine in"
        f" **{median['restore'] / median['engine_in']:.2f}x**.",
        "The restore's time includes stopping the bot, building its new container on the fresh volume and starting it.",
        "",
        "What bounds it: the platform reads and writes volumes only through the Docker API (no host path, so it works"
        " with a remote or rootless engine), and the engine's archive endpoints alone take 2-3x a raw tar here; the"
        " pause is that read into the spool; the rest of a snapshot is packing (SHA-256, zstd, AES-GCM) and a durable"
        " write (fsync), and of a restore the checks of every entry, the engine's write and the container's stop and"
        " start, on two cores shared with the engine.",
    ]
    return "\n".join(lines)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    harness.build_stub_image()
    facts = await harness.machine_facts()
    data = await measure(args.mib, args.rounds)
    text = report(facts, data, args.mib, args.rounds)
    if args.mib < 512 or args.rounds < 3:
        text = text.replace(
            "\n\n", "\n\n> **Validation run** at reduced scale; the numbers are indicative only.\n\n", 1
        )
    harness.publish(SECTION, text, write=not args.no_write)
    return 0


if __name__ == "__main__":
    sys.exit(harness.run(main))
