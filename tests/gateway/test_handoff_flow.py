"""The warm handoff end to end, without a browser: web chat, LINE and Telegram children reach a
counsellor through the console's API; the bot is silent while a person answers.

Runs against `stack` (trained model, Rasa, actions, gateway) and the platforms' stand-ins.
"""

from __future__ import annotations

import re
import time
import uuid

import httpx
import pytest

from bot.identity import user_key
from tests.gateway.conftest import FON, Console
from tests.gateway.test_line import PUSH, Line, install_handlers, new_token, postback, text
from tests.gateway.test_line import media as line_media
from tests.gateway.test_telegram import BotApi, Telegram, form, method, new_chat, press
from tests.gateway.test_telegram import text as telegram_text

ASK = "ขอคุยกับคนจริงๆ ได้ไหม"


def pattern(locales, name: str, language: str, **values: str) -> re.Pattern:
    """A response as a regular expression: numbers in `{position}`/`{minutes}` may be anything."""
    holes = {k: "\x00" for k in ("position", "minutes", "summary", "name", "hours", "days")}
    rendered = locales.render(name, language, {}, {**holes, **values})
    assert rendered is not None, name
    parts = [re.escape(p) for p in rendered.text.split("\x00")]
    return re.compile("(?s)" + "(.+?)".join(parts) + "$")


def said(locales, name: str, language: str, message: str, **values: str) -> bool:
    return bool(pattern(locales, name, language, **values).match(message))


class Child:
    """A child in the web chat, reading later messages by cursor like the page does."""

    def __init__(self, stack) -> None:
        self.user = f"child-{uuid.uuid4().hex[:8]}"
        self.client = httpx.Client(base_url=stack.gateway_url, timeout=30)
        self.cursor = 0

    def say(self, words: str) -> dict:
        response = self.client.post("/webchat/messages", json={"user": self.user, "text": words})
        assert response.status_code == 200, response.text
        reply = response.json()
        self.cursor = max([self.cursor] + [m["cursor"] for m in reply["messages"]])
        return reply

    def later(self, count: int = 1, timeout: float = 20) -> list[dict]:
        deadline, seen = time.monotonic() + timeout, []
        while len(seen) < count:
            assert time.monotonic() < deadline, f"only {seen}"
            answer = self.client.get(
                "/webchat/messages", params={"user": self.user, "after": self.cursor}
            ).json()
            for message in answer["messages"]:
                seen.append(message)
                self.cursor = message["cursor"]
            time.sleep(0.2)
        return seen


def case_of(console: Console, marker: str) -> dict:
    queued = console.get("/console/api/queue")["queued"]
    [case] = [c for c in queued if marker in c["preview"]]
    return case


def queue_for(child_reply_text_marker: str, child: Child) -> None:
    """Asks for a person, adds `marker` as the line the counsellor reads first, and agrees."""
    child.say(ASK)
    child.say(child_reply_text_marker)
    child.say("/handoff_agree")


def test_a_web_chat_child_reaches_a_counsellor_and_back(stack, locales, console, new_counsellor):
    child = Child(stack)
    # Asking is enough: the child sees at once what the counsellor will see, who reads the chat
    # and for how long it is kept, and agrees (or adds a line) first.
    summary = child.say(ASK)
    assert summary["mode"] == "offered"
    [shown] = summary["messages"]
    assert said(locales, "utter_handoff_summary", "th", shown["text"], days="30")
    assert locales.text("label_language_th", "th") in shown["text"]
    assert {b["payload"] for b in shown["buttons"]} == {"/handoff_agree", "/handoff_cancel"}

    marker = f"เรื่องรูปค่ะ {uuid.uuid4().hex[:6]}"
    again = child.say(marker)
    assert again["mode"] == "offered" and marker in again["messages"][0]["text"]

    queued = child.say("/handoff_agree")
    assert queued["mode"] == "queued"
    assert said(locales, "utter_handoff_queued", "th", queued["messages"][0]["text"])

    # The counsellor finds the case, claims it, and reads the summary the child agreed to.
    case = case_of(console, marker)
    assert case["language"] == "th" and case["channel"] == "webchat"
    assert console.post(f"/console/api/cases/{case['id']}/claim").status_code == 200
    other = Console(stack.gateway_url)
    assert other.login(*new_counsellor()).status_code == 303
    # A case a colleague holds is not theirs to see: answered like a missing case.
    assert other.post(f"/console/api/cases/{case['id']}/claim").status_code == 404

    view = console.get(f"/console/api/cases/{case['id']}")
    assert view["child_note"] == marker
    assert view["summary_text"] and view["summary_text"] in shown["text"]
    said_by_child = [(m["kind"], m["text"]) for m in view["transcript"] if m["sender"] == "user"]
    assert said_by_child[:2] == [("text", ASK), ("text", marker)]
    [joined] = child.later()
    assert joined["sender"] == "system"
    assert joined["text"] == locales.text("utter_handoff_assigned", "th", FON)

    # Counsellor words reach the child; the child's words reach the counsellor, not Rasa.
    assert console.post(f"/console/api/cases/{case['id']}/reply", {"text": "สวัสดีค่ะ"}).is_success
    [words] = child.later()
    assert (words["sender"], words["text"]) == ("counsellor", "สวัสดีค่ะ")
    silent = child.say("ขอบคุณค่ะ ตอนนี้ไม่รู้จะทำยังไง")
    assert silent == {"messages": [], "mode": "assigned"}
    transcript = console.get(f"/console/api/cases/{case['id']}")["transcript"]
    assert transcript[-1]["text"] == "ขอบคุณค่ะ ตอนนี้ไม่รู้จะทำยังไง"
    sender = user_key("test-secret", "webchat", child.user)
    tracker = httpx.get(
        f"{stack.rasa_url}/conversations/{sender}/tracker", params={"token": stack.rasa_token}
    ).json()
    rasa_heard = [e.get("text") for e in tracker["events"] if e["event"] == "user"]
    assert "ขอบคุณค่ะ ตอนนี้ไม่รู้จะทำยังไง" not in rasa_heard and marker not in rasa_heard

    # Closing needs one to three known categories; then the child is told and the bot answers
    # again.
    path = f"/console/api/cases/{case['id']}/close"
    for refused in ([], ["x"], ["violence.bullying"] * 2, ["violence.bullying", "x"], "x"):
        assert console.post(path, {"categories": refused}).status_code == 409, refused
    assert console.post(path, {}).status_code == 400
    closed = console.post(path, {"categories": ["violence.online_sexual_exploitation"]})
    assert closed.is_success
    ended, helped = child.later(2)
    assert ended["text"] == locales.text("utter_handoff_ended", "th")
    # "Did this help?", once, with two buttons; the answer is kept without text, once.
    assert helped["text"] == locales.text("utter_handoff_helped", "th")
    assert [b["payload"] for b in helped["buttons"]] == [
        "/handoff_helped_yes",
        "/handoff_helped_no",
    ]
    for payload in ("/handoff_helped_no", "/handoff_helped_yes"):
        thanks = child.say(payload)
        assert [m["text"] for m in thanks["messages"]] == [
            locales.text("utter_handoff_helped_thanks", "th")
        ]
    assert stack.query("SELECT helped FROM cases WHERE id = :c", {"c": case["id"]}) == [(False,)]
    back = child.say("สวัสดี")
    assert back["mode"] == "bot"
    assert [m["text"] for m in back["messages"]] == [locales.render("utter_greet", "th", {}).text]


def test_an_urgent_message_is_queued_at_once_and_the_child_can_say_no(stack, locales, chat):
    user = f"child-{uuid.uuid4().hex[:8]}"
    reply = chat(user, "ตอนนี้อยากตาย ไม่อยากอยู่แล้ว")
    assert reply["mode"] == "queued"
    texts = [m["text"] for m in reply["messages"]]
    assert any(said(locales, "utter_handoff_urgent_self_harm", "th", t) for t in texts)
    assert texts[0].startswith(locales.render("utter_urgent_self_harm", "th", {}).text[:20])
    cancelled = chat(user, "/handoff_cancel")
    assert cancelled["mode"] == "bot"
    assert [m["text"] for m in cancelled["messages"]] == [
        locales.text("utter_handoff_cancelled", "th")
    ]


def test_telling_and_asking_for_a_person_at_once_is_answered_in_one_reply(stack, locales):
    child = Child(stack)
    reply = child.say("พ่อเลี้ยงจับตัวหนูตอนกลางคืน ขอคุยกับคนจริงๆได้ไหม")
    assert reply["mode"] == "offered"
    first, shown = [m["text"] for m in reply["messages"]]
    assert first == locales.render("utter_abuse_disclosure_first", "th", {}).text
    assert said(locales, "utter_handoff_summary", "th", shown, days="30")
    assert locales.text("label_topic_abuse_disclosure", "th") in shown


def test_waiting_children_are_told_their_place_when_it_changes(stack, locales, console):
    first, second = Child(stack), Child(stack)
    marker = uuid.uuid4().hex[:6]
    queue_for(f"คนแรก {marker}", first)
    queue_for(f"คนที่สอง {marker}", second)
    kept = second.say("ยังรออยู่นะคะ")
    assert said(locales, "utter_handoff_message_kept", "th", kept["messages"][0]["text"])
    before = int(
        pattern(locales, "utter_handoff_message_kept", "th")
        .match(kept["messages"][0]["text"])
        .group(1)
    )
    case = case_of(console, f"คนแรก {marker}")
    assert console.post(f"/console/api/cases/{case['id']}/claim").is_success
    [update] = second.later()
    position = pattern(locales, "utter_handoff_queue_update", "th").match(update["text"])
    assert position and int(position.group(1)) == before - 1


def test_console_refuses_without_session_csrf_or_role(stack, console, new_counsellor):
    anonymous = httpx.Client(base_url=stack.gateway_url)
    assert anonymous.get("/console/api/queue").status_code == 401
    assert anonymous.get("/console", follow_redirects=False).status_code == 303
    no_csrf = console.client.post("/console/api/cases/1/claim")
    assert no_csrf.status_code == 403
    assert console.client.get("/console/api/audit").status_code == 403  # not a supervisor
    page = anonymous.get("/console/login")
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    cookie = console.client.cookies.jar
    assert all(c.has_nonstandard_attr("HttpOnly") for c in cookie if c.name == "console_session")


INLINE = re.compile(r"<style|<script(?![^>]*\ssrc=)|\sstyle=|\son[a-z]+=", re.IGNORECASE)
ASSET = re.compile(r'(?:src|href)="(/console/assets/[^"]+)"')
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def test_console_pages_run_only_their_own_files(stack, console, new_counsellor):
    """No inline script or style on any console page, so its policy allows none
    (bot/security.py), and every file a page names is served with its content type."""
    boss = Console(stack.gateway_url)
    assert boss.login(*new_counsellor(role="supervisor")).status_code == 303
    pages = [
        httpx.get(f"{stack.gateway_url}/console/login"),
        console.client.get("/console"),
        boss.client.get("/console/insights"),
    ]
    for page in pages:
        assert page.status_code == 200, page.request.url
        policy = page.headers["content-security-policy"]
        assert "'unsafe-inline'" not in policy, policy
        assert "script-src 'self';" in policy and "style-src 'self';" in policy, policy
        assert INLINE.findall(page.text) == [], page.request.url
        files = ASSET.findall(page.text)
        assert files, page.request.url
        for path in files:
            served = httpx.get(stack.gateway_url + path)
            assert served.status_code == 200, path
            assert served.headers["content-type"] == TYPES[path[path.rindex(".") :]], path
            assert served.headers["x-content-type-options"] == "nosniff"


def test_five_wrong_passwords_lock_the_account(stack, new_counsellor):
    username, password = new_counsellor()
    browser = Console(stack.gateway_url)
    for _ in range(5):
        assert browser.login(username, "wrong password!").status_code == 401
    locked = browser.login(username, password)
    assert locked.status_code == 401 and "15" in locked.text


def test_supervisors_see_everyone_and_the_audit_log(stack, console, new_counsellor):
    boss = Console(stack.gateway_url)
    assert boss.login(*new_counsellor(role="supervisor")).status_code == 303
    overview = boss.get("/console/api/supervisor")
    assert {"online", "open", "longest_wait_s"} <= overview.keys()
    assert len(overview["online"]) >= 2  # the supervisor and the `console` counsellor
    actions = {entry["action"] for entry in boss.get("/console/api/audit")}
    assert "login" in actions


@pytest.fixture
def line(stack, line_api):
    install_handlers(line_api)
    line_api.clear()
    line = Line(stack.gateway_url, line_api)
    yield line
    line.client.close()


def test_a_line_child_gets_counsellor_words_by_push_and_media_is_never_fetched(
    line, locales, console
):
    user = "U" + uuid.uuid4().hex
    marker = f"ไลน์ {uuid.uuid4().hex[:6]}"
    steps = [text(user, ASK, new_token()), text(user, marker)]
    steps.append(postback(user, "/handoff_agree"))
    line.send(*steps)
    line.replies_to(*[s["replyToken"] for s in steps])
    case = case_of(console, marker)
    assert case["channel"] == "line"
    assert console.post(f"/console/api/cases/{case['id']}/claim").is_success
    assert console.post(f"/console/api/cases/{case['id']}/reply", {"text": "พี่อยู่ตรงนี้นะ"}).is_success

    def pushed(calls) -> list[str]:
        return [
            m["text"]
            for c in calls
            if c.path == PUSH and c.json["to"] == user
            for m in c.json["messages"]
        ]

    calls = line.api.wait_for(lambda calls: len(pushed(calls)) >= 2, 30)
    assert pushed(calls) == [
        locales.text("utter_handoff_assigned", "th", FON),
        "พี่อยู่ตรงนี้นะ",
    ]
    picture = line_media(user, "image")
    line.send(picture)
    deadline = time.monotonic() + 20
    while console.get(f"/console/api/cases/{case['id']}")["transcript"][-1]["kind"] != "media":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert not [c for c in line.api.requests() if "/content" in c.path]
    assert not [
        c
        for c in line.api.requests()
        if c.json and c.json.get("replyToken") == picture["replyToken"]
    ]


@pytest.fixture
def telegram(stack, telegram_api, locales):
    api = BotApi(telegram_api)
    api.install()
    telegram_api.clear()
    telegram = Telegram(stack.gateway_url, api, locales)
    yield telegram
    telegram.client.close()


def test_a_telegram_child_gets_counsellor_words_in_their_chat(telegram, locales, console):
    chat = new_chat()
    marker = f"เทเลแกรม {uuid.uuid4().hex[:6]}"
    telegram.send(telegram_text(chat, ASK))
    telegram.wait(chat, 1)
    telegram.send(telegram_text(chat, marker))
    telegram.wait(chat, 2)
    summary_id = telegram.api.sent[chat][-1]
    telegram.send(press(chat, "/handoff_agree", summary_id))
    deadline = time.monotonic() + 30
    while not [c for c in console.get("/console/api/queue")["queued"] if marker in c["preview"]]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    case = case_of(console, marker)
    assert console.post(f"/console/api/cases/{case['id']}/claim").is_success
    assert console.post(f"/console/api/cases/{case['id']}/reply", {"text": "พี่อยู่ตรงนี้นะ"}).is_success
    deadline = time.monotonic() + 30
    while True:
        sent = [
            form(c)["text"]
            for c in telegram.api.standin.requests()
            if method(c) == "sendMessage" and form(c)["chat_id"] == str(chat)
        ]
        if sent and sent[-1] == "พี่อยู่ตรงนี้นะ":
            break
        assert time.monotonic() < deadline, sent
        time.sleep(0.2)
    assert sent[-2] == locales.text("utter_handoff_assigned", "th", FON)
