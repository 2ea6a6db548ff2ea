"""inbound: every accepted event is kept until it is answered (replaces delivered_events)

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
        "inbound",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("user_key", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text()),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("claim", sa.String(32)),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("answer", sa.Text()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("channel", "event_id", name="uq_inbound_event"),
    )
    op.create_index("ix_inbound_user_key", "inbound", ["user_key"])
    op.create_index(
        "ix_inbound_unfinished",
        "inbound",
        ["user_key", "id"],
        sqlite_where=sa.text("finished_at IS NULL"),
        postgresql_where=sa.text("finished_at IS NULL"),
    )
    # Ids of events already answered: every one of them was finished before this upgrade.
    op.execute(
        "INSERT INTO inbound (channel, event_id, user_key, attempts, created_at, finished_at)"
        " SELECT channel, event_id, '', 1, created_at, created_at FROM delivered_events"
    )
    op.drop_table("delivered_events")


def downgrade() -> None:
    op.create_table(
        "delivered_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("channel", "event_id", name="uq_delivered_events"),
    )
    op.execute(
        "INSERT INTO delivered_events (channel, event_id, created_at)"
        " SELECT channel, event_id, created_at FROM inbound"
    )
    op.drop_index("ix_inbound_unfinished", table_name="inbound")
    op.drop_index("ix_inbound_user_key", table_name="inbound")
    op.drop_table("inbound")
