"""Who is calling, for which tenant, and whether the route's declared need (api/permissions.py) is met.

Three kinds of caller:

- the platform's **operator**: `Authorization: Bearer <FLEET_API_TOKEN>`, a platform admin; it acts for the
  `default` tenant or the one `X-Tenant-Id` names, exactly as before accounts existed;
- an **API key**: `Authorization: Bearer wopr_...`, bound to one tenant, with its scopes, maybe only from some
  addresses;
- a **user** signed in with the session cookie; they act for a tenant they belong to (`X-Tenant-Id`, else the one
  the web console's switcher chose, else their only one), with the scopes of their role there. A platform admin
  may act for any tenant. State-changing calls made with the cookie must send the session's CSRF token in
  `X-CSRF-Token`.

`authorize` runs before every route (an app-wide dependency): it looks the route up in the one table of needs,
identifies the caller (one lookup for a key or a session), and refuses with 401/403/404 before the route runs.
Another tenant's resources are 404: a user naming a tenant they do not belong to gets `tenant_not_found`.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Annotated, Literal

from fastapi import Depends, Header, Request

from wopr_platform.accounts.credentials import KEY_PREFIX, same
from wopr_platform.accounts.service import AccountService
from wopr_platform.api.deps import services
from wopr_platform.api.permissions import UndeclaredRoute, need_of
from wopr_platform.core.access import ALL_SCOPES, ROLE_SCOPES, Role, Scope
from wopr_platform.core.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from wopr_platform.core.naming import DEFAULT_TENANT, TENANT_RE

TENANT_HEADER = "X-Tenant-Id"
CSRF_HEADER = "x-csrf-token"
SESSION_COOKIE = "wopr_session"
# the tenant chosen in the web console's switcher: a signed-in browser acts for it when it names none in the header
# (the console's event stream cannot send headers)
TENANT_COOKIE = "wopr_tenant"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
Kind = Literal["operator", "user", "key"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: identified, maybe not yet for a tenant."""

    kind: Kind
    subject: str  # what the audit log records: "operator", "user:<id>", "key:<id>" (never a secret)
    admin: bool  # a platform admin
    tenant_id: str | None
    role: Role | None = None
    scopes: frozenset[Scope] = field(default_factory=frozenset)
    user_id: str | None = None  # the user, or the key's creator
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and for which tenant (routes that act on a tenant's things get this)."""

    subject: str
    tenant_id: str
    kind: Kind = "operator"
    admin: bool = True
    role: Role | None = None
    scopes: frozenset[Scope] = ALL_SCOPES
    user_id: str | None = None

    @property
    def platform_admin(self) -> bool:
        """May act beyond its tenant (actions and state of the whole platform, every tenant's): a platform admin
        acting for the default tenant. Acting for another tenant (`X-Tenant-Id`), it gets only what that tenant
        may do."""
        return self.admin and self.tenant_id == DEFAULT_TENANT


def _check_tenant(tenant: str | None) -> None:
    if tenant is not None and not TENANT_RE.match(tenant):
        raise ValidationFailed(
            f"{TENANT_HEADER} must be a tenant id: 1-63 lowercase letters, digits or '-', "
            "starting and ending with a letter or digit",
            details={"header": TENANT_HEADER},
        )


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("missing bearer token")
    return token.strip()


async def identify(request: Request, tenant: str | None) -> Caller:
    """The caller of this request (401 when it presents nothing valid). The tenant header is checked only once the
    credentials are, so an anonymous caller learns nothing from it."""
    accounts: AccountService = services(request).accounts
    token = _bearer(request)
    if token is not None:
        if token.startswith(KEY_PREFIX):
            return await _key_caller(request, accounts, token, tenant)
        configured = request.app.state.settings.fleet_api_token
        if configured is None or not configured.get_secret_value():
            raise Unauthorized(
                "the operator token is disabled: no FLEET_API_TOKEN is configured",
                details={"code": "auth_not_configured"},
            )
        if not hmac.compare_digest(token.encode(), configured.get_secret_value().encode()):
            raise Unauthorized("invalid bearer token")
        _check_tenant(tenant)
        return Caller(
            kind="operator", subject="operator", admin=True, tenant_id=tenant or DEFAULT_TENANT, scopes=ALL_SCOPES
        )
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return await _session_caller(request, accounts, cookie, tenant)
    raise Unauthorized("sign in, or send a bearer token")


async def _key_caller(request: Request, accounts: AccountService, secret: str, tenant: str | None) -> Caller:
    key = await accounts.identify_key(secret)
    if key is None:
        raise Unauthorized("invalid, revoked or expired API key")
    client = request.scope.get("client")
    if key.allowed and not key.allowed.contains(client[0] if client else None):
        raise Forbidden("this key may not be used from this address", details={"code": "address_not_allowed"})
    _check_tenant(tenant)
    if tenant is not None and tenant != key.tenant_id:
        raise NotFound("tenant not found", details={"code": "tenant_not_found"})
    return Caller(
        kind="key",
        subject=f"key:{key.key_id}",
        admin=False,
        tenant_id=key.tenant_id,
        scopes=key.scopes,
        user_id=key.created_by,
    )


async def _session_caller(request: Request, accounts: AccountService, token: str, tenant: str | None) -> Caller:
    user = await accounts.identify_session(token)
    if user is None:
        raise Unauthorized("the session has ended; sign in again", details={"code": "session_expired"})
    if request.method not in SAFE_METHODS and not same(request.headers.get(CSRF_HEADER, ""), user.csrf_token):
        raise Forbidden(
            "state-changing calls made with the session cookie must send its X-CSRF-Token",
            details={"code": "csrf_failed"},
        )
    if tenant is None:
        tenant = request.cookies.get(TENANT_COOKIE) or None
    _check_tenant(tenant)
    chosen = tenant
    if chosen is None:  # their only tenant; a platform admin in none or several: the default one
        if len(user.roles) == 1:
            chosen = next(iter(user.roles))
        elif user.platform_admin:
            chosen = DEFAULT_TENANT
    role = user.roles.get(chosen) if chosen is not None else None
    if chosen is not None and role is None and not user.platform_admin:
        raise NotFound("tenant not found", details={"code": "tenant_not_found"})
    scopes = ALL_SCOPES if user.platform_admin else ROLE_SCOPES[role] if role is not None else frozenset()
    return Caller(
        kind="user",
        subject=f"user:{user.user_id}",
        admin=user.platform_admin,
        tenant_id=chosen,
        role=role,
        scopes=scopes,
        user_id=user.user_id,
        session_id=user.session_id,
    )


async def authorize(
    request: Request,
    tenant: Annotated[
        str | None,
        Header(
            alias=TENANT_HEADER,
            description="the tenant to act for (default: the operator's `default`, a user's only tenant, a key's "
            "own); another tenant's resources are 404",
        ),
    ] = None,
) -> None:
    """Check the route's declared need before it runs (installed on every route)."""
    route = request.scope.get("route")
    try:
        need = need_of(request.method, getattr(route, "path", ""))
    except UndeclaredRoute:
        raise Forbidden("this route declares no permission", details={"code": "route_undeclared"}) from None
    if need == "public":
        return
    caller = await identify(request, tenant)
    request.state.caller = caller
    if need == "identified":
        return
    if need == "signed_in":
        if caller.kind != "user":
            raise Forbidden("this needs a signed-in user (the session cookie)", details={"code": "session_required"})
        return
    if caller.tenant_id is None:
        raise ValidationFailed(
            f"you belong to several tenants (or none): name one in {TENANT_HEADER}",
            details={"code": "tenant_required", "header": TENANT_HEADER},
        )
    principal = Principal(
        subject=caller.subject,
        tenant_id=caller.tenant_id,
        kind=caller.kind,
        admin=caller.admin,
        role=caller.role,
        scopes=caller.scopes,
        user_id=caller.user_id,
    )
    if need == "platform_admin":
        if not principal.platform_admin:
            raise Forbidden(
                "this action affects every tenant: only a platform admin acting for the default tenant may take it",
                details={"code": "platform_admin_required"},
            )
    elif need == "owner":
        if caller.role != "owner" and not caller.admin:
            raise Forbidden("only the tenant's owner may do this", details={"code": "owner_required"})
    elif need not in caller.scopes:
        raise Forbidden(f"this needs the {need!r} scope", details={"code": "scope_required", "scope": need})
    request.state.principal = principal  # for the route and the audit log (who made each change)


async def _principal(request: Request) -> Principal:
    found = getattr(request.state, "principal", None)
    assert isinstance(found, Principal), "authorize did not run for this route"
    return found


async def _caller(request: Request) -> Caller:
    found = getattr(request.state, "caller", None)
    assert isinstance(found, Caller), "authorize did not run for this route"
    return found


Operator = Annotated[Principal, Depends(_principal)]
PlatformAdmin = Operator  # the need itself is declared in api/permissions.py
Identified = Annotated[Caller, Depends(_caller)]
