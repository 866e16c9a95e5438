"""`GET /fleet/bots` while 16 clients change the fleet: creates, PATCHes, stops and deletes, on the real engine.

The platform runs as its own process (so this script's clients do not share its event loop). `--bots` bots are
made first; then, for `--seconds`, `--writers` clients each repeat a change picked at random (a create; a PATCH of
a bot's env, which replaces its container; a stop; a delete), keeping the fleet near its size, while one reader
times `GET /fleet/bots` back to back. The same reader is timed first with the fleet quiet: the baseline beside
the figure under load, in the same run. Target: p99 under load <= 30 ms.

    uv run python bench/list_under_load.py [--bots 150] [--writers 16] [--seconds 60] [--database sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

SECTION = "list_under_load"
TARGET_P99_MS = 30.0


async def reader(client: httpx.AsyncClient, stop: asyncio.Event) -> list[float]:
    times: list[float] = []
    while not stop.is_set():
        t0 = time.perf_counter()
        response = await client.get("/fleet/bots")
        times.append(time.perf_counter() - t0)
        response.raise_for_status()
    return times


async def writer(
    client: httpx.AsyncClient, bots: list[str], target: int, stop: asyncio.Event, done: Counter[str]
) -> None:
    while not stop.is_set():
        roll = random.random()
        if len(bots) < target * 0.9 or (roll < 0.25 and len(bots) < target * 1.1):
            response = await client.post(
                "/fleet/bots", json={"name": f"load-{uuid.uuid4().hex[:10]}", "image": harness.STUB_IMAGE}
            )
            if response.status_code == 201:
                bots.append(response.json()["id"])
            done[f"create {response.status_code}"] += 1
            continue
        if not bots:
            await asyncio.sleep(0.1)
            continue
        bot = random.choice(bots)
        if roll < 0.5:
            response = await client.patch(f"/fleet/bots/{bot}", json={"env": {"ROUND": uuid.uuid4().hex[:8]}})
            done[f"patch {response.status_code}"] += 1
        elif roll < 0.75:
            response = await client.post(f"/fleet/bots/{bot}/stop")
            done[f"stop {response.status_code}"] += 1
            if response.status_code == 200:
                started = await client.post(f"/fleet/bots/{bot}/start")
                done[f"start {started.status_code}"] += 1
        else:
            with contextlib.suppress(ValueError):
                bots.remove(bot)
            response = await client.delete(f"/fleet/bots/{bot}", params={"removeVolumes": "true"})
            done[f"delete {response.status_code}"] += 1


async def main() -> int:
    args = parse_args()
    harness.build_stub_image()
    facts = await harness.machine_facts()
    folder = Path(tempfile.mkdtemp(prefix="wopr-bench-load-"))
    platform_id = harness.new_platform_id("-load")
    async with contextlib.AsyncExitStack() as stack:
        url = await stack.enter_async_context(harness.database_url(args.database, folder))
        env = harness.platform_env(platform_id, folder, url, f"unix://{harness.DOCKER_SOCKET}")
        platform = harness.PlatformProcess(env, folder / "platform.log")
        stack.push_async_callback(platform.stop)
        await platform.start()
        client = await stack.enter_async_context(platform.client(args.writers + 8))
        bots: list[str] = []
        limit = asyncio.Semaphore(8)

        async def make(index: int) -> None:
            async with limit:
                response = await client.post(
                    "/fleet/bots", json={"name": f"base-{index:04d}", "image": harness.STUB_IMAGE}
                )
            response.raise_for_status()
            bots.append(response.json()["id"])

        await asyncio.gather(*(make(i) for i in range(args.bots)))
        harness.log(f"{len(bots)} bots made; timing the list with the fleet quiet")
        await asyncio.sleep(args.settle)
        quiet_stop = asyncio.Event()
        quiet_task = asyncio.create_task(reader(client, quiet_stop))
        await asyncio.sleep(args.quiet_seconds)
        quiet_stop.set()
        quiet = harness.summary_ms(await quiet_task)

        harness.log(f"{args.writers} writers for {args.seconds:.0f} s")
        stop = asyncio.Event()
        done: Counter[str] = Counter()
        writers = [asyncio.create_task(writer(client, bots, args.bots, stop, done)) for _ in range(args.writers)]
        read = asyncio.create_task(reader(client, stop))
        await asyncio.sleep(args.seconds)
        stop.set()
        loaded = harness.summary_ms(await read)
        await asyncio.gather(*writers)
        harness.log(f"list p99 quiet {quiet['p99']:.1f} ms, under load {loaded['p99']:.1f} ms; changes {dict(done)}")

    f = harness.fmt_ms
    met = loaded["p99"] <= TARGET_P99_MS
    lines = [f"## `GET /fleet/bots` while {args.writers} clients change the fleet ({args.database})", ""]
    lines += harness.facts_lines(facts)
    lines += [
        f"- Parameters: `--bots {args.bots} --writers {args.writers} --seconds {args.seconds:g} --database "
        f"{args.database}`; platform in its own process on the real engine; one reader back to back",
        f"- Changes made under load: {', '.join(f'{k} x{v}' for k, v in sorted(done.items()))}",
        "",
        harness.table(
            ["`GET /fleet/bots`", "p50", "p90", "p99", "max", "n"],
            [
                [
                    "fleet quiet (baseline)",
                    f(quiet["p50"]),
                    f(quiet["p90"]),
                    f(quiet["p99"]),
                    f(quiet["max"]),
                    quiet["n"],
                ],
                ["under load", f(loaded["p50"]), f(loaded["p90"]), f(loaded["p99"]), f(loaded["max"]), loaded["n"]],
            ],
        ),
        "",
        f"Target p99 under load <= {TARGET_P99_MS:g} ms: **{'met' if met else 'NOT met'}**.",
    ]
    harness.publish(f"{SECTION}_{args.database}", "\n".join(lines), write=not args.no_write)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bots", type=int, default=150)
    parser.add_argument("--writers", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--quiet-seconds", type=float, default=10.0)
    parser.add_argument("--settle", type=float, default=10.0)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--no-write", action="store_true")
    return parser.parse_args(argv)


if __name__ == "__main__":
    raise SystemExit(harness.run(main))
