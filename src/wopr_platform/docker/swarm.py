"""The Swarm adapter: the same engine operations as `DockerEngine`, with each bot a Swarm service of one replica.

A bot's "container" here is its service: `create` makes the service with no replica, `start` scales it to one and
waits for its task to run, `stop` scales it to zero and waits for the task to end, `restart` forces a new task. The
id the fleet keeps is the service's. What is known of a bot is read from its service, its tasks and the node's
gateway bridge: three calls for one bot, three for all of them (never one per bot). Events come from the task
containers, which carry the bot's labels, and name the service.

Volumes, images, logs and networks go through the same engine (a manager node): tenant networks are attachable
overlay networks on the same subnet pool. A task's own container is reachable only on the node it runs on; the
operations that need it (stats, pause for a snapshot) work for tasks on this node and say so otherwise.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime
from ipaddress import IPv4Network
from typing import Any, cast

from wopr_platform.core.errors import (
    EngineConflict,
    EngineError,
    EngineNotFound,
    EngineUnavailable,
    ServiceUnavailable,
)
from wopr_platform.core.naming import (
    LABEL_BOT_ID,
    LABEL_NETWORK,
    LABEL_SPEC_HASH,
    LABEL_TENANT,
    VOLUME_PLACEHOLDER,
)
from wopr_platform.core.networks import SubnetPool, gateway
from wopr_platform.docker.engine import DockerEngine, _parse_time, _translate
from wopr_platform.docker.hardening import check_service_hardened, service_spec, swarm_restart_policy
from wopr_platform.docker.types import ContainerInfo, ContainerSpec, ContainerStats

LABEL_RESTART_POLICY = "wopr.restart-policy"  # the platform's name of it: Swarm's `any` stands for two of them
# the name the fleet knows a bot's service by (a container's name): a service's own name cannot change, so
# setting a bot's service aside under another name (see BotContainers.replace) changes this label
LABEL_NAME = "wopr.name"
# the name the fleet knows a tenant network by (a swarm's names are DNS labels: no dots, at most 63 characters)
LABEL_NETWORK_NAME = "wopr.network-name"
LABEL_SERVICE_ID = "com.docker.swarm.service.id"  # on a task's container: its service
GATEWAY_BRIDGE = "docker_gwbridge"  # each node's bridge that a task on an overlay network reaches the host through
# the host's address on that bridge as Docker makes it, for a node where no task has made the bridge yet
DEFAULT_GATEWAY = "172.18.0.1"
# task states before "running": Swarm is still placing, pulling or starting it
_STARTING = frozenset({"new", "allocated", "pending", "assigned", "accepted", "preparing", "ready", "starting"})
_ENDED = frozenset({"complete", "shutdown", "failed", "rejected", "orphaned", "remove"})
POLL_SECONDS = 0.1
LOCAL_DRIVER = "local"
UPDATE_ATTEMPTS = 5  # a spec update races another one ("update out of sequence"): read the spec again and retry


def overlay_name(name: str) -> str:
    """The swarm's name of the tenant network the fleet calls `name`: a digest of it (the fleet's names hold dots
    and can be longer than a swarm allows; no two of them give the same digest)."""
    return "wopr-net-" + hashlib.sha256(name.encode()).hexdigest()[:24]


def _task_time(task: dict[str, Any]) -> datetime | None:
    return _parse_time((task.get("Status") or {}).get("Timestamp"))


def _newest(tasks: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    return max(tasks, key=lambda t: int((t.get("Version") or {}).get("Index") or 0), default=None)


def _address(task: dict[str, Any], network: str | None) -> tuple[str | None, tuple[str, ...]]:
    """The task's address on `network` (its tenant's), and the names of every network it is attached to."""
    address: str | None = None
    names: list[str] = []
    for attachment in task.get("NetworksAttachments") or []:
        spec = (attachment.get("Network") or {}).get("Spec") or {}
        if spec.get("Name") == "ingress":
            continue
        name = str((spec.get("Labels") or {}).get(LABEL_NETWORK_NAME) or spec.get("Name") or "")
        names.append(name)
        addresses = attachment.get("Addresses") or []
        if addresses and (address is None or name == network):
            address = str(addresses[0]).split("/")[0]
    return address, tuple(sorted(names))


class SwarmEngine(DockerEngine):
    """Bots as Swarm services on a manager node of an existing swarm."""

    NETWORK_DRIVER = "overlay"

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        platform_id: str,
        subnets: SubnetPool,
        constraints: tuple[str, ...] = (),
        volume_driver: str = LOCAL_DRIVER,
        volume_options: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(url, timeout=timeout, platform_id=platform_id, subnets=subnets)
        self._constraints = constraints
        self._volume_driver = volume_driver
        self._volume_options = dict(volume_options or {})
        self._manager = False

    async def ping(self) -> None:
        """Raise EngineUnavailable unless the engine answers and is a manager of a swarm (asked until it was)."""
        await super().ping()
        if self._manager:
            return
        with _translate("engine info"):
            info = await self.client._query_json("info")
        swarm = info.get("Swarm") or {}
        if not swarm.get("ControlAvailable"):
            raise EngineUnavailable(
                "FLEET_ENGINE=swarm: the Docker engine is not a manager of a swarm",
                details={"operation": "ping", "reason": f"swarm state: {swarm.get('LocalNodeState') or 'inactive'}"},
            )
        self._manager = True

    # volumes ------------------------------------------------------------------------------------------

    def _driver_config(self, volume: str) -> dict[str, Any] | None:
        """The driver and options of `volume` (`{volume}` in an option replaced by its name); None for the engine's
        default (a local volume on each node)."""
        if self._volume_driver == LOCAL_DRIVER and not self._volume_options:
            return None
        options = {key: value.replace(VOLUME_PLACEHOLDER, volume) for key, value in self._volume_options.items()}
        return {"Name": self._volume_driver, "Options": options}

    async def ensure_volume(self, name: str, labels: dict[str, str]) -> None:
        """Create the named volume on the manager with the swarm's volume driver (idempotent: an existing one is
        kept with its data); a node a task of the bot lands on creates it from the service's mount the same way."""
        body: dict[str, Any] = {"Name": name, "Labels": labels}
        if (config := self._driver_config(name)) is not None:
            body |= {"Driver": config["Name"], "DriverOpts": config["Options"]}
        with _translate("create volume"):
            await self.client._query_json("volumes/create", method="POST", data=body)

    # networks -----------------------------------------------------------------------------------------

    def _network_body(self, name: str, labels: dict[str, str], subnet: IPv4Network) -> dict[str, Any]:
        """An overlay network across the swarm's nodes, attachable so that a plain container (the platform's
        probes, a proxy running as a container) can join it."""
        return {
            "Name": name,
            "Driver": self.NETWORK_DRIVER,
            "CheckDuplicate": True,
            "Internal": False,
            "Attachable": True,
            "Labels": labels,
            "IPAM": {"Driver": "default", "Config": [{"Subnet": str(subnet), "Gateway": str(gateway(subnet))}]},
        }

    async def ensure_network(self, name: str, labels: dict[str, str]) -> str:
        return await super().ensure_network(overlay_name(name), {**labels, LABEL_NETWORK_NAME: name})

    async def list_networks(self) -> dict[str, str | None]:
        with _translate("list networks"):
            rows = await self.client._query_json("networks", params={"filters": json.dumps({"label": self._scope})})
        found: dict[str, str | None] = {}
        for row in rows:
            labels = row.get("Labels") or {}
            if labels.get(LABEL_NETWORK_NAME):
                found[str(labels[LABEL_NETWORK_NAME])] = labels.get(LABEL_TENANT)
        return found

    async def remove_network(self, name: str, unused: Callable[[], Awaitable[bool]]) -> bool:
        return await super().remove_network(overlay_name(name), unused)

    def _interface_of(self, network: dict[str, Any]) -> str:
        """An overlay network has no bridge on the host: its tasks reach the host through the node's gateway
        bridge, which the host's rules cover."""
        return GATEWAY_BRIDGE

    async def list_bridges(self) -> dict[str, str]:
        return {name: GATEWAY_BRIDGE for name in await self.list_networks()}

    async def _gateway(self) -> tuple[str | None, dict[str, str]]:
        """The host's address on this node's gateway bridge, and the address each local task container has on
        it (by container id): the host reaches a task there (one call for every task of the node)."""
        try:
            with _translate("inspect network"):
                data = await self.client._query_json(f"networks/{GATEWAY_BRIDGE}")
        except EngineNotFound:
            return None, {}  # made with the first task on an overlay network
        configs = (data.get("IPAM") or {}).get("Config") or [{}]
        host = configs[0].get("Gateway")
        addresses = {
            str(cid): str(endpoint.get("IPv4Address") or "").split("/")[0]
            for cid, endpoint in (data.get("Containers") or {}).items()
            if endpoint.get("IPv4Address")
        }
        return (str(host) if host else None), addresses

    # services -----------------------------------------------------------------------------------------

    async def create(self, spec: ContainerSpec) -> str:
        """Create the bot's service with no replica (created, not started); returns the service's id.

        As with containers, a second one known by the same name is refused (EngineConflict). The service's own
        name adds the spec's hash to it: the same spec made twice at once collides in the swarm itself."""
        with _translate("list services"):
            named = await self.client._query_json(
                "services", params={"filters": json.dumps({"label": [*self._scope, f"{LABEL_NAME}={spec.name}"]})}
            )
        if named:
            raise EngineConflict("create service: conflict", details={"reason": f"the name {spec.name} is in use"})
        host_gateway = (await self._gateway())[0] if spec.extra_hosts else None
        suffix = spec.labels.get(LABEL_SPEC_HASH) or uuid.uuid4().hex
        body = service_spec(
            dataclasses.replace(spec, network=overlay_name(spec.network)),
            name=f"{spec.name}-{suffix[:12]}",
            labels={**spec.labels, LABEL_NAME: spec.name, LABEL_RESTART_POLICY: spec.restart_policy},
            constraints=self._constraints,
            host_gateway=host_gateway or DEFAULT_GATEWAY,
            volume_driver=self._driver_config(spec.volume),
        )
        check_service_hardened(body)
        with _translate("create service"):
            created = await self.client._query_json("services/create", method="POST", data=body)
        return str(created["ID"])

    async def _service(self, service_id: str) -> dict[str, Any]:
        with _translate("inspect service"):
            data: dict[str, Any] = await self.client._query_json(f"services/{service_id}")
        return data

    async def _tasks(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        with _translate("list tasks"):
            rows: list[dict[str, Any]] = await self.client._query_json("tasks", params={"filters": json.dumps(filters)})
        return rows

    async def _update(self, service_id: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Apply `change` to the service's spec and submit it against the version it was read at."""
        for attempt in range(UPDATE_ATTEMPTS):
            service = await self._service(service_id)
            spec = service["Spec"]
            change(spec)
            try:
                with _translate("update service"):
                    await self.client._query_json(
                        f"services/{service_id}/update",
                        method="POST",
                        params={"version": str(service["Version"]["Index"])},
                        data=spec,
                    )
                return
            except EngineError as err:
                if "out of sequence" not in str(err.details.get("reason", "")) or attempt == UPDATE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    async def _scale(self, service_id: str, replicas: int, *, force: bool = False) -> None:
        def change(spec: dict[str, Any]) -> None:
            spec["Mode"] = {"Replicated": {"Replicas": replicas}}
            if force:
                template = spec["TaskTemplate"]
                template["ForceUpdate"] = int(template.get("ForceUpdate") or 0) + 1

        await self._update(service_id, change)

    async def _until(
        self,
        what: str,
        seconds: float,
        done: Callable[[list[dict[str, Any]]], bool],
        sid: str,
        *,
        before: frozenset[str] | None = None,
    ) -> None:
        """Poll the service's tasks until `done(tasks)`. With `before` (the tasks that were there already), a
        newer task the swarm rejected or that failed to start ends the wait at once: EngineError with the
        swarm's reason. EngineError too after `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            tasks = await self._tasks({"service": [sid]})
            if done(tasks):
                return
            if before is not None:
                newest = _newest(t for t in tasks if str(t.get("ID")) not in before)
                status = (newest or {}).get("Status") or {}
                if _ran(status):
                    return  # it started and has ended already, as a container that exits at once
                if status.get("State") in ("rejected", "failed") and status.get("Err"):
                    raise EngineError(f"{what} failed", details={"reason": str(status["Err"])[:500]})
                if status.get("State") == "pending" and status.get("Err"):
                    # the scheduler found no node for it now ("no suitable node (insufficient resources ...)")
                    raise ServiceUnavailable(
                        "no node of the swarm can run the bot now", details={"reason": str(status["Err"])[:500]}
                    )
            if time.monotonic() > deadline:
                raise EngineError(f"{what}: the swarm did not finish in time", details={"seconds": seconds})
            await asyncio.sleep(POLL_SECONDS)

    async def _task_ids(self, service_id: str) -> frozenset[str]:
        return frozenset(str(t["ID"]) for t in await self._tasks({"service": [service_id]}))

    async def start(self, container_id: str) -> None:
        """Scale the service to one replica and wait until its task runs (a no-op when it runs). A task the
        swarm cannot start (no such image, no node that fits) is reported, and the service scaled back to
        zero so that the swarm stops trying, as a container that failed to start stays stopped."""
        before = await self._task_ids(container_id)
        await self._scale(container_id, 1)
        try:
            await self._until("start service", self._request_seconds, _one_running, container_id, before=before)
        except (EngineError, ServiceUnavailable):
            await self._scale(container_id, 0)
            raise

    async def stop(self, container_id: str, grace: int) -> None:
        """Scale the service to zero and wait until its task has stopped (killed after `grace` seconds)."""
        await self._scale(container_id, 0)
        await self._until("stop service", grace + self._request_seconds, _none_active, container_id)

    async def restart(self, container_id: str, grace: int) -> None:
        """Replace the service's task with a fresh one (Swarm stops the old one first) and wait until it runs."""
        before = await self._task_ids(container_id)
        await self._scale(container_id, 1, force=True)

        def restarted(tasks: list[dict[str, Any]]) -> bool:
            fresh = [t for t in tasks if str(t["ID"]) not in before]
            return _one_running(fresh) and _none_active([t for t in tasks if str(t["ID"]) in before])

        try:
            await self._until("restart service", grace + self._request_seconds, restarted, container_id, before=before)
        except (EngineError, ServiceUnavailable):
            await self._scale(container_id, 0)
            raise

    async def rename(self, container_id: str, name: str) -> None:
        """Give the service another name for the fleet (its label: the swarm keeps a service's own name; a change
        of the service's labels alone leaves its task running)."""

        def change(spec: dict[str, Any]) -> None:
            spec.setdefault("Labels", {})[LABEL_NAME] = name

        await self._update(container_id, change)

    async def update_restart_policy(self, container_id: str, policy: str) -> None:
        """Change the restart policy. It is part of the service's task template, so the swarm replaces a running
        task with one under the new policy (the bot restarts on Swarm, where a container keeps running)."""

        def change(spec: dict[str, Any]) -> None:
            spec["TaskTemplate"]["RestartPolicy"] = swarm_restart_policy(policy)
            spec.setdefault("Labels", {})[LABEL_RESTART_POLICY] = policy

        await self._update(container_id, change)

    async def remove(self, container_id: str) -> None:
        """Remove the service and wait until its task's container is gone (so its volume can go too); already
        gone is fine."""
        try:
            with _translate("remove service"):
                await self.client._query_json(f"services/{container_id}", method="DELETE")
        except EngineNotFound:
            return
        filters = json.dumps({"label": [f"{LABEL_SERVICE_ID}={container_id}"]})
        deadline = time.monotonic() + self._request_seconds
        while time.monotonic() < deadline:
            with _translate("list containers"):
                rows = await self.client._query_json("containers/json", params={"all": "1", "filters": filters})
            if not rows:
                return
            await asyncio.sleep(POLL_SECONDS)

    async def inspect(self, container_id: str) -> ContainerInfo:
        """The service and its tasks, as one bot's container."""
        service = await self._service(container_id)
        tasks = await self._tasks({"service": [str(service["ID"])]})
        return _info(service, tasks, (await self._gateway())[1], detailed=True)

    async def list_managed(self, bot_id: str | None = None) -> list[ContainerInfo]:
        """Every service this platform manages (or one bot's): one call for the services, one for their tasks and
        one for the addresses of this node's tasks."""
        labels = [*self._scope, f"{LABEL_BOT_ID}={bot_id}"] if bot_id else self._scope
        with _translate("list services"):
            services = await self.client._query_json("services", params={"filters": json.dumps({"label": labels})})
        if not services:
            return []
        wanted = {str(s["ID"]) for s in services}
        by_service: dict[str, list[dict[str, Any]]] = {sid: [] for sid in wanted}
        for task in await self._tasks({"label": labels} if bot_id else {"label": self._scope}):
            sid = str(task.get("ServiceID"))
            if sid in by_service:
                by_service[sid].append(task)
        local = (await self._gateway())[1]
        return [_info(s, by_service[str(s["ID"])], local, detailed=False) for s in services]

    async def logs(self, container_id: str, tail: int) -> str:
        """The last `tail` lines the service's tasks wrote to stdout and stderr."""
        with _translate("read logs"):
            lines = await cast(
                Awaitable[list[str]],
                self.client.services.logs(container_id, stdout=True, stderr=True, tail=str(tail)),
            )
        return "".join(lines)

    async def _local_container(self, service_id: str) -> str:
        """The container of the service's running task, if it runs on this node (EngineNotFound otherwise)."""
        for task in await self._tasks({"service": [service_id], "desired-state": ["running"]}):
            status = task.get("Status") or {}
            found = (status.get("ContainerStatus") or {}).get("ContainerID")
            if status.get("State") == "running" and found:
                return str(found)
        raise EngineNotFound("the service has no running task on this node", details={"service": service_id})

    async def stats(self, container_id: str) -> ContainerStats | None:
        try:
            return await super().stats(await self._local_container(container_id))
        except EngineNotFound:
            return None

    async def pause(self, container_id: str) -> None:
        await super().pause(await self._local_container(container_id))

    async def unpause(self, container_id: str) -> None:
        await super().unpause(await self._local_container(container_id))

    @staticmethod
    def _event_subject(action: str, attributes: dict[str, str], container_id: str) -> tuple[str, str]:
        """Events come from a task's container and are reported under its service. A task's container being
        removed (the swarm prunes old tasks) is not the end of the service: it is reported as a change, after
        which the service is looked at again (and found gone when it was removed)."""
        service = attributes.get(LABEL_SERVICE_ID)
        if service is None:
            return action, container_id
        return ("update" if action == "destroy" else action), service


def _one_running(tasks: list[dict[str, Any]]) -> bool:
    return any((t.get("Status") or {}).get("State") == "running" and t.get("DesiredState") == "running" for t in tasks)


def _ran(status: dict[str, Any]) -> bool:
    """Whether a task that ended had started: its process exited (the swarm says `task: non-zero exit (N)`)."""
    return status.get("State") in ("failed", "complete") and (
        status.get("State") == "complete" or "non-zero exit" in str(status.get("Err") or "")
    )


def _none_active(tasks: list[dict[str, Any]]) -> bool:
    return all((t.get("Status") or {}).get("State") in _ENDED for t in tasks)


def _info(
    service: dict[str, Any], tasks: list[dict[str, Any]], local: dict[str, str], *, detailed: bool
) -> ContainerInfo:
    """One bot's service and its tasks as the fleet's view of a container. Its address is the one the host
    reaches it at when its task runs on this node (`local`: gateway bridge addresses by container), else its
    address on its tenant network (reached from a container attached to that network)."""
    spec = service.get("Spec") or {}
    labels = spec.get("Labels") or {}
    container = (spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}
    running = _newest(
        t for t in tasks if (t.get("Status") or {}).get("State") == "running" and t.get("DesiredState") == "running"
    )
    ended = [t for t in tasks if (t.get("Status") or {}).get("State") in _ENDED]
    last_ended = _newest(ended)
    starting = any(
        (t.get("Status") or {}).get("State") in _STARTING and t.get("DesiredState") == "running" for t in tasks
    )
    if running is not None:
        state = "running"
    elif starting:
        state = "restarting" if ended else "created"  # the swarm is placing or starting a task
    elif ended or service.get("PreviousSpec"):
        state = "exited"  # (the swarm drops the tasks of a service scaled to zero: one that was ever changed ran)
    else:
        state = "created"
    network = labels.get(LABEL_NETWORK)
    address, networks = _address(running, network) if running is not None else (None, None)
    if running is not None:
        task_container = ((running.get("Status") or {}).get("ContainerStatus") or {}).get("ContainerID")
        address = local.get(str(task_container), address)
    exit_code = None
    if last_ended is not None:
        code = ((last_ended.get("Status") or {}).get("ContainerStatus") or {}).get("ExitCode")
        exit_code = int(code) if code is not None else None
    return ContainerInfo(
        id=str(service["ID"]),
        name=str(labels.get(LABEL_NAME) or spec.get("Name", "")),
        bot_id=labels.get(LABEL_BOT_ID),
        tenant_id=labels.get(LABEL_TENANT),
        state=state,
        image=str(container.get("Image", "")),
        image_id="",
        created_at=_parse_time(service.get("CreatedAt")),
        started_at=_task_time(running) if running is not None else None,
        finished_at=_task_time(last_ended) if last_ended is not None and running is None else None,
        exit_code=exit_code,
        restart_count=sum(1 for t in ended if (t.get("Status") or {}).get("State") == "failed"),
        restart_policy=labels.get(LABEL_RESTART_POLICY),
        ip_address=address,
        networks=networks or None,
        labels={k: v for k, v in labels.items() if k not in (LABEL_RESTART_POLICY, LABEL_NAME)},
        env=list(container.get("Env") or []),
        detailed=detailed,
    )
