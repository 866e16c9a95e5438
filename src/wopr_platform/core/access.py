"""Who may do what: the scopes a caller can hold, the roles a tenant's members have, and the scopes of each role.

A route needs one scope (or a role-free requirement such as being signed in); the table of which route needs what
is `api/permissions.py`. These are the words both sides share.
"""

from __future__ import annotations

from typing import Literal, get_args

Scope = Literal["read", "read:secrets", "write", "deploy", "admin"]
Role = Literal["owner", "admin", "member", "viewer"]

SCOPES: tuple[Scope, ...] = get_args(Scope)
ROLES: tuple[Role, ...] = get_args(Role)

# read: see bots, templates, routes, drift, events; read:secrets: what may hold secrets (logs); write: create,
# change, start, stop and remove bots; deploy: image updates and rollouts; admin: members, API keys, the audit log
ROLE_SCOPES: dict[Role, frozenset[Scope]] = {
    "owner": frozenset(SCOPES),
    "admin": frozenset(SCOPES),
    "member": frozenset({"read", "read:secrets", "write", "deploy"}),
    "viewer": frozenset({"read"}),
}
ALL_SCOPES: frozenset[Scope] = frozenset(SCOPES)
