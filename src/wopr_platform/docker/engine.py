"""The Docker adapter: the only module that talks to the engine (through aiodocker).

Engine errors are translated into the project's own: unreachable → EngineUnavailable, 404 → EngineNotFound,
409 → EngineConflict, slow → EngineTimeout.

Every bot container is hardened here, whatever its spec: no new privileges, every capability dropped but the
four the WOPR entrypoint needs to chown `/data` and drop to its own user, a read-only root filesystem with a
small noexec tmpfs at `/tmp`, memory/CPU/process limits, its tenant's bridge network only, and no host path,
device or Docker socket. `create` refuses (UnsafeContainerSpec) a config that would break any of that.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, nullcontext
from datetime import UTC, datetime
from ipaddress import IPv4Network
from itertools import islice
from typing import Any

import aiodocker
import aiohttp
from aiodocker.exceptions import DockerError

from wopr_platform.core.errors import (
    EngineConflict,
    EngineError,
    EngineNotFound,
    EngineTimeout,
    EngineUnavailable,
    ImageUnavailable,
    ServiceUnavailable,
    TenantSubnetsExhausted,
)
from wopr_platform.core.naming import LABEL_BOT_ID, LABEL_MANAGED, LABEL_NETWORK, LABEL_PLATFORM, LABEL_TENANT
from wopr_platform.core.networks import Network, SubnetPool, gateway
from wopr_platform.docker.hardening import ON_FAILURE_RETRIES, check_hardened, container_config, without_host_paths
from wopr_platform.docker.types import ContainerInfo, ContainerSpec, ContainerStats, EngineEvent, VolumeInfo

log = logging.getLogger(__name__)

API_VERSION = "v1.41"
VOLUME_ROOT = "wopr-volume"  # where a volume helper mounts the volume, and the top directory of its tar stream
LABEL_VOLUME_HELPER = "wopr.volume-helper"
STREAM_CHUNK = 256 * 1024
WATCHED_EVENTS = ("create", "start", "restart", "die", "stop", "kill", "oom", "destroy", "pause", "unpause", "update")
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
_UNREACHABLE = 900  # aiodocker's status for "cannot connect"
# subnets tried for one new tenant network when others keep taking them first (another replica, another process)
SUBNET_ATTEMPTS = 16
_FRACTION = re.compile(r"\.(\d+)")


def _parse_time(text: str | None) -> datetime | None:
    """Docker's RFC 3339 times (nanoseconds, `Z`, zero value for "never") as aware datetimes."""
    if not text or text.startswith("0001-01-01"):
        return None
    text = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), text, count=1)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@contextmanager
def _translate(what: str) -> Iterator[None]:
    """Map aiodocker/aiohttp failures of `what` to the project's errors."""
    try:
        yield
    except DockerError as err:
        message = without_host_paths(err.message)
        if err.status == _UNREACHABLE:
            raise EngineUnavailable(
                "Docker engine is unreachable", details={"operation": what, "reason": message}
            ) from err
        if err.status == 404:
            raise EngineNotFound(f"{what}: not found", details={"reason": message}) from err
        if err.status == 409:
            raise EngineConflict(f"{what}: conflict", details={"reason": message}) from err
        raise EngineError(f"{what} failed", details={"status": err.status, "reason": message}) from err
    except TimeoutError as err:
        raise EngineTimeout(f"{what}: Docker engine timed out", details={"operation": what}) from err
    except aiohttp.ClientError as err:
        raise EngineUnavailable(
            "Docker engine is unreachable", details={"operation": what, "reason": str(err)}
        ) from err


def _ip_of(networks: dict[str, Any] | None, preferred: str | None) -> str | None:
    """The container's address on `preferred` (its tenant network), else on any network it is attached to."""
    networks = networks or {}
    ordered = [networks[preferred]] if preferred in networks else []
    for network in [*ordered, *networks.values()]:
        address = network.get("IPAddress")
        if address:
            return str(address)
    return None


def _bridge_of(network: dict[str, Any]) -> str:
    """The host's interface of a bridge network: the name its options give, else Docker's `br-<12 of its id>`."""
    named = (network.get("Options") or {}).get(BRIDGE_NAME_OPTION)
    return str(named) if named else "br-" + str(network["Id"])[:12]


def _subnets_of(network: dict[str, Any]) -> Iterator[Network]:
    """The subnets a network of the engine's listing holds (any driver, IPv4 and IPv6)."""
    for config in (network.get("IPAM") or {}).get("Config") or []:
        try:
            yield ipaddress.ip_network(str((config or {}).get("Subnet")), strict=False)
        except ValueError:
            continue  # no subnet (host, none) or one we cannot read


def _pool_overlaps(err: EngineError) -> bool:
    """Whether the engine refused a network because its subnet overlaps another's (dockerd 20.10: 403 "Pool
    overlaps with other one on this address space")."""
    return err.details.get("status") in (400, 403) and "overlaps" in str(err.details.get("reason", "")).lower()


def _networks_of(settings: dict[str, Any] | None) -> tuple[str, ...] | None:
    networks = (settings or {}).get("Networks")
    return tuple(sorted(networks)) if isinstance(networks, dict) else None


class DockerEngine:
    """Container, volume, image, log, event and stats operations on one engine."""

    def __init__(self, url: str, *, timeout: float, platform_id: str, subnets: SubnetPool) -> None:
        self._url = url
        self._platform_id = platform_id
        self._subnets = subnets  # tenant networks' subnets are cut from these, never from the engine's pools
        self._scope = [f"{LABEL_MANAGED}=true", f"{LABEL_PLATFORM}={platform_id}"]
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._request_seconds = timeout
        self._client: aiodocker.Docker | None = None
        self._cpus: int | None = None
        self._networks = asyncio.Lock()  # one create-or-check at a time: never two networks of one name

    @property
    def client(self) -> aiodocker.Docker:
        if self._client is None:
            self._client = aiodocker.Docker(url=self._url, api_version=API_VERSION, timeout=self._timeout)
        return self._client

    async def close(self) -> None:
        """Release the connection pool."""
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def ping(self) -> None:
        """Raise EngineUnavailable unless the engine answers `/_ping`."""
        with _translate("ping"):
            async with asyncio.timeout(5):
                await self.client._query_json("_ping", versioned_api=False)

    async def cpu_count(self) -> int:
        """How many CPUs the engine's host has (asked once): no container may be given more."""
        if self._cpus is None:
            with _translate("engine info"):
                info = await self.client._query_json("info")
            self._cpus = max(int(info.get("NCPU") or 1), 1)
        return self._cpus

    # images -------------------------------------------------------------------------------------------

    async def image_present(self, image: str) -> bool:
        """True when the engine holds `image` locally."""
        try:
            with _translate("inspect image"):
                await self.client.images.inspect(image)
        except EngineNotFound:
            return False
        return True

    async def pull(self, image: str, auth: dict[str, str] | None = None) -> None:
        """Pull `image` (with registry credentials when given); failure → ImageUnavailable with the reason."""
        try:
            with _translate("pull image"):
                await self.client.images.pull(image, auth=auth)
        except (EngineError, EngineNotFound) as err:
            raise ImageUnavailable(
                f"image {image} could not be pulled",
                details={"image": image, "reason": err.details.get("reason")},
            ) from err

    async def ensure_image(self, image: str, auth: dict[str, str] | None = None) -> None:
        """Make sure `image` is present locally, pulling it when it is not."""
        if not await self.image_present(image):
            await self.pull(image, auth)

    async def repo_digests(self, image: str) -> list[str]:
        """The `<name>@sha256:...` references the engine recorded for a local image (empty if built locally)."""
        with _translate("inspect image"):
            data = await self.client.images.inspect(image)
        return [str(item) for item in data.get("RepoDigests") or []]

    async def remove_image(self, image: str) -> bool:
        """Remove a local image reference unless a container still uses it; True when it was removed."""
        try:
            with _translate("remove image"):
                await self.client.images.delete(image, force=False, noprune=False)
        except (EngineNotFound, EngineConflict):
            return False
        except EngineError as err:
            # the engine answers 500 "unrecognized image ID" to a removal racing another one of the same image
            if "unrecognized image" in str(err.details.get("reason", "")):
                return False
            raise
        return True

    # volumes ------------------------------------------------------------------------------------------

    async def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        """Create the named volume (idempotent: an existing one is kept with its data)."""
        with _translate("create volume"):
            await self.client._query_json("volumes/create", method="POST", data={"Name": name, "Labels": labels})

    async def remove_volume(self, name: str) -> None:
        """Remove the named volume; a volume that is already gone is fine."""
        try:
            with _translate("remove volume"):
                await self.client._query_json(f"volumes/{name}", method="DELETE")
        except EngineNotFound:
            return

    async def bot_volumes(self, bot_id: str | None = None) -> list[VolumeInfo]:
        """The volumes this platform made for bots (or for one bot), by their bot id label, in one call."""
        labels = [*self._scope, f"{LABEL_BOT_ID}={bot_id}" if bot_id else LABEL_BOT_ID]
        with _translate("list volumes"):
            data = await self.client._query_json("volumes", params={"filters": json.dumps({"label": labels})})
        found = []
        for row in (data or {}).get("Volumes") or []:
            volume_labels = row.get("Labels") or {}
            found.append(
                VolumeInfo(
                    name=str(row["Name"]),
                    bot_id=str(volume_labels.get(LABEL_BOT_ID, "")),
                    tenant_id=volume_labels.get(LABEL_TENANT),
                )
            )
        return found

    async def volume_exists(self, name: str) -> bool:
        try:
            with _translate("inspect volume"):
                await self.client._query_json(f"volumes/{name}")
        except EngineNotFound:
            return False
        return True

    # a volume's files ---------------------------------------------------------------------------------

    @asynccontextmanager
    async def _volume_helper(self, volume: str, image: str, *, read_only: bool) -> AsyncIterator[str]:
        """A container that is created and never started, with `volume` mounted at /VOLUME_ROOT and no network or
        capability of its own: the engine reads and writes the volume's files through it (its root is read-only
        for reading; the engine writes an archive only into a container whose root is writable, which is harmless
        in one that never runs and is removed after). One a crash left behind carries LABEL_VOLUME_HELPER."""
        config = {
            "Image": image,
            "Entrypoint": ["/nonexistent"],
            "Cmd": [],
            "NetworkDisabled": True,
            "Labels": {LABEL_PLATFORM: self._platform_id, LABEL_VOLUME_HELPER: volume},
            "HostConfig": {
                "NetworkMode": "none",
                "Mounts": [{"Type": "volume", "Source": volume, "Target": "/" + VOLUME_ROOT, "ReadOnly": read_only}],
                "CapDrop": ["ALL"],
                "SecurityOpt": ["no-new-privileges:true"],
                "ReadonlyRootfs": read_only,
            },
        }
        with _translate("create volume helper"):
            created = await self.client._query_json("containers/create", method="POST", data=config)
        try:
            yield str(created["Id"])
        finally:
            await self._remove_container(str(created["Id"]))

    async def volume_files(
        self, volume: str, image: str, *, hold: AbstractAsyncContextManager[None] | None = None
    ) -> AsyncGenerator[bytes, None]:
        """The files of `volume` as a tar stream, as the engine sends it (entries under `VOLUME_ROOT/`), read
        through a helper container created from `image` (one the engine has: the bot's own). `hold` is entered
        once the helper exists and left when the stream ends, before the helper is removed: it spans the read
        alone."""
        async with self._volume_helper(volume, image, read_only=True) as helper, hold or nullcontext():
            with _translate("read volume"):
                async with self.client._query(
                    f"containers/{helper}/archive",
                    params={"path": "/" + VOLUME_ROOT},
                    # uncompressed: the engine gzips the stream for a client that accepts it, at a seventh of the speed
                    headers={"Accept-Encoding": "identity"},
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=self._request_seconds),
                ) as response:
                    async for chunk in response.content.iter_chunked(STREAM_CHUNK):
                        yield chunk

    async def write_volume_files(self, volume: str, image: str, tar: AsyncIterable[bytes]) -> None:
        """Write a tar stream (entries under `VOLUME_ROOT/`) into `volume`, as it comes, through a helper
        container created from `image`. When the stream itself fails (a refused archive), that error is raised,
        not the broken upload it caused; what reached the volume by then stays there (write into a fresh one)."""
        failed: list[Exception] = []

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in tar:
                    yield chunk
            except Exception as err:
                failed.append(err)
                raise

        async with self._volume_helper(volume, image, read_only=False) as helper:
            try:
                with _translate("write volume"):
                    async with self.client._query(
                        f"containers/{helper}/archive",
                        method="PUT",
                        params={"path": "/", "noOverwriteDirNonDir": "true"},
                        data=body(),
                        headers={"Content-Type": "application/x-tar"},
                        timeout=aiohttp.ClientTimeout(total=None, sock_read=self._request_seconds),
                    ) as response:
                        await response.read()
            except Exception:
                if failed:
                    raise failed[0] from None
                raise

    # networks -----------------------------------------------------------------------------------------

    async def ensure_network(self, name: str, labels: dict[str, str]) -> str:
        """Create the bridge network `name` with `labels` unless it exists (idempotent); returns its bridge
        interface on the host. An existing network of that name must carry the labels, else EngineError (bots
        never join a network someone else made)."""
        async with self._networks:
            data = await self._network(name)
            if data is None:
                try:
                    return await self._create_network(name, labels)
                except EngineConflict:  # another replica made it meanwhile
                    data = await self._network(name)
            found = (data or {}).get("Labels") or {}
            if (
                data is None
                or data.get("Driver") != self.NETWORK_DRIVER
                or any(found.get(k) != v for k, v in labels.items())
            ):
                raise EngineError(
                    f"network {name} exists but is not this platform's tenant network", details={"network": name}
                )
            return self._interface_of(data)

    async def _create_network(self, name: str, labels: dict[str, str]) -> str:
        """Create a tenant network on the lowest subnet of the pool that no network of the engine holds (any
        network: a subnet that overlaps one the engine knows is refused); the engine's listing is the only record.
        A subnet taken between the listing and the create (another replica) makes it try the next one."""
        with _translate("list networks"):
            rows = await self.client._query_json("networks")
        used = [subnet for row in rows for subnet in _subnets_of(row)]
        tried: list[str] = []
        for subnet in islice(self._subnets.free(used), SUBNET_ATTEMPTS):
            body = self._network_body(name, labels, subnet)
            try:
                with _translate("create network"):
                    created = await self.client._query_json("networks/create", method="POST", data=body)
            except EngineError as err:
                if not _pool_overlaps(err):
                    raise
                tried.append(str(subnet))
                log.info("tenant subnet taken meanwhile, trying the next", extra={"network": name, "subnet": tried[-1]})
                continue
            log.info("tenant network made", extra={"network": name, "subnet": str(subnet)})
            return self._interface_of({**created, "Name": name})
        ranges = [str(network) for network in self._subnets.ranges]
        if len(tried) < SUBNET_ATTEMPTS:
            raise TenantSubnetsExhausted(
                "no tenant subnet is free: every subnet of FLEET_TENANT_SUBNETS is taken",
                details={"ranges": ranges, "prefix": self._subnets.prefix, "size": self._subnets.size},
            )
        raise ServiceUnavailable(  # not EngineConflict: that would read as "the network exists"
            f"network {name} not made: its subnets kept being taken meanwhile; try again", details={"tried": tried}
        )

    NETWORK_DRIVER = "bridge"

    def _network_body(self, name: str, labels: dict[str, str], subnet: IPv4Network) -> dict[str, Any]:
        """The create body of a tenant network on `subnet`."""
        return {
            "Name": name,
            "Driver": self.NETWORK_DRIVER,
            "CheckDuplicate": True,
            "Internal": False,  # bots reach their chat services and model APIs outside
            "Attachable": False,
            "Labels": labels,
            "IPAM": {"Driver": "default", "Config": [{"Subnet": str(subnet), "Gateway": str(gateway(subnet))}]},
            # containers of the network talk to each other; other bridge networks are cut off by the
            # engine's isolation rules, and no port is published
            "Options": {"com.docker.network.bridge.enable_icc": "true"},
        }

    def _interface_of(self, network: dict[str, Any]) -> str:
        """What `ensure_network` answers for a tenant network: its bridge interface on the host."""
        return _bridge_of(network)

    async def _network(self, name: str) -> dict[str, Any] | None:
        try:
            with _translate("inspect network"):
                data = await self.client._query_json(f"networks/{name}")
        except EngineNotFound:
            return None
        return data if isinstance(data, dict) and data.get("Name") == name else None

    async def list_networks(self) -> dict[str, str | None]:
        """The networks this platform made, by name, with the tenant each belongs to (one call)."""
        filters = json.dumps({"label": self._scope})
        with _translate("list networks"):
            rows = await self.client._query_json("networks", params={"filters": filters})
        return {str(row["Name"]): (row.get("Labels") or {}).get(LABEL_TENANT) for row in rows}

    async def list_bridges(self) -> dict[str, str]:
        """The host's bridge interface of each network this platform made, by network name (one call)."""
        filters = json.dumps({"label": self._scope})
        with _translate("list networks"):
            rows = await self.client._query_json("networks", params={"filters": filters})
        return {str(row["Name"]): _bridge_of(row) for row in rows if row.get("Driver") == "bridge"}

    async def remove_network(self, name: str, unused: Callable[[], Awaitable[bool]]) -> bool:
        """Remove the network if `unused()` still says so and no running container is attached; True when it
        is gone. `unused` is asked under the lock `ensure_network` takes, so a bot being created in this process
        either is seen by it or finds the network gone and makes it again."""
        async with self._networks:
            if not await unused():
                return False
            try:
                with _translate("remove network"):
                    await self.client._query_json(f"networks/{name}", method="DELETE")
            except EngineNotFound:
                return True
            except EngineConflict:
                return False
            except EngineError as err:
                if err.details.get("status") == 403:  # "has active endpoints"
                    return False
                raise
            return True

    # containers ---------------------------------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> str:
        """Create (not start) a hardened container from `spec`; returns its id. An unsafe config is refused."""
        config = container_config(spec)
        check_hardened(config)
        with _translate("create container"):
            container = await self.client.containers.create(config, name=spec.name)
        return str(container.id)

    async def start(self, container_id: str) -> None:
        """Start the container (a no-op when it already runs)."""
        with _translate("start container"):
            await self.client.containers.container(container_id).start()

    async def pause(self, container_id: str) -> None:
        """Freeze every process of the running container (its files stay still while they are copied)."""
        with _translate("pause container"):
            await self.client._query_json(f"containers/{container_id}/pause", method="POST")

    async def unpause(self, container_id: str) -> None:
        with _translate("unpause container"):
            await self.client._query_json(f"containers/{container_id}/unpause", method="POST")

    async def stop(self, container_id: str, grace: int) -> None:
        """Stop the container, killing it after `grace` seconds (a no-op when it is not running)."""
        with _translate("stop container"):
            await self.client._query_json(
                f"containers/{container_id}/stop",
                method="POST",
                params={"t": grace},
                timeout=aiohttp.ClientTimeout(total=grace + self._request_seconds),
            )

    async def restart(self, container_id: str, grace: int) -> None:
        """Restart the container with `grace` seconds before a kill."""
        with _translate("restart container"):
            await self.client._query_json(
                f"containers/{container_id}/restart",
                method="POST",
                params={"t": grace},
                timeout=aiohttp.ClientTimeout(total=grace + self._request_seconds),
            )

    async def rename(self, container_id: str, name: str) -> None:
        """Give the container a new name."""
        with _translate("rename container"):
            await self.client._query_json(f"containers/{container_id}/rename", method="POST", params={"name": name})

    async def update_restart_policy(self, container_id: str, policy: str) -> None:
        """Change the restart policy in place (no recreate needed)."""
        restart: dict[str, Any] = {"Name": policy}
        if policy == "on-failure":
            restart["MaximumRetryCount"] = ON_FAILURE_RETRIES
        with _translate("update container"):
            await self.client._query_json(
                f"containers/{container_id}/update", method="POST", data={"RestartPolicy": restart}
            )

    async def remove(self, container_id: str) -> None:
        """Force-remove the container (its named volume stays); already gone is fine."""
        await self._remove_container(container_id)

    async def _remove_container(self, container_id: str) -> None:
        try:
            with _translate("remove container"):
                await self.client.containers.container(container_id).delete(force=True, v=False)
        except EngineNotFound:
            return

    async def inspect(self, container_id: str) -> ContainerInfo:
        """Full description of one container."""
        with _translate("inspect container"):
            data = await self.client._query_json(f"containers/{container_id}/json")
        return self._from_inspect(data)

    async def list_managed(self, bot_id: str | None = None) -> list[ContainerInfo]:
        """Every container this platform manages (or one bot's), in one label-filtered call."""
        labels = [*self._scope, f"{LABEL_BOT_ID}={bot_id}"] if bot_id else self._scope
        filters = json.dumps({"label": labels})
        with _translate("list containers"):
            rows = await self.client._query_json("containers/json", params={"all": "1", "filters": filters})
        return [self._from_list(row) for row in rows]

    async def logs(self, container_id: str, tail: int) -> str:
        """The last `tail` lines of stdout and stderr, as text."""
        with _translate("read logs"):
            lines = await self.client.containers.container(container_id).log(stdout=True, stderr=True, tail=tail)
        return "".join(lines)

    async def stats(self, container_id: str) -> ContainerStats | None:
        """One sample of the container's counters without waiting for the daemon's second tick."""
        with _translate("read stats"):
            data = await self.client._query_json(
                f"containers/{container_id}/stats", params={"stream": "0", "one-shot": "1"}
            )
        if not isinstance(data, dict):  # a container being removed answers with an empty body
            return None
        cpu = data.get("cpu_stats") or {}
        memory = data.get("memory_stats") or {}
        if not cpu.get("cpu_usage") or "usage" not in memory:
            return None
        usage = int(memory.get("usage", 0))
        cache = int((memory.get("stats") or {}).get("total_inactive_file", 0) or 0)
        return ContainerStats(
            cpu_total_ns=int(cpu["cpu_usage"].get("total_usage", 0)),
            system_cpu_ns=int(cpu.get("system_cpu_usage", 0)),
            online_cpus=int(cpu.get("online_cpus") or len(cpu["cpu_usage"].get("percpu_usage") or [1])),
            memory_usage_bytes=max(usage - cache, 0),
            memory_limit_bytes=int(memory.get("limit", 0)),
        )

    async def events(self, since: float | None = None) -> AsyncIterator[EngineEvent]:
        """Stream container events of managed containers (replayed from `since`) until the connection ends."""
        filters = json.dumps({"type": ["container"], "label": self._scope, "event": list(WATCHED_EVENTS)})
        params = {"filters": filters}
        if since is not None:
            params["since"] = f"{since:.3f}"
        with _translate("subscribe to events"):
            response = await self.client._do_query(
                "events", method="GET", params=params, timeout=aiohttp.ClientTimeout()
            )
        try:
            while True:
                with _translate("read events"):
                    line = await response.content.readline()
                if not line:
                    return
                try:
                    raw = json.loads(line)
                except ValueError:
                    continue
                actor = raw.get("Actor") or {}
                attributes = {str(k): str(v) for k, v in (actor.get("Attributes") or {}).items()}
                time_ns = raw.get("timeNano") or int(raw.get("time", 0)) * 1_000_000_000
                action, subject = self._event_subject(
                    str(raw.get("Action") or raw.get("status") or "").split(":")[0],
                    attributes,
                    str(actor.get("ID") or raw.get("id") or ""),
                )
                yield EngineEvent(
                    action=action,
                    container_id=subject,
                    bot_id=attributes.get(LABEL_BOT_ID),
                    time=datetime.fromtimestamp(time_ns / 1e9, UTC),
                    attributes=attributes,
                )
        finally:
            response.close()

    # translation --------------------------------------------------------------------------------------

    @staticmethod
    def _event_subject(action: str, attributes: dict[str, str], container_id: str) -> tuple[str, str]:
        """What a container's event is reported as, and under which id: as it is, under the container's."""
        return action, container_id

    @staticmethod
    def _from_inspect(data: dict[str, Any]) -> ContainerInfo:
        config = data.get("Config") or {}
        state = data.get("State") or {}
        labels = config.get("Labels") or {}
        return ContainerInfo(
            id=str(data["Id"]),
            name=str(data.get("Name", "")).lstrip("/"),
            bot_id=labels.get(LABEL_BOT_ID),
            tenant_id=labels.get(LABEL_TENANT),
            state=str(state.get("Status", "unknown")),
            image=str(config.get("Image", "")),
            image_id=str(data.get("Image", "")),
            created_at=_parse_time(data.get("Created")),
            started_at=_parse_time(state.get("StartedAt")),
            finished_at=_parse_time(state.get("FinishedAt")),
            exit_code=state.get("ExitCode"),
            oom_killed=bool(state.get("OOMKilled")),
            restart_count=int(data.get("RestartCount") or 0),
            restart_policy=str(((data.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"),
            ip_address=_ip_of((data.get("NetworkSettings") or {}).get("Networks"), labels.get(LABEL_NETWORK)),
            networks=_networks_of(data.get("NetworkSettings")),
            labels=dict(labels),
            env=list(config.get("Env") or []),
            detailed=True,
        )

    @staticmethod
    def _from_list(row: dict[str, Any]) -> ContainerInfo:
        labels = row.get("Labels") or {}
        names = row.get("Names") or [""]
        created = row.get("Created")
        return ContainerInfo(
            id=str(row["Id"]),
            name=str(names[0]).lstrip("/"),
            bot_id=labels.get(LABEL_BOT_ID),
            tenant_id=labels.get(LABEL_TENANT),
            state=str(row.get("State", "unknown")),
            image=str(row.get("Image", "")),
            image_id=str(row.get("ImageID", "")),
            created_at=datetime.fromtimestamp(created, UTC) if created else None,
            ip_address=_ip_of((row.get("NetworkSettings") or {}).get("Networks"), labels.get(LABEL_NETWORK)),
            networks=_networks_of(row.get("NetworkSettings")),
            labels=dict(labels),
        )
