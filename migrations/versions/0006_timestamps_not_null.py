"""timestamps NOT NULL, as the models always said: a row without its time would never be purged

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = {
    "conversations": ("created_at", "updated_at"),
    "messages": ("created_at",),
    "delivered_events": ("created_at",),
    "counsellors": ("created_at",),
    "cases": ("created_at",),
    "case_transitions": ("at",),
    "case_notes": ("created_at",),
    "audit_log": ("at",),
}


def _nullable(nullable: bool) -> None:
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(
                    column, existing_type=sa.DateTime(timezone=True), nullable=nullable
                )


def upgrade() -> None:
    # A row stored without a time (none is, through the models) counts from now.
    for table, columns in COLUMNS.items():
        for column in columns:
            op.execute(f"UPDATE {table} SET {column} = CURRENT_TIMESTAMP WHERE {column} IS NULL")
    _nullable(False)


def downgrade() -> None:
    _nullable(True)
