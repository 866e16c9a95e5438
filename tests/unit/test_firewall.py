"""The host firewall adapter's rules, as text (the chains themselves are checked on the host in
tests/integration/test_bot_reach.py)."""

from __future__ import annotations

import pytest

from wopr_platform.core.addresses import HostPort
from wopr_platform.firewall.iptables import Chains, HostFirewall, Ruleset, chain_names


def test_chain_names_are_per_platform_and_fit_iptables() -> None:
    assert chain_names("default") == ("WOPR-default", "WOPR-default-BOTS")
    long_a, long_b = "a" * 32, "a" * 31 + "b"
    names = {*chain_names(long_a), *chain_names(long_b)}
    assert len(names) == 4  # two platforms, two chains each, none shared
    assert all(len(name) <= 28 for name in names)  # iptables' limit for a chain name


def test_the_rules_are_one_per_bridge_then_answers_offered_ports_and_a_drop() -> None:
    firewall = HostFirewall("p1")
    wanted = firewall.rules(
        Ruleset(frozenset({"br-bbbbbbbbbbbb", "br-aaaaaaaaaaaa"}), (HostPort(8080), HostPort(53, "udp")))
    )
    gate = (
        "-A WOPR-p1 ! -i br-+ -j RETURN",  # not from a bridge: one comparison, whatever the number of tenants
        "-A WOPR-p1 -i br-aaaaaaaaaaaa -j WOPR-p1-BOTS",
        "-A WOPR-p1 -i br-bbbbbbbbbbbb -j WOPR-p1-BOTS",
    )
    # to the host (filter INPUT): answers to the host's own connections and the offered ports, nothing else
    assert wanted.host == Chains(
        gate=gate,
        policy=(
            "-A WOPR-p1-BOTS -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
            "-A WOPR-p1-BOTS -p udp -m udp --dport 53 -j RETURN",
            "-A WOPR-p1-BOTS -p tcp -m tcp --dport 8080 -j RETURN",
            "-A WOPR-p1-BOTS -j DROP",
        ),
        jumps=1,
    )
    # across networks (mangle FORWARD): within a tenant's network, not to another tenant's
    assert wanted.across == Chains(
        gate=gate,
        policy=(
            "-A WOPR-p1-BOTS ! -o br-+ -j RETURN",  # not to a bridge (the internet): one comparison
            "-A WOPR-p1-BOTS -i br-aaaaaaaaaaaa -o br-aaaaaaaaaaaa -j RETURN",
            "-A WOPR-p1-BOTS -i br-bbbbbbbbbbbb -o br-bbbbbbbbbbbb -j RETURN",
            "-A WOPR-p1-BOTS -o br-aaaaaaaaaaaa -j DROP",
            "-A WOPR-p1-BOTS -o br-bbbbbbbbbbbb -j DROP",
        ),
        jumps=1,
    )
    assert wanted.bridges == {"br-aaaaaaaaaaaa", "br-bbbbbbbbbbbb"}


def test_a_bridge_named_otherwise_drops_the_shortcuts() -> None:
    """A network whose bridge is not Docker's `br-...` (named by an option) would be skipped by `! -i br-+`: with
    one such bridge, every packet goes through the per-bridge rules as before."""
    wanted = HostFirewall("p1").rules(Ruleset(frozenset({"br-aaaaaaaaaaaa", "tenant0"})))
    assert wanted.host.gate == (
        "-A WOPR-p1 -i br-aaaaaaaaaaaa -j WOPR-p1-BOTS",
        "-A WOPR-p1 -i tenant0 -j WOPR-p1-BOTS",
    )
    assert wanted.across.policy is not None and not any("br-+" in rule for rule in wanted.across.policy)
    assert wanted.bridges == {"br-aaaaaaaaaaaa", "tenant0"}
    assert HostFirewall("p1").rules(Ruleset(frozenset())).host.gate == ()  # no tenant network: nothing to skip


@pytest.mark.parametrize(
    "bridge", ["br+", "br-x -j ACCEPT", "br-x\n-F INPUT", "br-x\n", "", "a-name-too-long-for-linux"]
)
def test_a_bridge_name_that_is_not_one_interface_is_refused(bridge: str) -> None:
    """Names go into iptables-restore's input: a wildcard, a space or a line break would change the rules."""
    with pytest.raises(ValueError, match="not a bridge interface name"):
        Ruleset(frozenset({bridge}))
