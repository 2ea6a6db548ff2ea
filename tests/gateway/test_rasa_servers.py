"""The embedded default's two Rasa servers (scripts/stack.py, bot/rasa_client.py): each child keeps
to one of them, and when one dies its children are answered by the other, with their conversation,
not with the fail-safe."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from bot.identity import user_key
from bot.rasa_client import home
from tests.gateway.conftest import TestedStack, migrate

SECRET = "test-secret"


@pytest.fixture(scope="module")
def two(tmp_path_factory) -> Iterator[TestedStack]:
    var = tmp_path_factory.mktemp("two-rasa")
    database_url = f"sqlite:///{var / 'gateway.db'}"
    migrate(database_url)
    stack = TestedStack.on_free_ports(
        var,
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": "",
            "TRACKER_STORE_URL": "",
            "RASA_SERVERS": "",  # the embedded default
            "USER_ID_SECRET": SECRET,
            "RASA_TIMEOUT_S": "20",
            "RATE_USER_PER_MIN": "0",
            "LINE_CHANNEL_SECRET": "",
            "TELEGRAM_BOT_TOKEN": "",
        },
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def children(count: int, server: int) -> list[str]:
    """Web chat users whose own Rasa server is `server` (of two)."""
    found: list[str] = []
    while len(found) < count:
        user = f"u-{uuid.uuid4().hex[:8]}"
        if home(user_key(SECRET, "webchat", user), 2) == server:
            found.append(user)
    return found


def say(client: httpx.Client, user: str, text: str) -> list[dict]:
    response = client.post("/webchat/messages", json={"user": user, "text": text})
    assert response.status_code == 200, response.text
    return response.json()["messages"]


def real(messages: list[dict]) -> bool:
    return bool(messages) and all(m["sender"] == "bot" for m in messages)


def tracker_texts(stack: TestedStack, port: int, user: str) -> list[str]:
    key = user_key(SECRET, "webchat", user)
    response = httpx.get(
        f"http://127.0.0.1:{port}/conversations/{key}/tracker",
        params={"token": stack.rasa_token},
        timeout=30,
    )
    response.raise_for_status()
    return [e.get("text") for e in response.json()["events"] if e["event"] == "user"]


def test_the_default_runs_two_and_each_child_keeps_to_its_own(two):
    assert two.rasa_names == ["rasa", "rasa2"] and len(set(two.rasa_ports)) == 2
    parts = httpx.get(f"{two.gateway_url}/healthz", timeout=10).json()["parts"]
    assert parts["rasa"]["state"] == parts["rasa2"]["state"] == "up"
    first, second = children(2, 0), children(2, 1)
    with httpx.Client(base_url=two.gateway_url, timeout=60) as client:
        for user in first + second:
            assert real(say(client, user, "hello"))
        # The first server stopped: the second one's children are still answered, at once.
        rasa = two.processes["rasa"].popen.pid
        os.kill(rasa, signal.SIGSTOP)
        try:
            for user in second:
                assert real(say(client, user, "where can i report this"))
        finally:
            os.kill(rasa, signal.SIGCONT)
        for user in first:
            assert real(say(client, user, "where can i report this"))


def test_a_dead_servers_children_go_on_with_the_other_and_their_conversation(two):
    users = children(3, 1)
    with httpx.Client(base_url=two.gateway_url, timeout=60) as client:
        for user in users:
            assert real(say(client, user, "hi"))
        two.processes["rasa2"].kill()
        for user in users:
            assert real(say(client, user, "where can i report this")), user
    for user in users:
        assert tracker_texts(two, two.rasa_port, user) == ["hi", "where can i report this"]
    deadline = time.monotonic() + 30  # the gateway probes every few seconds
    while True:
        parts = httpx.get(f"{two.gateway_url}/healthz", timeout=10).json()["parts"]
        if parts["rasa2"]["state"] == "down" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert parts["rasa2"]["state"] == "down" and parts["rasa"]["state"] == "up"
