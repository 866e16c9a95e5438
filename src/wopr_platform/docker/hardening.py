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
