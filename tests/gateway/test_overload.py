"""Overload stays kind and honest (bot/holding.py), on the real stack: trained Rasa, actions,
gateway, and the LINE and Telegram stand-ins.

Rasa is made slow or full the way it happens: one turn at Rasa at a time (RASA_MAX_IN_FLIGHT=1),
a short RASA_TIMEOUT_S, and Rasa stopped (SIGSTOP) for a few seconds, then let go (SIGCONT); the
breaker stays closed (a stopped Rasa is slow, not down: HEALTH_HUNG_AFTER_S is long). A child
then hears the holding line within RASA_TIMEOUT_S and the real answer after it, the channel's
way, once; a child marked urgent is answered ahead of the queue instead; past HOLD_MAX_S the
holding line is the last word; supervisors, and only they, see the overload in the console.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from bot.identity import user_key
from bot.store.db import sync_url
from bot.store.handoff_models import Case
from bot.store.models import Conversation
from scripts.counsellor import create
from tests.gateway.conftest import (
    LINE_SECRET,
    LINE_TOKEN,
    TELEGRAM_SECRET,
    TELEGRAM_TOKEN,
    TestedStack,
    migrate,
)
from tests.gateway.test_console_browser import (  # noqa: F401 (browser: the fixture)
    browser,
    template,
    wait_until,
)
from tests.gateway.test_degraded_banner import sign_in
from tests.gateway.test_line import PUSH, REPLY, Line, install_handlers, new_user, token_of
from tests.gateway.test_line import text as line_text
from tests.gateway.test_telegram import BotApi, Telegram, new_chat
from tests.gateway.test_telegram import text as telegram_text

TIMEOUT_S = 4.0  # RASA_TIMEOUT_S of this stack (the default)
HOLD_MAX_S = 10.0  # and its HOLD_MAX_S: a minute in production, shorter here
MARGIN_S = 2.0  # what the gateway and a busy machine add to RASA_TIMEOUT_S
HELLO = "สวัสดีค่ะ"


@pytest.fixture(scope="module")
def slow(tmp_path_factory, line_api, telegram_api) -> Iterator[TestedStack]:
    var = tmp_path_factory.mktemp("overload")
    database_url = f"sqlite:///{var / 'gateway.db'}"
    migrate(database_url)
    stack = TestedStack.on_free_ports(
        var,
        {
            "REDIS_URL": "",
            "TRACKER_STORE_URL": "",
            "DATABASE_URL": database_url,
            "USER_ID_SECRET": "test-secret",
            "RASA_SERVERS": "1",  # the one that is stopped
            "RASA_TIMEOUT_S": str(TIMEOUT_S),
            "RASA_MAX_IN_FLIGHT": "1",
            "HOLD_MAX_S": str(HOLD_MAX_S),
            "HEALTH_HUNG_AFTER_S": "600",  # a stopped Rasa is slow: the breaker stays closed
            "RATE_IP_PER_MIN": "0",
            **line_api.line_env(LINE_SECRET, LINE_TOKEN),
            "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
            "TELEGRAM_WEBHOOK_SECRET": TELEGRAM_SECRET,
            "TELEGRAM_MODE": "webhook",
            "TELEGRAM_API_BASE_URL": telegram_api.url,
        },
    )
    try:
        stack.start()
        for _ in range(3):  # Rasa's first turns compile its graph: not what is measured here
            post(stack, f"warm-{uuid.uuid4().hex}", HELLO)
        yield stack
    finally:
        stack.stop()


def post(stack: TestedStack, user: str, words: str) -> tuple[dict, float]:
    """One web chat message: the request's answer, and how long it took."""
    started = time.monotonic()
    response = httpx.post(
        f"{stack.gateway_url}/webchat/messages", json={"user": user, "text": words}, timeout=90
    )
    assert response.status_code == 200, response.text
    return response.json(), time.monotonic() - started


def later(stack: TestedStack, user: str, after: int) -> list[dict]:
    response = httpx.get(
        f"{stack.gateway_url}/webchat/messages", params={"user": user, "after": after}, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()["messages"]


@contextlib.contextmanager
def rasa_stopped(stack: TestedStack, seconds: float) -> Iterator[None]:
    """Rasa hangs (SIGSTOP) while the block runs, and is let go `seconds` after it was stopped."""
    group = stack.processes["rasa"].popen.pid
    os.killpg(group, signal.SIGSTOP)
    go = threading.Timer(seconds, os.killpg, (group, signal.SIGCONT))
    go.start()
    try:
        yield
    finally:
        go.join()


@pytest.fixture(scope="module")
def baseline(slow) -> list[str]:
    """What a new child's HELLO gets from a healthy Rasa, on the web chat."""
    reply, _ = post(slow, f"base-{uuid.uuid4().hex}", HELLO)
    assert [m["sender"] for m in reply["messages"]] == ["bot"] * len(reply["messages"])
    return [m["text"] for m in reply["messages"]]


def holding(locales, language: str = "th") -> str:
    return locales.render("utter_holding", language, {}).text


def test_web_chat_gets_the_holding_line_in_time_then_the_real_answer(slow, baseline, locales):
    user = f"held-{uuid.uuid4().hex}"
    with rasa_stopped(slow, TIMEOUT_S + 3):
        reply, seconds = post(slow, user, HELLO)
        assert seconds < TIMEOUT_S + MARGIN_S, seconds
        [line] = reply["messages"]
        assert line["sender"] == "holding" and line["text"] == holding(locales)
        assert [b["payload"] for b in line["buttons"]] == ["/talk_to_human"]
    deadline = time.monotonic() + HOLD_MAX_S + 10
    while not (fetched := later(slow, user, line["cursor"])):
        assert time.monotonic() < deadline, "the real answer never came"
        time.sleep(0.3)
    time.sleep(1)  # anything more would have come with it
    fetched = later(slow, user, line["cursor"])
    assert [m["text"] for m in fetched] == baseline
    assert {m["sender"] for m in fetched} == {"bot"}
    everything = later(slow, user, 0)
    assert [m["sender"] for m in everything].count("holding") == 1


def test_a_burst_is_delayed_not_replaced(slow, baseline, locales):
    """Forty children in the same second while Rasa cannot keep up (one turn at a time, and
    stopped for longer than RASA_TIMEOUT_S): each hears the holding line in time, then gets the
    real answer, once, through the queue; none gets the fail-safe."""
    users = [f"burst-{n}-{uuid.uuid4().hex}" for n in range(40)]
    with ThreadPoolExecutor(len(users)) as pool, rasa_stopped(slow, TIMEOUT_S + 1):
        results = list(pool.map(lambda user: post(slow, user, HELLO), users))
    for reply, seconds in results:
        assert seconds < TIMEOUT_S + MARGIN_S, seconds
        assert [m["text"] for m in reply["messages"]] == [holding(locales)]
    deadline = time.monotonic() + HOLD_MAX_S + 10
    for user, (reply, _) in zip(users, results, strict=True):
        while not (fetched := later(slow, user, reply["messages"][0]["cursor"])):
            assert time.monotonic() < deadline, "a held child never got the real answer"
            time.sleep(0.3)
        assert [m["text"] for m in fetched] == baseline
        assert [m["sender"] for m in later(slow, user, 0)] == ["holding"] + ["bot"] * len(baseline)


def test_line_gets_the_holding_line_by_reply_then_the_answer_by_push_once(slow, line_api, locales):
    install_handlers(line_api)
    line = Line(slow.gateway_url, line_api)
    calm, busy = new_user(), new_user()
    calm_token = f"tok-{uuid.uuid4().hex}"
    line.send(line_text(calm, HELLO, calm_token))
    [answer] = line.replies_to(calm_token)
    real = answer.json["messages"]
    token = f"tok-{uuid.uuid4().hex}"
    with rasa_stopped(slow, TIMEOUT_S + 3):
        sent = time.monotonic()
        line.send(line_text(busy, HELLO, token))
        [reply] = line.replies_to(token, timeout=TIMEOUT_S + MARGIN_S)
        assert time.monotonic() - sent < TIMEOUT_S + MARGIN_S
    assert [m["text"] for m in reply.json["messages"]] == [holding(locales)]

    def pushed() -> list:
        return [c for c in line_api.requests(PUSH) if c.json["to"] == busy]

    wait_until("the push", pushed, HOLD_MAX_S + 10)
    time.sleep(2)  # a second push would come now
    [push] = pushed()
    assert push.json["messages"] == real
    assert "x-line-retry-key" in {name.lower() for name in push.headers}
    assert [c for c in line_api.requests(REPLY) if token_of(c) == token] == [reply]


def test_telegram_gets_the_holding_line_then_the_real_answer_once(slow, telegram_api, locales):
    api = BotApi(telegram_api)
    api.install()
    telegram = Telegram(slow.gateway_url, api, locales)
    calm, busy = new_chat(), new_chat()
    telegram.send(telegram_text(calm, HELLO))
    real = [f["text"] for kind, f in telegram.settle(calm) if kind == "sendMessage"]
    with rasa_stopped(slow, TIMEOUT_S + 3):
        sent = time.monotonic()
        telegram.send(telegram_text(busy, HELLO))
        [(kind, first)] = telegram.wait(busy, 1, timeout=TIMEOUT_S + MARGIN_S)
        assert time.monotonic() - sent < TIMEOUT_S + MARGIN_S
    assert (kind, first["text"]) == ("sendMessage", holding(locales))
    # the sentinel waits behind the held message: everything the child got before it
    sent_before = telegram.settle(busy, timeout=HOLD_MAX_S + 30)
    assert [f["text"] for kind, f in sent_before if kind == "sendMessage"] == [
        holding(locales),
        *real,
    ]


def mark_urgent(stack: TestedStack, user: str) -> None:
    """The child was marked urgent once (a closed urgent case), as Rasa's urgent path leaves it."""
    key = user_key("test-secret", "webchat", user)
    engine = create_engine(sync_url(stack.database_url), poolclass=NullPool)
    try:
        with Session(engine) as session:
            conversation = session.scalar(select(Conversation).where(Conversation.user_key == key))
            session.add(Case(conversation_id=conversation.id, state="closed", urgent=True))
            session.commit()
    finally:
        engine.dispose()


def test_a_child_marked_urgent_is_answered_ahead_of_the_queue_not_held(slow, baseline):
    urgent = f"urgent-{uuid.uuid4().hex}"
    post(slow, urgent, HELLO)
    mark_urgent(slow, urgent)
    others = [f"queue-{n}-{uuid.uuid4().hex}" for n in range(20)]

    def answered_at(user: str, words: str) -> tuple[dict, float, float]:
        reply, seconds = post(slow, user, words)
        return reply, seconds, time.monotonic()

    with ThreadPoolExecutor(len(others)) as pool, rasa_stopped(slow, 1.0):
        queued = [pool.submit(answered_at, user, HELLO) for user in others]
        time.sleep(0.5)  # the others are in line first
        reply, seconds, at = answered_at(urgent, "ขอบคุณค่ะ")
    assert reply["messages"] and seconds < TIMEOUT_S + MARGIN_S
    assert [m["sender"] for m in reply["messages"]] == ["bot"] * len(reply["messages"])
    # ahead of the line: only the turn already at Rasa came before it
    assert sum(1 for q in queued if q.result()[2] < at) <= 2


def test_past_hold_max_the_holding_line_is_the_last_word(slow, locales):
    user = f"last-{uuid.uuid4().hex}"
    with rasa_stopped(slow, HOLD_MAX_S + 3):
        reply, seconds = post(slow, user, HELLO)
        assert seconds < TIMEOUT_S + MARGIN_S
        [line] = reply["messages"]
        assert line["sender"] == "holding"
    time.sleep(4)  # Rasa answers what it had by now; the gateway no longer waits for it
    assert later(slow, user, line["cursor"]) == []
    assert [m["sender"] for m in later(slow, user, 0)] == ["holding"]


def test_supervisors_see_the_overload_counsellors_do_not(slow, locales, request):
    accounts = {}
    for role in ("supervisor", "counsellor"):
        accounts[role] = (f"{role[0]}{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}")
        asyncio.run(create(slow.database_url, accounts[role][0], "พี่ฟ้า", accounts[role][1], role))
    user = f"seen-{uuid.uuid4().hex}"
    with rasa_stopped(slow, TIMEOUT_S + 2):
        reply, _ = post(slow, user, HELLO)
    assert reply["messages"][0]["sender"] == "holding"
    wait_until("the real answer", lambda: later(slow, user, reply["messages"][0]["cursor"]))

    chromium = request.getfixturevalue("browser")  # after asyncio.run: see that fixture
    supervisor = sign_in(chromium, slow.gateway_url, *accounts["supervisor"])
    banner = supervisor.locator('[data-testid="overloaded"]')
    banner.wait_for(state="visible")
    text = banner.text_content().strip()
    assert template(locales, "console_overloaded", "th").match(text), text
    assert "{" not in text and "ใน 5 นาทีที่ผ่านมา" in text
    supervisor.click('[data-testid="lang-en"]')
    wait_until("the banner in English", lambda: banner.text_content().strip().startswith("In"))
    assert template(locales, "console_overloaded", "en").match(banner.text_content().strip())

    counsellor = sign_in(chromium, slow.gateway_url, *accounts["counsellor"])
    counsellor.wait_for_timeout(1000)
    assert counsellor.locator('[data-testid="overloaded"]').is_hidden()
    assert counsellor.request.get("/console/api/health").status == 403
