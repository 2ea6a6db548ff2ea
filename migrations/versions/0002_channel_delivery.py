"""channel delivery: encrypted push address, unreachable flag, delivered events, push counts

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("address", sa.Text()))
        batch.add_column(
            sa.Column("unreachable", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "delivered_events",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("channel", "event_id", name="uq_delivered_events"),
    )
    op.create_table(
        "push_counts",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False, server_default="0"),
        sa.UniqueConstraint("channel", "month", name="uq_push_counts"),
    )


def downgrade() -> None:
    op.drop_table("push_counts")
    op.drop_table("delivered_events")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("unreachable")
        batch.drop_column("address")
