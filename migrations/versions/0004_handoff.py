"""handoff: counsellors, cases with their transitions and notes, console sessions, audit log

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

NOW = sa.text("CURRENT_TIMESTAMP")


def _when(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("buttons", sa.Text(), nullable=True))
    op.create_table(
        "counsellors",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", sa.String(64), nullable=False, unique=True),
        sa.Column("display_name", sa.String(128), nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False, server_default="counsellor"),
        sa.Column("failed_logins", sa.Integer(), nullable=False, server_default="0"),
        _when("locked_until"),
        _when("last_seen_at"),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW),
    )
    op.create_table(
        "cases",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "conversation_id",
            sa.Integer(),
            sa.ForeignKey("conversations.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("urgent", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("summary", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("child_note", sa.Text()),
        sa.Column("counsellor_id", sa.Integer(), sa.ForeignKey("counsellors.id")),
        sa.Column("last_position", sa.Integer()),
        sa.Column("returned", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("wrapup", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW),
        _when("queued_at"),
        _when("assigned_at"),
        _when("child_waiting_since"),
        _when("reminded_at"),
        _when("closed_at"),
    )
    op.create_index("ix_cases_conversation_id", "cases", ["conversation_id"])
    op.create_index("ix_cases_state", "cases", ["state"])
    # At most one open case per conversation, whatever races: the database says so.
    op.create_index(
        "uq_cases_one_open",
        "cases",
        ["conversation_id"],
        unique=True,
        sqlite_where=sa.text("state != 'closed'"),
        postgresql_where=sa.text("state != 'closed'"),
    )
    op.create_table(
        "case_transitions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "case_id", sa.Integer(), sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("from_state", sa.String(16), nullable=False),
        sa.Column("to_state", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("at", sa.DateTime(timezone=True), server_default=NOW),
    )
    op.create_index("ix_case_transitions_case_id", "case_transitions", ["case_id"])
    op.create_table(
        "case_notes",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "case_id", sa.Integer(), sa.ForeignKey("cases.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column(
            "counsellor_id", sa.Integer(), sa.ForeignKey("counsellors.id"), nullable=False
        ),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW),
    )
    op.create_index("ix_case_notes_case_id", "case_notes", ["case_id"])
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column(
            "counsellor_id",
            sa.Integer(),
            sa.ForeignKey("counsellors.id", ondelete="CASCADE"),
            nullable=False,
        ),
        _when("expires_at", nullable=False),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("counsellor_id", sa.Integer(), sa.ForeignKey("counsellors.id")),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("case_id", sa.Integer()),
        sa.Column("detail", sa.Text()),
        sa.Column("at", sa.DateTime(timezone=True), server_default=NOW),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    for table in ("audit_log", "console_sessions", "case_notes", "case_transitions", "cases"):
        op.drop_table(table)
    op.drop_table("counsellors")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("buttons")
