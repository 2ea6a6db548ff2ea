"""Gateway tests. `stack` is the real thing: trained model, Rasa, action server, gateway."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bot.config import Settings  # noqa: E402
from bot.locales import Locales  # noqa: E402
from scripts.stack import Stack, free_port  # noqa: E402
from tests.gateway.standin import StandIn  # noqa: E402

LINE_SECRET = "test-line-channel-secret"
LINE_TOKEN = "test-line-access-token"
TELEGRAM_TOKEN = "123456:test-telegram-token"
TELEGRAM_SECRET = "test-telegram-webhook-secret"


def migrate(database_url: str) -> None:
    subprocess.run(
        [str(ROOT / ".venv/gateway/bin/alembic"), "upgrade", "head"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        check=True,
        capture_output=True,
    )


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


@pytest.fixture(scope="session")
def stack(tmp_path_factory, line_api, telegram_api) -> Stack:
    var = tmp_path_factory.mktemp("stack")
    database_url = f"sqlite:///{var / 'gateway.db'}"
    migrate(database_url)
    stack = Stack(
        var=var,
        rasa_port=free_port(),
        action_port=free_port(),
        gateway_port=free_port(),
        extra_env={
            "DATABASE_URL": database_url,
            "USER_ID_SECRET": "test-secret",
            # A loaded CI machine must not turn slow answers into fallbacks; the fallback itself
            # is tested by stopping Rasa.
            "RASA_TIMEOUT_S": "20",
            "LINE_CHANNEL_SECRET": LINE_SECRET,
            "LINE_CHANNEL_ACCESS_TOKEN": LINE_TOKEN,
            "LINE_API_BASE_URL": line_api.url,
            "LINE_DATA_API_BASE_URL": line_api.url + "/data",
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
