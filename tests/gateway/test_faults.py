"""Faults: a platform that refuses pushes, a gateway killed mid-handoff, Rasa gone mid-chat.
Nothing a counsellor writes is lost, nothing arrives out of order, no child is left unanswered."""

from __future__ import annotations

import os
import signal
import time
import uuid

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
        locales.text("utter_handoff_assigned", "th", {"name": "พี่ฝน"}),
        "ข้อความหนึ่ง",
        "ข้อความสอง",
    ]
    time.sleep(1)  # no second copy comes later
    assert len(up.to(user)) == 3
    # The queued child is still queued, and still in the console's queue.
    assert waiting.say("ยังรออยู่ค่ะ")["mode"] == "queued"
    assert case_of(console, other)["state"] == "queued"
