"""Delete my data in the web chat, end to end: the question, "no", a typed "yes" that deletes
nothing, the pressed "yes" that erases the conversation, its messages, its case and Rasa's tracker;
a counsellor whose case disappears; and the page letting go of the old chat in a real browser.

LINE's rich-menu tile is tested in test_line.py, Telegram's /forget in test_telegram.py. Runs
against `stack` (trained model, Rasa, actions, gateway) on SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid

import httpx

from bot import forget
from bot.identity import user_key
from tests.gateway.conftest import Console
from tests.gateway.test_console_browser import TIMEOUT_S, browser, wait_until  # noqa: F401
from tests.gateway.test_line import conversation_id, kept_rows, rasa_user_events

ASK_FOR_A_PERSON = "ขอคุยกับคนจริงๆ ได้ไหม"


class WebChild:
    """A child in the web chat; `press` sends a button's payload the way the page does."""

    def __init__(self, stack) -> None:
        self.user = f"forget-{uuid.uuid4().hex[:8]}"
        self.key = user_key("test-secret", "webchat", self.user)  # the stack's USER_ID_SECRET
        self.client = httpx.Client(base_url=stack.gateway_url, timeout=30)

    def say(self, text: str) -> dict:
        return self._post({"user": self.user, "text": text})

    def press(self, payload: str) -> dict:
        return self._post({"user": self.user, "text": payload, "pressed": True})

    def _post(self, body: dict) -> dict:
        response = self.client.post("/webchat/messages", json=body)
        assert response.status_code == 200, response.text
        return response.json()


def question(locales, language: str, name: str = "utter_forget_confirm") -> dict:
    """The confirmation as the web chat's API returns it."""
    return {
        "text": locales.render(name, language, {"channel": "webchat"}).text,
        "buttons": [
            {"title": locales.text("ui_button_forget", language), "payload": forget.CONFIRMED},
            {"title": locales.text("ui_button_keep", language), "payload": forget.KEEP},
        ],
        "sender": "bot",
    }


def without_cursors(reply: dict) -> list[dict]:
    return [{k: v for k, v in m.items() if k != "cursor"} for m in reply["messages"]]


def test_web_chat_delete_my_data_asks_then_erases_everything(stack, locales):
    child = WebChild(stack)
    child.say("hello")
    conversation = conversation_id(stack, child.key)
    _, before = kept_rows(stack, child.key, conversation)
    assert rasa_user_events(stack, child.key)

    # The page's "Delete my data" asks first; the question is an ordinary stored turn.
    asked = child.press(forget.ASK)
    assert without_cursors(asked) == [question(locales, "en")]
    assert asked["messages"][0]["cursor"] and "forgotten" not in asked

    # "No" and a typed "yes" delete nothing, and never reach Rasa.
    kept = child.press(forget.KEEP)
    assert [m["text"] for m in kept["messages"]] == [
        locales.render("utter_nothing_deleted", "en", {"channel": "webchat"}).text
    ]
    assert without_cursors(child.say(forget.CONFIRMED)) == [question(locales, "en")]
    assert kept_rows(stack, child.key, conversation) == (1, before + 6)  # three turns of two
    assert len(rasa_user_events(stack, child.key)) == 1  # only "hello"

    # The pressed "yes": erased, and the answer is not stored (so it has no cursor).
    done = child.press(forget.CONFIRMED)
    assert done == {
        "messages": [
            {
                "text": locales.render("utter_forgotten", "en", {"channel": "webchat"}).text,
                "buttons": [],
                "sender": "bot",
            }
        ],
        "mode": "bot",
        "forgotten": True,
    }
    assert kept_rows(stack, child.key, conversation) == (0, 0)
    assert rasa_user_events(stack, child.key) == []
    later = child.client.get("/webchat/messages", params={"user": child.user, "after": 0})
    assert later.json() == {"messages": [], "mode": "bot"}

    # Pressed again (an old button on the page): nothing left to delete, the same answer.
    assert child.press(forget.CONFIRMED)["forgotten"] is True
    assert kept_rows(stack, child.key, conversation) == (0, 0)


def test_with_a_counsellor_on_the_case_the_child_is_told_and_the_console_copes(
    stack, locales, console, new_counsellor
):
    child = WebChild(stack)
    marker = f"เรื่องรูปค่ะ {uuid.uuid4().hex[:6]}"
    for words in (ASK_FOR_A_PERSON, "/affirm", marker, "/handoff_agree"):
        child.say(words)
    [case] = [c for c in console.get("/console/api/queue")["queued"] if marker in c["preview"]]
    assert console.post(f"/console/api/cases/{case['id']}/claim").status_code == 200
    conversation = conversation_id(stack, child.key)

    # The question says the counsellor's chat ends too; it is the bot's, not sent to the person.
    asked = child.press(forget.ASK)
    assert asked["mode"] == "assigned"
    assert without_cursors(asked) == [question(locales, "th", "utter_forget_confirm_handoff")]
    done = child.press(forget.CONFIRMED)
    assert done["forgotten"] is True and done["mode"] == "bot"
    assert [m["text"] for m in done["messages"]] == [
        locales.render("utter_forgotten", "th", {"channel": "webchat"}).text
    ]
    assert kept_rows(stack, child.key, conversation) == (0, 0)
    assert stack.query("select count(*) from cases where id = :id", {"id": case["id"]}) == [(0,)]

    # The counsellor's console: the case is gone, and acting on it is refused, not a crash.
    path = f"/console/api/cases/{case['id']}"
    assert console.client.get(path).status_code == 404
    assert console.post(f"{path}/reply", {"text": "ยังอยู่ไหมคะ"}).status_code == 404
    assert console.post(f"{path}/note", {"text": "note"}).status_code == 404
    assert (
        console.post(
            f"{path}/close", {"categories": ["violence.online_sexual_exploitation"]}
        ).status_code
        == 404
    )
    queue = console.get("/console/api/queue")
    assert case["id"] not in [c["id"] for c in queue["queued"] + queue["mine"]]

    # Supervisors read why in the audit log (no text of the child's).
    supervisor = Console(stack.gateway_url)
    assert supervisor.login(*new_counsellor("supervisor")).status_code == 303
    [erased] = [
        e
        for e in supervisor.get("/console/api/audit")
        if e["case_id"] == case["id"] and e["action"] == "erased"
    ]
    assert erased["who"] == "system"
    assert case["id"] not in [c["id"] for c in supervisor.get("/console/api/supervisor")["open"]]


def test_the_page_s_delete_my_data_leaves_nothing_of_the_old_chat(stack, locales, browser):  # noqa: F811
    context = browser.new_context(
        viewport={"width": 420, "height": 760}, base_url=stack.gateway_url, locale="en-US"
    )
    context.set_default_timeout(TIMEOUT_S * 1000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/")
    old_user = page.evaluate("localStorage.getItem('webchat-user')")
    control = page.locator("#forget")
    control.wait_for(state="visible")
    assert control.text_content() == locales.text("ui_forget", "en")  # the browser's language

    page.fill("#text", "hello")
    page.press("#text", "Enter")
    greeting = locales.render("utter_greet", "en", {}).text
    answers = page.locator("#log .msg.bot:not([data-greeting])")  # not the page's own greeting
    wait_until("the answer to hello", lambda: greeting in answers.all_text_contents())
    old_key = user_key("test-secret", "webchat", old_user)
    conversation = conversation_id(stack, old_key)

    control.click()
    yes = page.locator(f'#log .buttons button[data-payload="{forget.CONFIRMED}"]')
    yes.wait_for(state="visible")
    yes.click()
    goodbye = locales.render("utter_forgotten", "en", {"channel": "webchat"}).text
    wait_until(
        "only the goodbye on the page",
        lambda: page.locator("#log .msg").all_text_contents() == [goodbye],
    )
    new_user = page.evaluate("localStorage.getItem('webchat-user')")
    assert new_user and new_user != old_user
    left = page.evaluate("Object.keys(localStorage)")
    assert not [k for k in left if old_user in k], left
    assert kept_rows(stack, old_key, conversation) == (0, 0)

    # The next message starts a new conversation under the new id.
    page.fill("#text", "hello")
    page.press("#text", "Enter")
    wait_until(
        "a new greeting", lambda: len(page.locator("#log .msg.bot").all_text_contents()) == 2
    )
    conversation_id(stack, user_key("test-secret", "webchat", new_user))
    assert errors == []
    context.close()


def test_children_behind_an_erased_case_are_told_they_moved_up(stack, locales):
    first, second = WebChild(stack), WebChild(stack)
    for child in (first, second):
        for words in (ASK_FOR_A_PERSON, "/affirm", f"เรื่องรูปค่ะ {child.user}", "/handoff_agree"):
            child.say(words)
    place = "select c.last_position from cases c join conversations v on v.id = c.conversation_id"
    place += " where v.user_key = :key"
    [(behind,)] = stack.query(place, {"key": second.key})
    seen = second.client.get("/webchat/messages", params={"user": second.user, "after": 0})
    cursor = seen.json()["messages"][-1]["cursor"]

    first.press(forget.CONFIRMED)

    assert stack.query(place, {"key": second.key}) == [(behind - 1,)]
    later = second.client.get("/webchat/messages", params={"user": second.user, "after": cursor})
    [update] = later.json()["messages"]
    assert update["sender"] == "system"
    # The estimate depends on the queue's history; the place must be exactly one better.
    values = {"position": behind - 1, "minutes": "MINUTES"}
    before, after = locales.text("utter_handoff_queue_update", "th", values).split("MINUTES")
    assert update["text"].startswith(before) and update["text"].endswith(after)
