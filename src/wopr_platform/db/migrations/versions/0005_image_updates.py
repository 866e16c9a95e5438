"""image updates: each bot's deployed digest, registry checks, update history and fleet rollouts

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bots") as batch:
        batch.add_column(sa.Column("image_digest", sa.String(100), nullable=True))
        batch.add_column(sa.Column("rejected_digest", sa.String(100), nullable=True))
    op.create_table(
        "image_checks",
        sa.Column("reference", sa.String(512), primary_key=True),
        sa.Column("digest", sa.String(100), nullable=True),
        sa.Column("digest_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("error_code", sa.String(40), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
    )
    op.create_table(
        "rollouts",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("reference", sa.String(512), nullable=False, index=True),
        sa.Column("to_digest", sa.String(100), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("waves", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "image_updates",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("bot_id", sa.String(36), nullable=False, index=True),
        sa.Column("tenant_id", sa.String(63), nullable=False),
        sa.Column("rollout_id", sa.String(36), nullable=True, index=True),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("rolled_back", sa.Boolean(), nullable=False),
        sa.Column("from_image", sa.String(620), nullable=False),
        sa.Column("to_image", sa.String(620), nullable=True),
        sa.Column("from_digest", sa.String(100), nullable=True),
        sa.Column("to_digest", sa.String(100), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("image_updates")
    op.drop_table("rollouts")
    op.drop_table("image_checks")
    with op.batch_alter_table("bots") as batch:
        batch.drop_column("rejected_digest")
        batch.drop_column("image_digest")
