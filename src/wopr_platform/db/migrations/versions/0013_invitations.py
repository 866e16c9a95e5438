"""invitations: a tenant's single-use, expiring invitations by email with a role, stored as their SHA-256

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _time(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "invitations",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("invited_by", sa.String(100), nullable=False),
        _time("created_at"),
        _time("expires_at"),
        _time("accepted_at", nullable=True),
        sa.Column("accepted_by", sa.String(36), nullable=True),
        _time("revoked_at", nullable=True),
    )
    op.create_index("ix_invitations_tenant", "invitations", ["tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_invitations_tenant", table_name="invitations")
    op.drop_table("invitations")
