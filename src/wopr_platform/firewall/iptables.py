"""The host firewall adapter: the only module that runs `iptables-save` and `iptables-restore`.

Packets a bot sends to one of the host's own addresses (its tenant network's gateway, any other address of the
host) arrive on the tenant network's bridge interface and go through the filter table's INPUT chain, never through
FORWARD, so Docker's own chains do not see them. Each platform (by platform id) owns two chains there:

    INPUT     -j WOPR-<id>                               one rule, inserted at the top
    WOPR-<id>       -i br-<network> -j WOPR-<id>-BOTS    one rule per tenant network
    WOPR-<id>-BOTS  conntrack RELATED,ESTABLISHED -> RETURN   (answers to the host's own connections)
                    -p tcp|udp --dport <offered port> -> RETURN   (BOT_HOST_PORTS)
                    -> DROP

The chains only ever take traffic away: what they let through goes on through the rest of INPUT. Both chains are
rewritten in one `iptables-restore --noflush` transaction (declaring a chain flushes it), so a rewrite is atomic,
leaves other chains alone and never duplicates a rule; a second INPUT jump is deleted in the same transaction.
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


def chain_names(platform_id: str) -> tuple[str, str]:
    """The platform's two chains: the gate (jumped to from INPUT) and the bots' policy."""
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
class Installed:
    """What the host holds of the platform's chains: their rules (None: no such chain) and INPUT's jumps to it."""

    gate: tuple[str, ...] | None
    policy: tuple[str, ...] | None
    jumps: int

    @property
    def bridges(self) -> frozenset[str]:
        """The interfaces the gate sends to the policy."""
        found = (re.search(r" -i (\S+) ", rule) for rule in self.gate or ())
        return frozenset(match.group(1) for match in found if match)


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of `apply`: the bridges the gate holds now, and what had to be put right (empty: in step)."""

    bridges: frozenset[str]
    wrong: tuple[str, ...]


class HostFirewall:
    """The platform's chains in the host's filter table (IPv4)."""

    def __init__(self, platform_id: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.gate, self.policy = chain_names(platform_id)
        self._timeout = timeout

    def rules(self, ruleset: Ruleset) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The gate's and the policy's rules as `iptables-save` prints them."""
        gate = tuple(f"-A {self.gate} -i {bridge} -j {self.policy}" for bridge in sorted(ruleset.bridges))
        policy = (
            f"-A {self.policy} -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN",
            *(
                f"-A {self.policy} -p {port.protocol} -m {port.protocol} --dport {port.number} -j RETURN"
                for port in sorted(set(ruleset.ports))
            ),
            f"-A {self.policy} -j DROP",
        )
        return gate, policy

    async def read(self) -> Installed:
        """The chains as the host holds them now (one `iptables-save` of the filter table)."""
        text = await self._run(["iptables-save", "-t", "filter"])
        declared: set[str] = set()
        rules: dict[str, list[str]] = {self.gate: [], self.policy: []}
        jump = f"-A INPUT -j {self.gate}"
        jumps = 0
        for line in text.splitlines():
            if line == jump:
                jumps += 1
            elif line.startswith(":"):
                declared.add(line[1:].split(" ", 1)[0])
            elif line.startswith("-A "):
                chain = line.split(" ", 2)[1]
                if chain in rules:
                    rules[chain].append(line)
        return Installed(
            gate=tuple(rules[self.gate]) if self.gate in declared else None,
            policy=tuple(rules[self.policy]) if self.policy in declared else None,
            jumps=jumps,
        )

    async def apply(self, ruleset: Ruleset, *, keep_installed: bool = False) -> Applied:
        """Make the chains hold `ruleset` (idempotent), also the bridges the gate holds already when
        `keep_installed` (the caller does not know every bridge yet)."""
        installed = await self.read()
        if keep_installed:
            ruleset = Ruleset(ruleset.bridges | installed.bridges, ruleset.ports)
        gate, policy = self.rules(ruleset)
        wrong = []
        if installed.policy != policy:
            wrong.append("policy chain missing" if installed.policy is None else "policy chain changed")
        if installed.gate != gate:
            wrong.append("gate chain missing" if installed.gate is None else "bridges changed")
        if installed.jumps != 1:
            wrong.append("jump from INPUT missing" if installed.jumps == 0 else "jump from INPUT repeated")
        if not wrong:
            return Applied(ruleset.bridges, ())
        lines = [f":{self.policy} - [0:0]", f":{self.gate} - [0:0]", *policy, *gate]
        if installed.jumps == 0:
            lines.append(f"-I INPUT 1 -j {self.gate}")
        lines += [f"-D INPUT -j {self.gate}"] * max(installed.jumps - 1, 0)
        await self._restore(lines)
        return Applied(ruleset.bridges, tuple(wrong))

    async def remove(self) -> None:
        """Take the platform's chains and INPUT's jumps to them off the host (nothing when they are not there)."""
        installed = await self.read()
        lines = [f"-D INPUT -j {self.gate}"] * installed.jumps
        for chain, rules in ((self.gate, installed.gate), (self.policy, installed.policy)):
            if rules is not None:
                lines += [f"-F {chain}"]
        for chain, rules in ((self.gate, installed.gate), (self.policy, installed.policy)):
            if rules is not None:
                lines += [f"-X {chain}"]
        if lines:
            await self._restore(lines)

    async def _restore(self, lines: Iterable[str]) -> None:
        text = "\n".join(["*filter", *lines, "COMMIT", ""])
        await self._run(["iptables-restore", "-w", "5", "--noflush"], stdin=text)

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
