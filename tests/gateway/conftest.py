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
