"""Acknowledged means kept (bot/inbox.py): an event the gateway answered 200 to is answered once,
in order per child, across a killed gateway and across replicas; a push whose answer was lost is
delivered once; what the inbox keeps is purged and erased like the child's other words.

Rasa is a stand-in here (`EchoRasa`): these tests are about when and how often a child is
answered, not what. It echoes each message, can be held, and records what it was sent when.
On SQLite and on PostgreSQL; two replicas on PostgreSQL only (SQLite is one gateway process).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import random
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from bot.app import create_app
from bot.config import Settings
from bot.identity import user_key
from bot.message import Outgoing
from bot.store import inbound
from bot.store.conversations import get_or_create
from bot.store.db import make_engine, make_sessionmaker
from bot.store.models import Inbound, Message, utcnow
from bot.store.retention import Retention
from bot.store.steps import Steps
from tests.gateway.conftest import (
    LINE_SECRET,
    LINE_TOKEN,
    ROOT,
    TELEGRAM_SECRET,
    TELEGRAM_TOKEN,
    TestedStack,
    migrate,
    postgres_database,
    require_production,
)
from tests.gateway.standin import DROP, Call, LinePushes, StandIn
from tests.gateway.test_line import PUSH, REPLY, envelope, media, new_token, new_user, sign, text
from tests.gateway.test_line import Gateway as LineGateway
from tests.gateway.test_telegram import API, BotApi, form, new_chat
from tests.gateway.test_telegram import text as telegram_text

SECRET = "test-secret"


class EchoRasa:
    """Rasa's REST channel, answering "echo: <message>". While `held`, a turn waits until it is
    let go; `delay` slows each turn; `turns` records (message, started, ended)."""

    def __init__(self, standin: StandIn) -> None:
        self.standin = standin
        self.held = threading.Event()
        self.let_go = threading.Event()
        self.delay: tuple[float, float] = (0.0, 0.0)
        self.turns: list[tuple[str, float, float]] = []
        self.started: list[str] = []
        self._lock = threading.Lock()
        standin.handlers[("POST", "/webhooks/rest/webhook")] = self._turn

    def _turn(self, call: Call) -> tuple[int, object]:
        message = call.json["message"]
        started = time.monotonic()
        with self._lock:
            self.started.append(message)
        if self.held.is_set():
            self.let_go.wait(120)
            return DROP, None  # the gateway that asked is gone
        time.sleep(random.uniform(*self.delay))
        with self._lock:
            self.turns.append((message, started, time.monotonic()))
        return 200, [{"recipient_id": call.json["sender"], "text": f"echo: {message}"}]


@pytest.fixture
def rasa() -> Iterator[EchoRasa]:
    standin = StandIn()
    echo = EchoRasa(standin)
    yield echo
    echo.let_go.set()
    standin.stop()


@pytest.fixture
def line_api() -> Iterator[StandIn]:
    standin = StandIn()
    standin.handlers[("POST", REPLY)] = lambda call: (200, {"sentMessages": [{"id": "1"}]})
    standin.handlers[("POST", PUSH)] = LinePushes()
    yield standin
    standin.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'gateway.db'}"
        migrate(url)
        yield url
        return
    require_production()
    with postgres_database("inbound") as url:
        migrate(url)
        yield url


def replies_to(api: StandIn, user: str, tokens: list[str]) -> list[Call]:
    """Every reply (by its token) or push that reached this LINE user, in order."""
    return [
        c
        for c in api.requests()
        if (c.path == PUSH and c.json["to"] == user)
        or (c.path == REPLY and c.json["replyToken"] in tokens)
    ]


def texts(calls: list[Call]) -> list[str]:
    return [m["text"] for c in calls for m in c.json["messages"]]


def wait_until(condition, timeout: float, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


# -- a gateway killed between the 200 and the answer ----------------------------------------------


def gateway_only(var, database_url: str, rasa: EchoRasa, line_api: StandIn) -> TestedStack:  # noqa: ANN001
    """A gateway process (no Rasa, no action server of its own) talking to the stand-ins."""
    stack = TestedStack.on_free_ports(
        var,
        {
            "DATABASE_URL": database_url,
            "USER_ID_SECRET": SECRET,
            "REDIS_URL": "",
            "TRACKER_STORE_URL": "",
            "RASA_TIMEOUT_S": "20",
            "RASA_SERVERS": "1",
            "RATE_USER_PER_MIN": "0",
            "ACTION_URL": rasa.standin.url,  # its health probe too finds the stand-in up
            **line_api.line_env(LINE_SECRET, LINE_TOKEN),
            "TELEGRAM_BOT_TOKEN": "",
        },
    )
    stack.rasa_port = int(rasa.standin.url.rsplit(":", 1)[1])
    return stack


def post_line(client: httpx.Client, *events: dict) -> None:
    body = envelope(*events)
    response = client.post(
        "/webhooks/line",
        content=body,
        headers={"content-type": "application/json", "x-line-signature": sign(body)},
    )
    assert response.status_code == 200, response.text


def test_a_gateway_killed_after_the_200_answers_once_when_it_is_back(
    database_url, rasa, line_api, tmp_path
):
    stack = gateway_only(tmp_path, database_url, rasa, line_api)
    user, token = new_user(), new_token()
    rasa.held.set()
    try:
        stack.start(("gateway",), timeout=120)
        with httpx.Client(base_url=stack.gateway_url, timeout=30) as client:
            post_line(client, text(user, "hello after the kill", token))
        wait_until(lambda: rasa.started, 30, "the message never reached Rasa")
        gateway = stack.processes["gateway"]
        os.killpg(gateway.popen.pid, signal.SIGKILL)
        gateway.popen.wait()
        assert replies_to(line_api, user, [token]) == []

        rasa.held.clear()
        rasa.let_go.set()
        stack.start(("gateway",), timeout=120)
        # PostgreSQL: the dead gateway's lease runs out first (bot/inbox.py, LEASE_S).
        wait_until(lambda: replies_to(line_api, user, [token]), 90, "the child was never answered")
        time.sleep(3)  # a second answer would come now
        answered = replies_to(line_api, user, [token])
        assert texts(answered) == ["echo: hello after the kill"]
        assert [c.json.get("replyToken") for c in answered] == [token]
        key = user_key(SECRET, "line", user)
        rows = stack.query(
            "select attempts, payload, finished_at from inbound where user_key = :key",
            {"key": key},
        )
        assert [(attempts, payload) for attempts, payload, _ in rows] == [(2, None)]
        assert rows[0][2] is not None
    finally:
        stack.stop(("gateway",))


# -- two replicas, one child ---------------------------------------------------------------------


def test_ten_messages_alternating_between_two_replicas_are_answered_in_order(
    rasa, line_api, tmp_path
):
    require_production()
    rasa.delay = (0.0, 0.4)
    with postgres_database("inbound_replicas") as url:
        migrate(url)
        replicas = [gateway_only(tmp_path / name, url, rasa, line_api) for name in ("a", "b")]
        try:
            for replica in replicas:
                replica.start(("gateway",), timeout=120)
            clients = [httpx.Client(base_url=r.gateway_url, timeout=30) for r in replicas]
            user = new_user()
            words = [f"ข้อความ {i}" for i in range(10)]
            tokens = [new_token() for _ in words]
            for i, (said, token) in enumerate(zip(words, tokens, strict=True)):
                post_line(clients[i % 2], text(user, said, token))
            wait_until(
                lambda: len(replies_to(line_api, user, tokens)) >= 10, 120, "not all answered"
            )
            time.sleep(1)
            answered = replies_to(line_api, user, tokens)
            assert [c.json["replyToken"] for c in answered] == tokens
            assert texts(answered) == [f"echo: {said}" for said in words]
            # Rasa had one turn of this child at a time, in the order they were sent.
            turns = sorted(rasa.turns, key=lambda turn: turn[1])
            assert [message for message, _, _ in turns] == words
            assert all(turns[i][2] <= turns[i + 1][1] for i in range(len(turns) - 1))
            for client in clients:
                client.close()
        finally:
            for replica in replicas:
                replica.stop(("gateway",))


def test_a_web_chat_request_gets_the_holding_line_from_the_replica_answering_its_row(
    rasa, line_api, tmp_path, locales
):
    """Past capacity (bot/holding.py) the replica answering a row hands the holding line over
    through the row to the request waiting in the other replica, then the real answer follows in
    the later messages."""
    require_production()
    rasa.delay = (2.5, 2.5)  # longer than RASA_TIMEOUT_S: every turn is held
    with postgres_database("inbound_holding") as url:
        migrate(url)
        replicas = [gateway_only(tmp_path / name, url, rasa, line_api) for name in ("a", "b")]
        try:
            for replica in replicas:
                replica.extra_env.update(RASA_TIMEOUT_S="1", HOLD_MAX_S="15")
                replica.start(("gateway",), timeout=120)
            user = f"web-{uuid.uuid4().hex[:8]}"

            def chat(replica: TestedStack, words: str) -> dict:
                response = httpx.post(
                    f"{replica.gateway_url}/webchat/messages",
                    json={"user": user, "text": words},
                    timeout=60,
                )
                assert response.status_code == 200, response.text
                return response.json()

            with ThreadPoolExecutor(2) as pool:
                first = pool.submit(chat, replicas[1], "first")
                time.sleep(0.3)  # b answers the child's rows: the second waits behind the first
                started = time.monotonic()
                second = chat(replicas[0], "second")
                waited = time.monotonic() - started
            holding = locales.render("utter_holding", "en", {}).text  # "first" is English
            for reply in (first.result(), second):
                assert [(m["sender"], m["text"]) for m in reply["messages"]] == [
                    ("holding", holding)
                ]
            assert waited < 2.5 + 1 + 3  # the first's answer, its own RASA_TIMEOUT_S, a margin

            def later() -> list[tuple[str, str]]:
                fetched = httpx.get(
                    f"{replicas[0].gateway_url}/webchat/messages",
                    params={"user": user, "after": 0},
                    timeout=30,
                ).json()["messages"]
                return [(m["sender"], m["text"]) for m in fetched]

            wait_until(lambda: len(later()) >= 4, 30, "the real answers never came")
            assert later() == [
                ("holding", holding),
                ("bot", "echo: first"),
                ("holding", holding),
                ("bot", "echo: second"),
            ]
            assert rasa.started == ["first", "second"]  # each sent to Rasa once
        finally:
            for replica in replicas:
                replica.stop(("gateway",))


# -- in process: the web chat's order, the fail-safe, pushes --------------------------------------


def app_settings(database_url: str, rasa: EchoRasa, line_api: StandIn) -> Settings:
    return dataclasses.replace(
        Settings.from_env(),
        database_url=database_url,
        rasa_url=rasa.standin.url,
        action_url=rasa.standin.url,  # its health probe too finds the stand-in up
        rasa_timeout_s=20,
        rate_user_per_min=0,
        user_id_secret=SECRET,
        locales_dir=ROOT / "locales",
        line_channel_secret=LINE_SECRET,
        line_channel_access_token=LINE_TOKEN,
        line_api_base_url=line_api.url,
        line_data_api_base_url=line_api.url + "/data",
        telegram_bot_token="",
        redis_url="",
    )


class Gateway(LineGateway):
    """One gateway's app in this test's event loop (test_line.py), which also chats on the web."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, timeout=60)

    async def chat(self, user: str, words: str) -> dict:
        response = await self.client.post("/webchat/messages", json={"user": user, "text": words})
        assert response.status_code == 200, response.text
        return response.json()


def test_a_child_s_quick_web_chat_messages_are_answered_in_order(database_url, rasa, line_api):
    rasa.delay = (0.6, 0.6)
    user = f"web-{uuid.uuid4().hex[:8]}"

    async def scenario() -> list[dict]:
        async with Gateway(app_settings(database_url, rasa, line_api)) as gateway:
            first = asyncio.create_task(gateway.chat(user, "first"))
            await asyncio.sleep(0.2)  # the first is at Rasa
            second = asyncio.create_task(gateway.chat(user, "second"))
            return await asyncio.gather(first, second)

    first, second = asyncio.run(scenario())
    assert [m["text"] for m in first["messages"]] == ["echo: first"]
    assert [m["text"] for m in second["messages"]] == ["echo: second"]
    (one, _, one_done), (two, two_started, _) = sorted(rasa.turns, key=lambda turn: turn[1])
    assert (one, two) == ("first", "second")
    assert one_done <= two_started  # the second waited for the first's answer
    assert first["messages"][0]["cursor"] < second["messages"][0]["cursor"]


def test_an_event_that_fails_three_times_gets_the_fail_safe_once(
    database_url, rasa, line_api, locales, monkeypatch
):
    monkeypatch.setattr("bot.inbox.RETRY_AFTER_S", 0.2, raising=False)
    user, token = new_user(), new_token()
    attempts = []

    async def broken(incoming, hold=None) -> None:  # noqa: ANN001 (the router's handle)
        attempts.append(incoming.text)
        raise RuntimeError("a bug on this path")

    async def scenario() -> None:
        async with Gateway(app_settings(database_url, rasa, line_api)) as gateway:
            monkeypatch.setattr(gateway.app.state.router, "handle", broken)
            await gateway.post(text(user, "are you there", token))
            deadline = time.monotonic() + 60
            while not replies_to(line_api, user, [token]):
                assert time.monotonic() < deadline, "never answered"
                await asyncio.sleep(0.1)
            await asyncio.sleep(3)  # the sweep runs again: nothing more happens

    asyncio.run(scenario())
    assert attempts == ["are you there"] * 3
    [answer] = replies_to(line_api, user, [token])
    assert answer.json["replyToken"] == token
    assert texts([answer]) == [locales.text("utter_fallback", "th")]


async def stored_pending(sessions, user: str) -> list[bool]:  # noqa: ANN001
    async with sessions() as session:
        conversation = await get_or_create(session, user, "line")
        rows = await session.scalars(
            select(Message.push_pending).where(Message.conversation_id == conversation.id)
        )
        return list(rows)


def test_a_line_push_whose_answer_is_lost_is_retried_with_its_key_and_arrives_once(
    database_url, rasa, line_api
):
    pushes = LinePushes(drop=2)  # both tries of the first push: delivered, then 409; both lost
    line_api.handlers[("POST", PUSH)] = pushes
    user = new_user()
    key = user_key(SECRET, "line", user)
    pending = []

    async def scenario() -> None:
        async with Gateway(app_settings(database_url, rasa, line_api)) as gateway:
            state = gateway.app.state
            await gateway.post(media(user, "sticker"))  # the address, for pushes
            await state.inbox.drain()
            async with state.sessions() as session:
                conversation_id = (await get_or_create(session, key, "line")).id
            assert not await state.relay.send(conversation_id, "counsellor", [Outgoing("พี่อยู่นี่")])
            pending.append(await stored_pending(state.sessions, key))
            await state.relay.retry()  # as the periodic retry does
            pending.append(await stored_pending(state.sessions, key))

    asyncio.run(scenario())
    assert len(pushes.keys) == 3 and len(set(pushes.keys)) == 1, pushes.keys
    assert [m["text"] for body in pushes.delivered for m in body["messages"]] == ["พี่อยู่นี่"]
    assert [rows[-1] for rows in pending] == [True, False]  # pending until the retry


def test_a_telegram_send_whose_answer_is_lost_is_never_sent_again(tmp_path, rasa, line_api):
    telegram_api = StandIn()
    api = BotApi(telegram_api)
    api.install()
    lost = []

    def send_message(call: Call) -> tuple[int, object]:
        answer = api.send_message(call)
        if not lost:
            lost.append(form(call)["text"])
            return DROP, None  # Telegram sent it; the answer never came back
        return answer

    telegram_api.handlers[("POST", API + "sendMessage")] = send_message
    database_url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate(database_url)
    settings = dataclasses.replace(
        app_settings(database_url, rasa, line_api),
        line_channel_secret="",
        line_channel_access_token="",
        telegram_bot_token=TELEGRAM_TOKEN,
        telegram_webhook_secret=TELEGRAM_SECRET,
        telegram_mode="webhook",
        telegram_api_base_url=telegram_api.url,
    )
    chat = new_chat()
    try:
        with TestClient(create_app(settings)) as client:
            for words in ("hello", "again"):
                response = client.post(
                    "/webhooks/telegram",
                    json=telegram_text(chat, words),
                    headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
                )
                assert response.status_code == 200
                client.portal.call(client.app.state.inbox.drain)
            client.portal.call(client.app.state.relay.retry)
        sent = [form(c)["text"] for c in telegram_api.requests(API + "sendMessage")]
        assert sent == ["echo: hello", "echo: again"]
        assert lost == ["echo: hello"]
    finally:
        telegram_api.stop()


# -- kept only as long as needed ------------------------------------------------------------------


def test_the_inbox_keeps_no_words_once_answered_and_is_purged_and_erased(database_url):
    """Answered rows keep only ids (and drop redeliveries); rows older than the retention period
    go; "delete my data" takes every answered row and the one being answered, and leaves what
    the child sent after asking, still to be answered."""

    async def scenario() -> None:
        engine = make_engine(database_url)
        sessions = make_sessionmaker(engine)
        retention = Retention(sessions, None, 30)
        child, other = f"line-{uuid.uuid4().hex[:10]}", f"line-{uuid.uuid4().hex[:10]}"
        steps = Steps(engine)
        store = inbound.InboundStore(steps)
        try:
            rows = [(f"e{i}-{child}", child, f"sealed words {i}") for i in range(3)]
            written, _ = await store.write("line", rows)
            assert [user for _, user in written] == [child] * 3
            assert await store.write("line", rows[:1]) == ([], {})  # a redelivery
            await store.write("line", [(f"x-{other}", other, "other words")])

            answered = await store.claim(child, 20)
            erasing = await store.finish(answered, None, 20)
            async with sessions() as session:
                finished = await session.get(Inbound, answered.id)
                assert finished.payload is None and finished.finished_at is not None

            # The second row asks to delete everything; the third came after.
            async with sessions() as session:
                await inbound.forget(session, child)
                await session.commit()
                left = (
                    await session.execute(
                        select(Inbound.id, Inbound.payload).where(Inbound.user_key == child)
                    )
                ).all()
            assert [tuple(row) for row in left] == [(written[2][0], "sealed words 2")]
            assert erasing.id == written[1][0]

            counts = await retention.purge(now=utcnow() + timedelta(days=31))
            assert counts["inbound"] == 2  # the child's third row and the other child's
            async with sessions() as session:
                assert (await session.scalars(select(Inbound.id))).all() == []
        finally:
            steps.close()
            await engine.dispose()

    asyncio.run(scenario())


def test_delete_my_data_leaves_nothing_of_the_child_in_the_inbox(database_url, rasa, line_api):
    user = f"web-{uuid.uuid4().hex[:8]}"
    key = user_key(SECRET, "webchat", user)

    async def scenario() -> list[tuple]:
        async with Gateway(app_settings(database_url, rasa, line_api)) as gateway:
            await gateway.chat(user, "my secret words")
            response = await gateway.client.post(
                "/webchat/messages",
                json={"user": user, "text": "/forget_confirmed", "pressed": True},
            )
            assert response.json()["forgotten"] is True
            async with gateway.app.state.sessions() as session:
                return (await session.execute(select(Inbound).where(Inbound.user_key == key))).all()

    assert asyncio.run(scenario()) == []
