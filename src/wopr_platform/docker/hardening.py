"""The one shape of a bot container: every bot is made hardened, and a create body that is not is refused.

No privilege gain, every capability dropped but the four the WOPR entrypoint needs, a read-only root with a
noexec /tmp, memory, CPU and process limits, one named volume and the tenant's own network: nothing of the host.
"""

from __future__ import annotations

import re
from typing import Any

from wopr_platform.core.errors import UnsafeContainerSpec
from wopr_platform.core.instance import DATA_MOUNT, INSTANCE_PORT
from wopr_platform.docker.types import ContainerSpec

ON_FAILURE_RETRIES = 5
_HOST_PATH = re.compile(r"(?<![\w.-])/(?:[\w.@+-]+/)*[\w.@+-]+")
# what the WOPR entrypoint needs as root before it drops to its own user: chown /data, read and write it, switch ids
KEPT_CAPABILITIES = ("CHOWN", "DAC_OVERRIDE", "SETUID", "SETGID")
NO_NEW_PRIVILEGES = "no-new-privileges:true"
TMP_MOUNT = "/tmp"  # noqa: S108 - a tmpfs inside the container, not a host path
TMP_OPTIONS = "rw,noexec,nosuid,nodev,size=64m,mode=1777"
MIB = 1_048_576
# a named volume or a user-defined network: never a path (a bind mount, the Docker socket) or `container:<id>`
_OBJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}\Z")
_SHARED_NETWORKS = frozenset({"bridge", "default", "host", "none"})
_NAMESPACE_MODES = ("PidMode", "IpcMode", "UTSMode", "UsernsMode", "CgroupnsMode")
_HOST_ACCESS = ("Binds", "Devices", "DeviceRequests", "DeviceCgroupRules", "VolumesFrom", "Links", "PortBindings")


def without_host_paths(message: object) -> str:
    """The engine's explanation, bounded, without host paths (they say nothing useful to a client)."""
    return _HOST_PATH.sub("<path>", str(message).strip())[:500]


def container_config(spec: ContainerSpec) -> dict[str, Any]:
    """The engine's create body for `spec`, hardened (see the module docstring)."""
    restart: dict[str, Any] = {"Name": spec.restart_policy}
    if spec.restart_policy == "on-failure":
        restart["MaximumRetryCount"] = ON_FAILURE_RETRIES
    memory = spec.limits.memory_mb * MIB
    return {
        "Image": spec.image,
        "Env": [f"{key}={value}" for key, value in spec.env.items()],
        "Labels": spec.labels,
        "ExposedPorts": {f"{INSTANCE_PORT}/tcp": {}},
        "StopTimeout": spec.stop_timeout,
        "HostConfig": {
            "Init": True,
            "RestartPolicy": restart,
            "Mounts": [{"Type": "volume", "Source": spec.volume, "Target": DATA_MOUNT}],
            "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}},
            "NetworkMode": spec.network,
            "Privileged": False,
            "SecurityOpt": [NO_NEW_PRIVILEGES],
            "CapDrop": ["ALL"],
            "CapAdd": list(KEPT_CAPABILITIES),
            "ReadonlyRootfs": True,
            "Tmpfs": {TMP_MOUNT: TMP_OPTIONS},
            "Memory": memory,
            "MemorySwap": memory,  # no swap on top of the memory limit
            "NanoCpus": round(spec.limits.cpus * 1_000_000_000),
            "PidsLimit": spec.limits.pids,
            "ExtraHosts": list(spec.extra_hosts) or None,
        },
        "NetworkingConfig": {"EndpointsConfig": {spec.network: {}}},
    }


def check_hardened(config: dict[str, Any]) -> None:
    """Refuse a create body that is privileged, reaches the host (paths, devices, the Docker socket, its
    namespaces, a shared network) or lacks any of the hardening; raises UnsafeContainerSpec naming each problem."""
    host = config.get("HostConfig") or {}
    problems: list[str] = []
    if host.get("Privileged") is not False:
        problems.append("a privileged container")
    problems += [f"{key} (host access)" for key in _HOST_ACCESS if host.get(key)]
    for mount in host.get("Mounts") or []:
        source = str(mount.get("Source", ""))
        if mount.get("Type") != "volume" or not _OBJECT_NAME.match(source):
            problems.append(
                f"a mount that is not a named volume ({without_host_paths(source)[:100]!r}): no host path or socket"
            )
    for mode in _NAMESPACE_MODES:
        value = str(host.get(mode) or "")
        if value == "host" or value.startswith("container:"):
            problems.append(f"{mode}={value}")
    network = str(host.get("NetworkMode") or "")
    if not _OBJECT_NAME.match(network) or network in _SHARED_NETWORKS:
        problems.append(f"network {network[:100]!r}: a bot joins its tenant's own network only")
    endpoints = set(((config.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}).keys())
    if endpoints - {network}:
        problems.append("more than the tenant network")
    if host.get("CapDrop") != ["ALL"] or not set(host.get("CapAdd") or []) <= set(KEPT_CAPABILITIES):
        problems.append(f"capabilities beyond {', '.join(KEPT_CAPABILITIES)}")
    if NO_NEW_PRIVILEGES not in (host.get("SecurityOpt") or []):
        problems.append("no no-new-privileges")
    if host.get("ReadonlyRootfs") is not True:
        problems.append("a writable root filesystem")
    if set(host.get("Tmpfs") or {}) - {TMP_MOUNT}:
        problems.append("a tmpfs other than /tmp")
    for limit in ("Memory", "NanoCpus", "PidsLimit"):
        amount = host.get(limit)
        if not isinstance(amount, int) or amount <= 0:
            problems.append(f"no {limit} limit")
    if problems:
        raise UnsafeContainerSpec("container spec refused: " + "; ".join(problems), details={"problems": problems})


# Swarm's names for the restart policies (`unless-stopped`: a stopped bot is a service scaled to zero, which stays so)
SWARM_RESTART_CONDITIONS = {"no": "none", "always": "any", "unless-stopped": "any", "on-failure": "on-failure"}
SECOND_NS = 1_000_000_000


def swarm_restart_policy(policy: str) -> dict[str, Any]:
    """A service's restart policy for the platform's `policy`."""
    return {
        "Condition": SWARM_RESTART_CONDITIONS[policy],
        "Delay": SECOND_NS,
        "MaxAttempts": ON_FAILURE_RETRIES if policy == "on-failure" else 0,
    }


def service_spec(
    spec: ContainerSpec,
    *,
    name: str,
    labels: dict[str, str],
    constraints: tuple[str, ...] = (),
    host_gateway: str | None = None,
    volume_driver: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The Swarm service `name` for `spec`, labelled `labels`: one replica at most (none to begin with), hardened
    as far as a service can be (Swarm has no no-new-privileges and no noexec for a tmpfs; docs/security.md says
    what stands in for them). `host:host-gateway` entries resolve to `host_gateway`, the host's address on the
    node's gateway bridge. `volume_driver` (a DriverConfig: `Name`, `Options`) makes the node a task lands on create
    the bot's volume with that driver, as the manager did."""
    hosts: list[str] = []
    for entry in spec.extra_hosts:
        host, _, target = entry.partition(":")
        if target != "host-gateway" or host_gateway is None:
            raise UnsafeContainerSpec(
                f"a service resolves a name only to its node's gateway, not {entry!r}",
                details={"problems": ["extra hosts on Swarm"]},
            )
        hosts.append(f"{host_gateway} {host}")
    memory = spec.limits.memory_mb * MIB
    data: dict[str, Any] = {"Type": "volume", "Source": spec.volume, "Target": DATA_MOUNT}
    if volume_driver is not None:
        data["VolumeOptions"] = {"DriverConfig": volume_driver}
    return {
        "Name": name,
        "Labels": labels,
        "TaskTemplate": {
            "ContainerSpec": {
                "Image": spec.image,
                "Env": [f"{key}={value}" for key, value in spec.env.items()],
                "Labels": spec.labels,  # on the task's container too: its events are found by them
                "Init": True,
                "ReadOnly": True,
                "CapabilityDrop": ["ALL"],
                "CapabilityAdd": list(KEPT_CAPABILITIES),
                "StopGracePeriod": spec.stop_timeout * SECOND_NS,
                "Hosts": hosts,
                "Mounts": [
                    data,
                    {"Type": "tmpfs", "Target": TMP_MOUNT, "TmpfsOptions": {"SizeBytes": 64 * MIB, "Mode": 0o1777}},
                ],
            },
            "Resources": {
                "Limits": {
                    "NanoCPUs": round(spec.limits.cpus * SECOND_NS),
                    "MemoryBytes": memory,
                    "Pids": spec.limits.pids,
                },
                # placed only where its memory fits: the memory limit is reserved, CPU is shared
                "Reservations": {"MemoryBytes": memory},
            },
            "RestartPolicy": swarm_restart_policy(spec.restart_policy),
            "Placement": {"Constraints": list(constraints)},
            "Networks": [{"Target": spec.network}],
            "LogDriver": {"Name": "json-file", "Options": {"max-size": "10m", "max-file": "3"}},
        },
        "Mode": {"Replicated": {"Replicas": 0}},
        # a new image replaces the old task only once the old one stopped (they share the volume), and Swarm
        # rolls the service back by itself when the new task fails within the monitor period
        "UpdateConfig": {
            "Parallelism": 1,
            "Order": "stop-first",
            "FailureAction": "rollback",
            "Monitor": 10 * SECOND_NS,
        },
        "RollbackConfig": {"Parallelism": 1, "Order": "stop-first", "FailureAction": "pause"},
        "EndpointSpec": {"Mode": "vip", "Ports": []},  # nothing published: bots are reached on their network
    }


def check_service_hardened(body: dict[str, Any]) -> None:
    """Refuse a service body that reaches the host or lacks the hardening a service can have (see `check_hardened`
    for containers); raises UnsafeContainerSpec naming each problem."""
    task = body.get("TaskTemplate") or {}
    container = task.get("ContainerSpec") or {}
    problems: list[str] = []
    for mount in container.get("Mounts") or []:
        kind, source = mount.get("Type"), str(mount.get("Source", ""))
        if not (kind == "tmpfs" and mount.get("Target") == TMP_MOUNT) and (
            kind != "volume" or not _OBJECT_NAME.match(source)
        ):
            problems.append(
                f"a mount that is not a named volume ({without_host_paths(source)[:100]!r}): no host path or socket"
            )
    networks = [str(n.get("Target", "")) for n in task.get("Networks") or []]
    if len(networks) != 1 or not _OBJECT_NAME.match(networks[0]) or networks[0] in _SHARED_NETWORKS | {"ingress"}:
        problems.append("a bot joins its tenant's own network only")
    if container.get("CapabilityDrop") != ["ALL"] or not set(container.get("CapabilityAdd") or []) <= set(
        KEPT_CAPABILITIES
    ):
        problems.append(f"capabilities beyond {', '.join(KEPT_CAPABILITIES)}")
    if container.get("ReadOnly") is not True:
        problems.append("a writable root filesystem")
    if ((body.get("EndpointSpec") or {}).get("Ports")) or ((body.get("Mode") or {}).get("Replicated") is None):
        problems.append("a published port or more than one replica")
    limits = (task.get("Resources") or {}).get("Limits") or {}
    for limit in ("MemoryBytes", "NanoCPUs", "Pids"):
        amount = limits.get(limit)
        if not isinstance(amount, int) or amount <= 0:
            problems.append(f"no {limit} limit")
    if problems:
        raise UnsafeContainerSpec("service spec refused: " + "; ".join(problems), details={"problems": problems})
