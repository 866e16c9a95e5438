"""How fast the platform notices and repairs containers changed behind its back.

(a) `docker rm -f` of a running bot's container (raw aiodocker, not the API): time from the moment the remove
    call returns until `GET /fleet/bots/{id}` shows a *new* container id, running and healthy.
    Target: within 10 s.
(b) `docker stop` of a running bot's container (raw aiodocker, the container's own stop timeout): time from the
    moment the stop call returns until `GET /fleet/bots/{id}` shows state "exited" ("reflected in the API").
    Target: within 1 s. Also reported: until the reconciler has it running (and healthy) again.

(c) optional, `--overlap N`: N pairs of bots removed with `docker rm -f` `--overlap-gap` s apart (the second
    removal while the platform is still repairing the first); each bot of a pair against the 10 s target.
(d) optional, `--burst N`: N more bots' containers removed with `docker rm -f` at the same moment; the time until
    each is back, running and healthy (the list is polled instead of each bot), against the 10 s target.

Each kind is repeated once for each of `--bots` bots, one at a time, a different bot each time (the
reconciler backs off per bot after a repair), waiting between repetitions until every bot is running and
healthy again. The API is polled every `--poll` seconds. FLEET_RECONCILE_INTERVAL and FLEET_HEALTH_INTERVAL keep
their defaults (10 s): repair should be driven by the engine's events, not by the periodic pass, and a repair
that waits for the periodic pass shows up here as several seconds.

`--trace` puts the counting Docker proxy in front of the platform (not of the raw calls) and lists, for each
repetition, the Docker calls the platform made with their times; it adds a hop to every call, so a traced run
writes its own section (`repair_trace`).

    uv run python bench/repair.py [--bots 10] [--poll 0.05] [--trace] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiodocker

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness

SECTION = "repair"
SECTION_EXPERIMENT = "repair_experiment"  # runs with non-default platform intervals
SECTION_TRACE = "repair_trace"
DEFAULT_BOTS = 10
TARGET_REMOVED_S = 10.0
TARGET_STOPPED_S = 1.0

# marks of a repetition, in the order they happen (seconds after the raw call returned)
RM_MARKS = ("old container gone", "new container", "new running", "new healthy")
STOP_MARKS = ("exited", "running again", "healthy again")
PRIMARY = {"rm": "new healthy", "stop": "exited"}


def platform_defaults() -> dict[str, float]:
    """The platform's own defaults for the loop intervals (read from its settings, not copied)."""
    from wopr_platform.core.settings import Settings

    fields = Settings.model_fields
    return {
        "FLEET_RECONCILE_INTERVAL": float(fields["reconcile_interval"].default),
        "FLEET_HEALTH_INTERVAL": float(fields["health_interval"].default),
        "FLEET_RESYNC_INTERVAL": float(fields["resync_interval"].default),
        "FLEET_STATS_INTERVAL": float(fields["stats_interval"].default),
    }


@dataclass
class Rep:
    kind: str  # "rm", "stop", "rm 1st" / "rm 2nd" of an overlapping pair, or "burst"
    bot: str  # name
    call: float = 0.0  # duration of the raw Docker call
    marks: dict[str, float] = field(default_factory=dict)
    timeline: list[tuple[float, str]] = field(default_factory=list)  # every change the poller saw
    repairs: list[str] = field(default_factory=list)  # what /fleet/drift says the reconciler did
    polls: int = 0
    error: str | None = None
    returned: float = 0.0  # perf_counter when the raw call returned
    calls: list[tuple[float, str, float]] = field(default_factory=list)  # traced: (offset s, call, duration s)


async def create_bots(platform: harness.Platform, count: int, concurrency: int) -> list[dict[str, Any]]:
    limit = asyncio.Semaphore(concurrency)

    async def one(index: int) -> dict[str, Any]:
        body = {"name": f"bench-repair-{index:03d}-{uuid.uuid4().hex[:6]}", "image": harness.STUB_IMAGE}
        async with limit:
            response = await platform.client.post("/fleet/bots", json=body)
        if response.status_code != 201:
            raise RuntimeError(f"POST /fleet/bots answered {response.status_code}: {response.text[:300]}")
        return dict(response.json())

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def wait_settled(platform: harness.Platform, count: int, timeout: float) -> Counter[str]:
    """Until all `count` bots are running and healthy and the reconciler reports no outstanding drift."""
    deadline = time.perf_counter() + timeout
    while True:
        bots = (await platform.client.get("/fleet/bots")).json()["bots"]
        mix = Counter(f"{b['state']}/{b['health']}" for b in bots)
        drift = (await platform.client.get("/fleet/drift")).json()["drift"]
        if mix.get("running/healthy", 0) >= count and not drift:
            return mix
        if time.perf_counter() > deadline:
            raise RuntimeError(f"bots not settled after {timeout:.0f} s: {dict(mix)}, drift {drift}")
        await asyncio.sleep(0.2)


def _label(bot: dict[str, Any], old_container: str) -> str:
    cid = bot.get("containerId") or "-"
    which = "old" if cid == old_container else f"new {cid[:8]}" if cid != "-" else "none"
    return f"{bot['state']}/{bot['health']} ({which})"


async def poll(
    platform: harness.Platform,
    bot_id: str,
    rep: Rep,
    since: float,
    interval: float,
    timeout: float,
    observe: Any,
) -> None:
    """GET the bot every `interval` s; `observe(bot, t)` records marks and returns True when the rep is done.
    `t` is when the answer arrived, in seconds after `since` (an upper bound by at most one poll)."""
    deadline = since + timeout
    next_at = time.perf_counter()
    last_label = None
    while True:
        response = await platform.client.get(f"/fleet/bots/{bot_id}")
        now = time.perf_counter()
        rep.polls += 1
        if response.status_code != 200:
            rep.error = f"GET answered {response.status_code}: {response.text[:200]}"
            return
        bot = response.json()
        label = _label(bot, observe.old_container)
        if label != last_label:
            rep.timeline.append((now - since, label))
            last_label = label
        if observe(bot, now - since):
            return
        if now > deadline:
            rep.error = f"not done after {timeout:.0f} s; last seen {label}"
            return
        next_at += interval
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))


class RemovedObserver:
    def __init__(self, rep: Rep, old_container: str) -> None:
        self.rep = rep
        self.old_container = old_container

    def __call__(self, bot: dict[str, Any], t: float) -> bool:
        marks = self.rep.marks
        cid = bot.get("containerId")
        fresh = bool(cid) and cid != self.old_container
        if "old container gone" not in marks and (fresh or bot["state"] != "running"):
            marks["old container gone"] = t
        if fresh and "new container" not in marks:
            marks["new container"] = t
        if fresh and bot["state"] == "running":
            marks.setdefault("new running", t)
            if bot["health"] == "healthy":
                marks["new healthy"] = t
                return True
        return False


class StoppedObserver:
    def __init__(self, rep: Rep, old_container: str, old_started: str | None) -> None:
        self.rep = rep
        self.old_container = old_container
        self.old_started = old_started
        self.first_not_running: str | None = None

    def __call__(self, bot: dict[str, Any], t: float) -> bool:
        marks = self.rep.marks
        restarted = bot["state"] == "running" and bot.get("startedAt") != self.old_started
        if bot["state"] != "running" and self.first_not_running is None:
            self.first_not_running = bot["state"]
        if bot["state"] == "exited":
            marks.setdefault("exited", t)
        if restarted:
            if "exited" not in marks:
                # restarted before any poll saw it stopped: the stop was never visible at this poll rate
                self.rep.error = self.rep.error or "restart seen before any poll saw 'exited'"
            marks.setdefault("running again", t)
            if bot["health"] == "healthy":
                marks["healthy again"] = t
                return True
        return False


async def repairs_since(platform: harness.Platform, bot_id: str, wall: float) -> list[str]:
    """The reconciler's repairs of `bot_id` recorded after `wall` (epoch s), oldest first, with their offsets."""
    report = (await platform.client.get("/fleet/drift")).json()
    lines = []
    for repair in reversed(report["repairs"]):
        if repair["botId"] != bot_id:
            continue
        at = dt.datetime.fromisoformat(repair["at"].replace("Z", "+00:00")).timestamp()
        if at < wall - 0.5:
            continue
        error = f" ({repair['error']})" if repair.get("error") else ""
        lines.append(f"{repair['kind']}→{repair['action']} {repair['outcome']}{error} @{(at - wall) * 1000:+.0f} ms")
    return lines


async def rm_rep(
    platform: harness.Platform,
    docker: aiodocker.Docker,
    bot: dict[str, Any],
    args: argparse.Namespace,
    kind: str = "rm",
    removed: asyncio.Event | None = None,
) -> Rep:
    rep = Rep(kind, bot["name"])
    current = (await platform.client.get(f"/fleet/bots/{bot['id']}")).json()
    old = current["containerId"]
    observer = RemovedObserver(rep, old)
    t0 = time.perf_counter()
    await docker.containers.container(old).delete(force=True)
    t1 = time.perf_counter()
    wall = time.time()
    if removed is not None:
        removed.set()
    rep.call, rep.returned = t1 - t0, t1
    await poll(platform, bot["id"], rep, t1, args.poll, args.timeout, observer)
    rep.repairs = await repairs_since(platform, bot["id"], wall)
    return rep


async def stop_rep(
    platform: harness.Platform, docker: aiodocker.Docker, bot: dict[str, Any], args: argparse.Namespace
) -> Rep:
    rep = Rep("stop", bot["name"])
    current = (await platform.client.get(f"/fleet/bots/{bot['id']}")).json()
    observer = StoppedObserver(rep, current["containerId"], current.get("startedAt"))
    t0 = time.perf_counter()
    await docker.containers.container(current["containerId"]).stop()  # no t: the container's StopTimeout
    t1 = time.perf_counter()
    wall = time.time()
    rep.call, rep.returned = t1 - t0, t1
    await poll(platform, bot["id"], rep, t1, args.poll, args.timeout, observer)
    if observer.first_not_running not in (None, "exited"):
        rep.timeline.append((float("nan"), f"first non-running state was {observer.first_not_running}"))
    rep.repairs = await repairs_since(platform, bot["id"], wall)
    return rep


async def pair_rep(
    platform: harness.Platform, docker: aiodocker.Docker, pair: list[dict[str, Any]], args: argparse.Namespace
) -> list[Rep]:
    """Remove the first bot's container, then the second's `--overlap-gap` s after the first call returned."""
    removed = asyncio.Event()
    first = asyncio.create_task(rm_rep(platform, docker, pair[0], args, "rm 1st", removed))
    await removed.wait()
    await asyncio.sleep(args.overlap_gap)
    second = await rm_rep(platform, docker, pair[1], args, "rm 2nd")
    return [await first, second]


async def burst_rep(
    platform: harness.Platform, docker: aiodocker.Docker, group: list[dict[str, Any]], args: argparse.Namespace
) -> tuple[list[Rep], float]:
    """Remove every container of `group` at once, then poll the list until all are back and healthy.
    Returns a Rep per bot (times from its own remove call's return) and the wall time of all the removals."""
    ids = {bot["id"] for bot in group}
    listed = {b["id"]: b for b in (await platform.client.get("/fleet/bots")).json()["bots"] if b["id"] in ids}
    reps = {bot_id: Rep("burst", listed[bot_id]["name"]) for bot_id in ids}
    observers = {bot_id: RemovedObserver(reps[bot_id], listed[bot_id]["containerId"]) for bot_id in ids}

    async def remove(bot_id: str) -> None:
        t0 = time.perf_counter()
        await docker.containers.container(listed[bot_id]["containerId"]).delete(force=True)
        reps[bot_id].returned = time.perf_counter()
        reps[bot_id].call = reps[bot_id].returned - t0

    start = time.perf_counter()
    await asyncio.gather(*(remove(bot_id) for bot_id in ids))
    wall = time.perf_counter() - start
    waiting = set(ids)
    deadline = time.perf_counter() + args.timeout
    next_at = time.perf_counter()
    while waiting:
        bots = (await platform.client.get("/fleet/bots")).json()["bots"]
        now = time.perf_counter()
        for bot in bots:
            if bot["id"] in waiting:
                reps[bot["id"]].polls += 1
                if observers[bot["id"]](bot, now - reps[bot["id"]].returned):
                    waiting.discard(bot["id"])
        if waiting and now > deadline:
            for bot_id in waiting:
                reps[bot_id].error = f"not back after {args.timeout:.0f} s"
            break
        next_at += args.poll
        await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
    return sorted(reps.values(), key=lambda r: r.marks.get("new healthy", float("inf"))), wall


async def main(args: argparse.Namespace) -> int:
    harness.log("building the stub image")
    harness.build_stub_image()
    facts = await harness.machine_facts()
    defaults = platform_defaults()
    overrides = {
        "FLEET_RECONCILE_INTERVAL": args.reconcile_interval,
        "FLEET_HEALTH_INTERVAL": args.health_interval,
    }
    used = {name: overrides.get(name) or value for name, value in defaults.items()}
    docker = aiodocker.Docker(url=f"unix://{harness.DOCKER_SOCKET}", api_version=harness.API_VERSION)
    proxy = harness.DockerProxy() if args.trace else None
    docker_host = await proxy.start() if proxy else None
    reps: list[Rep] = []
    burst_wall = 0.0
    try:
        async with harness.running_platform(DOCKER_HOST=docker_host, **overrides) as platform:
            total = 2 * args.bots + 2 * args.overlap + args.burst
            harness.log(f"platform {platform.platform_id} up; creating {total} bots")
            bots = await create_bots(platform, total, args.concurrency)
            await wait_settled(platform, total, args.ready_timeout)
            k = args.bots
            plan = (
                [("rm", [bot]) for bot in bots[:k]]
                + [("stop", [bot]) for bot in bots[k : 2 * k]]
                + [("pair", bots[2 * k + 2 * i : 2 * k + 2 * i + 2]) for i in range(args.overlap)]
                + ([("burst", bots[2 * k + 2 * args.overlap :])] if args.burst else [])
            )
            for index, (kind, group) in enumerate(plan, 1):
                await wait_settled(platform, total, args.ready_timeout)
                await asyncio.sleep(args.settle)
                mark = len(proxy.calls) if proxy else 0
                if kind == "burst":
                    done, burst_wall = await burst_rep(platform, docker, group, args)
                    reps += done
                    back = [r.marks["new healthy"] for r in done if "new healthy" in r.marks]
                    harness.log(
                        f"{index}/{len(plan)} burst of {len(group)}: back and healthy after "
                        + ", ".join(f"{t:.1f}" for t in back)
                        + f" s; {len(group) - len(back)} not back"
                    )
                    continue
                if kind == "pair":
                    done = await pair_rep(platform, docker, group, args)
                else:
                    done = [await (rm_rep if kind == "rm" else stop_rep)(platform, docker, group[0], args)]
                if proxy:  # the pair's calls are listed once, relative to its first removal
                    done[0].calls = sorted((c.sent - done[0].returned, c.key, c.seconds) for c in proxy.calls[mark:])
                reps += done
                for rep in done:
                    marks = ", ".join(f"{name} {value * 1000:.0f} ms" for name, value in rep.marks.items())
                    harness.log(
                        f"{index}/{len(plan)} {rep.kind} {rep.bot}: call {rep.call * 1000:.0f} ms; {marks}"
                        + (f"; ERROR {rep.error}" if rep.error else "")
                    )
            await wait_settled(platform, total, args.ready_timeout)
    finally:
        await docker.close()
        if proxy:
            await proxy.close()

    text = report(args, facts, used, defaults, reps, burst_wall)
    section = SECTION_TRACE if args.trace else SECTION if used == defaults else SECTION_EXPERIMENT
    harness.publish(section, text, write=args.write)
    return 0


def _stats_row(label: str, values: list[float], n_reps: int, target: str = "") -> list[object]:
    f = harness.fmt_ms
    if not values:
        return [label, "-", "-", "-", f"0/{n_reps}", target]
    s = harness.summary_ms(values)
    return [label, f(s["p50"]), f(s["p90"]), f(s["max"]), f"{s['n']}/{n_reps}", target]


def report(
    args: argparse.Namespace,
    facts: dict[str, str],
    used: dict[str, float],
    defaults: dict[str, float],
    reps: list[Rep],
    burst_wall: float = 0.0,
) -> str:
    f = harness.fmt_ms
    burst = [r for r in reps if r.kind == "burst"]
    rm = [r for r in reps if r.kind == "rm"]
    stop = [r for r in reps if r.kind == "stop"]
    firsts = [r for r in reps if r.kind == "rm 1st"]
    seconds = [r for r in reps if r.kind == "rm 2nd"]
    gap = f"{args.overlap_gap * 1000:.0f} ms"
    validation = args.bots < DEFAULT_BOTS
    title = "Repair: `docker rm -f` and `docker stop` behind the platform's back"
    lines = [f"## {title}" + (", traced through the counting proxy" if args.trace else ""), ""]
    if validation:
        lines += [
            f"> **Validation run** at reduced scale ({args.bots} repetitions of each instead of {DEFAULT_BOTS}); "
            "it checks that the script works, the numbers are indicative only.",
            "",
        ]
    if used != defaults:
        lines += [
            "> **Experiment** with non-default platform intervals ("
            + ", ".join(f"{k}={v:g} (default {defaults[k]:g})" for k, v in used.items() if v != defaults[k])
            + "); not a measurement of the default configuration.",
            "",
        ]
    lines += harness.facts_lines(facts)
    lines += [
        f"- Parameters: `--bots {args.bots} --poll {args.poll:g} --settle {args.settle:g} --timeout {args.timeout:g}"
        + (f" --reconcile-interval {args.reconcile_interval:g}" if args.reconcile_interval else "")
        + (f" --health-interval {args.health_interval:g}" if args.health_interval else "")
        + (f" --overlap {args.overlap} --overlap-gap {args.overlap_gap:g}" if args.overlap else "")
        + (f" --burst {args.burst}" if args.burst else "")
        + (" --trace" if args.trace else "")
        + f"`; {2 * args.bots + 2 * args.overlap + args.burst} bots running (default profile, restart policy "
        "unless-stopped), each disturbed once; "
        "platform in-process (uvicorn, SQLite WAL in a temp dir, DOCKER_HOST "
        + ("through the counting proxy" if args.trace else "straight to dockerd")
        + "), intervals "
        + ", ".join(f"{k}={v:g} s" + (" (default)" if v == defaults[k] else "") for k, v in used.items()),
        f"- The reconcile interval is at {used['FLEET_RECONCILE_INTERVAL']:g} s on purpose: repair is meant to be "
        "driven by the engine's events (the watcher kicks the reconciler), so times well under the interval show "
        "event-driven repair and times near it show a repair that waited for the periodic pass.",
        "- Times are from the moment the raw aiodocker call returned to the poll whose answer first showed the "
        f"state (`GET /fleet/bots/{{id}}` every {args.poll * 1000:.0f} ms, so up to one poll late); "
        "a different bot each repetition, all bots running and healthy (and no drift outstanding) plus "
        f"{args.settle:g} s before each.",
        "",
        harness.table(
            ["after the raw call returned (ms)", "median", "p90", "max", "seen", "target"],
            [
                _stats_row("`rm -f`: old container gone from the API", _marks(rm, RM_MARKS[0]), len(rm)),
                _stats_row("`rm -f`: new container id in the API", _marks(rm, RM_MARKS[1]), len(rm)),
                _stats_row("`rm -f`: new container running", _marks(rm, RM_MARKS[2]), len(rm)),
                _stats_row(
                    "`rm -f`: **new container running + healthy**",
                    _marks(rm, RM_MARKS[3]),
                    len(rm),
                    f"< {TARGET_REMOVED_S * 1000:.0f}",
                ),
                _stats_row(
                    "`stop`: **state `exited` in the API**",
                    _marks(stop, STOP_MARKS[0]),
                    len(stop),
                    f"< {TARGET_STOPPED_S * 1000:.0f}",
                ),
                _stats_row("`stop`: running again (reconciler)", _marks(stop, STOP_MARKS[1]), len(stop)),
                _stats_row("`stop`: running again + healthy", _marks(stop, STOP_MARKS[2]), len(stop)),
            ]
            + (
                [
                    _stats_row(
                        f"`rm -f` of two bots {gap} apart: first running + healthy",
                        _marks(firsts, RM_MARKS[3]),
                        len(firsts),
                        f"< {TARGET_REMOVED_S * 1000:.0f}",
                    ),
                    _stats_row(
                        f"`rm -f` of two bots {gap} apart: **second running + healthy**",
                        _marks(seconds, RM_MARKS[3]),
                        len(seconds),
                        f"< {TARGET_REMOVED_S * 1000:.0f}",
                    ),
                ]
                if args.overlap
                else []
            )
            + (
                [
                    _stats_row(
                        f"`rm -f` of {args.burst} bots at once: **each running + healthy**",
                        _marks(burst, RM_MARKS[3]),
                        len(burst),
                        f"< {TARGET_REMOVED_S * 1000:.0f}",
                    )
                ]
                if args.burst
                else []
            )
            + [
                _stats_row("raw `DELETE /containers/{id}?force=1` call", [r.call for r in rm], len(rm)),
                _stats_row("raw `POST /containers/{id}/stop` call", [r.call for r in stop], len(stop)),
            ],
        ),
        "",
        _verdict("removed container back, running and healthy", rm, PRIMARY["rm"], TARGET_REMOVED_S),
        _verdict("external stop reflected in the API", stop, PRIMARY["stop"], TARGET_STOPPED_S),
    ]
    if args.overlap:
        lines.append(
            _verdict(
                f"overlapping removals ({gap} apart) back, running and healthy",
                firsts + seconds,
                PRIMARY["rm"],
                TARGET_REMOVED_S,
            )
        )
    if args.burst:
        lines.append(
            _verdict(f"{args.burst} removed at once back, running and healthy", burst, PRIMARY["rm"], TARGET_REMOVED_S)
        )
        back = [r.marks[RM_MARKS[3]] for r in burst if RM_MARKS[3] in r.marks]
        lines += [
            "",
            f"Burst: {args.burst} containers removed at the same moment (the removals took {burst_wall * 1000:.0f} ms "
            "together); each back, running and healthy after (s, sorted): "
            + ", ".join(f"{t:.1f}" for t in back)
            + (f"; {args.burst - len(back)} not back within {args.timeout:g} s" if len(back) < args.burst else "")
            + ".",
        ]
    lines += [
        "",
        "Each repetition (ms after the raw call returned; the timeline lists every change the poller saw; "
        "repairs are the reconciler's own record from `GET /fleet/drift`, at their time relative to the same "
        "moment):",
        "",
        harness.table(
            ["kind", "bot", "call", "marks", "timeline", "reconciler repairs", "polls"],
            [
                [
                    r.kind,
                    r.bot[:20],
                    f(r.call * 1000),
                    "; ".join(f"{k} {f(v * 1000)}" for k, v in r.marks.items()) or "-",
                    " → ".join(
                        (f"{f(t * 1000)}: " if t == t else "") + label  # t != t: NaN (a note)
                        for t, label in r.timeline
                    ),
                    "; ".join(r.repairs) or "none recorded",
                    r.polls,
                ]
                for r in reps
                if r.kind != "burst"
            ],
        ),
    ]
    if args.trace:
        lines += [
            "",
            "Docker calls the platform made in each repetition (from the start of the raw call to the last poll; "
            "ms relative to the raw call's return, duration to the first answer byte in brackets; the event "
            "stream itself is one long request and not listed):",
            "",
            harness.table(
                ["kind", "bot", "calls"],
                [
                    [
                        r.kind,
                        r.bot[:20],
                        "; ".join(f"{t * 1000:+.0f} `{key}` ({f(d * 1000)})" for t, key, d in r.calls)
                        or ("listed with the first of the pair" if r.kind == "rm 2nd" else "none"),
                    ]
                    for r in reps
                    if r.kind != "burst"
                ],
            ),
        ]
    errors = [r for r in reps if r.error]
    if errors:
        lines += ["", "Problems: " + "; ".join(f"{r.kind} {r.bot[:20]}: {r.error}" for r in errors) + "."]
    return "\n".join(lines)


def _marks(reps: list[Rep], name: str) -> list[float]:
    return [r.marks[name] for r in reps if name in r.marks]


def _verdict(what: str, reps: list[Rep], mark: str, target: float) -> str:
    values = _marks(reps, mark)
    within = sum(1 for v in values if v < target)
    met = bool(reps) and within == len(reps)
    worst = f"max {max(values) * 1000:.0f} ms" if values else "never seen"
    return (
        f"- Target {what} within {target:g} s: **{'met' if met else 'NOT met'}** "
        f"({within}/{len(reps)} repetitions within it; {worst})."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--bots", type=int, default=DEFAULT_BOTS, help="repetitions of each kind (2x this many bots run)"
    )
    parser.add_argument("--poll", type=float, default=0.05, help="seconds between GET /fleet/bots/{id}")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds of quiet before each repetition")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up on a repetition after this long")
    parser.add_argument("--concurrency", type=int, default=4, help="parallel creates while setting up")
    parser.add_argument("--ready-timeout", type=float, default=120, help="seconds to wait for all bots to settle")
    parser.add_argument(
        "--reconcile-interval",
        type=float,
        default=None,
        help="experiment: FLEET_RECONCILE_INTERVAL (default: the platform's); writes section repair_experiment",
    )
    parser.add_argument(
        "--health-interval",
        type=float,
        default=None,
        help="experiment: FLEET_HEALTH_INTERVAL (default: the platform's); writes section repair_experiment",
    )
    parser.add_argument(
        "--overlap",
        type=int,
        default=0,
        help="also remove N pairs of bots, the second of each --overlap-gap s after the first (0: off)",
    )
    parser.add_argument("--overlap-gap", type=float, default=0.15, help="seconds between the two removals of a pair")
    parser.add_argument(
        "--burst", type=int, default=0, help="also remove N more bots' containers at the same moment (0: off)"
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="put the counting proxy in front of the platform and list its Docker calls per repetition",
    )
    parser.add_argument("--no-write", dest="write", action="store_false", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.bots < 1 or args.poll <= 0 or args.concurrency < 1 or args.overlap < 0 or args.overlap_gap < 0:
        parser.error("--bots and --concurrency must be at least 1, --poll above 0, --overlap(-gap) not negative")
    if args.burst < 0:
        parser.error("--burst must be 0 or more")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(harness.run(lambda: main(arguments)))
