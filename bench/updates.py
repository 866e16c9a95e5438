"""Image updates (issue 5): registry requests of one watcher poll, and the cost of one update against its parts.

Both parts run against a real registry: Debian's `docker-registry` (distribution 2.8) started by this script on a
free loopback port with its own config and storage in a temp dir, stopped by its PID at the end. Image variants
are built `FROM localhost/wopr-stub:latest` with a different `ENV STUB_MESSAGE` and pushed to it.

Poll: `--bots` rows (default 1000) on `--references` image references (5) written straight into a migrated
SQLite database (digest set, channels and policies mixed, desired state stopped, no container) and the
platform's own `ImageWatcher` over it with the real `RegistryClient`. A whole platform is not used here: its
reconciler would build a container for each of those rows. Counts the client's manifest and token requests and
the registry's own access log in one forced poll, an unforced poll right after (nothing due), and an unforced
poll with the clock moved past every interval; the baseline is a per-container poller (Watchtower-style: one
lookup per bot), measured with the same client.

Update: a real platform in-process (the registry in FLEET_IMAGE_ALLOWLIST), one bot on `<registry>/bench-x:tag`;
each round pushes a new variant under the tag, deletes the engine's local copy (so the pull really pulls) and
times `POST /fleet/bots/{id}/update`. The raw baseline does the same on its own container with aiodocker: pull by
digest, stop the old container, create and start the new one, poll `GET http://<ip>:7437/health` every 10 ms
until it answers 200. Rounds alternate API/raw then raw/API (ABBA). The engine's event stream gives the API
update's timeline (when the pull, stop, create, start and the removals happened inside the request).
Target: API median <= raw median + 300 ms (a fixed allowance for the platform's own steps).

    uv run python bench/updates.py [--bots 1000] [--references 5] [--iterations 5] [--only poll|update] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiodocker
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import create_start
import harness

SECTION_POLL = "updates_poll"
SECTION_UPDATE = "updates_update"
DEFAULT_BOTS = 1000
DEFAULT_REFERENCES = 5
DEFAULT_ITERATIONS = 5
TARGET_ALLOWANCE_MS = 300.0
REGISTRY_BINARY = "/usr/bin/docker-registry"
TAG = "tag"
HEALTH_POLL_SECONDS = 0.01
# release channels and update policies of the registered bots, cycled (a tenth pinned: not watched)
CHANNELS = ("stable", "stable", "stable", "stable", "stable", "staging", "staging", "canary", "canary", "pinned")
POLICIES = ("manual", "on-push", "nightly", "cron:30 4 * * *")
_ACCESS_LINE = re.compile(r'"(HEAD|GET) /v2/([^ ]+)/manifests/[^ ]+ HTTP/[0-9.]+" (\d{3})')


# --- the registry -------------------------------------------------------------------------------------------


def _context(dockerfile: str) -> bytes:
    data = dockerfile.encode()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class BenchRegistry:
    """One docker-registry process on 127.0.0.1 (open, delete enabled, access log on), owned by this script."""

    root: Path
    port: int = field(default_factory=harness.free_port)
    process: subprocess.Popen[bytes] | None = None
    pushed: set[str] = field(default_factory=set)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "registry.log"

    async def start(self) -> None:
        storage = self.root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(
            "\n".join(
                [
                    "version: 0.1",
                    "log:",
                    "  level: info",  # info keeps the access log (one line per request) that the poll counts
                    "  formatter: text",
                    "storage:",
                    "  filesystem:",
                    f"    rootdirectory: {storage}",
                    "  delete:",
                    "    enabled: true",
                    "http:",
                    f"  addr: {self.host}",
                    f"  secret: {uuid.uuid4().hex}",
                ]
            )
            + "\n"
        )
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [REGISTRY_BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
            while True:
                if self.process.poll() is not None:
                    tail = self.log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"docker-registry exited with {self.process.returncode}: {tail}")
                with contextlib.suppress(httpx.TransportError):
                    if (await client.get(f"http://{self.host}/v2/")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"docker-registry did not answer on {self.host} within 10 s")
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            await asyncio.wait_for(asyncio.to_thread(process.wait), timeout=5)
        except TimeoutError:
            process.kill()
            process.wait()

    def log_mark(self) -> int:
        return self.log_path.stat().st_size

    def manifest_requests_since(self, mark: int) -> Counter[str]:
        """Manifest requests in the registry's access log after `mark` (bytes), by method."""
        with self.log_path.open("rb") as log:
            log.seek(mark)
            text = log.read().decode(errors="replace")
        return Counter(match.group(1) for match in _ACCESS_LINE.finditer(text))

    async def push(self, docker: aiodocker.Docker, repo: str, message: str) -> str:
        """Build a stub variant (its own STUB_MESSAGE), push it as `<host>/<repo>:tag`, return its manifest digest."""
        name = f"{self.host}/{repo}"
        dockerfile = f"FROM {harness.STUB_IMAGE}\nENV STUB_MESSAGE={json.dumps(message)}\n"
        await docker.images.build(
            fileobj=io.BytesIO(_context(dockerfile)), encoding="identity", tag=f"{name}:{TAG}", rm=True
        )
        self.pushed.add(name)
        progress = await docker.images.push(name, tag=TAG)
        digests = [item["aux"]["Digest"] for item in progress if "Digest" in (item.get("aux") or {})]
        errors = [item["error"] for item in progress if "error" in item]
        if errors or not digests:
            raise RuntimeError(f"push of {name}:{TAG} failed: {errors or progress[-3:]}")
        return str(digests[-1])

    async def forget_local(self, docker: aiodocker.Docker, repo: str, digest: str) -> None:
        """Delete the engine's copy of `<host>/<repo>@digest` (and the tag) so that a pull has to fetch it."""
        name = f"{self.host}/{repo}"
        for ref in (f"{name}:{TAG}", f"{name}@{digest}"):
            try:
                await docker.images.delete(ref, force=True)
            except aiodocker.DockerError as err:
                if err.status != 404:
                    raise
        try:
            await docker.images.inspect(f"{name}@{digest}")
        except aiodocker.DockerError as err:
            if err.status == 404:
                return
            raise
        raise RuntimeError(f"{name}@{digest} is still present after deleting it")

    async def delete_local_images(self, docker: aiodocker.Docker) -> int:
        """Remove every local image reference under this registry (the pushed variants and pulled copies)."""
        prefix = self.host + "/"
        removed = 0
        for image in await docker.images.list():
            for ref in [*(image.get("RepoTags") or []), *(image.get("RepoDigests") or [])]:
                if ref.startswith(prefix):
                    try:
                        await docker.images.delete(ref, force=True)
                        removed += 1
                    except aiodocker.DockerError as err:
                        if err.status != 404:
                            harness.log(f"cleanup: {err}")
        return removed


# --- part 1: one poll of the image watcher over many bots -------------------------------------------------


class MovableClock:
    """Wall-clock time plus an offset the benchmark can move forward (to make every reference due)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@dataclass
class PollRun:
    label: str
    manifest: int
    tokens: int
    gets: int
    logged: Counter[str]
    seconds: float
    checked: int


async def poll_part(args: argparse.Namespace, registry: BenchRegistry, docker: aiodocker.Docker) -> dict[str, Any]:
    from sqlalchemy import select

    from wopr_platform.core import naming
    from wopr_platform.core.reference import ImageReference
    from wopr_platform.core.settings import Settings
    from wopr_platform.db.engine import create_engine, create_sessionmaker
    from wopr_platform.db.migrate import upgrade
    from wopr_platform.db.models import Bot
    from wopr_platform.db.unit import Database
    from wopr_platform.registry.client import CredentialStore, RegistryClient
    from wopr_platform.updates.watcher import ImageWatcher

    repos = [f"bench-poll-{i}" for i in range(args.references)]
    digests: dict[str, str] = {}
    for repo in repos:
        digests[f"{registry.host}/{repo}:{TAG}"] = await registry.push(docker, repo, f"poll {repo}")
    references = list(digests)
    harness.log(f"pushed {len(references)} references; registering {args.bots} bots")

    data_dir = Path(tempfile.mkdtemp(prefix="wopr-bench-poll-"))
    db = create_engine(f"sqlite+aiosqlite:///{data_dir / 'platform.db'}")
    client = RegistryClient(credentials=CredentialStore(), timeout=10.0)
    baseline_client = RegistryClient(credentials=CredentialStore(), timeout=10.0)
    try:
        await upgrade(db)
        sessions = create_sessionmaker(db)
        now = datetime.now(UTC)
        async with sessions() as session, session.begin():
            for i in range(args.bots):
                bot_id = str(uuid.uuid4())
                reference = references[i % len(references)]
                row: dict[str, Any] = {
                    "id": bot_id,
                    "tenant_id": "default",
                    "name": f"bench-poll-{i}",
                    "description": "",
                    "image": reference,
                    "env": {},
                    "restart_policy": "unless-stopped",
                    "volume_name": naming.default_volume(bot_id),
                    "release_channel": CHANNELS[(i // len(references)) % len(CHANNELS)],
                    "update_policy": POLICIES[(i // len(references)) % len(POLICIES)],
                    "desired_state": "stopped",
                    "container_id": None,
                    "created_at": now,
                    "updated_at": now,
                    "image_digest": digests[reference],
                }
                if "subdomain" in Bot.__table__.columns:  # the routing column, where the schema has it
                    row["subdomain"] = f"bench-poll-{i}"
                session.add(Bot(**row))
        fields = Settings.model_fields
        intervals = {
            channel: float(fields[f"update_interval_{channel}"].default) for channel in ("canary", "staging", "stable")
        }
        clock = MovableClock()
        watcher = ImageWatcher(
            db=Database(sessions),
            registry=client,
            clock=clock,
            intervals=intervals,
            jitter=float(fields["update_jitter"].default),
        )

        async def measured(label: str, *, force: bool) -> PollRun:
            before = (client.stats.manifest_requests, client.stats.token_requests, client.stats.get_requests)
            mark = registry.log_mark()
            t0 = time.perf_counter()
            results = await watcher.poll(force=force)
            seconds = time.perf_counter() - t0
            await asyncio.sleep(0.3)  # the registry writes its access log line after the answer
            for result in results:
                if result.exception is not None:
                    raise RuntimeError(f"check of {result.reference} failed: {result.exception}")
                if result.digest != digests[result.reference]:
                    raise RuntimeError(f"{result.reference}: found {result.digest}, pushed {digests[result.reference]}")
            run = PollRun(
                label,
                client.stats.manifest_requests - before[0],
                client.stats.token_requests - before[1],
                client.stats.get_requests - before[2],
                registry.manifest_requests_since(mark),
                seconds,
                len(results),
            )
            harness.log(f"{label}: {run.checked} checked, {run.manifest} manifest requests, {seconds * 1000:.1f} ms")
            return run

        first = await measured("forced poll (first check of each reference)", force=True)
        idle = await measured("unforced poll right after (nothing due)", force=False)
        warm = [await measured(f"forced poll {i + 2}", force=True) for i in range(args.polls - 1)]
        clock.offset = timedelta(seconds=max(intervals.values()) * 2)
        due = await measured("unforced poll, clock moved past every interval", force=False)

        # the baseline: one lookup per bot, in order, as a per-container poller makes them
        async with sessions() as session:
            images = [str(image) for image in (await session.scalars(select(Bot.image).order_by(Bot.name))).all()]
        mark = registry.log_mark()
        t0 = time.perf_counter()
        for image in images:
            await baseline_client.digest(ImageReference.parse(image))
        base_seconds = time.perf_counter() - t0
        await asyncio.sleep(0.3)
        baseline = PollRun(
            "per-container poller",
            baseline_client.stats.manifest_requests,
            baseline_client.stats.token_requests,
            baseline_client.stats.get_requests,
            registry.manifest_requests_since(mark),
            base_seconds,
            len(images),
        )
        harness.log(f"baseline: {baseline.manifest} manifest requests in {base_seconds * 1000:.0f} ms")
        watched = sum(1 for i in range(args.bots) if CHANNELS[(i // len(references)) % len(CHANNELS)] != "pinned")
        return {
            "first": first,
            "idle": idle,
            "warm": warm,
            "due": due,
            "baseline": baseline,
            "watched": watched,
            "intervals": intervals,
        }
    finally:
        await client.close()
        await baseline_client.close()
        await db.dispose()
        shutil.rmtree(data_dir, ignore_errors=True)


def poll_report(args: argparse.Namespace, facts: dict[str, str], registry: BenchRegistry, r: dict[str, Any]) -> str:
    first, idle, warm, due, baseline = r["first"], r["idle"], r["warm"], r["due"], r["baseline"]
    f = harness.fmt_ms
    met = first.manifest == args.references and idle.manifest == 0 and due.manifest == args.references
    validation = args.bots < DEFAULT_BOTS
    lines = ["## Image watcher: registry requests per poll", ""]
    if validation:
        lines += [
            f"> **Validation run** at reduced scale ({args.bots} bots instead of {DEFAULT_BOTS}); it checks that "
            "the script works, the numbers are indicative only.",
            "",
        ]
    channels = Counter(CHANNELS[(i // args.references) % len(CHANNELS)] for i in range(args.bots))
    lines += harness.facts_lines(facts)
    lines += [
        f"- Parameters: `--bots {args.bots} --references {args.references} --polls {args.polls}`; "
        f"registry: Debian `docker-registry` on {registry.host} (open, no token service), started by the script",
        "- Bots: rows in a migrated SQLite database (digest set, desired state stopped, no container), channels "
        + ", ".join(f"{n} {c}" for c, n in sorted(channels.items()))
        + f", policies {', '.join(POLICIES)} mixed; {r['watched']} of them watched (pinned bots are not). "
        "The platform's `ImageWatcher` and `RegistryClient` run over that database directly, without the rest "
        "of the platform (its reconciler would build a container for every row). Intervals and jitter are the "
        f"defaults ({', '.join(f'{c} {v:g} s' for c, v in r['intervals'].items())}; a reference is checked at the "
        "shortest interval among its bots' channels).",
        "- Requests counted twice: by the client (`RegistryClient.stats`) and by the registry's own access log.",
        "",
    ]

    def row(run: PollRun, label: str) -> list[object]:
        logged = sum(run.logged.values())
        return [
            label,
            run.checked,
            run.manifest,
            f"{logged} ({', '.join(f'{n} {m}' for m, n in sorted(run.logged.items())) or 'none'})",
            run.tokens,
            f(run.seconds * 1000),
        ]

    warm_ms = [run.seconds for run in warm]
    rows = [
        row(first, "forced poll, first check of each reference"),
        row(idle, "unforced poll right after (nothing due)"),
    ]
    if warm:
        rows.append(
            [
                f"forced poll, again (median of {len(warm)})",
                warm[0].checked,
                statistics.median(run.manifest for run in warm),
                statistics.median(sum(run.logged.values()) for run in warm),
                statistics.median(run.tokens for run in warm),
                f(statistics.median(warm_ms) * 1000),
            ]
        )
    rows += [
        row(due, "unforced poll, clock moved past every interval"),
        row(baseline, "**baseline**: per-container poller, one lookup per bot in turn"),
    ]
    lines += [
        harness.table(
            ["poll", "references / bots checked", "manifest requests", "in the registry's log", "tokens", "wall ms"],
            rows,
        ),
        "",
        f"{args.bots} bots on {args.references} references: one poll makes **{first.manifest}** manifest requests "
        f"({first.tokens} token requests; this registry needs none) in {f(first.seconds * 1000)} ms, against "
        f"**{baseline.manifest}** for a per-container poller ({f(baseline.seconds * 1000)} ms on this loopback "
        f"registry). Target one manifest request per reference per poll, none when nothing is due: "
        f"**{'met' if met else 'NOT met'}**.",
    ]
    return "\n".join(lines)


# --- part 2: one update through the API vs its raw parts ---------------------------------------------------


@dataclass
class RawBot:
    """The baseline's bot: a container with the platform's config, run by digest, updated by hand."""

    docker: aiodocker.Docker
    registry: BenchRegistry
    platform_id: str
    repo: str
    bot_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    container_id: str = ""
    image: str = ""
    generation: int = 0
    stages: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    http: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=1.0, trust_env=False))

    @property
    def volume(self) -> str:
        return f"wopr.default.data-{self.bot_id}"

    async def create(self, digest: str) -> None:
        labels = {"wopr.managed": "true", "wopr.platform": self.platform_id, "wopr.tenant": "default"}
        await self.docker._query_json("volumes/create", method="POST", data={"Name": self.volume, "Labels": labels})
        self.image = f"{self.registry.host}/{self.repo}@{digest}"
        await self.docker.images.pull(self.image)
        self.container_id = await self._create_start()
        await self._healthy()

    async def _create_start(self) -> str:
        config = create_start.raw_config(self.platform_id, self.bot_id, self.volume, stop_timeout=10)
        config["Image"] = self.image
        self.generation += 1
        container = await self.docker.containers.create(config, name=f"wopr-{self.bot_id}-{self.generation}")
        await container.start()
        return str(container.id)

    async def _healthy(self, timeout: float = 60.0) -> None:
        data = await self.docker.containers.container(self.container_id).show()
        url = f"http://{data['NetworkSettings']['IPAddress']}:7437/health"
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await self.http.get(url)).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"raw container {self.container_id[:12]} not healthy within {timeout:g} s")
            await asyncio.sleep(HEALTH_POLL_SECONDS)

    async def update(self, digest: str) -> float:
        """pull by digest + stop old + create + start + until /health answers 200 (the timed part)."""
        old_id, old_image = self.container_id, self.image
        new_image = f"{self.registry.host}/{self.repo}@{digest}"
        t0 = time.perf_counter()
        await self.docker.images.pull(new_image)
        t1 = time.perf_counter()
        await self.docker.containers.container(old_id).stop(t=10)
        t2 = time.perf_counter()
        self.image = new_image
        config = create_start.raw_config(self.platform_id, self.bot_id, self.volume, stop_timeout=10)
        config["Image"] = new_image
        self.generation += 1
        container = await self.docker.containers.create(config, name=f"wopr-{self.bot_id}-{self.generation}")
        t3 = time.perf_counter()
        await container.start()
        t4 = time.perf_counter()
        self.container_id = str(container.id)
        await self._healthy()
        t5 = time.perf_counter()
        for name, seconds in (
            ("pull", t1 - t0),
            ("stop old", t2 - t1),
            ("create", t3 - t2),
            ("start", t4 - t3),
            ("until healthy", t5 - t4),
        ):
            self.stages[name].append(seconds)
        # untimed: what the platform does after its gate (old container and image go)
        await self.docker.containers.container(old_id).delete(force=True)
        with contextlib.suppress(aiodocker.DockerError):
            await self.docker.images.delete(old_image)
        return t5 - t0

    async def close(self) -> None:
        await self.http.aclose()


async def engine_events(docker: aiodocker.Docker, since: float, until: float) -> list[dict[str, Any]]:
    """The engine's events between two wall-clock times (the daemon runs on this host's clock)."""
    params = {"since": f"{since:.9f}", "until": f"{until:.9f}"}
    async with docker._query("events", params=params) as response:
        text = await response.text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def api_timeline(
    events: list[dict[str, Any]], start_wall: float, platform_id: str, new_image: str, old_image_id: str
) -> dict[str, float]:
    """ms from the request to each engine event of this update (first occurrence of each step)."""
    marks: dict[str, float] = {}
    for event in events:
        actor = event.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        at = event["timeNano"] / 1e9 - start_wall
        kind, action = event.get("Type"), event.get("Action", "")
        if kind == "image" and action == "pull" and actor.get("ID") == new_image:
            step = "pull done"
        elif kind == "image" and actor.get("ID") == old_image_id:
            step = {"untag": "old image untagged", "delete": "old image deleted"}.get(action)
        elif kind == "container" and attrs.get("wopr.platform") == platform_id:
            step = {
                "kill": "old stop begins (kill)",
                "stop": "old stopped",
                "rename": "old renamed (parked)",
                "create": "new created",
                "start": "new started",
                "destroy": "old removed",
            }.get(action)
        else:
            step = None
        if step is not None and step not in marks:
            marks[step] = at * 1000
    return marks


@dataclass
class GateProbe:
    sent: float  # perf_counter()
    done: float
    ok: bool
    detail: str


class GateProbes:
    """Records the health probes the updater's gate makes (instrumentation of the in-process platform only).

    The platform's `InstanceClient` is shared with the background health monitor; only calls made from the
    updater's `_wait_healthy` are recorded. Reaches into private attributes: if they move, the timeline just
    lacks the gate rows.
    """

    def __init__(self, app: Any) -> None:
        self.records: list[GateProbe] = []
        instances = getattr(getattr(getattr(app.state, "updates", None), "_updater", None), "_instances", None)
        if instances is None:
            harness.log("cannot reach the updater's instance client: no health-gate timeline")
            return
        original = instances.probe

        async def probe(address: str, path: str = "/health", seconds: float | None = None) -> Any:
            gate = sys._getframe(1).f_code.co_name == "_wait_healthy"
            sent = time.perf_counter()
            result = await original(address, path, seconds)
            if gate:
                self.records.append(GateProbe(sent, time.perf_counter(), bool(result.ok), str(result.detail)))
            return result

        instances.probe = probe

    def since(self, start: float) -> list[GateProbe]:
        return [record for record in self.records if record.sent >= start]


async def wait_bot(platform: harness.Platform, bot_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        bot = (await platform.client.get(f"/fleet/bots/{bot_id}")).json()
        if bot.get("state") == "running" and bot.get("health") == "healthy":
            return dict(bot)
        if time.monotonic() > deadline:
            raise RuntimeError(f"bot {bot_id} not running and healthy within {timeout:g} s: {bot}")
        await asyncio.sleep(0.1)


async def update_part(args: argparse.Namespace, registry: BenchRegistry, docker: aiodocker.Docker) -> dict[str, Any]:
    api_repo, raw_repo = "bench-x", "bench-raw"
    api_ref = f"{registry.host}/{api_repo}"
    first_api = await registry.push(docker, api_repo, "api v1")
    first_raw = await registry.push(docker, raw_repo, "raw v1")
    raw = RawBot(docker, registry, harness.new_platform_id("-raw"), raw_repo)
    api_times: list[float] = []
    raw_times: list[float] = []
    timelines: list[dict[str, float]] = []
    results: list[dict[str, Any]] = []
    gate_probes: list[list[GateProbe]] = []
    try:
        async with harness.running_platform(FLEET_IMAGE_ALLOWLIST=f"localhost/wopr-stub,{registry.host}/") as platform:
            response = await platform.client.post(
                "/fleet/bots",
                json={"name": f"bench-update-{uuid.uuid4().hex[:8]}", "image": f"{api_ref}:{TAG}"},
            )
            if response.status_code != 201:
                raise RuntimeError(f"POST /fleet/bots answered {response.status_code}: {response.text[:500]}")
            bot_id = str(response.json()["id"])
            bot = await wait_bot(platform, bot_id)
            if bot.get("imageDigest") not in (None, first_api):
                raise RuntimeError(f"bot runs {bot.get('imageDigest')}, pushed {first_api}")
            await raw.create(first_raw)
            harness.log(f"platform {platform.platform_id} up; bot {bot_id} and the raw container healthy")
            gate = GateProbes(platform.app)
            version = 1
            rounds = args.warmup + args.iterations
            for i in range(rounds):
                timed = i >= args.warmup
                order = ("api", "raw") if i % 2 == 0 else ("raw", "api")
                version += 1
                for kind in order:
                    repo = api_repo if kind == "api" else raw_repo
                    digest = await registry.push(docker, repo, f"{kind} v{version}")
                    await registry.forget_local(docker, repo, digest)
                    await asyncio.sleep(args.settle)
                    if kind == "api":
                        current = (await platform.client.get(f"/fleet/bots/{bot_id}")).json()
                        old_image_id = (await docker.containers.container(current["containerId"]).show())["Image"]
                        start_wall = time.time()
                        t0 = time.perf_counter()
                        response = await platform.client.post(f"/fleet/bots/{bot_id}/update")
                        elapsed = time.perf_counter() - t0
                        end_wall = time.time()
                        body = response.json()
                        if response.status_code != 200 or not body.get("success") or body.get("newDigest") != digest:
                            raise RuntimeError(f"update answered {response.status_code}: {response.text[:500]}")
                        if timed:
                            api_times.append(elapsed)
                            results.append(body)
                            events = await engine_events(docker, start_wall - 0.05, end_wall + 0.05)
                            timeline = api_timeline(
                                events, start_wall, platform.platform_id, f"{api_ref}@{digest}", old_image_id
                            )
                            probes = gate.since(t0)
                            if probes:
                                timeline["gate: first probe sent"] = (probes[0].sent - t0) * 1000
                                if probes[-1].ok:
                                    timeline["gate: passed"] = (probes[-1].done - t0) * 1000
                            timeline["answer"] = elapsed * 1000
                            timelines.append(timeline)
                            gate_probes.append(probes)
                        await wait_bot(platform, bot_id)
                    else:
                        elapsed = await raw.update(digest)
                        if timed:
                            raw_times.append(elapsed)
                        else:
                            raw.stages.clear()
                if timed:
                    harness.log(
                        f"{len(api_times)}/{args.iterations}: api {api_times[-1] * 1000:.0f} ms, "
                        f"raw {raw_times[-1] * 1000:.0f} ms"
                    )
                else:
                    harness.log("warm-up round done")
    finally:
        await raw.close()
        removed = await harness.cleanup_engine([raw.platform_id])
        if any(removed):
            harness.log(f"cleanup: removed {removed[0]} containers and {removed[1]} volumes of {raw.platform_id}")
    return {
        "api": api_times,
        "raw": raw_times,
        "timelines": timelines,
        "stages": raw.stages,
        "results": results,
        "gate": gate_probes,
    }


TIMELINE_ORDER = (
    "pull done",
    "old stop begins (kill)",
    "old stopped",
    "old renamed (parked)",
    "new created",
    "new started",
    "gate: first probe sent",
    "gate: passed",
    "old removed",
    "old image untagged",
    "old image deleted",
    "answer",
)


def update_report(args: argparse.Namespace, facts: dict[str, str], registry: BenchRegistry, r: dict[str, Any]) -> str:
    f = harness.fmt_ms
    api = harness.summary_ms(r["api"])
    base = harness.summary_ms(r["raw"])
    allowance = api["p50"] - base["p50"]
    met = allowance <= TARGET_ALLOWANCE_MS
    paired = [a / b for a, b in zip(r["api"], r["raw"], strict=True)]
    validation = args.iterations < DEFAULT_ITERATIONS
    lines = ["## One image update: `POST /fleet/bots/{id}/update` vs pull + recreate + time to healthy", ""]
    if validation:
        lines += [
            f"> **Validation run** at reduced scale ({args.iterations} iterations instead of "
            f"{DEFAULT_ITERATIONS}); it checks that the script works, the numbers are indicative only.",
            "",
        ]
    lines += harness.facts_lines(facts)
    lines += [
        f"- Parameters: `--iterations {args.iterations} --warmup {args.warmup} --settle {args.settle}`; "
        f"registry: Debian `docker-registry` on {registry.host} started by the script; platform in-process "
        "(uvicorn, SQLite WAL in a temp dir, default loop intervals and health gate); API and raw rounds "
        "interleaved (ABBA)",
        "- Each round pushes a new variant (`FROM localhost/wopr-stub:latest` + its own `ENV STUB_MESSAGE`) under "
        "the tag and deletes the engine's local copy first, so both pulls fetch the manifest and config from the "
        "registry (the layers are the stub's, already present, as for any image sharing its base).",
        "- API: wall time of `POST /fleet/bots/{id}/update` (registry check, pull by digest, park the old "
        "container, create + start the new one pinned to the digest, health gate, commit, remove the old "
        "container and image). Raw: aiodocker pull by digest + stop old + create + start + "
        "`GET http://<ip>:7437/health` every 10 ms until 200 (old container and image removed untimed).",
        "",
        harness.table(
            ["ms", "median", "p90", "min", "max", "n"],
            [
                ["API `POST /update`", f(api["p50"]), f(api["p90"]), f(api["min"]), f(api["max"]), api["n"]],
                [
                    "raw pull+stop+create+start+healthy",
                    f(base["p50"]),
                    f(base["p90"]),
                    f(base["min"]),
                    f(base["max"]),
                    base["n"],
                ],
            ],
        ),
        "",
        "Raw stages (median ms): "
        + ", ".join(f"{name} {f(harness.percentile(v, 50) * 1000)}" for name, v in r["stages"].items())
        + ".",
        "",
        f"API - raw medians: **{allowance:+.0f} ms** (ratio {api['p50'] / base['p50']:.2f}x, median of per-pair "
        f"ratios {statistics.median(paired):.2f}x). Target API median <= raw median + "
        f"{TARGET_ALLOWANCE_MS:.0f} ms: **{'met' if met else 'NOT met'}**.",
        "",
        "Timeline of the API update from the engine's event stream (ms after the request was sent; median over "
        "the rounds; each event is emitted when its step has finished):",
        "",
    ]
    rows = []
    for step in TIMELINE_ORDER:
        values = [t[step] for t in r["timelines"] if step in t]
        if values:
            rows.append([step, f(harness.percentile(values, 50)), f(min(values)), f(max(values)), len(values)])
    lines.append(harness.table(["step", "median ms", "min", "max", "n"], rows))
    gates = [probes for probes in r["gate"] if probes]
    if gates:
        retried = [probes for probes in gates if len(probes) > 1]
        failures = Counter(p.detail.split(":")[0] for probes in gates for p in probes if not p.ok)
        lines += [
            "",
            f"Health gate: {sum(len(p) for p in gates)} probes in {len(gates)} updates; the first probe failed in "
            f"{len(retried)} of them"
            + (f" ({', '.join(f'{n}x {d}' for d, n in failures.most_common())})" if failures else "")
            + ". Raw time from start to the first 200 (probed every 10 ms): median "
            f"{f(harness.percentile(r['stages']['until healthy'], 50) * 1000)} ms.",
        ]
        if retried:
            slow = [t for t, probes in zip(r["api"], r["gate"], strict=True) if len(probes) > 1]
            fast = [t for t, probes in zip(r["api"], r["gate"], strict=True) if len(probes) == 1]
            lines[-1] += (
                f" Updates whose first gate probe failed took median {f(harness.percentile(slow, 50) * 1000)} ms, "
                f"the others {f(harness.percentile(fast, 50) * 1000)} ms: after a failed probe the gate waits a "
                "fixed pause before the next one."
            )
    return "\n".join(lines)


# --- main ---------------------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> int:
    if not Path(REGISTRY_BINARY).exists():
        raise SystemExit(f"this benchmark needs {REGISTRY_BINARY} (apt-get install docker-registry)")
    harness.log("building the stub image")
    harness.build_stub_image()
    facts = await harness.machine_facts()
    root = Path(tempfile.mkdtemp(prefix="wopr-bench-registry-"))
    registry = BenchRegistry(root)
    docker = aiodocker.Docker(api_version=harness.API_VERSION)
    try:
        await registry.start()
        harness.log(f"registry {registry.host} up (pid {registry.process.pid if registry.process else '?'})")
        if args.only in (None, "poll"):
            result = await poll_part(args, registry, docker)
            harness.publish(SECTION_POLL, poll_report(args, facts, registry, result), write=args.write)
        if args.only in (None, "update"):
            result = await update_part(args, registry, docker)
            harness.publish(SECTION_UPDATE, update_report(args, facts, registry, result), write=args.write)
    finally:
        await registry.stop()
        removed = await registry.delete_local_images(docker)
        await docker.close()
        shutil.rmtree(root, ignore_errors=True)
        harness.log(f"cleanup: registry stopped, {removed} local image references under {registry.host} removed")
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bots", type=int, default=DEFAULT_BOTS, help="bots registered for the poll")
    parser.add_argument("--references", type=int, default=DEFAULT_REFERENCES, help="distinct image references")
    parser.add_argument("--polls", type=int, default=5, help="forced polls (the first is the cold one)")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS, help="timed updates of each kind")
    parser.add_argument("--warmup", type=int, default=1, help="untimed update rounds first")
    parser.add_argument("--settle", type=float, default=0.5, help="seconds of quiet before each timed update")
    parser.add_argument("--only", choices=("poll", "update"), help="run one part only")
    parser.add_argument("--no-write", dest="write", action="store_false", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.bots < 1 or args.references < 1 or args.references > args.bots:
        parser.error("need 1 <= --references <= --bots")
    if args.iterations < 1 or args.polls < 1:
        parser.error("--iterations and --polls must be at least 1")
    return args


if __name__ == "__main__":
    arguments = parse_args()
    sys.exit(harness.run(lambda: main(arguments)))
