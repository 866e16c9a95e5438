"""Tables: what every bot should be (its profile and desired state)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


def _id_as_subdomain(context: Any) -> str:
    """A bot stored without a subdomain gets its id: always a valid DNS label, and unique."""
    return str(context.get_current_parameters()["id"])


class Bot(Base):
    """A bot's profile and desired state; the container is derived from it."""

    __tablename__ = "bots"
    __table_args__ = (
        UniqueConstraint("tenant_id", "name", name="uq_bots_tenant_name"),
        UniqueConstraint("tenant_id", "volume_name", name="uq_bots_tenant_volume"),
        UniqueConstraint("subdomain", name="uq_bots_subdomain"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63), index=True)
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(Text, default="")
    image: Mapped[str] = mapped_column(String(512))
    env: Mapped[dict[str, Any]] = mapped_column(default=dict)
    restart_policy: Mapped[str] = mapped_column(String(20))
    volume_name: Mapped[str] = mapped_column(String(63))
    release_channel: Mapped[str] = mapped_column(String(20))
    update_policy: Mapped[str] = mapped_column(String(200))
    health_check: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    desired_state: Mapped[str] = mapped_column(String(20))
    container_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # the profile template the bot was created from, and which env keys hold resolved `${VAR}` values (redacted)
    template_name: Mapped[str | None] = mapped_column(String(63), default=None)
    template_version: Mapped[int | None] = mapped_column(Integer, default=None)
    secret_env_keys: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    # the registry digest the container runs (pinned as `<name>@<digest>`; None: run by tag, e.g. a local image),
    # and a digest whose update failed its health gate on this bot (never applied again automatically)
    image_digest: Mapped[str | None] = mapped_column(String(100), default=None)
    rejected_digest: Mapped[str | None] = mapped_column(String(100), default=None)
    # the bot's public host label (`<subdomain>.<PROXY_DOMAIN>`): unique across every tenant; its id when not given
    subdomain: Mapped[str] = mapped_column(String(63), default=_id_as_subdomain)
    # the bot's own resource limits (`memoryMb`, `cpus`, `pids`; see fleet/resources.py); None: the defaults
    resources: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # which of the bot's AI gateway keys is current: its key is derived from the bot's id and this number, so
    # rotating it is adding one (see gateway/keys.py); the key itself is stored nowhere
    gateway_key_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # which volume of its `volume_name` the bot uses: a restore or an image update fills a fresh one and moves the
    # bot onto it, leaving the one it used untouched until the move is committed (see core/naming.volume_name)
    volume_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class TenantQuota(Base):
    """One tenant's quota overrides (None: the platform's `FLEET_TENANT_MAX_*`) and what its bots use now.

    The usage columns are the sums of the effective limits of the tenant's bots, changed in the same transaction
    that adds, changes or removes a bot (see `fleet.quotas`); CPUs are kept in milli-CPUs so every amount is an
    integer.
    """

    __tablename__ = "tenant_quotas"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    max_bots: Mapped[int | None] = mapped_column(Integer, default=None)
    max_memory_mb: Mapped[int | None] = mapped_column(BigInteger, default=None)
    max_mcpus: Mapped[int | None] = mapped_column(BigInteger, default=None)
    bots: Mapped[int] = mapped_column(Integer, default=0)
    memory_mb: Mapped[int] = mapped_column(BigInteger, default=0)
    mcpus: Mapped[int] = mapped_column(BigInteger, default=0)


class Operation(Base):
    """A multi-step change in flight (see `fleet.journal`)."""

    __tablename__ = "operations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    bot_id: Mapped[str] = mapped_column(String(36), index=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(20))
    stage: Mapped[str] = mapped_column(String(20))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class TemplateSeed(Base):
    """That `POST /fleet/seed` created a bot from a template for a tenant (kept after the bot is deleted).

    `state` is `creating` from the transaction that stores the bot until its container runs, then `created`.
    """

    __tablename__ = "template_seeds"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    template_name: Mapped[str] = mapped_column(String(63), primary_key=True)
    template_version: Mapped[int] = mapped_column(Integer)
    bot_id: Mapped[str] = mapped_column(String(36), index=True)
    state: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ImageCheck(Base):
    """The last registry check of one image reference, shared by every bot that uses it."""

    __tablename__ = "image_checks"

    reference: Mapped[str] = mapped_column(String(512), primary_key=True)
    digest: Mapped[str | None] = mapped_column(String(100), default=None)
    digest_seen_at: Mapped[datetime | None] = mapped_column(default=None)
    checked_at: Mapped[datetime | None] = mapped_column(default=None)
    next_check_at: Mapped[datetime | None] = mapped_column(default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    error_code: Mapped[str | None] = mapped_column(String(40), default=None)
    failures: Mapped[int] = mapped_column(Integer, default=0)


class Rollout(Base):
    """Moving the bots of one image reference to a new digest, wave by wave."""

    __tablename__ = "rollouts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    reference: Mapped[str] = mapped_column(String(512), index=True)
    to_digest: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(20))
    trigger: Mapped[str] = mapped_column(String(20))
    waves: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class ImageUpdate(Base):
    """One attempt to move a bot to another image digest, and how it ended."""

    __tablename__ = "image_updates"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    bot_id: Mapped[str] = mapped_column(String(36), index=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    rollout_id: Mapped[str | None] = mapped_column(String(36), index=True, default=None)
    trigger: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))
    rolled_back: Mapped[bool] = mapped_column(Boolean, default=False)
    from_image: Mapped[str] = mapped_column(String(620))
    to_image: Mapped[str | None] = mapped_column(String(620), default=None)
    from_digest: Mapped[str | None] = mapped_column(String(100), default=None)
    to_digest: Mapped[str | None] = mapped_column(String(100), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class AuditEvent(Base):
    """One mutating API call: who, for which tenant, what on what, and how it ended (never a request body)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_tenant", "tenant_id", "id"),
        Index("ix_audit_events_tenant_target", "tenant_id", "target_id", "id"),
        Index("ux_audit_events_public_id", "public_id", unique=True),
    )

    # increasing in the order events were written: the newest-first order and the `before` cursor of GET /audit
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    # the id the API shows: random, so a tenant cannot count the other tenants' events between two of its own
    public_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime]
    tenant_id: Mapped[str] = mapped_column(String(63))
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(220))
    target_kind: Mapped[str | None] = mapped_column(String(20), default=None)
    target_id: Mapped[str | None] = mapped_column(String(200), default=None)
    status: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(60), default=None)
    fields: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    request_id: Mapped[str] = mapped_column(String(64))
    client_request_id: Mapped[str | None] = mapped_column(String(64), default=None)
    client_address: Mapped[str | None] = mapped_column(String(64), default=None)
    duration_ms: Mapped[int] = mapped_column(Integer)


class User(Base):
    """Someone who signs in: an email (lower-cased, unique) and an argon2 hash of their password."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    platform_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # sessions made before it are no longer valid (password change, "sign out everywhere")
    sessions_valid_after: Mapped[datetime] = mapped_column(UTCDateTime())
    # the TOTP secret, sealed: pending while `totp_enabled_at` is null, the second factor once it is set
    totp_secret: Mapped[str | None] = mapped_column(String(200), default=None)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, default=None)  # a code is accepted once


class Session(Base):
    """A signed-in browser: the cookie holds a random token, only its SHA-256 is stored."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_user", "user_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(String(36))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())  # absolute expiry
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class Tenant(Base):
    """A customer: its id is the one bots, networks and volumes carry."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Membership(Base):
    """A user's role in a tenant: owner (one per tenant), admin, member or viewer."""

    __tablename__ = "memberships"
    __table_args__ = (Index("ix_memberships_user", "user_id"),)

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    role: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ApiKey(Base):
    """A key for one tenant with scopes; the secret is shown once, only its SHA-256 is stored."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_tenant", "tenant_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    created_by: Mapped[str] = mapped_column(String(36))  # a user id
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(20))  # shown in lists: "wopr_3f9a1c2e"
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)
    allowed_addresses: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class PasswordReset(Base):
    """A single-use token that sets a new password, mailed to the account's address; only its SHA-256 is stored."""

    __tablename__ = "password_resets"
    __table_args__ = (Index("ix_password_resets_user", "user_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)  # or made void by a later use


class Invitation(Base):
    """A tenant's invitation by email with a role: single-use and expiring; only the SHA-256 of its token is stored."""

    __tablename__ = "invitations"
    __table_args__ = (Index("ix_invitations_tenant", "tenant_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    email: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(20))
    invited_by: Mapped[str] = mapped_column(String(100))  # who the audit log names: "user:<id>", "operator", ...
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    accepted_by: Mapped[str | None] = mapped_column(String(36), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class RecoveryCode(Base):
    """A single-use code that stands in for a TOTP code at sign-in; only its SHA-256 is stored."""

    __tablename__ = "recovery_codes"
    __table_args__ = (UniqueConstraint("user_id", "code_hash", name="uq_recovery_codes_user_code"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(36))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


# --- billing: a double-entry ledger in integer micro-dollars (1 USD = 1,000,000) ----------------------------


class LedgerAccount(Base):
    """One account of the ledger: a tenant's credits, or one of the platform's own (revenue, Stripe, grants...).
    `balance` is kept in the transaction that adds its lines, and always equals their sum."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (Index("ix_ledger_accounts_tenant", "tenant_id"),)

    id: Mapped[str] = mapped_column(String(100), primary_key=True)  # "tenant:<id>:credits", "platform:revenue"
    tenant_id: Mapped[str | None] = mapped_column(String(63), default=None)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    # what calls in flight have reserved of a tenant's credits (the AI gateway): a reservation is taken only while
    # balance - held covers it, and given back when the call's real charge is posted
    held: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")


class LedgerEntry(Base):
    """One movement of money: its lines sum to zero; `reference` is unique, so posting it twice does nothing."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("ix_ledger_entries_tenant", "tenant_id", "created_at", "id"),
        Index("ix_ledger_entries_usage", "tenant_id", "kind", "period"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    reference: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # purchase, refund, dispute, runtime, grant, correction
    tenant_id: Mapped[str] = mapped_column(String(63))
    amount: Mapped[int] = mapped_column(BigInteger)  # what it did to the tenant's credits (negative: spent)
    memo: Mapped[str] = mapped_column(String(500), default="")
    actor: Mapped[str] = mapped_column(String(100))  # "stripe", "runtime", "user:<id>", "operator"
    subject: Mapped[str | None] = mapped_column(String(36), default=None)  # the bot a charge is for
    period: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)  # the hour a charge is for
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerLine(Base):
    """One side of an entry: an amount added to one account."""

    __tablename__ = "ledger_lines"
    __table_args__ = (Index("ix_ledger_lines_entry", "entry_id"), Index("ix_ledger_lines_account", "account_id"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    entry_id: Mapped[str] = mapped_column(String(36))
    account_id: Mapped[str] = mapped_column(String(100))
    amount: Mapped[int] = mapped_column(BigInteger)


class BillingCustomer(Base):
    """The Stripe customer that pays for a tenant."""

    __tablename__ = "billing_customers"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    stripe_customer_id: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BillingCheckout(Base):
    """A payment intent made for a tenant's checkout, by the idempotency key of the request that made it."""

    __tablename__ = "billing_checkouts"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    payment_intent_id: Mapped[str] = mapped_column(String(255))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BillingCheckoutSession(Base):
    """A Stripe-hosted payment page opened for a tenant, by the idempotency key of the request that opened it."""

    __tablename__ = "billing_checkout_sessions"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(255))
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StripeEvent(Base):
    """The webhook inbox: each Stripe event once, kept until it is applied (and after, as the record)."""

    __tablename__ = "stripe_events"
    __table_args__ = (Index("ix_stripe_events_pending", "applied_at", "received_at"),)

    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # Stripe's event id
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    applied_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(500), default=None)


class BotRun(Base):
    """An interval a bot's container ran, at the hourly price it had then; at most one open (no `stopped_at`)."""

    __tablename__ = "bot_runs"
    __table_args__ = (
        Index("ix_bot_runs_span", "started_at", "stopped_at"),
        Index(
            "uq_bot_runs_open",
            "bot_id",
            unique=True,
            sqlite_where=text("stopped_at IS NULL"),
            postgresql_where=text("stopped_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    bot_id: Mapped[str] = mapped_column(String(36))
    tenant_id: Mapped[str] = mapped_column(String(63))
    price_per_hour: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class BillingCursor(Base):
    """How far a periodic billing job has gone (the runtime charge: the end of the last hour charged)."""

    __tablename__ = "billing_cursors"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class BillingLimits(Base):
    """A tenant's own spending caps (micro-dollars; null: none)."""

    __tablename__ = "billing_limits"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    daily_cap: Mapped[int | None] = mapped_column(BigInteger, default=None)
    monthly_cap: Mapped[int | None] = mapped_column(BigInteger, default=None)


class BillingSpend(Base):
    """What a tenant's charges came to on one UTC day, kept as they are posted (caps read it, not the entries)."""

    __tablename__ = "billing_spend"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)  # YYYY-MM-DD
    amount: Mapped[int] = mapped_column(BigInteger, default=0)


class BillingNotice(Base):
    """A tenant's spending reached 80% or 100% of a cap in a day or month: recorded once per cap and period."""

    __tablename__ = "billing_notices"
    __table_args__ = (UniqueConstraint("tenant_id", "scope", "period", "percent", name="uq_billing_notices_once"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    scope: Mapped[str] = mapped_column(String(10))  # daily, monthly
    period: Mapped[str] = mapped_column(String(10))  # YYYY-MM-DD or YYYY-MM
    percent: Mapped[int] = mapped_column(Integer)  # 80, 100
    spent: Mapped[int] = mapped_column(BigInteger)
    cap: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BillingTenant(Base):
    """A tenant's plan, and its standing: out of credits since when, suspended since when (and which of its bots
    that stopped), warned of the removal of its bots, and when they were removed."""

    __tablename__ = "billing_tenants"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    plan: Mapped[str | None] = mapped_column(String(50), default=None)  # None: BILLING_DEFAULT_PLAN
    empty_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    suspended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    stopped_bots: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class GatewayProvider(Base):
    """An upstream AI provider the gateway calls: its wire format (`openai`: any OpenAI-compatible API such as
    OpenRouter; `anthropic`), base URL and the platform's key for it (sealed)."""

    __tablename__ = "gateway_providers"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    base_url: Mapped[str] = mapped_column(String(300))
    api_key: Mapped[str] = mapped_column(Text)  # sealed
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class GatewayModel(Base):
    """A model the gateway offers: which provider serves it (under which name there) and its price per million
    input and output tokens, in micro-dollars, before the platform's margin."""

    __tablename__ = "gateway_models"

    model: Mapped[str] = mapped_column(String(120), primary_key=True)
    provider: Mapped[str] = mapped_column(String(40), index=True)
    upstream_model: Mapped[str] = mapped_column(String(120))
    input_price: Mapped[int] = mapped_column(BigInteger)
    output_price: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class GatewayKey(Base):
    """A gateway key a tenant made for its own use: only a hash of its secret is kept."""

    __tablename__ = "gateway_keys"
    __table_args__ = (Index("ix_gateway_keys_tenant", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class GatewayTenantKey(Base):
    """A tenant's own key for a provider (sealed): its calls to that provider's models use it and cost nothing."""

    __tablename__ = "gateway_tenant_keys"

    tenant_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    provider: Mapped[str] = mapped_column(String(40), primary_key=True)
    api_key: Mapped[str] = mapped_column(Text)  # sealed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class GatewayBotLimit(Base):
    """A bot's own daily cap on what its gateway calls may cost (micro-dollars), set by its tenant."""

    __tablename__ = "gateway_bot_limits"

    bot_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    daily_cap: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class GatewayBotSpend(Base):
    """What a capped bot's calls cost on a UTC day (`spent`) and what its calls in flight have reserved (`held`):
    a call is admitted only while spent + held + its estimate stay within the cap, in one guarded UPDATE."""

    __tablename__ = "gateway_bot_spend"

    bot_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    spent: Mapped[int] = mapped_column(BigInteger, default=0)
    held: Mapped[int] = mapped_column(BigInteger, default=0)


class GatewayLease(Base):
    """Credits a replica holds on a tenant's account for its calls to reserve from in memory (`gateway.leases`):
    `amount` is part of the account's `held`, and goes back to it when the lease is given up, when the calls'
    charges are posted, or (the replica having stopped renewing it) when the leader sweeps it."""

    __tablename__ = "gateway_leases"
    __table_args__ = (Index("ix_gateway_leases_renewed", "renewed_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    amount: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    renewed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class GatewayCall(Base):
    """One call through the gateway, written (durably) when it ends, with the provider's own count of tokens and
    what it cost; a call of a capped bot is written when it begins too (its hold on the bot's cap). `charged`:
    its charge is posted to the ledger (or it has none); until then its cost is held in `lease_id`. The usage
    views read these rows."""

    __tablename__ = "gateway_calls"
    __table_args__ = (
        Index("ix_gateway_calls_tenant", "tenant_id", "day"),
        Index("ix_gateway_calls_bot", "bot_id", "day"),
        Index("ix_gateway_calls_open", "status", "created_at"),
        Index("ix_gateway_calls_lease", "lease_id", "charged"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    bot_id: Mapped[str | None] = mapped_column(String(36), default=None)
    key_id: Mapped[str] = mapped_column(String(36))
    endpoint: Mapped[str] = mapped_column(String(30))  # chat, messages, embeddings
    model: Mapped[str] = mapped_column(String(120))
    provider: Mapped[str] = mapped_column(String(40))
    own_key: Mapped[bool] = mapped_column(Boolean, default=False)
    reserved: Mapped[int] = mapped_column(BigInteger, default=0)  # held on the tenant's credits
    bot_held: Mapped[int] = mapped_column(BigInteger, default=0)  # held against the bot's daily cap
    status: Mapped[str] = mapped_column(String(20))  # reserved, done, failed, interrupted
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cost: Mapped[int] = mapped_column(BigInteger, default=0)
    day: Mapped[str] = mapped_column(String(10))  # the UTC day it was made (YYYY-MM-DD), for the usage views
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    lease_id: Mapped[str | None] = mapped_column(String(36), default=None)
    charged: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))


class Backup(Base):
    """A sealed archive of one bot's data volume in the backup store (`backups/`). `state`: `creating` while it is
    written (a row left so by a crash is swept with its object), `ready`, or `failed` (with `error`). `kind`:
    manual, scheduled, pre-update (taken by an image update before it runs) or upload."""

    __tablename__ = "backups"
    __table_args__ = (
        Index("ix_backups_tenant", "tenant_id", "created_at"),
        Index("ix_backups_bot", "bot_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    bot_id: Mapped[str] = mapped_column(String(36))
    bot_name: Mapped[str] = mapped_column(String(63))
    kind: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    store_key: Mapped[str] = mapped_column(String(300))
    image: Mapped[str] = mapped_column(String(512))
    archive_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    tar_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    pause_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class BackupPolicy(Base):
    """When a tenant's bots (or one bot) are backed up and how long backups are kept. `scope` is `tenant:<id>` or
    `bot:<id>`; a bot's own policy overrides its tenant's field by field. `quota_bytes` is the tenant's (tenant
    scope only)."""

    __tablename__ = "backup_policies"
    __table_args__ = (Index("ix_backup_policies_tenant", "tenant_id"),)

    scope: Mapped[str] = mapped_column(String(100), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(63))
    bot_id: Mapped[str | None] = mapped_column(String(36), default=None)
    schedule: Mapped[str | None] = mapped_column(String(200), default=None)
    keep_last: Mapped[int | None] = mapped_column(Integer, default=None)
    max_age_days: Mapped[int | None] = mapped_column(Integer, default=None)
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, default=None)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
