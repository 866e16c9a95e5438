"""bots.subdomain: each bot's public host label, unique across every tenant

Existing bots get their name as subdomain (lowercased, '_' as '-') when that is a valid, unreserved and still free
DNS label, else their id (always a valid label, and unique). The rules are copied here as they were when this
revision was written, so the migration does not change when the application's rules do.

Revision ID: 0006
Revises: 0005
"""

import re

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\Z")
_RESERVED = frozenset(
    {
        "admin",
        "api",
        "app",
        "assets",
        "auth",
        "billing",
        "caddy",
        "cdn",
        "console",
        "dashboard",
        "dns",
        "docs",
        "ftp",
        "help",
        "imap",
        "instance",
        "internal",
        "localhost",
        "login",
        "mail",
        "mx",
        "ns",
        "ns1",
        "ns2",
        "oauth",
        "platform",
        "pop",
        "pop3",
        "proxy",
        "root",
        "smtp",
        "sso",
        "static",
        "status",
        "webmail",
        "wopr",
        "www",
    }
)


def _from_name(name: str) -> str | None:
    candidate = name.strip().lower().replace("_", "-")
    if not _LABEL.match(candidate) or candidate[2:4] == "--" or candidate in _RESERVED:
        return None
    return candidate


def upgrade() -> None:
    with op.batch_alter_table("bots") as batch:
        batch.add_column(sa.Column("subdomain", sa.String(63), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(sa.text("SELECT id, name FROM bots ORDER BY created_at, id")).fetchall()
    taken = {str(row[0]) for row in rows}
    for bot_id, name in rows:
        candidate = _from_name(str(name))
        subdomain = candidate if candidate is not None and candidate not in taken else str(bot_id)
        taken.add(subdomain)
        bind.execute(
            sa.text("UPDATE bots SET subdomain = :subdomain WHERE id = :id"), {"subdomain": subdomain, "id": bot_id}
        )
    with op.batch_alter_table("bots") as batch:
        batch.alter_column("subdomain", existing_type=sa.String(63), nullable=False)
        batch.create_unique_constraint("uq_bots_subdomain", ["subdomain"])


def downgrade() -> None:
    with op.batch_alter_table("bots") as batch:
        batch.drop_constraint("uq_bots_subdomain", type_="unique")
        batch.drop_column("subdomain")
