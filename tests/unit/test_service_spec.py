"""The Swarm service body of a bot (docker/hardening.py): what `SwarmEngine.create` sends passes the check, and each
way of weakening it is refused before the engine is asked."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import STUB_IMAGE
from wopr_platform.core.errors import UnsafeContainerSpec
from wopr_platform.core.limits import Limits
from wopr_platform.docker.hardening import check_service_hardened, service_spec
from wopr_platform.docker.types import ContainerSpec

Weaken = Callable[[dict[str, Any]], None]


def _spec(**changes: Any) -> ContainerSpec:
    fields: dict[str, Any] = {
        "name": "wopr-bot",
        "image": STUB_IMAGE,
        "env": {"A": "1"},
        "labels": {"wopr.managed": "true"},
        "volume": "wopr.default.data",
        "restart_policy": "unless-stopped",
        "stop_timeout": 10,
        "network": "wopr.default.net",
        "limits": Limits(memory_mb=256, cpus=0.5, pids=128),
        **changes,
    }
    return ContainerSpec(**fields)


def _container(body: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = body["TaskTemplate"]["ContainerSpec"]
    return found


WEAKENINGS: list[Weaken] = [
    lambda b: _container(b)["Mounts"].append({"Type": "bind", "Source": "/var/run/docker.sock", "Target": "/s"}),
    lambda b: _container(b)["Mounts"].append({"Type": "volume", "Source": "/etc", "Target": "/etc2"}),
    lambda b: _container(b)["CapabilityAdd"].append("SYS_ADMIN"),
    lambda b: _container(b).update(CapabilityDrop=[]),
    lambda b: _container(b).update(ReadOnly=False),
    lambda b: b["TaskTemplate"]["Networks"].append({"Target": "ingress"}),
    lambda b: b["TaskTemplate"].update(Networks=[{"Target": "host"}]),
    lambda b: b["EndpointSpec"]["Ports"].append({"TargetPort": 7437, "PublishedPort": 7437}),
    lambda b: b.update(Mode={"Global": {}}),
    lambda b: b["TaskTemplate"]["Resources"]["Limits"].pop("MemoryBytes"),
    lambda b: b["TaskTemplate"]["Resources"]["Limits"].update(Pids=0),
]


@pytest.mark.parametrize("weaken", WEAKENINGS)
def test_a_weakened_service_is_refused(weaken: Weaken) -> None:
    body = service_spec(_spec(), name="wopr-bot-1", labels={})
    check_service_hardened(body)  # what create sends passes
    weaken(body)
    with pytest.raises(UnsafeContainerSpec):
        check_service_hardened(body)


@pytest.mark.parametrize(
    ("policy", "condition", "attempts"),
    [("no", "none", 0), ("always", "any", 0), ("unless-stopped", "any", 0), ("on-failure", "on-failure", 5)],
)
def test_restart_policies_map_to_swarm_conditions_and_are_kept_by_name(
    policy: str, condition: str, attempts: int
) -> None:
    body = service_spec(_spec(restart_policy=policy), name="wopr-bot-1", labels={})
    restart = body["TaskTemplate"]["RestartPolicy"]
    assert (restart["Condition"], restart["MaxAttempts"]) == (condition, attempts)
    assert body["Mode"] == {"Replicated": {"Replicas": 0}}


def test_the_host_gateway_is_the_nodes_gateway_address_and_nothing_else_is_resolved() -> None:
    body = service_spec(_spec(extra_hosts=("gw:host-gateway",)), name="n", labels={}, host_gateway="172.18.0.1")
    assert _container(body)["Hosts"] == ["172.18.0.1 gw"]
    with pytest.raises(UnsafeContainerSpec):
        service_spec(_spec(extra_hosts=("gw:10.0.0.1",)), name="n", labels={}, host_gateway="172.18.0.1")
    with pytest.raises(UnsafeContainerSpec):
        service_spec(_spec(extra_hosts=("gw:host-gateway",)), name="n", labels={})


def test_a_volume_driver_reaches_the_mount_so_any_node_makes_the_same_volume() -> None:
    plain = service_spec(_spec(), name="n", labels={})
    assert "VolumeOptions" not in _container(plain)["Mounts"][0]
    driver = {"Name": "local", "Options": {"type": "nfs", "device": ":/wopr/wopr.default.data"}}
    body = service_spec(_spec(), name="n", labels={}, volume_driver=driver)
    check_service_hardened(body)
    data = _container(body)["Mounts"][0]
    assert (data["Source"], data["VolumeOptions"]["DriverConfig"]) == ("wopr.default.data", driver)
