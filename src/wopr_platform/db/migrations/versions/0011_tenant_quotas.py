"""tenant_quotas: each tenant's quota overrides and the usage of its bots (bots, memory, milli-CPUs)

The usage of tenants that already have bots is not computed here: it is the sum of their bots' effective limits,
which depend on the FLEET_DEFAULT_* settings the migration does not see. Every start of the platform recounts it
from the bots table (`fleet.quotas`), before the first request.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenant_quotas",
        sa.Column("tenant_id", sa.String(63), primary_key=True),
        sa.Column("max_bots", sa.Integer(), nullable=True),
        sa.Column("max_memory_mb", sa.BigInteger(), nullable=True),
        sa.Column("max_mcpus", sa.BigInteger(), nullable=True),
        sa.Column("bots", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("memory_mb", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("mcpus", sa.BigInteger(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("tenant_quotas")
