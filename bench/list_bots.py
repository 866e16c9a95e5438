"""`GET /fleet/bots` latency with many running bots, and how many Docker calls it costs.

The platform's DOCKER_HOST points at a counting unix-socket proxy in front of dockerd, so every Docker API call
it makes is seen. Bots are created through the API (with `--concurrency` parallel clients); with `--stopped N`
N more are created and then stopped through the API (`POST /fleet/bots/{id}/stop`), so the list holds
`--bots` running plus N stopped bots (the issue's scenario: `--bots 200 --stopped 800`, 1000 registered).
The script waits until all are running and healthy (or exited), warms up, then times `--requests` sequential
`GET /fleet/bots`.
The stats collector and resync run at start-up and then only every hour (FLEET_STATS_INTERVAL and
FLEET_RESYNC_INTERVAL default to 3600 here) so that Docker calls in the measured window come from the request
path, the event watcher or health probing (HTTP to the instances, not Docker).
Target: p99 < 50 ms, and no Docker call per request.

    uv run python bench/list_bots.py [--bots 200] [--stopped 0] [--requests 500] [--no-write]
    uv run python bench/list_bots.py --stopped 800     # 1000 registered, 200 running: section list_bots_1000
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

SECTION = "list_bots"
SECTION_WITH_STOPPED = "list_bots_1000"
TARGET_P99_MS = 50.0
DEFAULT_BOTS = 200
DEFAULT_STOPPED = 800  # the scale a --stopped run is compared with (the 1000 registered, 200 running)
DEFAULT_REQUESTS = 500


@dataclass
class Created:
    """What setting up one group of bots cost."""

    latencies: list[float] = field(default_factory=list)  # POST /fleet/bots
    stop_latencies: list[float] = field(default_factory=list)  # POST /fleet/bots/{id}/stop (stopped group)
    failures: list[str] = field(default_factory=list)
    wall: float = 0.0


async def create_bots(
    platform: harness.Platform, count: int, concurrency: int, *, stop: bool = False, first_index: int = 0
) -> Created:
    """Create `count` bots with `concurrency` parallel POSTs (each stopped through the API right after its
    create when `stop`, so the number of running containers never grows by more than `concurrency`)."""
    limit = asyncio.Semaphore(concurrency)
    created = Created()
    done = 0
    what = "created and stopped" if stop else "created"

    async def one(index: int) -> None:
        nonlocal done
        body = {"name": f"bench-{index:04d}-{uuid.uuid4().hex[:6]}", "image": harness.STUB_IMAGE}
        async with limit:
            t0 = time.perf_counter()
            response = await platform.client.post("/fleet/bots", json=body)
            elapsed = time.perf_counter() - t0
            if response.status_code == 201 and stop:
                bot_id = response.json()["id"]
                t1 = time.perf_counter()
                stopped = await platform.client.post(f"/fleet/bots/{bot_id}/stop")
                if stopped.status_code == 200:
                    created.stop_latencies.append(time.perf_counter() - t1)
                else:
                    created.failures.append(f"stop: {stopped.status_code} {stopped.text[:200]}")
        if response.status_code == 201:
            created.latencies.append(elapsed)
        else:
            created.failures.append(f"create: {response.status_code} {response.text[:200]}")
        done += 1
        if done % max(count // 10, 1) == 0 or done == count:
            harness.log(f"{what} {done}/{count} ({len(created.failures)} failed)")

    start = time.perf_counter()
    await asyncio.gather(*(one(first_index + i) for i in range(count)))
    created.wall = time.perf_counter() - start
    return created


async def wait_ready(
    platform: harness.Platform, count: int, timeout: float, stopped: int = 0
) -> tuple[float, Counter[str]]:
    """Poll the list until `count` bots are running and healthy (and `stopped` exited); returns the wait and
    the last state mix."""
    start = time.perf_counter()
    deadline = start + timeout
    while True:
        bots = (await platform.client.get("/fleet/bots")).json()["bots"]
        mix = Counter(f"{b['state']}/{b['health']}" for b in bots)
        if mix.get("running/healthy", 0) >= count and mix.get("exited/none", 0) >= stopped:
            return time.perf_counter() - start, mix
        if time.perf_counter() > deadline:
            harness.log(f"not all bots ready after {timeout:.0f} s: {dict(mix)}")
            return time.perf_counter() - start, mix
        await asyncio.sleep(0.5)


class GcPauses:
    """Pauses of the cyclic garbage collector by generation, via gc.callbacks (whole process)."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self._started = 0.0

    def __enter__(self) -> GcPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)

    def describe(self) -> str:
        parts = []
        for generation, values in self.pauses.items():
            if values:
                parts.append(
                    f"gen {generation}: {len(values)} collections, max {max(values) * 1000:.1f} ms, "
                    f"total {sum(values) * 1000:.0f} ms"
                )
            else:
                parts.append(f"gen {generation}: none")
        return "; ".join(parts)


async def main(args: argparse.Namespace) -> int:
    harness.log("building the stub image")
    harness.build_stub_image()
    facts = await harness.machine_facts()
    proxy = harness.DockerProxy()
    await proxy.start()
    rss: dict[str, float] = {"before platform": harness.rss_mb()}
    result: dict[str, Any] = {}
    try:
        async with harness.running_platform(
            DOCKER_HOST=proxy.url,
            FLEET_STATS_INTERVAL=args.stats_interval,
            FLEET_RESYNC_INTERVAL=args.resync_interval,
        ) as platform:
            rss["platform idle"] = harness.rss_mb()
            harness.log(f"platform {platform.platform_id} up; creating {args.bots} bots, {args.concurrency} at a time")
            running = await create_bots(platform, args.bots, args.concurrency)
            if running.failures:
                harness.log(f"{len(running.failures)} creates failed, first: {running.failures[0]}")
            stopped = Created()
            if args.stopped:
                harness.log(f"creating {args.stopped} more bots and stopping each through the API")
                stopped = await create_bots(platform, args.stopped, args.concurrency, stop=True, first_index=args.bots)
                if stopped.failures:
                    harness.log(f"{len(stopped.failures)} creates/stops failed, first: {stopped.failures[0]}")
            ready_wait, mix = await wait_ready(
                platform, len(running.latencies), args.ready_timeout, stopped=len(stopped.stop_latencies)
            )
            rss[f"{len(running.latencies) + len(stopped.latencies)} bots"] = harness.rss_mb()
            harness.log(f"ready after {ready_wait:.1f} s: {dict(mix)}; {args.warmup} warm-up requests")

            client = platform.client
            for _ in range(args.warmup):
                (await client.get("/fleet/bots")).raise_for_status()
            if args.gc_freeze:
                gc.collect()
                gc.freeze()

            before = proxy.snapshot()
            setup_calls = sum(before.values())
            latencies: list[float] = []
            window_start = time.perf_counter()
            with GcPauses() as pauses:
                for _ in range(args.requests):
                    t0 = time.perf_counter()
                    response = await client.get("/fleet/bots")
                    latencies.append(time.perf_counter() - t0)
                    if response.status_code != 200:
                        raise RuntimeError(f"GET /fleet/bots answered {response.status_code}: {response.text[:300]}")
            window = time.perf_counter() - window_start
            tracked = len(gc.get_objects())
            during = proxy.snapshot() - before
            drift = (await client.get("/fleet/drift")).json()
            rss["after the measured window"] = harness.rss_mb()
            result = {
                "running": running,
                "stopped": stopped,
                "ready_wait": ready_wait,
                "mix": mix,
                "latencies": latencies,
                "window": window,
                "during": during,
                "size": len(response.content),
                "listed": len(response.json()["bots"]),
                "gc": pauses.describe(),
                "setup_calls": setup_calls,
                "tracked": tracked,
                "reconcile_ms": drift.get("lastRunMs"),
            }
    finally:
        await proxy.close()
    rss["peak (whole run)"] = harness.peak_rss_mb()

    stats = harness.summary_ms(result["latencies"])
    met = stats["p99"] < TARGET_P99_MS
    calls = sum(result["during"].values())
    print(
        f"GET /fleet/bots with {result['listed']} bots: p50 {stats['p50']:.1f} ms, p90 {stats['p90']:.1f}, "
        f"p99 {stats['p99']:.1f}, max {stats['max']:.1f} (target p99 < {TARGET_P99_MS:.0f} ms -> "
        f"{'MET' if met else 'NOT MET'}); Docker calls in the window: {calls}"
    )
    text = report(args, facts, result, stats, met, rss)
    harness.publish(SECTION_WITH_STOPPED if args.stopped else SECTION, text, write=args.write)
    return 0


def report(
    args: argparse.Namespace,
    facts: dict[str, str],
    result: dict[str, Any],
    stats: dict[str, float],
    met: bool,
    rss: dict[str, float],
) -> str:
    f = harness.fmt_ms
    validation = args.bots < DEFAULT_BOTS or args.requests < DEFAULT_REQUESTS or (0 < args.stopped < DEFAULT_STOPPED)
    during: Counter[str] = result["during"]
    calls = sum(during.values())
    running: Created = result["running"]
    stopped: Created = result["stopped"]
    if args.stopped:
        title = f"`GET /fleet/bots` with {args.bots + args.stopped} bots registered, {args.bots} of them running"
        scale = f"{args.bots} running + {args.stopped} stopped bots / {args.requests} requests instead of "
        scale += f"{DEFAULT_BOTS} + {DEFAULT_STOPPED} / {DEFAULT_REQUESTS}"
    else:
        title = f"`GET /fleet/bots` with {args.bots} running bots"
        scale = f"{args.bots} bots / {args.requests} requests instead of {DEFAULT_BOTS} / {DEFAULT_REQUESTS}"
    lines = [f"## {title}", ""]
    if validation:
        lines += [
            f"> **Validation run** at reduced scale ({scale}); it checks that the script works, "
            "the numbers are indicative only.",
            "",
        ]
    lines += harness.facts_lines(facts)
    lines += [
        f"- Parameters: `--bots {args.bots}{f' --stopped {args.stopped}' if args.stopped else ''} "
        f"--requests {args.requests} --warmup {args.warmup} "
        f"--concurrency {args.concurrency} --stats-interval {args.stats_interval:g} "
        f"--resync-interval {args.resync_interval:g}{' --gc-freeze' if args.gc_freeze else ''}`; "
        "platform in-process (uvicorn, SQLite WAL in a temp dir, "
        "health interval default), its DOCKER_HOST behind the bench's counting proxy; sequential requests from an "
        "httpx client in the same process and event loop",
        "",
        harness.table(
            ["`GET /fleet/bots`", "p50", "p90", "p99", "max", "mean", "n"],
            [
                [
                    f"{result['listed']} bots, {result['size'] / 1024:.0f} KiB answer",
                    f(stats["p50"]),
                    f(stats["p90"]),
                    f(stats["p99"]),
                    f(stats["max"]),
                    f(stats["mean"]),
                    stats["n"],
                ]
            ],
        ),
        "",
        f"Target p99 < {TARGET_P99_MS:.0f} ms: **{'met' if met else 'NOT met'}** (p99 {stats['p99']:.1f} ms).",
        "",
        f"Docker API calls during the measured window ({args.requests} requests, {result['window']:.1f} s): "
        f"**{calls}**"
        + (
            " — none per request: the list is served from the database and memory."
            if calls < args.requests
            else " — at least one per request."
        )
        + f" (The same proxy counted {result['setup_calls']} calls while the bots were set up.)",
    ]
    if during:
        lines += ["", harness.table(["call", "count"], [[f"`{k}`", v] for k, v in during.most_common()])]
    lines += [
        "",
        f"Python GC during the window (whole process{', after gc.freeze()' if args.gc_freeze else ''}, "
        f"{result['tracked']} tracked objects): {result['gc']}. The reconciler's periodic pass (every "
        f"FLEET_RECONCILE_INTERVAL, default 10 s, over every bot, on the same event loop) last took "
        f"{result['reconcile_ms']} ms (`lastRunMs` of `GET /fleet/drift`).",
        "",
        setup_line(args, running, stopped, result),
        "",
        "Process RSS (the platform runs in the bench process, so this includes the client): "
        + ", ".join(f"{name} {value:.0f} MB" for name, value in rss.items())
        + ".",
    ]
    return "\n".join(lines)


def setup_line(args: argparse.Namespace, running: Created, stopped: Created, result: dict[str, Any]) -> str:
    f = harness.fmt_ms
    created = harness.summary_ms(running.latencies)
    text = (
        f"Setting up: {len(running.latencies)} bots created in {running.wall:.1f} s "
        f"({len(running.latencies) / running.wall:.1f}/s at concurrency {args.concurrency}; "
        f"`POST /fleet/bots` p50 {f(created['p50'])} ms, p90 {f(created['p90'])} ms, max {f(created['max'])} ms; "
        f"{len(running.failures)} failed)"
    )
    if args.stopped:
        again = harness.summary_ms(stopped.latencies)
        stops = harness.summary_ms(stopped.stop_latencies)
        text += (
            f", then {len(stopped.stop_latencies)} more created and stopped in {stopped.wall:.1f} s "
            f"(`POST /fleet/bots` p50 {f(again['p50'])} ms, max {f(again['max'])} ms; "
            f"`POST /fleet/bots/{{id}}/stop` p50 {f(stops['p50'])} ms, p90 {f(stops['p90'])} ms, "
            f"max {f(stops['max'])} ms; {len(stopped.failures)} failed)"
        )
    return text + (
        f"; all running and healthy{' (or exited)' if args.stopped else ''} {result['ready_wait']:.1f} s later "
        f"(last state mix: {dict(result['mix'])})."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bots", type=int, default=DEFAULT_BOTS, help="running bots to list")
    parser.add_argument(
        "--stopped",
        type=int,
        default=0,
        help="more bots to create and then stop through the API (listed too); writes section list_bots_1000",
    )
    parser.add_argument("--requests", type=int, default=DEFAULT_REQUESTS, help="timed sequential requests")
    parser.add_argument("--warmup", type=int, default=50, help="untimed requests first")
    parser.add_argument("--concurrency", type=int, default=8, help="parallel creates while setting up")
    parser.add_argument("--stats-interval", type=float, default=3600, help="FLEET_STATS_INTERVAL for the run")
    parser.add_argument("--resync-interval", type=float, default=3600, help="FLEET_RESYNC_INTERVAL for the run")
    parser.add_argument("--ready-timeout", type=float, default=300, help="seconds to wait for all bots to be healthy")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="experiment: gc.freeze() the process after warm-up (moves start-up objects out of the collector's way)",
    )
    parser.add_argument("--no-write", dest="write", action="store_false", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.bots < 1 or args.requests < 1 or args.concurrency < 1:
        parser.error("--bots, --requests and --concurrency must be at least 1")
    if args.stopped < 0:
        parser.error("--stopped must be 0 or more")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(harness.run(lambda: main(arguments)))
