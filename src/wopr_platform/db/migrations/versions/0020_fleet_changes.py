"""fleet changes: on PostgreSQL, every change to a bot's row notifies the channel `wopr_fleet_changes` when its
transaction commits, whichever replica (or hand) made it, so each replica can keep its list of bots until one does;
the payload names the replica that made it (its connections' `wopr.replica` setting; empty when typed by hand), so
a replica can pass over its own

Revision ID: 0020
Revises: 0019
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

CHANNEL = "wopr_fleet_changes"  # db/broadcast.py's FLEET_CHANNEL listens on it


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has one platform process: its own commits are all there are
    # a row trigger, not a statement one: an UPDATE that matched no row changes nothing and says nothing; the
    # notifications of one transaction are folded into one by PostgreSQL (same channel, same payload)
    op.execute(
        f"""
        CREATE FUNCTION wopr_bots_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', coalesce(current_setting('wopr.replica', true), ''));
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER bots_changed AFTER INSERT OR UPDATE OR DELETE ON bots "
        "FOR EACH ROW EXECUTE FUNCTION wopr_bots_changed()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER IF EXISTS bots_changed ON bots")
    op.execute("DROP FUNCTION IF EXISTS wopr_bots_changed()")
