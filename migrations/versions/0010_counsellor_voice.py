"""counsellor voice: the Thai particle a counsellor speaks with (ค่ะ or ครับ); the name the child
sees is `display_name`, which they may now change themselves

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("counsellors") as batch:
        batch.add_column(
            sa.Column("particle", sa.String(8), nullable=False, server_default="ค่ะ")
        )


def downgrade() -> None:
    with op.batch_alter_table("counsellors") as batch:
        batch.drop_column("particle")
