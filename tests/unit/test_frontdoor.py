"""The front door's bookkeeping: connection counts per address, trusted proxies, the open-file budget."""

from __future__ import annotations

import subprocess
import sys

import pytest

from wopr_platform.api.clients import forwarded_client
from wopr_platform.app.frontdoor import Door, DoorLimits
from wopr_platform.app.server import FD_RESERVE
from wopr_platform.core.networks import Networks


def test_a_door_counts_per_address_and_in_total() -> None:
    door = Door(DoorLimits(max_connections=3, max_connections_per_client=2))
    assert door.admit("10.0.0.1") is None and door.admit("10.0.0.1") is None
    assert door.admit("10.0.0.1") is not None  # its share is taken
    assert door.admit("10.0.0.2") is None
    assert door.admit("10.0.0.3") is not None  # the total is taken
    door.release("10.0.0.1")
    assert door.admit("10.0.0.3") is None
    for host in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        door.release(host)
    assert door.total == 0 and door.per_client == {}


def test_a_trusted_proxy_is_exempt_from_the_per_address_cap() -> None:
    door = Door(DoorLimits(max_connections_per_client=1, trusted_proxies=Networks.parse(["127.0.0.1"])))
    assert all(door.admit("127.0.0.1") is None for _ in range(5))
    assert door.admit("192.0.2.1") is None and door.admit("192.0.2.1") is not None


@pytest.mark.parametrize(
    ("chain", "expected"),
    [
        (["203.0.113.9"], "203.0.113.9"),
        (["192.0.2.66", "203.0.113.9", "10.1.2.3"], "203.0.113.9"),  # the client's own entry proves nothing
        (["10.0.0.1", "10.0.0.2"], "10.0.0.1"),  # only proxies: the first of them
        (["evil", "203.0.113.9"], "203.0.113.9"),
        (["203.0.113.9", "not-an-address"], None),  # a proxy writes addresses only
        ([], None),
        (["::ffff:203.0.113.9"], "203.0.113.9"),
    ],
)
def test_the_client_is_the_last_untrusted_forwarded_address(chain: list[str], expected: str | None) -> None:
    assert forwarded_client(chain, Networks.parse(["10.0.0.0/8"])) == expected


def test_bad_trusted_proxies_are_refused() -> None:
    with pytest.raises(ValueError, match=r"'10\.0\.0\.0/33'"):
        Networks.parse(["10.0.0.0/33"])
    assert not Networks().contains("127.0.0.1")
    assert Networks.parse(["fd00::/8"]).contains("fd00::1") and not Networks.parse(["fd00::/8"]).contains("junk")


def test_the_connection_cap_follows_the_open_file_limit() -> None:
    """In a child process whose open-file limit is 1024 and cannot be raised."""
    script = (
        "import resource;"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024));"
        "from wopr_platform.app.server import connection_budget;"
        "print(connection_budget(100), connection_budget(5000))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split() == ["100", str(1024 - FD_RESERVE)]


def test_the_open_file_limit_is_raised_when_it_can_be() -> None:
    script = (
        "import resource;"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (512, 4096));"
        "from wopr_platform.app.server import connection_budget;"
        "print(connection_budget(2048), resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.split() == ["2048", str(2048 + FD_RESERVE)]
