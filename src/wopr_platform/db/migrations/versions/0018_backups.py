"""backups: the sealed archives of bots' data volumes, their schedules and retention, and which generation of its
volume a bot uses (a restore or an image update moves a bot onto a fresh volume; the old one is left untouched)

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bots") as table:
        table.add_column(sa.Column("volume_generation", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "backups",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("bot_id", sa.String(36), nullable=False),
        sa.Column("bot_name", sa.String(63), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("store_key", sa.String(300), nullable=False),
        sa.Column("image", sa.String(512), nullable=False),
        sa.Column("archive_bytes", sa.BigInteger(), nullable=False),
        sa.Column("tar_bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("pause_ms", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_backups_tenant", "backups", ["tenant_id", "created_at"])
    op.create_index("ix_backups_bot", "backups", ["bot_id", "created_at"])
    op.create_table(
        "backup_policies",
        sa.Column("scope", sa.String(100), primary_key=True),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("bot_id", sa.String(36), nullable=True),
        sa.Column("schedule", sa.String(200), nullable=True),
        sa.Column("keep_last", sa.Integer(), nullable=True),
        sa.Column("max_age_days", sa.Integer(), nullable=True),
        sa.Column("quota_bytes", sa.BigInteger(), nullable=True),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_backup_policies_tenant", "backup_policies", ["tenant_id"])


def downgrade() -> None:
    op.drop_index("ix_backup_policies_tenant", "backup_policies")
    op.drop_table("backup_policies")
    op.drop_index("ix_backups_bot", "backups")
    op.drop_index("ix_backups_tenant", "backups")
    op.drop_table("backups")
    with op.batch_alter_table("bots") as table:
        table.drop_column("volume_generation")
