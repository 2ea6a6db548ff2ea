"""telegram message ids: what /clear may delete in a private chat (ids only, never text)

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
    op.create_table(
        "telegram_message_ids",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_key", sa.String(64), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_telegram_message_ids_user_key", "telegram_message_ids", ["user_key"])


def downgrade() -> None:
    op.drop_index("ix_telegram_message_ids_user_key", table_name="telegram_message_ids")
    op.drop_table("telegram_message_ids")
