"""gateway leases: credits a replica holds for its calls to reserve from in memory, and which lease each ended
call's cost is held in until its charge is posted

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_leases",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_gateway_leases_renewed", "gateway_leases", ["renewed_at"])
    with op.batch_alter_table("gateway_calls") as table:
        table.add_column(sa.Column("lease_id", sa.String(36), nullable=True))
        table.add_column(sa.Column("charged", sa.Boolean(), nullable=False, server_default=sa.true()))
    op.create_index("ix_gateway_calls_lease", "gateway_calls", ["lease_id", "charged"])


def downgrade() -> None:
    op.drop_index("ix_gateway_calls_lease", "gateway_calls")
    with op.batch_alter_table("gateway_calls") as table:
        table.drop_column("charged")
        table.drop_column("lease_id")
    op.drop_index("ix_gateway_leases_renewed", "gateway_leases")
    op.drop_table("gateway_leases")
