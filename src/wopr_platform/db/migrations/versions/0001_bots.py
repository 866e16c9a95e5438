"""bots: profiles and desired state

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bots",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(63), nullable=False, index=True),
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("image", sa.String(512), nullable=False),
        sa.Column("env", sa.JSON(), nullable=False),
        sa.Column("restart_policy", sa.String(20), nullable=False),
        sa.Column("volume_name", sa.String(63), nullable=False),
        sa.Column("release_channel", sa.String(20), nullable=False),
        sa.Column("update_policy", sa.String(200), nullable=False),
        sa.Column("desired_state", sa.String(20), nullable=False),
        sa.Column("container_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("tenant_id", "name", name="uq_bots_tenant_name"),
        sa.UniqueConstraint("tenant_id", "volume_name", name="uq_bots_tenant_volume"),
    )


def downgrade() -> None:
    op.drop_table("bots")
