"""Safe by default in production (issue 13, section 4): a child's words never reach a log, even
through a database error; `make run` refuses PostgreSQL with a missing or published
USER_ID_SECRET; CONSOLE_SECURE_COOKIE=1 also sends HSTS."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import time
import uuid

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from bot.app import create_app
from bot.config import DEV_USER_ID_SECRET, Settings, unsafe_production
from bot.store.db import sync_url
from scripts.stack import GATEWAY_PYTHON, free_port
from tests.gateway.conftest import ROOT, migrate

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


# -- USER_ID_SECRET ------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, "", "   ", DEV_USER_ID_SECRET])
def test_make_run_refuses_postgresql_without_a_real_user_id_secret(tmp_path, secret):
    env = {k: v for k, v in os.environ.items() if k != "USER_ID_SECRET"}
    env.update(
        DATABASE_URL=POSTGRES_URL,
        GATEWAY_PORT=str(free_port()),
        RASA_PORT=str(free_port()),
        ACTION_PORT=str(free_port()),
    )
    if secret is not None:
        env["USER_ID_SECRET"] = secret
    ran = subprocess.run(
        [str(GATEWAY_PYTHON), "scripts/stack.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode != 0
    assert "USER_ID_SECRET" in ran.stderr, ran.stderr
    assert "starting" not in ran.stdout  # nothing was started


def test_only_postgresql_with_the_development_secret_is_refused():
    assert unsafe_production({"DATABASE_URL": "sqlite:///var/gateway.db"}) is None
    assert unsafe_production({}) is None  # the embedded default
    assert unsafe_production({"DATABASE_URL": POSTGRES_URL, "USER_ID_SECRET": "x" * 32}) is None
    refused = unsafe_production({"DATABASE_URL": POSTGRES_URL})
    assert refused and "USER_ID_SECRET" in refused


# -- HSTS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("secure", [True, False])
def test_secure_cookie_setting_also_sends_hsts(tmp_path, secure):
    database_url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate(database_url)
    settings = dataclasses.replace(
        Settings.from_env(),
        database_url=database_url,
        tracker_store_url=f"sqlite:///{tmp_path / 'tracker.db'}",
        line_channel_secret="",
        line_channel_access_token="",
        telegram_bot_token="",
        console_secure_cookie=secure,
    )

    async def headers() -> list[httpx.Headers]:
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="https://gw") as client:
                return [(await client.get(path)).headers for path in ("/console/login", "/")]

    for answer in asyncio.run(headers()):
        hsts = answer.get("strict-transport-security")
        assert (hsts == "max-age=31536000") if secure else hsts is None


# -- no child's words in a log -------------------------------------------------------------------


def _refuse_marker(stack, marker: str) -> list[str]:
    """SQL that makes storing a child's message holding `marker` fail, and SQL that undoes it."""
    if stack.database_url.startswith("sqlite"):
        return [
            "CREATE TRIGGER refuse_marker BEFORE INSERT ON messages"
            f" WHEN NEW.text LIKE '%{marker}%' BEGIN SELECT RAISE(ABORT, 'refused'); END",
        ], ["DROP TRIGGER refuse_marker"]
    return [
        "CREATE FUNCTION refuse_marker() RETURNS trigger LANGUAGE plpgsql AS"
        " $$ BEGIN RAISE EXCEPTION 'refused'; END $$",
        "CREATE TRIGGER refuse_marker BEFORE INSERT ON messages FOR EACH ROW"
        f" WHEN (NEW.text LIKE '%{marker}%') EXECUTE FUNCTION refuse_marker()",
    ], ["DROP TRIGGER refuse_marker ON messages", "DROP FUNCTION refuse_marker()"]


def test_a_database_error_on_a_child_s_message_logs_no_words(stack):
    marker = f"MARKER{uuid.uuid4().hex[:12]}"
    install, remove = _refuse_marker(stack, marker)
    for statement in install:
        _execute(stack, statement)
    try:
        with httpx.Client(base_url=stack.gateway_url, timeout=60) as client:
            answer = client.post(
                "/webchat/messages",
                json={"user": f"child-{uuid.uuid4().hex[:8]}", "text": f"ช่วยด้วย {marker}"},
            )
        assert answer.status_code >= 500 or answer.json()["messages"]
        time.sleep(2)  # the gateway's log is written by another process
    finally:
        for statement in remove:
            _execute(stack, statement)
    logs = sorted((stack.var / "log").glob("*"))
    assert logs
    written = {path.name: path.read_text(errors="replace") for path in logs}
    assert any("refused" in text for text in written.values()), "no database error was logged"
    assert not [name for name, text in written.items() if marker in text]


def _execute(stack, statement: str) -> None:
    engine = create_engine(sync_url(stack.database_url), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text(statement))
    finally:
        engine.dispose()
