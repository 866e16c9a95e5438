"""The engine backends side by side: create+start of one bot and the list call, on plain Docker and on Swarm.

Two platforms in this process on the same engine, one with FLEET_ENGINE=docker and one with FLEET_ENGINE=swarm
(the engine is made a single-node swarm for the run unless it is in one, and left as it was found after).
Create+start: wall time of `POST /fleet/bots` (the answer comes once the bot runs: on Swarm, once its task runs),
interleaved between the two (ABBA), cleanup untimed. List: `GET /fleet/bots` with `--bots` running bots on each,
interleaved. Target: the list call on Swarm within 1.2x of plain Docker (both are served from memory); create+start
on Swarm is reported against plain Docker (the swarm schedules a task, which plain Docker does not).

    uv run python bench/swarm.py [--iterations 20] [--bots 50] [--lists 200] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiodocker

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
from create_start import api_clean as remove
from create_start import api_once as create_once

SECTION = "swarm"
TARGET_RATIO = 1.2
DEFAULT_ITERATIONS = 20
DEFAULT_BOTS = 50
DEFAULT_LISTS = 200
BACKENDS = ("docker", "swarm")
# the swarm reserves each bot's memory limit on its node: small bots, so that a hundred fit on one machine
SMALL = {"FLEET_DEFAULT_MEMORY_MB": 64}


async def list_once(platform: harness.Platform, expected: int) -> float:
    t0 = time.perf_counter()
    response = await platform.client.get("/fleet/bots")
    elapsed = time.perf_counter() - t0
    if response.status_code != 200 or len(response.json()["bots"]) != expected:
        raise RuntimeError(f"GET /fleet/bots answered {response.status_code}: {response.text[:300]}")
    return elapsed


async def main(args: argparse.Namespace) -> int:
    harness.log("building the stub image")
    harness.build_stub_image()
    facts = await harness.machine_facts()
    client = aiodocker.Docker()
    info = await client.system.info()
    made = ((info.get("Swarm") or {}).get("LocalNodeState")) != "active"
    if made:
        harness.log("making the engine a single-node swarm for the run")
        await client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
    creates: dict[str, list[float]] = {name: [] for name in BACKENDS}
    lists: dict[str, list[float]] = {name: [] for name in BACKENDS}
    try:
        async with (
            harness.running_platform(FLEET_ENGINE="docker", FLEET_STATS_INTERVAL=3600, **SMALL) as plain,
            harness.running_platform(FLEET_ENGINE="swarm", FLEET_STATS_INTERVAL=3600, **SMALL) as swarm,
        ):
            platforms = {"docker": plain, "swarm": swarm}
            for platform in platforms.values():  # warm-up
                _, bot_id = await create_once(platform, "warm")
                await remove(platform, bot_id)
            for i in range(args.iterations):
                for name in BACKENDS if i % 2 == 0 else BACKENDS[::-1]:
                    await asyncio.sleep(args.settle)
                    elapsed, bot_id = await create_once(platforms[name], str(i))
                    creates[name].append(elapsed)
                    await remove(platforms[name], bot_id)
                harness.log(
                    f"{i + 1}/{args.iterations}: docker {creates['docker'][-1] * 1000:.0f} ms, "
                    f"swarm {creates['swarm'][-1] * 1000:.0f} ms"
                )
            harness.log(f"{args.bots} running bots on each")
            for platform in platforms.values():
                for i in range(args.bots):
                    await create_once(platform, f"list{i}")
            await asyncio.sleep(args.settle * 4)
            for i in range(args.lists):
                for name in BACKENDS if i % 2 == 0 else BACKENDS[::-1]:
                    lists[name].append(await list_once(platforms[name], args.bots))
    finally:
        if made:
            await client.swarm.leave(force=True)
        await client.close()

    create = {name: harness.summary_ms(values) for name, values in creates.items()}
    listed = {name: harness.summary_ms(values) for name, values in lists.items()}
    ratio = listed["swarm"]["p50"] / listed["docker"]["p50"]
    met = ratio <= TARGET_RATIO
    for name in BACKENDS:
        print(f"{name:6}: create+start median {create[name]['p50']:.1f} ms, list median {listed[name]['p50']:.2f} ms")
    print(f"list on Swarm / plain: {ratio:.2f}x (target <= {TARGET_RATIO}x) -> {'MET' if met else 'NOT MET'}")
    harness.publish(SECTION, report(args, facts, create, listed, ratio, met), write=args.write)
    return 0


def report(
    args: argparse.Namespace,
    facts: dict[str, str],
    create: dict[str, dict[str, float]],
    listed: dict[str, dict[str, float]],
    ratio: float,
    met: bool,
) -> str:
    f = harness.fmt_ms
    lines = ["## Engine backends: plain Docker and Swarm", ""]
    if args.iterations < DEFAULT_ITERATIONS or args.bots < DEFAULT_BOTS:
        lines += ["> **Validation run** at reduced scale; the numbers are indicative only.", ""]
    lines += harness.facts_lines(facts)
    lines += [
        f"- Parameters: `--iterations {args.iterations} --bots {args.bots} --lists {args.lists} "
        f"--settle {args.settle}`; two platforms in-process on the same engine (a single-node swarm), one per "
        "backend, bots of 64 MB (the swarm reserves each bot's memory limit), runs interleaved (ABBA), cleanup "
        "untimed",
        "",
        harness.table(
            ["ms", "median", "p90", "min", "max", "n"],
            [
                [f"`POST /fleet/bots` on {name}", f(s["p50"]), f(s["p90"]), f(s["min"]), f(s["max"]), s["n"]]
                for name, s in create.items()
            ]
            + [
                [
                    f"`GET /fleet/bots` ({args.bots} bots) on {name}",
                    f(s["p50"]),
                    f(s["p90"]),
                    f(s["min"]),
                    f(s["max"]),
                    s["n"],
                ]
                for name, s in listed.items()
            ],
        ),
        "",
        f"List on Swarm / plain Docker (medians): **{ratio:.2f}x**; target <= {TARGET_RATIO}x: "
        f"**{'met' if met else 'NOT met'}**. Create+start on Swarm / plain Docker (medians): "
        f"{create['swarm']['p50'] / create['docker']['p50']:.2f}x (the swarm's scheduling of a task).",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS, help="timed creates on each backend")
    parser.add_argument("--bots", type=int, default=DEFAULT_BOTS, help="running bots on each backend for the list")
    parser.add_argument("--lists", type=int, default=DEFAULT_LISTS, help="timed list calls on each backend")
    parser.add_argument("--settle", type=float, default=0.5, help="seconds of quiet before each timed create")
    parser.add_argument("--no-write", dest="write", action="store_false", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if min(args.iterations, args.bots, args.lists) < 1:
        parser.error("--iterations, --bots and --lists must be at least 1")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(harness.run(lambda: main(arguments)))
