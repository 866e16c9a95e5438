"""How the Swarm adapter reads a bot's service and its tasks (docker/swarm.py `_info`), on bodies shaped as the
engine sends them: the state the fleet sees, the address the host reaches, and the exit code of the last task."""

from __future__ import annotations

from typing import Any

import pytest

from wopr_platform.docker.swarm import LABEL_NAME, LABEL_NETWORK_NAME, LABEL_RESTART_POLICY, _info, overlay_name


def _service(*, changed: bool = False) -> dict[str, Any]:
    service: dict[str, Any] = {
        "ID": "svc1",
        "CreatedAt": "2026-12-07T00:00:00.123456789Z",
        "Spec": {
            "Name": "wopr-bot-abc-0123456789ab",
            "Labels": {
                "wopr.bot-id": "bot",
                "wopr.tenant": "default",
                "wopr.network": "wopr.default.net",
                LABEL_NAME: "wopr-bot",
                LABEL_RESTART_POLICY: "unless-stopped",
            },
            "TaskTemplate": {"ContainerSpec": {"Image": "img@sha256:1", "Env": ["A=1"]}},
        },
    }
    if changed:
        service["PreviousSpec"] = service["Spec"]
    return service


def _task(index: int, state: str, desired: str = "running", **status: Any) -> dict[str, Any]:
    return {
        "ID": f"t{index}",
        "Version": {"Index": index},
        "DesiredState": desired,
        "Status": {"State": state, "Timestamp": "2026-12-07T00:00:05Z", **status},
        "NetworksAttachments": [
            {"Network": {"Spec": {"Name": "ingress"}}, "Addresses": ["10.0.0.9/24"]},
            {
                "Network": {
                    "Spec": {
                        "Name": overlay_name("wopr.default.net"),
                        "Labels": {LABEL_NETWORK_NAME: "wopr.default.net"},
                    }
                },
                "Addresses": ["10.200.0.5/27"],
            },
        ],
    }


@pytest.mark.parametrize(
    ("tasks", "changed", "state"),
    [
        ([], False, "created"),  # made, never started
        ([], True, "exited"),  # scaled to zero, its tasks dropped by the swarm
        ([_task(1, "preparing")], True, "created"),  # its first task is being placed
        ([_task(1, "running")], True, "running"),
        ([_task(1, "failed", "shutdown"), _task(2, "pending")], True, "restarting"),
        ([_task(1, "shutdown", "shutdown")], True, "exited"),
        ([_task(1, "running", "shutdown")], True, "exited"),  # being stopped: no longer wanted running
    ],
)
def test_the_state_the_fleet_sees(tasks: list[dict[str, Any]], changed: bool, state: str) -> None:
    assert _info(_service(changed=changed), tasks, {}, detailed=True).state == state


def test_a_running_task_is_reached_on_the_gateway_bridge_here_else_on_its_network() -> None:
    running = _task(3, "running", ContainerStatus={"ContainerID": "c3"})
    here = _info(_service(), [running], {"c3": "172.18.0.4"}, detailed=True)
    elsewhere = _info(_service(), [running], {}, detailed=True)
    assert (here.ip_address, elsewhere.ip_address) == ("172.18.0.4", "10.200.0.5")
    assert here.networks == ("wopr.default.net",)  # the fleet's name, not the swarm's; ingress is not counted
    assert (here.name, here.restart_policy, here.bot_id) == ("wopr-bot", "unless-stopped", "bot")
    assert LABEL_NAME not in here.labels and LABEL_RESTART_POLICY not in here.labels


def test_the_last_ended_task_gives_the_exit_code_and_failures_count_as_restarts() -> None:
    tasks = [
        _task(1, "failed", "shutdown", ContainerStatus={"ExitCode": 3}),
        _task(2, "failed", "shutdown", ContainerStatus={"ExitCode": 4}),
    ]
    info = _info(_service(changed=True), tasks, {}, detailed=True)
    assert (info.state, info.exit_code, info.restart_count) == ("exited", 4, 2)
    assert info.finished_at is not None and info.started_at is None
