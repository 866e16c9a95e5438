"""Shared fixtures: the real Docker engine, the stub instance image, a real database, a running platform."""

from __future__ import annotations

import asyncio
import fcntl
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiodocker
import httpx
import pytest
import uvicorn
from moto.server import ThreadedMotoServer

from tests.ports import free_port, listening_socket
from wopr_platform.app.asgi import create_app
from wopr_platform.app.server import PlatformServer, server_config
from wopr_platform.core.settings import Settings
from wopr_platform.db.engine import create_engine
from wopr_platform.db.migrate import upgrade
from wopr_platform.docker.swarm import LABEL_SERVICE_ID
from wopr_platform.firewall.iptables import HostFirewall
from wopr_platform.updates.clock import Clock

ROOT = Path(__file__).resolve().parent.parent
STUB_IMAGE = "localhost/wopr-stub:latest"
# what the project's stub bot writes at each start, then its count (stub/rootfs/usr/local/bin/stub-entrypoint)
BOOT_LINE = "stub: boot #"
# several replicas share one database only on PostgreSQL: such tests run in the PostgreSQL phase of scripts/test
ON_POSTGRES = os.environ.get("WOPR_TEST_DATABASE", "sqlite") == "postgres"
several_replicas = pytest.mark.skipif(not ON_POSTGRES, reason="several replicas share a database only on PostgreSQL")
# what exists only on PostgreSQL (connections of their own, server processes to cut): run in the same phase
postgres_only = pytest.mark.skipif(not ON_POSTGRES, reason="tested in the PostgreSQL phase of scripts/test")
BROKEN_IMAGE = "localhost/wopr-stub:broken"
# random for each run, yet the same in every parallel worker of a run: the workers must collect the same test ids,
# and some ids show values made from it
RUN_ID = uuid.uuid5(uuid.NAMESPACE_OID, os.environ.get("PYTEST_XDIST_TESTRUNUID") or uuid.uuid4().hex)
TOKEN = "test-token-" + RUN_ID.hex
TEST_PLATFORM_SECRET = "test-platform-secret-" + uuid.uuid5(RUN_ID, "platform-secret").hex

# the other real components, each in its own fixture module
pytest_plugins = [
    "tests.fixtures.registry",
    "tests.fixtures.token_registry",
    "tests.fixtures.caddy",
    "tests.fixtures.smtp",
    "tests.fixtures.stripe",
    "tests.fixtures.fake_provider",
]


# --- which tests run where --------------------------------------------------------------------------------
#
# scripts/test runs every test on SQLite, and again on PostgreSQL only the tests marked `database`: those whose
# outcome can depend on the database (repositories and their queries, migrations, unique constraints and races on
# them, transactions undone on failure, the operations journal, the leader lease, audit, update history, template
# seeds, JSON columns read back after a patch). A module or test that only checks HTTP, headers, container specs,
# the proxy or the registry client is not listed: its database is incidental. When in doubt, list it.
# An entry is a module under tests/ ("integration/test_patch"), one test in it ("...::test_name") or one of a
# test's parameter sets ("...::test_name[params]").
DATABASE_TESTS = frozenset(
    {
        "integration/test_accounts",
        "integration/test_audit",
        "integration/test_authorization",
        "integration/test_audit_ids_migration",
        # the archive checks (uploads, hostile and broken archives) do not depend on the database
        "integration/test_backups::test_a_backup_is_made_downloaded_and_restored_into_a_fresh_volume",
        "integration/test_backups::test_backups_are_the_tenants_own",
        "integration/test_backups::test_a_tenant_over_its_storage_quota_cannot_back_up",
        "integration/test_backups::test_schedules_back_up_and_retention_keeps_the_newest",
        "integration/test_backups::test_backup_storage_is_charged_once_a_day_when_billing_is_on",
        "integration/test_bad_input",
        "integration/test_billing",
        # the list's cursor holds a creation time as the database gives it back
        "integration/test_bot_list::test_pages_and_filters_of_the_bot_list",
        "integration/test_bot_list::test_a_platform_admin_lists_another_tenants_bots_or_every_tenants",
        "integration/test_bot_list::test_a_replica_lists_changes_made_by_another_or_by_hand_at_once",
        "integration/test_bot_list::test_the_list_reads_on_after_its_connections_are_cut",
        "integration/test_concurrency",
        # each operation interrupted once before its commit (the journal's intent is what the database holds) and
        # once after it; the other crash points differ only in what the engine holds, the same on both databases
        "integration/test_crash_recovery::test_interrupted_create_is_undone[create.after_intent-None]",
        "integration/test_crash_recovery::test_interrupted_create_is_undone[create.after_container_started-running]",
        "integration/test_crash_recovery::test_interrupted_patch_is_all_old_or_all_new[running-patch.after_parking-old]",
        "integration/test_crash_recovery::test_interrupted_patch_is_all_old_or_all_new[running-patch.after_commit-new]",
        "integration/test_crash_recovery::test_interrupted_delete_is_finished[keep-volume]",
        "integration/test_crash_recovery::test_interrupted_repair_is_adopted[reconcile.after_container_started]",
        "integration/test_crash_recovery::test_interrupted_update_is_all_old_or_all_new[update.after_health_gate-old]",
        "integration/test_crash_recovery::test_interrupted_update_is_all_old_or_all_new[update.after_commit-new]",
        "integration/test_crash_recovery::test_interrupted_restore_leaves_the_old_data_or_the_restored_data["
        "restore.after_fill-old]",
        "integration/test_crash_recovery::test_interrupted_restore_leaves_the_old_data_or_the_restored_data["
        "restore.after_commit-new]",
        "integration/test_engine_unavailable",
        "integration/test_failover",
        "integration/test_fuzz",
        "integration/test_gateway",
        "integration/test_gateway_leases",
        "integration/test_hardening::test_per_bot_resources_override_the_defaults_within_bounds",
        "integration/test_hardening::test_resources_out_of_bounds_are_a_400_and_change_nothing",
        "integration/test_hardening::test_new_defaults_reach_existing_bots_through_the_reconciler",
        "integration/test_health::test_the_profile_keeps_the_health_check_and_patch_changes_it_without_recreate",
        "integration/test_image_watcher",
        "integration/test_invitations",
        "integration/test_leadership",
        "integration/test_lifecycle",
        "integration/test_password_reset",
        "integration/test_patch",
        "integration/test_plans",
        "integration/test_proxy::test_subdomains_are_validated_unique_across_tenants_and_patchable",
        "integration/test_quotas",
        "integration/test_reconciler",
        "integration/test_runtime_charges",
        "integration/test_secrets",
        "integration/test_stripe",
        "integration/test_stripe_checkout",
        "integration/test_suspension",
        "integration/test_templates",
        "integration/test_tenants",
        "integration/test_totp",
        "integration/test_updates",
    }
)
# Everything else runs in parallel workers (scripts/test): a test uses its own platform id, ports, temporary
# directory, database and image tags, and looks at the engine only through its own labels. Listed here, to run
# alone after the parallel run: a test that changes the engine for every other one (dockerd stopped and restarted),
# and one that other tests' work on the engine can upset (the network isolation checks: while dockerd creates a
# network it briefly lifts the isolation between bridges).
SERIAL_TESTS = frozenset(
    {
        "integration/test_engine_outage",
        # hundreds of networks made and removed: dockerd rewrites its isolation rules on each
        "integration/test_tenant_subnets::test_hundreds_of_tenant_networks_get_distinct_subnets_of_the_range",
        "integration/test_tenants::test_a_bot_reaches_its_own_tenant_only_and_the_platform_reaches_every_bot",
        "integration/test_tenants::test_a_container_on_the_default_bridge_cannot_reach_a_bot",
    }
)


def _listed(item: pytest.Item, names: frozenset[str]) -> bool:
    try:
        module = item.path.resolve().relative_to(ROOT / "tests").with_suffix("").as_posix()
    except ValueError:
        return False
    function = getattr(item, "originalname", item.name)
    return module in names or f"{module}::{function}" in names or f"{module}::{item.name}" in names


@pytest.hookimpl(tryfirst=True)  # before -m selects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _listed(item, DATABASE_TESTS):
            item.add_marker(pytest.mark.database)
        if _listed(item, SERIAL_TESTS):
            item.add_marker(pytest.mark.serial)


# --- engine and images ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stub_image() -> str:
    """Build the project's stub WOPR image (and its broken variant) from the repo's own files."""
    try:
        subprocess.run(["docker", "version"], check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.CalledProcessError) as err:
        pytest.exit(f"the test-suite needs a running Docker engine: {err}", returncode=3)
    # one build at a time (parallel workers, other runs on this engine): the later ones come from the build cache,
    # so the tag never moves to another image id under a running test
    with (Path(tempfile.gettempdir()) / "wopr-stub-image.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        subprocess.run([str(ROOT / "scripts" / "build-stub-image"), STUB_IMAGE], check=True, capture_output=True)
        subprocess.run(
            ["docker", "build", "-q", "-t", BROKEN_IMAGE, str(ROOT / "tests" / "images" / "broken")],
            check=True,
            capture_output=True,
        )
    return STUB_IMAGE


@pytest.fixture
async def docker() -> AsyncIterator[aiodocker.Docker]:
    """A raw engine client for checking what really exists."""
    client = aiodocker.Docker()
    try:
        yield client
    finally:
        await client.close()


# --- database ---------------------------------------------------------------------------------------------


@dataclass
class _Postgres:
    port: int
    datadir: Path

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    pytest.exit(f"PostgreSQL's {name} is not installed (apt-get install postgresql)", returncode=3)
    raise AssertionError


def _as_postgres_user(args: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="session")
def postgres() -> Iterator[_Postgres | None]:
    """A throwaway PostgreSQL server when WOPR_TEST_DATABASE=postgres, else None (SQLite)."""
    if os.environ.get("WOPR_TEST_DATABASE", "sqlite") != "postgres":
        yield None
        return
    base = Path(tempfile.mkdtemp(prefix="wopr-pg-"))
    datadir = base / "data"
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
    port = free_port()
    subprocess.run(
        _as_postgres_user([_pg_bin("initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8"]),
        check=True,
        capture_output=True,
    )
    subprocess.run(
        _as_postgres_user(
            [
                _pg_bin("pg_ctl"),
                "-D",
                str(datadir),
                "-l",
                str(base / "log"),
                "-o",
                f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off",
                "-w",
                "start",
            ]
        ),
        check=True,
        capture_output=True,
    )
    try:
        yield _Postgres(port=port, datadir=datadir)
    finally:
        subprocess.run(
            _as_postgres_user([_pg_bin("pg_ctl"), "-D", str(datadir), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(base, ignore_errors=True)


async def _new_postgres_database(postgres: _Postgres, template: str | None = None) -> str:
    import asyncpg

    name = "t_" + uuid.uuid4().hex[:12]
    admin = await asyncpg.connect(host="127.0.0.1", port=postgres.port, user="postgres", database="postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    finally:
        await admin.close()
    return name


@pytest.fixture(scope="session")
async def migrated_database(postgres: _Postgres | None, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database with every migration applied, made once per test process: each test's database is a copy of
    it (a file copy on SQLite, `CREATE DATABASE ... TEMPLATE` on PostgreSQL), so a platform under test starts
    without running the migrations again (it still checks them: nothing is left to apply)."""
    if postgres is None:
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('migrated') / 'platform.db'}"
    else:
        url = postgres.url(await _new_postgres_database(postgres))
    engine = create_engine(url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()  # a template database must have no connection when it is copied
    return url


@pytest.fixture
async def empty_database_url(postgres: _Postgres | None, tmp_path: Path) -> str:
    """A fresh database without any table, for the tests of the migrations themselves."""
    if postgres is None:
        return f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    return postgres.url(await _new_postgres_database(postgres))


@pytest.fixture
async def database_url(postgres: _Postgres | None, migrated_database: str, tmp_path: Path) -> str:
    """A fresh database for one test, at the newest schema and holding nothing else."""
    if postgres is None:
        copy = tmp_path / "platform.db"
        shutil.copyfile(migrated_database.removeprefix("sqlite+aiosqlite:///"), copy)
        return f"sqlite+aiosqlite:///{copy}"
    return postgres.url(await _new_postgres_database(postgres, template=migrated_database.rsplit("/", 1)[1]))


# --- the platform -----------------------------------------------------------------------------------------


@dataclass
class Platform:
    """A real wopr-platform serving HTTP on a loopback port, with an authenticated client."""

    url: str
    settings: Settings
    client: httpx.AsyncClient
    app: Any
    server: uvicorn.Server | None = None
    task: asyncio.Task[None] | None = None

    async def stop(self) -> None:
        """Shut this platform down as a restart would, leaving its containers and database in place."""
        assert self.server is not None and self.task is not None
        await self.client.aclose()
        problems = await _stopped(self.server, self.task)
        assert not problems, problems

    async def create_bot(self, **fields: Any) -> dict[str, Any]:
        body = {"name": "bot-" + uuid.uuid4().hex[:8], "image": STUB_IMAGE, **fields}
        response = await self.client.post("/fleet/bots", json=body)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def bot(self, bot_id: str) -> dict[str, Any]:
        response = await self.client.get(f"/fleet/bots/{bot_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def wait_for(self, bot_id: str, timeout: float = 20.0, **expected: Any) -> dict[str, Any]:
        """Poll the API until the bot's fields equal `expected` (e.g. state="running", health="healthy")."""
        deadline = time.monotonic() + timeout
        while True:
            current = await self.bot(bot_id)
            if all(current.get(key) == value for key, value in expected.items()):
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"bot {bot_id} never reached {expected}; last seen {current}")
            await asyncio.sleep(0.1)


PlatformFactory = Callable[..., Awaitable[Platform]]


async def _cleanup_engine(platform_id: str) -> None:
    client = aiodocker.Docker()
    try:
        label = f"wopr.platform={platform_id}"
        if await swarm_active(client):
            services = await client.services.list(filters={"label": [label]})
            for service in services:
                try:
                    await client.services.delete(service["ID"])
                except aiodocker.DockerError as err:
                    if err.status != 404:
                        raise
            for _ in range(100):  # the swarm removes the tasks' containers after the services
                if not await client.containers.list(all=True, filters={"label": [label]}):
                    break
                await asyncio.sleep(0.1)
        for container in await client.containers.list(all=True, filters={"label": [label]}):
            try:
                await container.delete(force=True)
            except aiodocker.DockerError as err:
                if err.status != 404:  # gone meanwhile
                    raise
        volumes = await client.volumes.list(filters={"label": [label]})
        for volume in volumes.get("Volumes") or []:
            await (await client.volumes.get(volume["Name"])).delete()
        await remove_networks(client, label)
    finally:
        await client.close()
    await remove_firewall_chains(platform_id)


async def remove_firewall_chains(platform_id: str) -> None:
    """Take the platform id's host firewall chains off the host (the platform leaves them when it stops)."""
    await HostFirewall(platform_id).remove()


async def remove_networks(client: aiodocker.Docker, label: str) -> None:
    """Remove the (tenant) networks carrying `label`: each holds a subnet of the range and a bridge on the host."""
    for network in await client.networks.list(filters={"label": [label]}):
        try:
            await client._query_json(f"networks/{network['Id']}", method="DELETE")
        except aiodocker.DockerError as err:
            if err.status != 404:
                raise


# --- engine backends: plain Docker, and Swarm on this engine ------------------------------------------------------

# `@both_backends` runs a test on plain Docker and on Swarm; the Swarm runs carry the `swarm` mark and run alone,
# after the others (scripts/test), on a single-node swarm made for them
both_backends = pytest.mark.parametrize(
    "backend", ["docker", pytest.param("swarm", marks=[pytest.mark.swarm, pytest.mark.slow])], indirect=True
)


async def swarm_active(client: aiodocker.Docker) -> bool:
    return ((await client.system.info()).get("Swarm") or {}).get("LocalNodeState") == "active"


@pytest.fixture(scope="session")
async def swarm() -> AsyncIterator[None]:
    """A single-node swarm on the test engine: scripts/test makes one for the Swarm runs (and leaves it after).
    A run of pytest alone makes it here and leaves it after, unless it runs in parallel workers, which cannot
    agree on who leaves: they ask for the swarm to be there already."""
    client = aiodocker.Docker()
    try:
        made = not await swarm_active(client)
        if made:
            if os.environ.get("PYTEST_XDIST_WORKER"):
                pytest.fail("the Swarm runs in parallel workers need the engine in a swarm already (scripts/test)")
            await client.swarm.init(advertise_addr="127.0.0.1", listen_addr="127.0.0.1:2377")
        try:
            yield
        finally:
            if made:
                await client.swarm.leave(force=True)
    finally:
        await client.close()


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The engine backend a test's platforms use (FLEET_ENGINE): `docker` unless the test asks for both."""
    name = str(getattr(request, "param", "docker"))
    if name == "swarm":
        request.getfixturevalue("swarm")
    return name


async def bot_container(docker: aiodocker.Docker, container_id: str) -> dict[str, Any]:
    """The engine's description of the container a bot runs in: the container itself on plain Docker, the
    running task's container of the bot's service on Swarm."""
    try:
        return dict(await docker.containers.container(container_id).show())
    except aiodocker.DockerError as err:
        if err.status != 404:
            raise
    found = await docker.containers.list(
        filters={"label": [f"{LABEL_SERVICE_ID}={container_id}"], "status": ["running"]}
    )
    if not found:
        raise LookupError(f"no running container for {container_id}")
    return dict(await found[0].show())


async def bot_running(docker: aiodocker.Docker, container_id: str) -> bool:
    """Whether the bot's container (on Swarm: a task's container of its service) runs."""
    try:
        info = await bot_container(docker, container_id)
    except LookupError:
        return False
    return bool(info["State"]["Running"])


async def bot_address(docker: aiodocker.Docker, container_id: str) -> str:
    """Where the host reaches a bot: its container's address on its network on plain Docker; on Swarm its task
    container's address on the node's gateway bridge (an overlay network is not reachable from the host)."""
    info = await bot_container(docker, container_id)
    if not info["Config"]["Labels"].get(LABEL_SERVICE_ID):
        return str(next(iter(info["NetworkSettings"]["Networks"].values()))["IPAddress"])
    gateway = await docker._query_json("networks/docker_gwbridge")
    return str(gateway["Containers"][info["Id"]]["IPv4Address"]).split("/")[0]


async def bot_units(docker: aiodocker.Docker, bot_id: str) -> list[str]:
    """The ids of what the engine holds for a bot: its containers on plain Docker, its services on Swarm (whose
    tasks' containers come and go with the swarm's own bookkeeping)."""
    label = [f"wopr.bot-id={bot_id}"]
    if await swarm_active(docker):
        services = await docker.services.list(filters={"label": label})
        if services:
            return [str(service["ID"]) for service in services]
    return [str(c.id) for c in await docker.containers.list(all=True, filters={"label": label})]


async def scale_behind_our_back(docker: aiodocker.Docker, container_id: str, *, running: bool) -> None:
    """Stop or start a bot's container (on Swarm: scale its service to 0 or 1) as someone else would."""
    try:
        container = docker.containers.container(container_id)
        await (container.start() if running else container.stop(t=5))
        return
    except aiodocker.DockerError as err:
        if err.status != 404:
            raise
    service = await docker.services.inspect(container_id)
    spec = service["Spec"]
    spec["Mode"] = {"Replicated": {"Replicas": 1 if running else 0}}
    await docker._query_json(
        f"services/{container_id}/update",
        method="POST",
        params={"version": str(service["Version"]["Index"])},
        data=spec,
    )


async def remove_behind_our_back(docker: aiodocker.Docker, container_id: str) -> None:
    """Remove a bot's container (on Swarm its service) as someone else would, not through the platform."""
    try:
        await docker.containers.container(container_id).delete(force=True)
    except aiodocker.DockerError as err:
        if err.status != 404:
            raise
        await docker.services.delete(container_id)


@pytest.fixture
async def make_platform(
    stub_image: str, database_url: str, tmp_path: Path, backend: str
) -> AsyncIterator[PlatformFactory]:
    """Start platforms with settings overrides (by environment name); all are stopped and cleaned after."""
    started: list[tuple[uvicorn.Server, asyncio.Task[None], httpx.AsyncClient]] = []
    platform_ids: set[str] = set()

    async def start(clock: Clock | None = None, **overrides: Any) -> Platform:
        # bound here and handed to the server: nothing can take the port between choosing it and serving on it
        sock = listening_socket()
        port = int(sock.getsockname()[1])
        values: dict[str, Any] = {
            "PORT": port,
            "HOST": "127.0.0.1",
            "PLATFORM_URL": f"http://127.0.0.1:{port}",  # where mails' links and Stripe's return lead
            "ENV": "test",
            "FLEET_API_TOKEN": TOKEN,
            "DATABASE_URL": database_url,
            "WOPR_PLATFORM_ID": "t-" + uuid.uuid4().hex[:10],
            "FLEET_IMAGE_ALLOWLIST": "localhost/wopr-stub",
            "FLEET_STOP_TIMEOUT": 5,
            "FLEET_HEALTH_INTERVAL": 1,
            "FLEET_STATS_INTERVAL": 1,
            "PROXY_ENABLED": False,  # tenant routing only where a test brings its own Caddy (tests.fixtures.caddy)
            "PLATFORM_SECRET": TEST_PLATFORM_SECRET,
            "BACKUP_DIR": str(tmp_path / "backups"),
            "FLEET_ENGINE": backend,
        }
        values.update(overrides)
        values = {k: v for k, v in values.items() if v is not None}
        settings = Settings(**values)
        platform_ids.add(settings.platform_id)
        app = create_app(settings, clock=clock)
        config = server_config(app, settings)  # served as production serves it, front door included
        config.lifespan = "on"
        server = PlatformServer(config, before_shutdown=app.state.events.close)
        task = asyncio.create_task(_serve(server, sock))
        deadline = time.monotonic() + 30
        while not server.started:
            if task.done():
                task.result()
                raise AssertionError("platform exited during start-up")
            if time.monotonic() > deadline:
                raise AssertionError(f"platform did not start within 30 s {await _stopped(server, task)}")
            await asyncio.sleep(0.02)
        client = httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
            trust_env=False,
        )
        started.append((server, task, client))
        return Platform(
            url=f"http://127.0.0.1:{port}", settings=settings, client=client, app=app, server=server, task=task
        )

    try:
        yield start
    finally:
        problems: list[str] = []
        for server, task, client in reversed(started):
            await client.aclose()
            problems += await _stopped(server, task)
        for platform_id in platform_ids:
            await _cleanup_engine(platform_id)
        # an Exception, never a BaseException: pytest stops tearing down at one, and the fixtures it has not
        # torn down would be handed, still set up, to the worker's next tests
        if problems:
            raise RuntimeError("; ".join(problems))


async def _serve(server: uvicorn.Server, sock: socket.socket) -> None:
    """uvicorn ends a failed start with sys.exit. A SystemExit raised in a task escapes the event loop itself and
    leaves the test (and pytest's fixture bookkeeping) half run: here it is an error of the test instead."""
    try:
        await server.serve(sockets=[sock])
    except SystemExit as exited:
        raise RuntimeError(f"the platform exited with status {exited.code} (its log says why)") from None
    finally:
        sock.close()


async def _stopped(server: uvicorn.Server, task: asyncio.Task[None]) -> list[str]:
    """Stop a platform served in this process; what went wrong, as text (a test may have stopped it already, or
    its shutdown may have failed or been cancelled)."""
    server.should_exit = True
    if not task.done():
        done, _ = await asyncio.wait({task}, timeout=30)
        if not done:
            server.force_exit = True
            task.cancel()
            await asyncio.wait({task}, timeout=10)
            return ["a platform did not shut down within 30 s"]
    if task.cancelled():
        return ["a platform's server task was cancelled"]
    error = task.exception()
    return [f"a platform's server failed: {error!r}"] if error is not None else []


@pytest.fixture
async def platform(make_platform: PlatformFactory) -> Platform:
    """A platform on default test settings."""
    return await make_platform()


# --- object storage ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server (a local stand-in for S3: the platform talks to it through aiobotocore, as to S3), one per
    test process; each test makes a bucket of its own."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
