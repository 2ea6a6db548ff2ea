"""push outbox: messages a platform has not accepted yet are kept marked until it does

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
    with op.batch_alter_table("messages") as batch:
        batch.add_column(
            sa.Column("push_pending", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_index(
        "ix_messages_push_pending",
        "messages",
        ["conversation_id", "id"],
        sqlite_where=sa.text("push_pending"),
        postgresql_where=sa.text("push_pending"),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_push_pending", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("push_pending")
