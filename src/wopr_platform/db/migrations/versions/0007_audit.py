"""audit_events: one row per mutating API call (who, tenant, action, target, outcome, request id, address, when)

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(220), nullable=False),
        sa.Column("target_kind", sa.String(20), nullable=True),
        sa.Column("target_id", sa.String(200), nullable=True),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("error_code", sa.String(60), nullable=True),
        sa.Column("fields", sa.JSON(), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("client_address", sa.String(64), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
    )
    op.create_index("ix_audit_events_tenant", "audit_events", ["tenant_id", "id"])
    op.create_index("ix_audit_events_tenant_target", "audit_events", ["tenant_id", "target_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_tenant_target", table_name="audit_events")
    op.drop_index("ix_audit_events_tenant", table_name="audit_events")
    op.drop_table("audit_events")
