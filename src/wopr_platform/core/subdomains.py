"""A bot's subdomain: one lowercase RFC 1123 label, not a reserved name, unique across every tenant."""

from __future__ import annotations

import re

LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
# names the platform or an operator may want for themselves on the base domain
RESERVED = frozenset(
    {
        "admin",
        "api",
        "app",
        "assets",
        "auth",
        "billing",
        "caddy",
        "cdn",
        "console",
        "dashboard",
        "dns",
        "docs",
        "ftp",
        "help",
        "imap",
        "instance",
        "internal",
        "localhost",
        "login",
        "mail",
        "mx",
        "ns",
        "ns1",
        "ns2",
        "oauth",
        "platform",
        "pop",
        "pop3",
        "proxy",
        "root",
        "smtp",
        "sso",
        "static",
        "status",
        "webmail",
        "wopr",
        "www",
    }
)


def problem(value: str) -> str | None:
    """Why `value` cannot be a subdomain (None when it can)."""
    if not LABEL_RE.match(value):
        return (
            "subdomain must be one DNS label: 1-63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit"
        )
    if value[2:4] == "--":
        # `xn--` (punycode) and the rest of RFC 5891's reserved `??--` labels: no look-alike hosts
        return "subdomain must not have '--' as its third and fourth characters"
    if value in RESERVED:
        return f"subdomain {value!r} is reserved"
    return None


def check(value: str) -> str:
    """`value` if it is a valid subdomain; ValueError naming the rule it breaks otherwise."""
    reason = problem(value)
    if reason is not None:
        raise ValueError(reason)
    return value


def from_name(name: str) -> str | None:
    """The subdomain a bot name suggests (lowercased, '_' as '-'), or None when that is not a valid one."""
    candidate = name.strip().lower().replace("_", "-")
    return candidate if problem(candidate) is None else None
