"""The migrations build exactly the tables the models describe, and Alembic leaves alone what is not
ours: on PostgreSQL Rasa's tracker store keeps its `events` table in the gateway's database."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from bot.store.db import sync_url
from bot.store.schema import alembic_options, metadata
from tests.gateway.conftest import ROOT, migrate, postgres_database, require_production

# Rasa 3.6's SQLTrackerStore table, as Rasa creates it.
RASA_EVENTS = (
    "CREATE SEQUENCE events_id_seq",
    "CREATE TABLE events (id INTEGER PRIMARY KEY DEFAULT nextval('events_id_seq'),"
    " sender_id VARCHAR(255) NOT NULL, type_name VARCHAR(255) NOT NULL, timestamp FLOAT,"
    " intent_name VARCHAR(255), action_name VARCHAR(255), data TEXT)",
    "CREATE INDEX ix_events_sender_id ON events (sender_id)",
)


@pytest.fixture(scope="module")
def shared_database() -> Iterator[str]:
    """A PostgreSQL database migrated to head, with Rasa's events table beside ours."""
    require_production()
    with postgres_database("migrations") as url:
        migrate(url)
        engine = create_engine(sync_url(url), poolclass=NullPool)
        with engine.begin() as connection:
            for statement in RASA_EVENTS:
                connection.execute(text(statement))
        engine.dispose()
        yield url


def test_the_migrated_database_matches_the_models_and_rasa_s_table_is_not_ours(shared_database):
    engine = create_engine(sync_url(shared_database), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts=alembic_options())
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_alembic_check_finds_nothing_to_generate(shared_database):
    """`alembic check` runs the autogenerate comparison of `alembic revision --autogenerate`
    through migrations/env.py."""
    checked = subprocess.run(
        [str(ROOT / ".venv/gateway/bin/alembic"), "check"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": shared_database},
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
