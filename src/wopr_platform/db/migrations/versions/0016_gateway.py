"""gateway: the providers the AI gateway calls and the models it offers (with prices), the keys tenants made,
tenants' own provider keys, one row per call (its reservation, tokens and cost), the reservations held on each
tenant's credits, and each bot's gateway key epoch

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.add_column("bots", sa.Column("gateway_key_epoch", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("ledger_accounts", sa.Column("held", sa.BigInteger(), nullable=False, server_default="0"))
    op.create_table(
        "gateway_providers",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("base_url", sa.String(300), nullable=False),
        sa.Column("api_key", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False, server_default=sa.true()),
        _time("created_at"),
        _time("updated_at"),
    )
    op.create_table(
        "gateway_models",
        sa.Column("model", sa.String(120), primary_key=True),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("upstream_model", sa.String(120), nullable=False),
        sa.Column("input_price", sa.BigInteger(), nullable=False),
        sa.Column("output_price", sa.BigInteger(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
    )
    op.create_index("ix_gateway_models_provider", "gateway_models", ["provider"])
    op.create_table(
        "gateway_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        _time("created_at"),
        _time("revoked_at", nullable=True),
    )
    op.create_index("ix_gateway_keys_tenant", "gateway_keys", ["tenant_id", "created_at"])
    op.create_table(
        "gateway_tenant_keys",
        sa.Column("tenant_id", sa.String(63), primary_key=True),
        sa.Column("provider", sa.String(40), primary_key=True),
        sa.Column("api_key", sa.Text(), nullable=False),
        _time("created_at"),
    )
    op.create_table(
        "gateway_calls",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("bot_id", sa.String(36), nullable=True),
        sa.Column("key_id", sa.String(36), nullable=False),
        sa.Column("endpoint", sa.String(30), nullable=False),
        sa.Column("model", sa.String(120), nullable=False),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("own_key", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("reserved", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("bot_held", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("cost", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("day", sa.String(10), nullable=False),
        _time("created_at"),
        _time("finished_at", nullable=True),
    )
    op.create_index("ix_gateway_calls_tenant", "gateway_calls", ["tenant_id", "day"])
    op.create_index("ix_gateway_calls_bot", "gateway_calls", ["bot_id", "day"])
    op.create_index("ix_gateway_calls_open", "gateway_calls", ["status", "created_at"])
    op.create_table(
        "gateway_bot_limits",
        sa.Column("bot_id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("daily_cap", sa.BigInteger(), nullable=False),
        _time("updated_at"),
    )
    op.create_table(
        "gateway_bot_spend",
        sa.Column("bot_id", sa.String(36), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("spent", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("held", sa.BigInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    gateway = ("gateway_bot_spend", "gateway_bot_limits", "gateway_calls", "gateway_tenant_keys", "gateway_keys")
    for table in (*gateway, "gateway_models", "gateway_providers"):
        op.drop_table(table)
    with op.batch_alter_table("ledger_accounts") as batch:
        batch.drop_column("held")
    with op.batch_alter_table("bots") as batch:
        batch.drop_column("gateway_key_epoch")
