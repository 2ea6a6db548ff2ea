"""Alembic runs migrations against DATABASE_URL (the same default as the gateway), comparing only
the gateway's own tables (bot/store/schema.py)."""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine

from bot.config import Settings
from bot.store.db import ensure_sqlite_dir, sync_url
from bot.store.schema import alembic_options

if context.config.config_file_name:
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

url = context.config.get_main_option("sqlalchemy.url") or Settings.from_env().database_url
ensure_sqlite_dir(url)
engine = create_engine(sync_url(url), hide_parameters=True)  # no row's values in an error
with engine.connect() as connection:
    context.configure(connection=connection, render_as_batch=True, **alembic_options())
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
