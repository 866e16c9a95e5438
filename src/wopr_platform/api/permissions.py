"""What every route needs, in one table: a scope of the caller's tenant, or one of a few role-free needs.

- `public`: anyone (health, sign-up, sign-in, password reset: the mailed token is the credential);
- `identified`: any valid caller (operator token, API key, signed-in user);
- `signed_in`: a user with the session cookie (what only a person does: password, sign-out);
- a scope (`read`, `read:secrets`, `write`, `deploy`, `admin`): held for the tenant acted for;
- `owner`: the tenant's owner (or a platform admin);
- `platform_admin`: a platform admin acting for the default tenant (actions of the whole platform).

A route missing here is refused for everyone (and a test fails): nothing is open by omission.
"""

from __future__ import annotations

from typing import Literal

from wopr_platform.core.access import Scope

Need = Scope | Literal["public", "identified", "signed_in", "owner", "platform_admin"]

ROUTES: dict[str, Need] = {
    # health
    "GET /health": "public",
    "GET /health/ready": "public",
    # the operator's figures (each replica's own)
    "GET /metrics": "platform_admin",
    # accounts
    "POST /auth/signup": "public",
    "POST /auth/login": "public",
    "POST /auth/logout": "signed_in",
    "POST /auth/logout-everywhere": "signed_in",
    "POST /auth/password": "signed_in",
    "POST /auth/totp": "signed_in",
    "POST /auth/totp/confirm": "signed_in",
    "DELETE /auth/totp": "signed_in",
    "POST /auth/recovery-codes": "signed_in",
    "POST /auth/password-reset": "public",
    "POST /auth/password-reset/confirm": "public",
    "GET /auth/me": "identified",
    "GET /tenants": "identified",
    "POST /tenants": "signed_in",
    "GET /members": "read",
    "POST /members": "admin",
    "PATCH /members/{user_id}": "admin",
    "DELETE /members/{user_id}": "admin",
    "POST /members/{user_id}/ownership": "owner",
    "GET /users": "platform_admin",
    "PATCH /users/{user_id}": "platform_admin",
    "GET /tenants/{tenant_id}/quota": "platform_admin",
    "PUT /tenants/{tenant_id}/quota": "platform_admin",
    "GET /invitations": "admin",
    "POST /invitations": "admin",
    "DELETE /invitations/{invitation_id}": "admin",
    "POST /invitations/accept": "signed_in",
    "GET /keys": "admin",
    "POST /keys": "admin",
    "DELETE /keys/{key_id}": "admin",
    # the AI gateway's set-up and usage (its own endpoints, which bots call, are on its own listener)
    "GET /gateway/providers": "platform_admin",
    "PUT /gateway/providers/{name}": "platform_admin",
    "DELETE /gateway/providers/{name}": "platform_admin",
    "PUT /gateway/models": "platform_admin",
    "DELETE /gateway/models": "platform_admin",
    "GET /gateway/models": "read",
    "GET /gateway/keys": "admin",
    "POST /gateway/keys": "admin",
    "DELETE /gateway/keys/{key_id}": "admin",
    "GET /gateway/provider-keys": "admin",
    "PUT /gateway/provider-keys/{name}": "admin",
    "DELETE /gateway/provider-keys/{name}": "admin",
    "POST /fleet/bots/{bot_id}/gateway-key": "write",
    "GET /fleet/bots/{bot_id}/gateway-limits": "read",
    "PUT /fleet/bots/{bot_id}/gateway-limits": "admin",
    "GET /gateway/usage": "read",
    # billing: Stripe's webhook carries its signature, which the route checks
    "GET /billing/balance": "read",
    "GET /billing/transactions": "read",
    "GET /billing/usage": "read",
    "GET /billing/limits": "read",
    "PUT /billing/limits": "admin",
    "GET /billing/plans": "read",
    "GET /billing/plan": "read",
    "PUT /tenants/{tenant_id}/plan": "platform_admin",
    "POST /billing/checkout": "admin",
    "POST /billing/checkout/sessions": "admin",
    "POST /billing/webhook": "public",
    "GET /billing/ledger-check": "platform_admin",
    "GET /tenants/{tenant_id}/credits": "platform_admin",
    "POST /tenants/{tenant_id}/credits/grants": "platform_admin",
    "POST /tenants/{tenant_id}/credits/corrections": "platform_admin",
    "POST /tenants/{tenant_id}/credits/refunds": "platform_admin",
    # bots
    "GET /fleet/bots": "read",
    "POST /fleet/bots": "write",
    "GET /fleet/bots/{bot_id}": "read",
    "PATCH /fleet/bots/{bot_id}": "write",
    "DELETE /fleet/bots/{bot_id}": "write",
    "POST /fleet/bots/{bot_id}/start": "write",
    "POST /fleet/bots/{bot_id}/stop": "write",
    "POST /fleet/bots/{bot_id}/restart": "write",
    "GET /fleet/bots/{bot_id}/logs": "read:secrets",
    "GET /fleet/drift": "read",
    "GET /fleet/events": "read",
    "GET /fleet/quota": "read",
    # templates
    "GET /fleet/templates": "read",
    "GET /fleet/templates/{name}": "read",
    "POST /fleet/templates/reload": "platform_admin",
    "POST /fleet/seed": "write",
    # image updates and rollouts
    "POST /fleet/bots/{bot_id}/update": "deploy",
    "GET /fleet/bots/{bot_id}/image-status": "read",
    "GET /fleet/bots/{bot_id}/updates": "read",
    "GET /fleet/rollouts": "platform_admin",
    "GET /fleet/rollouts/{rollout_id}": "platform_admin",
    # backups: the archive carries the bot's data, secret values included (sealed, but still the tenant's secrets)
    "GET /backups": "read",
    "POST /backups": "write",
    "GET /backups/usage": "read",
    "POST /backups/upload": "write",
    "GET /backups/policy": "read",
    "PUT /backups/policy": "admin",
    "GET /backups/{backup_id}": "read",
    "GET /backups/{backup_id}/archive": "read:secrets",
    "POST /backups/{backup_id}/restore": "write",
    "DELETE /backups/{backup_id}": "write",
    "GET /fleet/bots/{bot_id}/backup-policy": "read",
    "PUT /fleet/bots/{bot_id}/backup-policy": "write",
    # routing and audit
    "GET /proxy/routes": "read",
    "GET /audit": "admin",
}


class UndeclaredRoute(Exception):
    """A route nobody declared a need for (refused; a test lists them)."""


def need_of(method: str, path: str) -> Need:
    """The need of a route (`path` is its template, e.g. `/fleet/bots/{bot_id}`)."""
    found = ROUTES.get(f"{method} {path}")
    if found is None:
        if method == "HEAD":
            found = ROUTES.get(f"GET {path}")
        if found is None:
            raise UndeclaredRoute(f"{method} {path}")
    return found
