"""Create+start of one bot through the API vs the raw Docker API doing the same on the same engine.

API run: wall time of `POST /fleet/bots` from an httpx client (the answer comes after the container started).
Raw run: aiodocker volume create + container create + start with the config the platform's adapter sends
(built by the adapter's own `container_config`: named volume at /data, Init, labels, restart policy, log options,
exposed port, stop timeout, the hardening, the default limits, the tenant's network).
Runs are interleaved (API/raw, then raw/API, ...) so both see the same noise; cleanup is outside the timing.
Target: API median within 1.2x of the raw median; with `--running N` (N bots made through the API and running
and healthy before the timed runs, the platform's background work on them included), within 1.1x.

    uv run python bench/create_start.py [--iterations 20] [--running 300] [--database postgres] [--trace] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import aiodocker

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

from wopr_platform.core.limits import Limits
from wopr_platform.core.naming import network_name
from wopr_platform.core.settings import Settings
from wopr_platform.docker.hardening import container_config
from wopr_platform.docker.types import ContainerSpec

SECTION = "create_start"
DATABASES = {"sqlite": "SQLite WAL in a temp dir", "postgres": "PostgreSQL, a throwaway server"}
TARGET_RATIO = 1.2
TARGET_RATIO_LOADED = 1.1  # with bots already running (issue: ten thousand bots)
DEFAULT_ITERATIONS = 20


def raw_config(platform_id: str, bot_id: str, volume: str, stop_timeout: int, network: str) -> dict[str, Any]:
    """The same container config the platform's Docker adapter sends for a default bot: hardened, with the default
    limits, on its tenant's network (built by the adapter's own function, so the baseline cannot drift from it)."""
    defaults = Settings.model_fields
    labels = {
        "wopr.managed": "true",
        "wopr.platform": platform_id,
        "wopr.bot-id": bot_id,
        "wopr.tenant": "default",
        "wopr.spec-hash": uuid.uuid4().hex[:16],
        "wopr.network": network,
    }
    spec = ContainerSpec(
        name=f"wopr-{bot_id}",
        image=harness.STUB_IMAGE,
        env={"WOPR_HOME": "/data"},
        labels=labels,
        volume=volume,
        restart_policy="unless-stopped",
        stop_timeout=stop_timeout,
        network=network,
        limits=Limits(
            memory_mb=int(defaults["default_memory_mb"].default),
            cpus=float(defaults["default_cpus"].default),
            pids=int(defaults["default_pids"].default),
        ),
    )
    return container_config(spec)


class RawRunner:
    """The baseline: what any client of the Docker API has to do to get the same running container."""

    def __init__(self, docker: aiodocker.Docker, platform_id: str, stop_timeout: int) -> None:
        self.docker = docker
        self.platform_id = platform_id
        self.stop_timeout = stop_timeout
        self.network = ""  # the tenant network the platform's bots join (it exists once the platform made a bot)
        self.stages: dict[str, list[float]] = defaultdict(list)

    async def once(self) -> tuple[float, tuple[str, str]]:
        bot_id = str(uuid.uuid4())
        volume = f"wopr.default.data-{bot_id}"
        labels = {"wopr.managed": "true", "wopr.platform": self.platform_id, "wopr.tenant": "default"}
        config = raw_config(self.platform_id, bot_id, volume, self.stop_timeout, self.network)
        t0 = time.perf_counter()
        await self.docker._query_json("volumes/create", method="POST", data={"Name": volume, "Labels": labels})
        t1 = time.perf_counter()
        container = await self.docker.containers.create(config, name=f"wopr-{bot_id}")
        t2 = time.perf_counter()
        await container.start()
        t3 = time.perf_counter()
        self.stages["volume create"].append(t1 - t0)
        self.stages["container create"].append(t2 - t1)
        self.stages["container start"].append(t3 - t2)
        return t3 - t0, (container.id, volume)

    async def clean(self, handle: tuple[str, str]) -> None:
        container_id, volume = handle
        await self.docker.containers.container(container_id).delete(force=True, v=True)
        await self.docker._query_json(f"volumes/{volume}", method="DELETE")


async def start_running(platform: harness.Platform, count: int) -> float:
    """Make `count` bots through the API in tenants of their own (a tenant's network holds at most 253 bots, and
    the timed creates are the default tenant's), 8 at a time; returns the wait until all are running and healthy."""
    limit = asyncio.Semaphore(8)

    async def one(index: int) -> None:
        async with limit:
            response = await platform.client.post(
                "/fleet/bots",
                json={"name": f"running-{index:04d}", "image": harness.STUB_IMAGE},
                headers={"X-Tenant-Id": f"running-{index // 150}"},
            )
        if response.status_code != 201:
            raise RuntimeError(f"a running bot failed: {response.status_code} {response.text[:200]}")

    await asyncio.gather(*(one(i) for i in range(count)))
    started = time.perf_counter()
    while time.perf_counter() - started < 600:
        page = (await platform.client.get("/fleet/bots", params={"tenant": "*", "limit": 1})).json()
        waiting = [
            (await platform.client.get("/fleet/bots", params={"tenant": "*", "limit": 1, "health": h})).json()["bots"]
            for h in ("starting", "unhealthy")
        ]
        if (page.get("counts") or {}).get("running", 0) >= count and not any(waiting):
            return time.perf_counter() - started
        await asyncio.sleep(1)
    raise RuntimeError(f"the {count} bots were not all healthy within 600 s")


async def api_once(platform: harness.Platform, tag: str) -> tuple[float, str]:
    body = {"name": f"bench-{tag}-{uuid.uuid4().hex[:8]}", "image": harness.STUB_IMAGE}
    t0 = time.perf_counter()
    response = await platform.client.post("/fleet/bots", json=body)
    elapsed = time.perf_counter() - t0
    if response.status_code != 201:
        raise RuntimeError(f"POST /fleet/bots answered {response.status_code}: {response.text[:500]}")
    return elapsed, str(response.json()["id"])


async def api_clean(platform: harness.Platform, bot_id: str) -> None:
    response = await platform.client.delete(f"/fleet/bots/{bot_id}", params={"removeVolumes": "true"})
    if response.status_code != 204:
        raise RuntimeError(f"DELETE /fleet/bots/{bot_id} answered {response.status_code}: {response.text[:500]}")


async def main(args: argparse.Namespace) -> int:
    harness.log("building the stub image")
    harness.build_stub_image()
    facts = await harness.machine_facts()
    proxy = harness.DockerProxy() if args.trace else None
    docker_url = await proxy.start() if proxy else f"unix://{harness.DOCKER_SOCKET}"
    raw_docker = aiodocker.Docker(url=docker_url, api_version=harness.API_VERSION)
    raw = RawRunner(raw_docker, harness.new_platform_id("-raw"), stop_timeout=10)
    api_times: list[float] = []
    raw_times: list[float] = []
    api_calls: list[harness.DockerCall] = []
    raw_calls: list[harness.DockerCall] = []
    try:
        async with (
            harness.database_url(args.database, Path(tempfile.mkdtemp(prefix="wopr-bench-db-"))) as url,
            harness.running_platform(
                DOCKER_HOST=docker_url if proxy else None, DATABASE_URL=url if args.database != "sqlite" else None
            ) as platform,
        ):
            harness.log(f"platform {platform.platform_id} up at {platform.url}; {args.warmup} warm-up round(s)")
            raw.network = network_name(platform.platform_id, "default")
            if args.running:
                harness.log(f"starting {args.running} bots through the API first")
                waited = await start_running(platform, args.running)
                harness.log(f"{args.running} bots running and healthy after {waited:.0f} s")
            for i in range(args.warmup):
                _, bot_id = await api_once(platform, f"warm{i}")
                await api_clean(platform, bot_id)
                _, handle = await raw.once()
                await raw.clean(handle)
            raw.stages.clear()
            for i in range(args.iterations):
                order = ("api", "raw") if i % 2 == 0 else ("raw", "api")
                for kind in order:
                    await asyncio.sleep(args.settle)
                    mark = len(proxy.calls) if proxy else 0
                    if kind == "api":
                        elapsed, bot_id = await api_once(platform, str(i))
                        api_times.append(elapsed)
                        if proxy:
                            api_calls += proxy.calls[mark:]
                        await api_clean(platform, bot_id)
                    else:
                        elapsed, handle = await raw.once()
                        raw_times.append(elapsed)
                        if proxy:
                            raw_calls += proxy.calls[mark:]
                        await raw.clean(handle)
                harness.log(
                    f"{i + 1}/{args.iterations}: api {api_times[-1] * 1000:.0f} ms, raw {raw_times[-1] * 1000:.0f} ms"
                )
    finally:
        await raw_docker.close()
        if proxy:
            await proxy.close()

    api = harness.summary_ms(api_times)
    base = harness.summary_ms(raw_times)
    target = TARGET_RATIO_LOADED if args.running else TARGET_RATIO
    ratio = api["p50"] / base["p50"]
    met = ratio <= target
    paired = [a / r for a, r in zip(api_times, raw_times, strict=True)]
    print(f"API create+start  : median {api['p50']:.1f} ms, p90 {api['p90']:.1f}, min {api['min']:.1f}")
    print(f"raw create+start  : median {base['p50']:.1f} ms, p90 {base['p90']:.1f}, min {base['min']:.1f}")
    print(f"ratio of medians  : {ratio:.2f}x (target <= {target}x) -> {'MET' if met else 'NOT MET'}")

    text = report(args, facts, api, base, ratio, met, paired, raw, api_calls, raw_calls)
    section = SECTION + ("_trace" if args.trace else "") + (f"_running{args.running}" if args.running else "")
    section += f"_{args.database}" if args.database != "sqlite" else ""
    harness.publish(section, text, write=args.write)
    return 0


def report(
    args: argparse.Namespace,
    facts: dict[str, str],
    api: dict[str, float],
    base: dict[str, float],
    ratio: float,
    met: bool,
    paired: list[float],
    raw: RawRunner,
    api_calls: list[harness.DockerCall],
    raw_calls: list[harness.DockerCall],
) -> str:
    f = harness.fmt_ms
    validation = args.iterations < DEFAULT_ITERATIONS
    title = "Create + start one bot: API vs raw Docker" + (", traced through the counting proxy" if args.trace else "")
    if args.running:
        title += f", {args.running} bots already running"
    target = TARGET_RATIO_LOADED if args.running else TARGET_RATIO
    lines = [f"## {title}", ""]
    if validation:
        lines += [
            f"> **Validation run** at reduced scale ({args.iterations} iterations instead of {DEFAULT_ITERATIONS}); "
            "it checks that the script works, the numbers are indicative only.",
            "",
        ]
    lines += harness.facts_lines(facts)
    lines += [
        f"- Parameters: `--iterations {args.iterations} --warmup {args.warmup} --settle {args.settle}"
        f"{' --trace' if args.trace else ''}{f' --running {args.running}' if args.running else ''}"
        f"{f' --database {args.database}' if args.database != 'sqlite' else ''}`; "
        "API and raw runs interleaved (ABBA), cleanup untimed; "
        f"platform in-process (uvicorn, {DATABASES[args.database]}, default loop intervals)"
        + ("; both clients went through the counting proxy" if args.trace else ""),
        "",
        harness.table(
            ["ms", "median", "p90", "min", "max", "n"],
            [
                ["API `POST /fleet/bots`", f(api["p50"]), f(api["p90"]), f(api["min"]), f(api["max"]), api["n"]],
                [
                    "raw volume+create+start",
                    f(base["p50"]),
                    f(base["p90"]),
                    f(base["min"]),
                    f(base["max"]),
                    base["n"],
                ],
            ],
        ),
        "",
        f"Ratio of medians API/raw: **{ratio:.2f}x** (median of per-pair ratios {statistics.median(paired):.2f}x). "
        f"Target API median <= {target}x raw: **{'met' if met else 'NOT met'}**.",
        "",
        "Raw stages (median ms): "
        + ", ".join(f"{name} {f(harness.percentile(v, 50) * 1000)}" for name, v in raw.stages.items())
        + ".",
    ]
    if api_calls:
        lines += [
            "",
            "Docker calls seen by the proxy while each API create ran (incl. the platform's background "
            "reaction to the new container's events), per create, with median time to first answer byte:",
            "",
        ]
        rows = []
        grouped: dict[str, list[float]] = defaultdict(list)
        for call in api_calls:
            grouped[call.key].append(call.seconds)
        for key, values in sorted(grouped.items(), key=lambda kv: -sum(kv[1])):
            rows.append([f"`{key}`", f"{len(values) / api['n']:.1f}", f(harness.percentile(values, 50) * 1000)])
        lines.append(harness.table(["call", "per create", "median ms"], rows))
        lines.append("")
        lines.append(f"Raw runs made {len(raw_calls) / max(base['n'], 1):.1f} calls each.")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS, help="timed runs of each kind")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each kind first")
    parser.add_argument("--settle", type=float, default=0.5, help="seconds of quiet before each timed run")
    parser.add_argument("--running", type=int, default=0, help="bots made and running through the API first")
    parser.add_argument("--database", choices=sorted(DATABASES), default="sqlite")
    parser.add_argument(
        "--trace",
        action="store_true",
        help="route both clients through a counting proxy and list the Docker calls of an API create",
    )
    parser.add_argument("--no-write", dest="write", action="store_false", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error("--iterations must be at least 1")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(harness.run(lambda: main(arguments)))
