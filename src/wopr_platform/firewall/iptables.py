"""The host firewall adapter: the only module that runs `iptables-save` and `iptables-restore`.

Packets a bot sends to one of the host's own addresses (its tenant network's gateway, any other address of the
host) arrive on the tenant network's bridge interface and go through the filter table's INPUT chain, never through
FORWARD, so Docker's own chains do not see them. Packets from one tenant's bridge to another's go through FORWARD,
where Docker's isolation chains drop them, except while dockerd re-inserts its jumps (it does on every network it
creates or removes). Each platform (by platform id) owns two chains in each of two tables:

    filter  INPUT           -j WOPR-<id>                               one rule, inserted at the top
            WOPR-<id>       ! -i br-+ -> RETURN                        not from a bridge: leave at once (*)
                            -i br-<network> -j WOPR-<id>-BOTS          one rule per tenant network
            WOPR-<id>-BOTS  conntrack RELATED,ESTABLISHED -> RETURN    (answers to the host's own connections)
                            -p tcp|udp --dport <offered port> -> RETURN    (BOT_HOST_PORTS)
                            -> DROP
    mangle  FORWARD         -j WOPR-<id>                               (a table dockerd never writes)
            WOPR-<id>       (the same gate)
            WOPR-<id>-BOTS  ! -o br-+ -> RETURN                        not to a bridge (the internet): leave (*)
                            -i br-<network> -o br-<network> -> RETURN  within one network, per tenant network
                            -o br-<network> -> DROP                    to another, per tenant network

(*) only while every tenant bridge has Docker's `br-` name (a network may name its bridge otherwise): the rules a
packet passes are per tenant network, and at thousands of tenants these two keep the host's own traffic and the
bots' traffic to the internet from passing thousands of them.

The chains only ever take traffic away: what they let through goes on through the rest of the table. Both tables'
chains are rewritten in one `iptables-restore --noflush` run (declaring a chain flushes it), so a rewrite leaves
other chains alone and never duplicates a rule; a second jump from the hook is deleted in the same run.
Failures are FirewallUnavailable with the tool's own first line of error.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from wopr_platform.core.addresses import HostPort
from wopr_platform.core.errors import FirewallUnavailable

TIMEOUT_SECONDS = 10.0
_MAX_TOKEN = 16  # "WOPR-" + token + "-BOTS" within iptables' 28 characters of a chain name
_INTERFACE = re.compile(r"[A-Za-z0-9_.-]{1,15}")  # a Linux interface name: no wildcard, nothing to inject
_GATE_BRIDGE = re.compile(r"^-A \S+ -i (\S+) -j ")  # a gate's rule for one bridge (not the shortcut: `! -i`)
DOCKER_BRIDGES = "br-"  # the names dockerd gives bridge networks' interfaces: br-<12 of the network's id>
# where each part of the chains hangs: (table, the built-in chain that jumps to the gate)
HOST = ("filter", "INPUT")
ACROSS = ("mangle", "FORWARD")


def chain_names(platform_id: str) -> tuple[str, str]:
    """The platform's two chains (in each table): the gate (jumped to from the hook) and the bots' policy."""
    token = platform_id if len(platform_id) <= _MAX_TOKEN else hashlib.sha256(platform_id.encode()).hexdigest()[:16]
    return f"WOPR-{token}", f"WOPR-{token}-BOTS"


@dataclass(frozen=True, slots=True)
class Ruleset:
    """What the chains should hold: the bridge interfaces of the platform's networks, and the ports offered."""

    bridges: frozenset[str]
    ports: tuple[HostPort, ...] = ()

    def __post_init__(self) -> None:
        for bridge in self.bridges:
            if not _INTERFACE.fullmatch(bridge):
                raise ValueError(f"not a bridge interface name: {bridge!r}")


@dataclass(frozen=True, slots=True)
class Chains:
    """One table's part: the gate's and the policy's rules (None: no such chain) and the hook's jumps to the gate."""

    gate: tuple[str, ...] | None
    policy: tuple[str, ...] | None
    jumps: int

    @property
    def bridges(self) -> frozenset[str]:
        """The interfaces the gate sends to the policy."""
        found = (_GATE_BRIDGE.match(rule) for rule in self.gate or ())
        return frozenset(match.group(1) for match in found if match)


@dataclass(frozen=True, slots=True)
class Installed:
    """The platform's chains as the host holds them (or as they should be): to the host, and across networks."""

    host: Chains
    across: Chains

    @property
    def bridges(self) -> frozenset[str]:
        return self.host.bridges


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of `apply`: the bridges the gates hold now, what had to be put right (empty: in step), and
    whether the chains were not as the caller's last `apply` left them (someone else changed or removed them)."""

    bridges: frozenset[str]
    wrong: tuple[str, ...]
    tampered: bool


class HostFirewall:
    """The platform's chains in the host's filter and mangle tables (IPv4)."""

    def __init__(self, platform_id: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.gate, self.policy = chain_names(platform_id)
        self._timeout = timeout

    def rules(self, ruleset: Ruleset) -> Installed:
        """The chains as they should be, rules as `iptables-save` prints them."""
        bridges = sorted(ruleset.bridges)
        # one comparison for what has nothing to do with the tenant bridges, when their names allow it (see above)
        shortcut = bool(bridges) and all(bridge.startswith(DOCKER_BRIDGES) for bridge in bridges)
        gate = (
            *((f"-A {self.gate} ! -i {DOCKER_BRIDGES}+ -j RETURN",) if shortcut else ()),
            *(f"-A {self.gate} -i {bridge} -j {self.policy}" for bridge in bridges),
        )
        to_host = (
            f"-A {self.policy} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
            *(
                f"-A {self.policy} -p {port.protocol} -m {port.protocol} --dport {port.number} -j RETURN"
                for port in sorted(set(ruleset.ports))
            ),
            f"-A {self.policy} -j DROP",
        )
        across = (
            *((f"-A {self.policy} ! -o {DOCKER_BRIDGES}+ -j RETURN",) if shortcut else ()),
            *(f"-A {self.policy} -i {bridge} -o {bridge} -j RETURN" for bridge in bridges),
            *(f"-A {self.policy} -o {bridge} -j DROP" for bridge in bridges),
        )
        return Installed(host=Chains(gate, to_host, 1), across=Chains(gate, across, 1))

    async def read(self) -> Installed:
        """The chains as the host holds them now (one `iptables-save`)."""
        text = await self._run(["iptables-save"])
        tables: dict[str, list[str]] = {}
        table = ""
        for line in text.splitlines():
            if line.startswith("*"):
                table = line[1:].strip()
            tables.setdefault(table, []).append(line)
        return Installed(
            host=self._parse(tables.get(HOST[0], []), HOST[1]),
            across=self._parse(tables.get(ACROSS[0], []), ACROSS[1]),
        )

    def _parse(self, lines: list[str], hook: str) -> Chains:
        declared: set[str] = set()
        rules: dict[str, list[str]] = {self.gate: [], self.policy: []}
        jump = f"-A {hook} -j {self.gate}"
        jumps = 0
        for line in lines:
            if line == jump:
                jumps += 1
            elif line.startswith(":"):
                declared.add(line[1:].split(" ", 1)[0])
            elif line.startswith("-A "):
                chain = line.split(" ", 2)[1]
                if chain in rules:
                    rules[chain].append(line)
        return Chains(
            gate=tuple(rules[self.gate]) if self.gate in declared else None,
            policy=tuple(rules[self.policy]) if self.policy in declared else None,
            jumps=jumps,
        )

    async def apply(
        self, ruleset: Ruleset, *, keep_installed: bool = False, last: frozenset[str] | None = None
    ) -> Applied:
        """Make the chains hold `ruleset` (idempotent), also the bridges the gate holds already when
        `keep_installed` (the caller does not know every bridge yet). `last`: the bridges of the caller's last
        apply, to tell its own changes from someone else's."""
        installed = await self.read()
        if keep_installed:
            ruleset = Ruleset(ruleset.bridges | installed.bridges, ruleset.ports)
        wanted = self.rules(ruleset)
        wrong: list[str] = []
        script: list[str] = []
        for (table, hook), name, have, want in (
            (HOST, "to the host", installed.host, wanted.host),
            (ACROSS, "across networks", installed.across, wanted.across),
        ):
            found = _differences(have, want)
            if not found:
                continue
            wrong += [f"{name}: {what}" for what in found]
            script += [f"*{table}", f":{self.policy} - [0:0]", f":{self.gate} - [0:0]", *(want.policy or ())]
            script += want.gate or ()
            if have.jumps == 0:
                script.append(f"-I {hook} 1 -j {self.gate}")
            script += [f"-D {hook} -j {self.gate}"] * max(have.jumps - 1, 0)
            script.append("COMMIT")
        if script:
            await self._restore(script)
        tampered = bool(wrong) and last is not None and installed != self.rules(Ruleset(last, ruleset.ports))
        return Applied(ruleset.bridges, tuple(wrong), tampered)

    async def remove(self) -> None:
        """Take the platform's chains and the jumps to them off the host (nothing when they are not there)."""
        installed = await self.read()
        script: list[str] = []
        for (table, hook), have in ((HOST, installed.host), (ACROSS, installed.across)):
            lines = [f"-D {hook} -j {self.gate}"] * have.jumps
            present = ((self.gate, have.gate), (self.policy, have.policy))
            chains = [chain for chain, rules in present if rules is not None]
            lines += [f"-F {chain}" for chain in chains] + [f"-X {chain}" for chain in chains]
            if lines:
                script += [f"*{table}", *lines, "COMMIT"]
        if script:
            await self._restore(script)

    async def _restore(self, lines: Iterable[str]) -> None:
        await self._run(["iptables-restore", "-w", "5", "--noflush"], stdin="\n".join([*lines, ""]))

    async def _run(self, argv: list[str], stdin: str | None = None) -> str:
        """Run one iptables tool; its output, or FirewallUnavailable with why not."""
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            raise FirewallUnavailable(f"{argv[0]} is not installed", details={"command": argv[0]}) from None
        except PermissionError:
            raise FirewallUnavailable(f"{argv[0]} may not be run", details={"command": argv[0]}) from None
        try:
            async with asyncio.timeout(self._timeout):
                out, err = await process.communicate(stdin.encode() if stdin is not None else None)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise FirewallUnavailable(f"{argv[0]} timed out", details={"command": argv[0]}) from None
        if process.returncode != 0:
            reason = next((line.strip() for line in err.decode(errors="replace").splitlines() if line.strip()), "")
            raise FirewallUnavailable(
                f"{argv[0]} failed: {reason or f'exit status {process.returncode}'}",
                details={"command": argv[0], "status": process.returncode},
            )
        return out.decode(errors="replace")


def _differences(have: Chains, want: Chains) -> list[str]:
    """What differs between a table's chains as found and as they should be."""
    found = []
    if have.policy != want.policy:
        found.append("policy chain missing" if have.policy is None else "policy chain changed")
    if have.gate != want.gate:
        found.append("gate chain missing" if have.gate is None else "bridges changed")
    if have.jumps != 1:
        found.append("jump missing" if have.jumps == 0 else "jump repeated")
    return found
