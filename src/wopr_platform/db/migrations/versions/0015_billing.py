"""billing: the double-entry ledger (accounts, entries with a unique reference, lines), each tenant's Stripe
customer and checkouts (by idempotency key), the Stripe webhook inbox, the intervals bots ran, the cursor of the
runtime charge, spending caps (each tenant's caps, what it spent each day, the notices at 80% and 100%), and each
tenant's plan and standing (out of credits since, suspended, the bots its suspension stopped)

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _serial() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "ledger_accounts",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("tenant_id", sa.String(63), nullable=True),
        sa.Column("balance", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_index("ix_ledger_accounts_tenant", "ledger_accounts", ["tenant_id"])
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("reference", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("memo", sa.String(500), nullable=False, server_default=""),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("subject", sa.String(36), nullable=True),
        _time("period", nullable=True),
        _time("created_at"),
    )
    op.create_index("ix_ledger_entries_tenant", "ledger_entries", ["tenant_id", "created_at", "id"])
    op.create_index("ix_ledger_entries_usage", "ledger_entries", ["tenant_id", "kind", "period"])
    op.create_table(
        "ledger_lines",
        _serial(),
        sa.Column("entry_id", sa.String(36), nullable=False),
        sa.Column("account_id", sa.String(100), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
    )
    op.create_index("ix_ledger_lines_entry", "ledger_lines", ["entry_id"])
    op.create_index("ix_ledger_lines_account", "ledger_lines", ["account_id"])
    op.create_table(
        "billing_customers",
        sa.Column("tenant_id", sa.String(63), primary_key=True),
        sa.Column("stripe_customer_id", sa.String(255), nullable=False, unique=True),
        _time("created_at"),
    )
    op.create_table(
        "billing_checkouts",
        sa.Column("tenant_id", sa.String(63), primary_key=True),
        sa.Column("idempotency_key", sa.String(100), primary_key=True),
        sa.Column("payment_intent_id", sa.String(255), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        _time("created_at"),
    )
    op.create_table(
        "stripe_events",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        _time("received_at"),
        _time("applied_at", nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("last_error", sa.String(500), nullable=True),
    )
    op.create_index("ix_stripe_events_pending", "stripe_events", ["applied_at", "received_at"])
    op.create_table(
        "bot_runs",
        _serial(),
        sa.Column("bot_id", sa.String(36), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("price_per_hour", sa.BigInteger(), nullable=False),
        _time("started_at"),
        _time("stopped_at", nullable=True),
    )
    op.create_index("ix_bot_runs_span", "bot_runs", ["started_at", "stopped_at"])
    op.create_index(
        "uq_bot_runs_open",
        "bot_runs",
        ["bot_id"],
        unique=True,
        sqlite_where=sa.text("stopped_at IS NULL"),
        postgresql_where=sa.text("stopped_at IS NULL"),
    )
    op.create_table(
        "billing_limits",
        sa.Column("tenant_id", sa.String(63), primary_key=True),
        sa.Column("daily_cap", sa.BigInteger(), nullable=True),
        sa.Column("monthly_cap", sa.BigInteger(), nullable=True),
    )
    op.create_table(
        "billing_spend",
        sa.Column("tenant_id", sa.String(63), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("amount", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_table(
        "billing_notices",
        _serial(),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("scope", sa.String(10), nullable=False),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=False),
        sa.Column("spent", sa.BigInteger(), nullable=False),
        sa.Column("cap", sa.BigInteger(), nullable=False),
        _time("created_at"),
        sa.UniqueConstraint("tenant_id", "scope", "period", "percent", name="uq_billing_notices_once"),
    )
    op.create_table(
        "billing_tenants",
        sa.Column("tenant_id", sa.String(63), primary_key=True),
        sa.Column("plan", sa.String(50), nullable=True),
        _time("empty_since", nullable=True),
        _time("suspended_at", nullable=True),
        sa.Column("stopped_bots", sa.JSON(), nullable=True),
        _time("warned_at", nullable=True),
        _time("removed_at", nullable=True),
    )
    op.create_table(
        "billing_cursors",
        sa.Column("name", sa.String(50), primary_key=True),
        _time("at"),
    )


def downgrade() -> None:
    for table in (
        "billing_cursors",
        "bot_runs",
        "stripe_events",
        "billing_checkouts",
        "billing_customers",
        "ledger_lines",
    ):
        op.drop_table(table)
    op.drop_table("ledger_entries")
    op.drop_table("ledger_accounts")
