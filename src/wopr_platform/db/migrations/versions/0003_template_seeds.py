"""bots.template_name/template_version/secret_env_keys, template_seeds: bots made from profile templates

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bots") as batch:
        batch.add_column(sa.Column("template_name", sa.String(63), nullable=True))
        batch.add_column(sa.Column("template_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("secret_env_keys", sa.JSON(), nullable=True))
    op.create_table(
        "template_seeds",
        sa.Column("tenant_id", sa.String(63), primary_key=True),
        sa.Column("template_name", sa.String(63), primary_key=True),
        sa.Column("template_version", sa.Integer(), nullable=False),
        sa.Column("bot_id", sa.String(36), nullable=False, index=True),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("template_seeds")
    with op.batch_alter_table("bots") as batch:
        batch.drop_column("secret_env_keys")
        batch.drop_column("template_version")
        batch.drop_column("template_name")
