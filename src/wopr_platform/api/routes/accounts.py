"""HTTP routes of accounts: sign-up and sign-in, the session cookie, the second factor, tenants, members and API keys.

What each route needs is declared in api/permissions.py; these routes only parse, call the service and answer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response

from wopr_platform.accounts.policy import NewSession
from wopr_platform.accounts.schemas import (
    Accepted,
    InvitationAcceptIn,
    InvitationIn,
    InvitationList,
    InvitationOut,
    KeyCreated,
    KeyIn,
    KeyList,
    LoginIn,
    MemberIn,
    MemberList,
    MemberOut,
    Membership,
    PasswordChangeIn,
    PasswordIn,
    PasswordResetConfirmIn,
    PasswordResetIn,
    RecoveryCodes,
    RoleIn,
    SessionOut,
    SignupIn,
    TenantIn,
    TenantList,
    TenantOut,
    TotpConfirmIn,
    TotpEnabled,
    TotpSetup,
    UserOut,
)
from wopr_platform.api.auth import SESSION_COOKIE, Identified, Operator
from wopr_platform.api.deps import Accounts, checked_id
from wopr_platform.core.errors import NotFound

router = APIRouter(tags=["accounts"])
UserId = Annotated[str, Path(description="a member's user id")]


def _set_cookie(request: Request, response: Response, new: NewSession) -> SessionOut:
    settings = request.app.state.settings
    response.set_cookie(
        SESSION_COOKIE,
        new.token,
        max_age=settings.session_max_age,
        httponly=True,
        samesite="lax",
        secure=bool(settings.https),
        path="/",
    )
    return new.answer


def _user_of(caller: Identified) -> str:
    if caller.user_id is None or caller.kind != "user":
        raise NotFound("no user is signed in", details={"code": "not_found"})
    return caller.user_id


def _client(request: Request) -> str | None:
    client = request.scope.get("client")
    return client[0] if client else None


@router.post("/auth/signup", status_code=202, response_model=Accepted)
async def sign_up(body: SignupIn, accounts: Accounts) -> Accepted:
    """Make an account and its own tenant; the answer is the same whether or not the email was new."""
    return await accounts.signup(body)


@router.post("/auth/login", response_model=SessionOut)
async def sign_in(body: LoginIn, request: Request, response: Response, accounts: Accounts) -> SessionOut:
    """A new session: the cookie is set, and the answer holds the CSRF token for state-changing calls. An account
    with the second factor on also needs `code` or `recoveryCode` (401 `totp_required` without)."""
    new = await accounts.login(
        body.email, body.password, _client(request), code=body.code, recovery_code=body.recovery_code
    )
    return _set_cookie(request, response, new)


@router.post("/auth/logout", status_code=204, response_class=Response)
async def sign_out(caller: Identified, accounts: Accounts) -> Response:
    if caller.session_id is not None:
        await accounts.logout(caller.session_id)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/auth/logout-everywhere", status_code=204, response_class=Response)
async def sign_out_everywhere(caller: Identified, accounts: Accounts) -> Response:
    """End every session of the signed-in user, this one included."""
    await accounts.logout_everywhere(_user_of(caller))
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/auth/password", response_model=SessionOut)
async def change_password(
    body: PasswordChangeIn, caller: Identified, request: Request, response: Response, accounts: Accounts
) -> SessionOut:
    """Change the password: every session ends and this browser gets a new one."""
    new = await accounts.change_password(_user_of(caller), body.current_password, body.new_password)
    return _set_cookie(request, response, new)


@router.post("/auth/totp", response_model=TotpSetup)
async def begin_totp(body: PasswordIn, caller: Identified, accounts: Accounts) -> TotpSetup:
    """Set up the second factor: a new secret for an authenticator app, pending until a code confirms it."""
    return await accounts.second_factor.begin(_user_of(caller), body.password)


@router.post("/auth/totp/confirm", response_model=TotpEnabled)
async def confirm_totp(
    body: TotpConfirmIn, caller: Identified, request: Request, response: Response, accounts: Accounts
) -> TotpEnabled:
    """Turn the second factor on with a current code: the recovery codes are in this answer only; every session
    ends and this browser gets a new one."""
    new, codes = await accounts.second_factor.confirm(_user_of(caller), body.code)
    session = _set_cookie(request, response, new)
    return TotpEnabled(**session.model_dump(), recovery_codes=codes.recovery_codes)


@router.delete("/auth/totp", status_code=204, response_class=Response)
async def disable_totp(body: PasswordIn, caller: Identified, accounts: Accounts) -> Response:
    """Turn the second factor off (the password entered again); the recovery codes are void."""
    await accounts.second_factor.disable(_user_of(caller), body.password)
    return Response(status_code=204)


@router.post("/auth/recovery-codes", response_model=RecoveryCodes)
async def regenerate_recovery_codes(body: PasswordIn, caller: Identified, accounts: Accounts) -> RecoveryCodes:
    """A new set of recovery codes, in this answer only; the earlier ones are void."""
    return await accounts.second_factor.regenerate_recovery_codes(_user_of(caller), body.password)


@router.post("/auth/password-reset", status_code=202, response_model=Accepted)
async def request_password_reset(body: PasswordResetIn, request: Request, accounts: Accounts) -> Accepted:
    """Mail a single-use link that sets a new password; the answer is the same whether or not the email has an
    account (503 `mail_unavailable` when the platform sends no mail)."""
    return await accounts.resets.request(body.email, _client(request))


@router.post("/auth/password-reset/confirm", status_code=204, response_class=Response)
async def confirm_password_reset(body: PasswordResetConfirmIn, accounts: Accounts) -> Response:
    """Set a new password with the token from the mail: every session of the account ends; sign in again."""
    await accounts.resets.confirm(body.token, body.new_password)
    return Response(status_code=204)


@router.get("/auth/me", response_model=UserOut)
async def who_am_i(caller: Identified, accounts: Accounts) -> UserOut:
    """The signed-in user and their tenants (a key or the operator token gets a 404: it is not a user)."""
    return await accounts.me(_user_of(caller))


@router.get("/tenants", response_model=TenantList)
async def list_tenants(caller: Identified, accounts: Accounts) -> TenantList:
    """The caller's tenants with their role; every tenant for a platform admin."""
    if caller.kind == "key":
        return await accounts.tenants(None, everyone=False)
    return await accounts.tenants(caller.user_id, everyone=caller.admin)


@router.post("/tenants", status_code=201, response_model=TenantOut)
async def create_tenant(body: TenantIn, caller: Identified, accounts: Accounts) -> TenantOut:
    """A new tenant, owned by the signed-in user."""
    return await accounts.create_tenant(_user_of(caller), body)


@router.get("/members", response_model=MemberList)
async def list_members(principal: Operator, accounts: Accounts) -> MemberList:
    return await accounts.members(principal.tenant_id)


@router.post("/members", status_code=201, response_model=MemberOut)
async def add_member(body: MemberIn, principal: Operator, accounts: Accounts) -> MemberOut:
    """Add a user who has an account, by email, as admin, member or viewer."""
    return await accounts.add_member(principal.tenant_id, body)


@router.patch("/members/{user_id}", response_model=MemberOut)
async def change_role(user_id: UserId, body: RoleIn, principal: Operator, accounts: Accounts) -> MemberOut:
    return await accounts.set_role(principal.tenant_id, checked_id(user_id, "user"), body.role)


@router.delete("/members/{user_id}", status_code=204, response_class=Response)
async def remove_member(user_id: UserId, principal: Operator, accounts: Accounts) -> Response:
    """Remove a member (not the owner); the keys they made for this tenant are revoked."""
    await accounts.remove_member(principal.tenant_id, checked_id(user_id, "user"))
    return Response(status_code=204)


@router.post("/members/{user_id}/ownership", response_model=MemberList)
async def transfer_ownership(user_id: UserId, principal: Operator, accounts: Accounts) -> MemberList:
    """Make a member the owner; the previous owner becomes an admin."""
    return await accounts.transfer_ownership(principal.tenant_id, checked_id(user_id, "user"))


@router.get("/invitations", response_model=InvitationList)
async def list_invitations(principal: Operator, accounts: Accounts) -> InvitationList:
    """The tenant's pending invitations (never their tokens)."""
    return await accounts.invitations.pending(principal.tenant_id)


@router.post("/invitations", status_code=201, response_model=InvitationOut)
async def invite(body: InvitationIn, principal: Operator, accounts: Accounts) -> InvitationOut:
    """Mail an invitation to join this tenant as admin, member or viewer (503 `mail_unavailable` when the platform
    sends no mail); the invitee accepts signed in, or signs up with it."""
    return await accounts.invitations.invite(principal.tenant_id, principal.subject, body)


@router.delete("/invitations/{invitation_id}", status_code=204, response_class=Response)
async def revoke_invitation(
    invitation_id: Annotated[str, Path(description="the invitation's id")], principal: Operator, accounts: Accounts
) -> Response:
    await accounts.invitations.revoke(principal.tenant_id, checked_id(invitation_id, "invitation"))
    return Response(status_code=204)


@router.post("/invitations/accept", response_model=Membership)
async def accept_invitation(body: InvitationAcceptIn, caller: Identified, accounts: Accounts) -> Membership:
    """Join the inviting tenant with the invitation's role; the signed-in user's email must be the invited one."""
    return await accounts.invitations.accept(_user_of(caller), body.token)


@router.get("/keys", response_model=KeyList)
async def list_keys(principal: Operator, accounts: Accounts) -> KeyList:
    """The tenant's keys that are not revoked: prefix, scopes, last use (never the secret)."""
    return await accounts.keys(principal.tenant_id)


@router.post("/keys", status_code=201, response_model=KeyCreated)
async def create_key(body: KeyIn, principal: Operator, accounts: Accounts) -> KeyCreated:
    """A key for this tenant with at most the caller's own scopes; its secret is shown in this answer only."""
    creator = principal.user_id or principal.subject
    return await accounts.create_key(principal.tenant_id, creator, principal.scopes, body)


@router.delete("/keys/{key_id}", status_code=204, response_class=Response)
async def revoke_key(
    key_id: Annotated[str, Path(description="the key's id")], principal: Operator, accounts: Accounts
) -> Response:
    """Revoke a key: the next request with it, on any replica, is a 401."""
    await accounts.revoke_key(principal.tenant_id, checked_id(key_id, "key"))
    return Response(status_code=204)
