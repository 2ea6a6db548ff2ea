"""Faults: a platform that refuses pushes, a gateway killed mid-handoff, Rasa gone mid-chat.
Nothing a counsellor writes is lost, nothing arrives out of order, no child is left unanswered."""

from __future__ import annotations

import os
import signal
import time
import uuid

import psycopg
import pytest

from bot.identity import user_key
from tests.gateway.conftest import FON
from tests.gateway.test_handoff_flow import (
    ASK,
    Child,
    case_of,
    line,  # noqa: F401 (the fixture)
    queue_for,
)
from tests.gateway.test_line import PUSH, new_token, postback, text


class Accepting:
    """The stand-in's push handler while LINE is up: records what was accepted, for whom."""

    def __init__(self) -> None:
        self.accepted: list[tuple[str, str]] = []

    def __call__(self, call) -> tuple[int, dict]:
        self.accepted += [(call.json["to"], m["text"]) for m in call.json["messages"]]
        return 200, {"sentMessages": [{"id": "9"}]}

    def to(self, user: str) -> list[str]:
        return [words for to, words in self.accepted if to == user]


def test_refused_pushes_survive_a_killed_gateway_and_arrive_in_order(
    stack, line, locales, console  # noqa: F811
):
    user = "U" + uuid.uuid4().hex
    marker = f"ล่ม {uuid.uuid4().hex[:6]}"
    steps = [text(user, ASK, new_token()), postback(user, "/affirm"), text(user, marker)]
    steps.append(postback(user, "/handoff_agree"))
    line.send(*steps)
    line.replies_to(*[s["replyToken"] for s in steps])
    waiting = Child(stack)  # a second child, queued in the web chat, across the restart
    other = f"รอ {uuid.uuid4().hex[:6]}"
    queue_for(other, waiting)

    # LINE is down: the pushes are refused, the counsellor goes on writing.
    line.api.handlers[("POST", PUSH)] = lambda call: (500, {"message": "down"})
    case = case_of(console, marker)
    assert console.post(f"/console/api/cases/{case['id']}/claim").is_success
    for words in ("ข้อความหนึ่ง", "ข้อความสอง"):
        assert console.post(f"/console/api/cases/{case['id']}/reply", {"text": words}).is_success
    assert [c for c in line.api.requests() if c.path == PUSH and c.json["to"] == user]

    # The gateway dies without a chance to clean up, and comes back.
    gateway = stack.processes["gateway"]
    os.killpg(gateway.popen.pid, signal.SIGKILL)
    gateway.popen.wait()
    up = Accepting()
    line.api.handlers[("POST", PUSH)] = up
    stack.start(("gateway",))

    deadline = time.monotonic() + 60
    while len(up.to(user)) < 3:
        assert time.monotonic() < deadline, up.to(user)
        time.sleep(0.2)
    assert up.to(user) == [
        locales.text("utter_handoff_assigned", "th", FON),
        "ข้อความหนึ่ง",
        "ข้อความสอง",
    ]
    time.sleep(1)  # no second copy comes later
    assert len(up.to(user)) == 3
    # The queued child is still queued, and still in the console's queue.
    assert waiting.say("ยังรออยู่ค่ะ")["mode"] == "queued"
    assert case_of(console, other)["state"] == "queued"


def test_dropped_database_connections_lose_no_message(stack, chat, locales):
    """PostgreSQL closes every gateway connection between and during turns: each turn is still
    answered, and every turn is stored."""
    url = stack.env()["DATABASE_URL"]
    if not url.startswith("postgresql"):
        pytest.skip("dropping connections is a PostgreSQL fault (SQLite has none to drop)")
    database = url.rsplit("/", 1)[1]
    user = f"drop-{uuid.uuid4().hex[:8]}"
    answered = 0
    with psycopg.connect(url.rsplit("/", 1)[0] + "/test", autocommit=True) as admin:
        for words in ("สวัสดี", "แจ้งเรื่องได้ที่ไหน", "hello", "thank you", "สวัสดีค่ะ"):
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND application_name = 'gateway'",
                (database,),
            )
            reply = chat(user, words)
            answered += bool(reply["messages"]) and all(m["text"] for m in reply["messages"])
    assert answered == 5
    with psycopg.connect(url) as db:
        stored = db.execute(
            "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id"
            " WHERE c.user_key = %s AND m.sender = 'user'",
            (user_key("test-secret", "webchat", user),),
        ).fetchone()[0]
    assert stored == 5
