"""case categories: one to three of the helpline's categories per closed case, the case facts
insights count (language, age band, role, topic) as columns that survive retention, and the
child's answer to "did this help?"

Revision ID: 0009
Revises: 0006
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

FACTS = {"language": 8, "age_band": 16, "role": 16, "topic": 32}
# The former wrap-up ids, recorded again in the helpline's categories (locales/categories.yml).
FORMER = {
    "online_sextortion": "violence.online_sexual_exploitation",
    "online_grooming": "violence.online_sexual_abuse",
    "online_image_sharing": "violence.online_sexual_exploitation",
    "online_csam": "violence.online_sexual_exploitation",
    "online_harassment": "violence.online_sexual_abuse",
    "sexual_abuse": "violence.sexual_violence",
    "physical_abuse": "violence.physical_violence",
    "emotional_abuse": "violence.mental_emotional_violence",
    "neglect": "violence.neglect_or_negligent_treatment",
    "bullying": "violence.bullying",
    "mental_health": "mental_health.other",
    "self_harm_suicide": "mental_health.suicidal_thoughts_and_suicide_attempts",
    "family_relationships": "family.other",
    "information_request": "non_counselling.question_about_other_services",
    "no_contact": "non_counselling.silent_contact",
    "other": "non_counselling.other",
}


def upgrade() -> None:
    categories = op.create_table(
        "case_categories",
        sa.Column(
            "case_id",
            sa.Integer(),
            sa.ForeignKey("cases.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("category", sa.String(64), primary_key=True),
        sa.Column("position", sa.Integer(), nullable=False, server_default="0"),
    )
    with op.batch_alter_table("cases") as batch:
        for name, length in FACTS.items():
            batch.add_column(sa.Column(name, sa.String(length)))
        batch.add_column(
            sa.Column("helped_asked", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("helped", sa.Boolean()))
    connection = op.get_bind()
    cases = sa.table(
        "cases",
        sa.column("id", sa.Integer()),
        sa.column("summary", sa.Text()),
        sa.column("wrapup", sa.String(64)),
        *(sa.column(name, sa.String(length)) for name, length in FACTS.items()),
    )
    for case_id, summary, wrapup in connection.execute(
        sa.select(cases.c.id, cases.c.summary, cases.c.wrapup)
    ).all():
        facts = json.loads(summary or "{}")
        topics = facts.get("topics") or []
        connection.execute(
            cases.update()
            .where(cases.c.id == case_id)
            .values(
                language=facts.get("language"),
                age_band=facts.get("age_band"),
                role=facts.get("role"),
                topic=topics[-1] if topics else None,
            )
        )
        if wrapup:
            connection.execute(
                categories.insert().values(
                    case_id=case_id, category=FORMER.get(wrapup, "non_counselling.other")
                )
            )
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("wrapup")


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("wrapup", sa.String(64)))
        for name in (*FACTS, "helped_asked", "helped"):
            batch.drop_column(name)
    op.drop_table("case_categories")
