"""`GET /fleet/bots` latency with many running bots, and how many Docker calls it costs.

The platform's DOCKER_HOST points at a counting unix-socket proxy in front of dockerd, so every Docker API call
it makes is seen. Bots are created through the API (with `--concurrency` parallel clients), the script waits
until all are running and healthy, warms up, then times `--requests` sequential `GET /fleet/bots`.
The stats collector and resync run at start-up and then only every hour (FLEET_STATS_INTERVAL and
FLEET_RESYNC_INTERVAL default to 3600 here) so that Docker calls in the measured window come from the request
path, the event watcher or health probing (HTTP to the instances, not Docker).
Target: p99 < 50 ms, and no Docker call per request.

    uv run python bench/list_bots.py [--bots 200] [--requests 500] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

SECTION = "list_bots"
TARGET_P99_MS = 50.0
DEFAULT_BOTS = 200
DEFAULT_REQUESTS = 500


async def create_bots(platform: harness.Platform, count: int, concurrency: int) -> tuple[list[float], list[str], float]:
    """Create `count` bots with `concurrency` parallel POSTs; returns the latencies, failures and wall time."""
    limit = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    failures: list[str] = []
    done = 0

    async def one(index: int) -> None:
        nonlocal done
        body = {"name": f"bench-{index:04d}-{uuid.uuid4().hex[:6]}", "image": harness.STUB_IMAGE}
        async with limit:
            t0 = time.perf_counter()
            response = await platform.client.post("/fleet/bots", json=body)
            elapsed = time.perf_counter() - t0
        if response.status_code == 201:
            latencies.append(elapsed)
        else:
            failures.append(f"{response.status_code} {response.text[:200]}")
        done += 1
        if done % max(count // 10, 1) == 0 or done == count:
            harness.log(f"created {done}/{count} ({len(failures)} failed)")

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return latencies, failures, time.perf_counter() - start


async def wait_ready(platform: harness.Platform, count: int, timeout: float) -> tuple[float, Counter[str]]:
    """Poll the list until `count` bots are running and healthy; returns the wait and the last state mix."""
    start = time.perf_counter()
    deadline = start + timeout
    while True:
        bots = (await platform.client.get("/fleet/bots")).json()["bots"]
        mix = Counter(f"{b['state']}/{b['health']}" for b in bots)
        if mix.get("running/healthy", 0) >= count:
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
            creates, failures, create_wall = await create_bots(platform, args.bots, args.concurrency)
            if failures:
                harness.log(f"{len(failures)} creates failed, first: {failures[0]}")
            ready_wait, mix = await wait_ready(platform, len(creates), args.ready_timeout)
            rss[f"{len(creates)} bots"] = harness.rss_mb()
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
            rss["after the measured window"] = harness.rss_mb()
            result = {
                "creates": creates,
                "failures": failures,
                "create_wall": create_wall,
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
    print("\n" + text)
    if args.write:
        harness.write_section(SECTION, text)
        harness.log(f"wrote section '{SECTION}' of {harness.DOCS.relative_to(harness.ROOT)}")
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
    validation = args.bots < DEFAULT_BOTS or args.requests < DEFAULT_REQUESTS
    during: Counter[str] = result["during"]
    calls = sum(during.values())
    created = harness.summary_ms(result["creates"])
    lines = [f"## `GET /fleet/bots` with {args.bots} running bots", ""]
    if validation:
        lines += [
            f"> **Validation run** at reduced scale ({args.bots} bots / {args.requests} requests instead of "
            f"{DEFAULT_BOTS} / {DEFAULT_REQUESTS}); it checks that the script works, the numbers are indicative only.",
            "",
        ]
    lines += harness.facts_lines(facts)
    lines += [
        f"- Parameters: `--bots {args.bots} --requests {args.requests} --warmup {args.warmup} "
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
        f"{result['tracked']} tracked objects): {result['gc']}.",
        "",
        f"Setting up: {len(result['creates'])} bots created in {result['create_wall']:.1f} s "
        f"({len(result['creates']) / result['create_wall']:.1f}/s at concurrency {args.concurrency}; "
        f"`POST /fleet/bots` p50 {f(created['p50'])} ms, p90 {f(created['p90'])} ms, max {f(created['max'])} ms; "
        f"{len(result['failures'])} failed), all running and healthy {result['ready_wait']:.1f} s later "
        f"(last state mix: {dict(result['mix'])}).",
        "",
        "Process RSS (the platform runs in the bench process, so this includes the client): "
        + ", ".join(f"{name} {value:.0f} MB" for name, value in rss.items())
        + ".",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bots", type=int, default=DEFAULT_BOTS, help="running bots to list")
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
    return args


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(harness.run(lambda: main(arguments)))
