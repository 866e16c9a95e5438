"""What the account routes take and answer, and what identifying a caller finds (before the API turns it into a
principal)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator
from pydantic.alias_generators import to_camel

from wopr_platform.accounts.credentials import MAX_PASSWORD, MIN_PASSWORD
from wopr_platform.core.access import Role, Scope
from wopr_platform.core.naming import TENANT_RE
from wopr_platform.core.networks import Networks

EMAIL_PATTERN = r"^[^@\s\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?\.[A-Za-z]{2,63}$"
Email = Annotated[str, StringConstraints(max_length=254, pattern=EMAIL_PATTERN)]
Password = Annotated[str, StringConstraints(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)]
TenantId = Annotated[str, StringConstraints(max_length=63, pattern=TENANT_RE.pattern.replace(r"\Z", "$"))]
Name = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")]
Token = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]
TotpCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
RecoveryCode = Annotated[str, StringConstraints(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9 -]+$")]
EnteredPassword = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PASSWORD)]
MemberRole = Literal["admin", "member", "viewer"]  # the owner is made by creating a tenant or transferring it


class _In(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, strict=True, extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class SignupIn(_In):
    email: Email
    password: Password
    tenant_id: TenantId | None = Field(None, description="the new user's own tenant (default: a generated id)")
    tenant_name: Name | None = None
    invitation: Token | None = Field(
        None,
        description="the token of an invitation to this email: the user joins that tenant (no tenant of their own)",
    )


class LoginIn(_In):
    email: Email
    password: EnteredPassword
    code: TotpCode | None = Field(None, description="the authenticator's current code, when the second factor is on")
    recovery_code: RecoveryCode | None = Field(None, description="instead of `code`: an unused recovery code")

    @model_validator(mode="after")
    def _one_factor(self) -> LoginIn:
        if self.code is not None and self.recovery_code is not None:
            raise ValueError("send code or recoveryCode, not both")
        return self


class PasswordChangeIn(_In):
    current_password: EnteredPassword
    new_password: Password


class PasswordResetIn(_In):
    email: Email


class PasswordResetConfirmIn(_In):
    token: Token = Field(description="the token of the link in the mail")
    new_password: Password


class PasswordIn(_In):
    """The password, entered again to confirm a change to how the account signs in."""

    password: EnteredPassword


class TotpConfirmIn(_In):
    code: TotpCode = Field(description="the authenticator's current code for the secret just shown")


class TenantIn(_In):
    id: TenantId
    name: Name


class MemberIn(_In):
    email: Email
    role: MemberRole


class InvitationIn(_In):
    email: Email
    role: MemberRole


class InvitationAcceptIn(_In):
    token: Token = Field(description="the token of the link in the invitation mail")


class RoleIn(_In):
    role: MemberRole


class KeyIn(_In):
    name: Name
    scopes: list[Scope] = Field(min_length=1, max_length=5)
    expires_at: Annotated[datetime | None, Field(strict=False)] = None  # ISO 8601 text in JSON
    allowed_addresses: list[Annotated[str, StringConstraints(max_length=50)]] | None = Field(None, max_length=50)

    @field_validator("allowed_addresses")
    @classmethod
    def _networks(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            Networks.parse(value)
        return value


class Accepted(_Out):
    status: Literal["accepted"] = "accepted"
    message: str


class Membership(_Out):
    tenant_id: str
    role: Role


class UserOut(_Out):
    id: str
    email: str
    platform_admin: bool
    created_at: datetime
    totp: bool = Field(description="whether sign-in asks for a second factor (a TOTP code or a recovery code)")
    tenants: list[Membership]


class SessionOut(_Out):
    """A new session: the cookie carries its token; state-changing calls made with the cookie send `csrfToken`
    back in `X-CSRF-Token`."""

    user: UserOut
    csrf_token: str
    expires_at: datetime


class TotpSetup(_Out):
    """A second factor being set up: the secret for the authenticator app, shown until it is confirmed."""

    secret: str = Field(description="base32, for typing into the app")
    uri: str = Field(description="the `otpauth://` URI, for a QR code")


class RecoveryCodes(_Out):
    recovery_codes: list[str] = Field(description="each signs in once in place of a code; shown this once")


class TotpEnabled(SessionOut):
    """The second factor is on: every other session has ended, this browser has a new one."""

    recovery_codes: list[str] = Field(description="each signs in once in place of a code; shown this once")


class TenantOut(_Out):
    id: str
    name: str
    created_at: datetime
    role: Role | None  # the caller's; null for a platform admin who is not a member


class TenantList(_Out):
    tenants: list[TenantOut]


class MemberOut(_Out):
    user_id: str
    email: str
    role: Role
    created_at: datetime


class MemberList(_Out):
    members: list[MemberOut]


class InvitationOut(_Out):
    id: str
    email: str
    role: MemberRole
    invited_by: str
    created_at: datetime
    expires_at: datetime


class InvitationList(_Out):
    invitations: list[InvitationOut] = Field(description="the pending ones: not accepted, revoked or expired")


class KeyOut(_Out):
    id: str
    name: str
    prefix: str
    scopes: list[Scope]
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    allowed_addresses: list[str] | None


class KeyCreated(KeyOut):
    secret: str = Field(description="shown this once; only a hash of it is kept")


class KeyList(_Out):
    keys: list[KeyOut]


# --- who is calling (internal) ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SessionCaller:
    """A signed-in user, found by the session cookie."""

    user_id: str
    email: str
    platform_admin: bool
    session_id: str
    csrf_token: str
    roles: dict[str, Role]  # tenant -> role


@dataclass(frozen=True, slots=True)
class KeyCaller:
    """An API key: one tenant, its scopes, and where it may be used from."""

    key_id: str
    tenant_id: str
    scopes: frozenset[Scope]
    allowed: Networks
    created_by: str


class UserSummary(_Out):
    id: str
    email: str
    platform_admin: bool
    created_at: datetime


class UserList(_Out):
    """A page of users; `nextAfter` is the `after` of the next page, null on the last one."""

    users: list[UserSummary]
    next_after: str | None


class PlatformAdminIn(_In):
    platform_admin: bool
