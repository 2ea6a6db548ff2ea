"""Gateway tests. `stack` is the real thing: trained model, Rasa, action server, gateway.

`stack` runs twice: on SQLite with in-memory locks (the embedded default) and on PostgreSQL with
Redis (the production configuration: gateway data and Rasa's tracker in one fresh PostgreSQL
database, Rasa's RedisLockStore, console events fanned out through Redis). Without PostgreSQL or
Redis on 127.0.0.1 the second run is skipped, or fails when CI=true.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.pool import NullPool

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from bot.locales import Locales  # noqa: E402
from bot.store.db import sync_url  # noqa: E402
from bot.store.models import Message  # noqa: E402
from scripts.stack import Stack  # noqa: E402
from tests.gateway.standin import StandIn  # noqa: E402

LINE_SECRET = "test-line-channel-secret"
LINE_TOKEN = "test-line-access-token"
TELEGRAM_TOKEN = "123456:test-telegram-token"
TELEGRAM_SECRET = "test-telegram-webhook-secret"

POSTGRES = "postgresql://postgres@127.0.0.1:5432/{name}"  # `test` exists; others are made here
REDIS_SERVER = "redis://127.0.0.1:6379"
# The voice (bot/handoff/voice.py) of the counsellor `new_counsellor` makes by default.
FON = {"name": "พี่ฝน", "particle": "ค่ะ", "particle_soft": "คะ"}


async def told(sessions, conversation_id: int) -> list[str]:  # noqa: ANN001 (a sessionmaker)
    """What the system (not the bot, not a person) said to a child, in order."""
    async with sessions() as session:
        rows = await session.scalars(
            select(Message.text)
            .where(Message.conversation_id == conversation_id, Message.sender == "system")
            .order_by(Message.id)
        )
        return list(rows)


def migrate(database_url: str) -> None:
    subprocess.run(
        [str(ROOT / ".venv/gateway/bin/alembic"), "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        check=True,
        capture_output=True,
    )


def production_unavailable(
    admin_url: str = POSTGRES.format(name="test"), redis_url: str = REDIS_SERVER
) -> str | None:
    """Why the PostgreSQL + Redis configuration cannot be tested here, or None."""
    try:
        with psycopg.connect(admin_url, connect_timeout=3):
            pass
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {admin_url} ({type(exc).__name__})"
    try:
        import redis
    except ImportError:
        return "the redis package is not installed in .venv/gateway (requirements/gateway.lock)"
    try:
        with redis.Redis.from_url(redis_url, socket_connect_timeout=3) as client:
            client.ping()
    except redis.RedisError as exc:
        return f"Redis not reachable at {redis_url} ({type(exc).__name__})"
    return None


def require_production(**where: str) -> None:
    """Skips the calling test (fails it under CI=true) without PostgreSQL and Redis."""
    reason = production_unavailable(**where)
    if reason is None:
        return
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"{reason}: CI=true requires PostgreSQL and Redis", pytrace=False)
    pytest.skip(f"{reason}; the PostgreSQL variant is skipped (with CI=true it fails)")


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this run; dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES.format(name="test"), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES.format(name=name)
    finally:
        with psycopg.connect(POSTGRES.format(name="test"), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def offline_settings(tmp_path: Path, **changes: object) -> Settings:
    """An in-process gateway's settings on a fresh, migrated SQLite file, with nothing listening
    where Rasa would be (every turn is the fail-safe, at once) and no platform channels; `changes`
    adds what a test needs."""
    database_url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate(database_url)
    offline: dict[str, object] = {
        "database_url": database_url,
        "tracker_store_url": f"sqlite:///{tmp_path / 'tracker.db'}",
        "rasa_url": "http://127.0.0.1:9",
        "user_id_secret": "test-secret",
        "locales_dir": ROOT / "locales",
        "default_language": "th",
        "line_channel_secret": "",
        "line_channel_access_token": "",
        "telegram_bot_token": "",
    }
    return dataclasses.replace(Settings.from_env(), **{**offline, **changes})


class TestedStack(Stack):
    """The stack, plus reading the running gateway's database, whichever it is."""

    __test__ = False

    @property
    def database_url(self) -> str:
        return self.env()["DATABASE_URL"]

    def query(self, sql: str, params: Mapping[str, object] | None = None) -> list[tuple]:
        """Rows of one SQL statement with :named parameters, on SQLite or PostgreSQL."""
        engine = create_engine(sync_url(self.database_url), poolclass=NullPool)
        try:
            with engine.connect() as connection:
                return [tuple(row) for row in connection.execute(text(sql), params or {})]
        finally:
            engine.dispose()

    def query_one(self, sql: str, params: Mapping[str, object] | None = None) -> tuple | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def dump(self) -> str:
        """Every row of every table as text: what someone holding the database would read."""
        engine = create_engine(sync_url(self.database_url), poolclass=NullPool)
        try:
            with engine.connect() as connection:
                lines = []
                for table in inspect(connection).get_table_names():
                    for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                        lines.append(f"{table}: {tuple(row)!r}")
                return "\n".join(lines)
        finally:
            engine.dispose()


@pytest.fixture(scope="session")
def locales() -> Locales:
    return Locales(ROOT / "locales")


@pytest.fixture(scope="session")
def line_api() -> StandIn:
    """Stand-in of the LINE Messaging API (and its data API, which must never be called)."""
    standin = StandIn()
    yield standin
    standin.stop()


@pytest.fixture(scope="session")
def telegram_api() -> StandIn:
    """Stand-in of the Telegram Bot API."""
    standin = StandIn()
    yield standin
    standin.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def stack(request, tmp_path_factory, line_api, telegram_api) -> Iterator[TestedStack]:
    var = tmp_path_factory.mktemp(f"stack-{request.param}")
    with contextlib.ExitStack() as cleanup:
        if request.param == "sqlite":
            database_url = f"sqlite:///{var / 'gateway.db'}"
            # the embedded default, whatever the shell running the tests has set
            production = {"REDIS_URL": "", "TRACKER_STORE_URL": "", "RASA_SERVERS": ""}
        else:
            require_production()
            database_url = cleanup.enter_context(postgres_database("stack"))
            # Rasa's tracker follows DATABASE_URL into the same database; Redis gets a database
            # number of its own (the lock store's keys, and the console events' channel name)
            production = {
                "REDIS_URL": f"{REDIS_SERVER}/{random.randint(1, 15)}",
                "TRACKER_STORE_URL": "",
                "RASA_SERVERS": "1",  # the embedded default's two are the SQLite variant's
            }
        migrate(database_url)
        stack = TestedStack.on_free_ports(
            var,
            {
                **production,
                "DATABASE_URL": database_url,
                "USER_ID_SECRET": "test-secret",
                # A loaded CI machine must not turn slow answers into fallbacks; the fallback
                # itself is tested by stopping Rasa.
                "RASA_TIMEOUT_S": "20",
                **line_api.line_env(LINE_SECRET, LINE_TOKEN),
                "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
                "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
                "TELEGRAM_MODE": "webhook",
                "TELEGRAM_API_BASE_URL": telegram_api.url,
            },
        )
        try:
            stack.start()
            yield stack
        finally:
            stack.stop()


@pytest.fixture
def chat(stack: Stack):
    """Send one web-chat message; returns the JSON reply."""
    with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:

        def send(user: str, text: str) -> dict:
            response = client.post("/webchat/messages", json={"user": user, "text": text})
            assert response.status_code == 200, response.text
            return response.json()

        yield send


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.from_env()


class Console:
    """A counsellor's browser, without the browser: signs in like the login form, then calls
    the console's JSON API with the session cookie and the CSRF header."""

    def __init__(self, gateway_url: str) -> None:
        self.client = httpx.Client(base_url=gateway_url, timeout=30)
        self.csrf = ""

    def login(self, username: str, password: str) -> httpx.Response:
        form = self.client.get("/console/login")
        assert form.status_code == 200, form.text
        csrf = form.text.split('name="csrf" value="')[1].split('"')[0]
        answer = self.client.post(
            "/console/login", data={"username": username, "password": password, "csrf": csrf}
        )
        if answer.status_code == 303:
            self.csrf = self.get("/console/api/me")["csrf"]
        return answer

    def get(self, path: str) -> dict:
        response = self.client.get(path)
        assert response.status_code == 200, response.text
        return response.json()

    def post(self, path: str, body: dict | None = None) -> httpx.Response:
        return self.client.post(path, json=body or {}, headers={"X-CSRF-Token": self.csrf})


@pytest.fixture
def new_counsellor(stack):
    """Creates a console account in the running gateway's database: (username, password)."""
    import asyncio
    import uuid

    from scripts.counsellor import create

    def make(role: str = "counsellor", name: str = "พี่ฝน") -> tuple[str, str]:
        username, password = f"c{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
        url = stack.env()["DATABASE_URL"]
        asyncio.run(create(url, username, name, password, role))
        return username, password

    return make


@pytest.fixture
def counsellor(new_counsellor) -> tuple[str, str]:
    return new_counsellor()


@pytest.fixture
def console(stack, counsellor) -> Console:
    """A signed-in counsellor."""
    console = Console(stack.gateway_url)
    assert console.login(*counsellor).status_code == 303
    yield console
    console.client.close()
