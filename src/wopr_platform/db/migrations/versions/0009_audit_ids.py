"""audit_events.public_id and client_request_id: event ids that say nothing about other tenants, and the caller's
own request id kept apart from the platform's

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events") as batch:
        batch.add_column(sa.Column("public_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("client_request_id", sa.String(64), nullable=True))
    random_hex = (
        "lower(hex(randomblob(16)))"
        if op.get_bind().dialect.name == "sqlite"
        else "md5(random()::text || clock_timestamp()::text || id::text)"
    )
    op.execute(f"UPDATE audit_events SET public_id = {random_hex}")  # noqa: S608 (no input in it)
    with op.batch_alter_table("audit_events") as batch:
        batch.alter_column("public_id", existing_type=sa.String(32), nullable=False)
    op.create_index("ux_audit_events_public_id", "audit_events", ["public_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ux_audit_events_public_id", table_name="audit_events")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("client_request_id")
        batch.drop_column("public_id")
