"""Telegram: webhook updates in, and exactly what the real python-telegram-bot sends to the Bot API
stand-in out.

End-to-end tests run against `stack` (trained model, Rasa, actions, gateway) with the gateway's
Bot pointed at the `telegram_api` stand-in (TELEGRAM_API_BASE_URL). Updates are handled after the
webhook is answered, so tests wait for the stand-in's calls. A chat's updates are handled strictly
in order, so a sticker sent last is a sentinel: once its answer is there, everything before it has
been handled, and "nothing else happened" can be asserted exactly.

The SDK posts form fields (JSON for objects and lists); `form()` reads them back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import random
import threading
import time
from urllib.parse import parse_qsl

import httpx
import pytest
from starlette.testclient import TestClient

from bot.app import create_app
from bot.channels.telegram import (
    ALLOWED_UPDATES,
    CLEAR,
    COMMANDS,
    FORGET,
    KEEP,
    TelegramChannel,
    command_of,
    telegram_messages,
)
from bot.config import Settings
from bot.identity import user_key
from bot.locales import Locales
from bot.message import Button, Outgoing
from bot.text_split import utf16_len
from scripts import telegram_webhook
from tests.gateway.conftest import TELEGRAM_SECRET, TELEGRAM_TOKEN, migrate
from tests.gateway.standin import Call, StandIn

API = f"/bot{TELEGRAM_TOKEN}/"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "KuiDaiNa", "username": "kuidaina_bot"}
JSON_FIELDS = {"reply_markup", "message_ids", "commands", "allowed_updates"}


@pytest.fixture(scope="module")
def locales() -> Locales:
    """The sentences the gateway under test loaded (LOCALES_DIR, else locales/)."""
    return Locales(Settings.from_env().locales_dir)


# -- building updates -----------------------------------------------------------------------------

_update_ids = itertools.count(random.randint(1, 1000) * 1000)
_message_ids = itertools.count(1)
_callback_ids = itertools.count(1)


def new_chat() -> int:
    return random.randint(10**8, 10**10)


def person(chat: int, language: str | None) -> dict:
    user = {"id": chat, "is_bot": False, "first_name": "Ploy"}
    return {**user, "language_code": language} if language else user


def private(chat: int) -> dict:
    return {"id": chat, "type": "private", "first_name": "Ploy"}


def update(**fields) -> dict:
    return {"update_id": next(_update_ids), **fields}


def message(chat: int, language: str | None = "th", age_s: float = 0, **content) -> dict:
    return {
        "message_id": next(_message_ids),
        "date": int(time.time() - age_s),
        "chat": private(chat),
        "from": person(chat, language),
        **content,
    }


def text(chat: int, words: str, language: str | None = "th", **extra) -> dict:
    return update(message=message(chat, language, text=words, **extra))


def command(chat: int, name: str, language: str | None = "th") -> dict:
    entity = {"type": "bot_command", "offset": 0, "length": len(name) + 1}
    return text(chat, f"/{name}", language, entities=[entity])


def press(chat: int, payload: str, on_message: int, language: str | None = "th") -> dict:
    """A button press on the bot's message `on_message`."""
    query = {
        "id": f"cb-{chat}-{next(_callback_ids)}",
        "from": person(chat, language),
        "chat_instance": "42",
        "data": payload,
        "message": {
            "message_id": on_message,
            "date": int(time.time()),
            "chat": private(chat),
            "from": BOT_USER,
            "text": "…",
        },
    }
    return update(callback_query=query)


FILE = {"file_id": "AgAD-file", "file_unique_id": "uniq"}
MEDIA = {
    "photo": {
        "photo": [{**FILE, "width": 90, "height": 90}, {**FILE, "width": 800, "height": 800}]
    },
    "video": {"video": {**FILE, "width": 640, "height": 360, "duration": 3}},
    "document": {"document": {**FILE, "file_name": "photo.zip", "file_size": 2048}},
    "voice": {"voice": {**FILE, "duration": 2}},
    "audio": {"audio": {**FILE, "duration": 60}},
    "video_note": {"video_note": {**FILE, "length": 240, "duration": 2}},
    "animation": {
        "animation": {**FILE, "width": 200, "height": 200, "duration": 1},
        "document": {**FILE},
    },
}
STICKER = {
    "sticker": {
        **FILE,
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    }
}


def media(chat: int, kind: str, language: str | None = "th", **extra) -> dict:
    content = STICKER if kind == "sticker" else MEDIA[kind]
    return update(message=message(chat, language, **content, **extra))


def form(call: Call) -> dict:
    """The request's form fields, with the SDK's JSON-encoded objects decoded."""
    fields = dict(parse_qsl(call.body.decode()))
    return {k: json.loads(v) if k in JSON_FIELDS else v for k, v in fields.items()}


def method(call: Call) -> str:
    return call.path.removeprefix(API)


# -- the stand-in of the Bot API ------------------------------------------------------------------


class BotApi:
    """Realistic Bot API answers, and what was sent to which chat."""

    def __init__(self, standin: StandIn) -> None:
        self.standin = standin
        self._ids = itertools.count(500_000)
        self._lock = threading.Lock()
        self.sent: dict[int, list[int]] = {}  # chat → ids of the bot's messages, in order
        self.delay: dict[int, float] = {}  # chat → seconds sendMessage takes
        self.blocked: set[int] = set()
        self.flooded: dict[int, int] = {}  # chat → how many sends flood control refuses first

    def install(self) -> None:
        handlers = self.standin.handlers
        handlers[("POST", API + "sendMessage")] = self.send_message
        handlers[("POST", API + "getMe")] = lambda call: ok(BOT_USER)
        for name in (
            "answerCallbackQuery",
            "deleteMessages",
            "leaveChat",
            "editMessageReplyMarkup",
            "setMyCommands",
            "setWebhook",
            "deleteWebhook",
        ):
            handlers[("POST", API + name)] = lambda call: ok(True)

    def send_message(self, call: Call) -> tuple[int, dict]:
        fields = form(call)
        chat = int(fields["chat_id"])
        time.sleep(self.delay.get(chat, 0))
        if chat in self.blocked:
            return 403, {
                "ok": False,
                "error_code": 403,
                "description": "Forbidden: bot was blocked by the user",
            }
        with self._lock:
            if self.flooded.get(chat):
                self.flooded[chat] -= 1
                return 429, {
                    "ok": False,
                    "error_code": 429,
                    "description": "Too Many Requests: retry after 1",
                    "parameters": {"retry_after": 1},
                }
            message_id = next(self._ids)
            self.sent.setdefault(chat, []).append(message_id)
        kind = "private" if chat > 0 else "group"
        result = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat, "type": kind},
            "from": BOT_USER,
            "text": fields["text"],
        }
        return ok(result)


def ok(result) -> tuple[int, dict]:
    return 200, {"ok": True, "result": result}


def sent_form(chat: int, reply: Outgoing) -> dict:
    """sendMessage's fields for one rendered response, written out independently of the adapter."""
    fields = {"chat_id": str(chat), "text": reply.text}
    if reply.buttons:
        rows = [[{"text": b.title, "callback_data": b.payload}] for b in reply.buttons]
        fields["reply_markup"] = {"inline_keyboard": rows}
    return fields


class Telegram:
    """Posts updates to the gateway's webhook and reads what reached the stand-in."""

    def __init__(self, gateway_url: str, api: BotApi, locales: Locales) -> None:
        self.api = api
        self.locales = locales
        self.client = httpx.Client(base_url=gateway_url, timeout=30)

    def post(self, body: bytes, secret: str | None = TELEGRAM_SECRET) -> httpx.Response:
        headers = {"content-type": "application/json"}
        if secret is not None:
            headers[SECRET_HEADER] = secret
        return self.client.post("/webhooks/telegram", content=body, headers=headers)

    def send(self, *updates: dict) -> None:
        """One webhook request per update, as Telegram sends them."""
        for one in updates:
            response = self.post(json.dumps(one, ensure_ascii=False).encode())
            assert response.status_code == 200, response.text

    def say(self, name: str, language: str) -> Outgoing:
        rendered = self.locales.render(name, language, {"channel": "telegram"})
        assert rendered is not None, f"{language}:{name}"
        return rendered

    def calls(self, chat: int) -> list[tuple[str, dict]]:
        """(method, fields) of every call about this chat, in order."""
        out = []
        for call in self.api.standin.requests(API):
            fields = form(call)
            query = fields.get("callback_query_id", "")
            if fields.get("chat_id") == str(chat) or query.startswith(f"cb-{chat}-"):
                out.append((method(call), fields))
        return out

    def settle(self, chat: int, timeout: float = 90) -> list[tuple[str, dict]]:
        """Sends a sticker as sentinel, waits for its answer; returns the chat's calls before it."""
        stickers = {self.say("utter_received_sticker", lang).text for lang in ("th", "en")}

        def answered() -> int:
            return sum(
                1 for m, f in self.calls(chat) if m == "sendMessage" and f["text"] in stickers
            )

        before = answered()
        self.send(media(chat, "sticker"))
        deadline = time.monotonic() + timeout
        while answered() <= before:
            assert time.monotonic() < deadline, f"no answer to the sentinel: {self.calls(chat)}"
            time.sleep(0.05)
        calls = self.calls(chat)
        assert calls[-1][0] == "sendMessage" and calls[-1][1]["text"] in stickers
        return calls[:-1]

    def wait(self, chat: int, count: int, timeout: float = 60) -> list[tuple[str, dict]]:
        deadline = time.monotonic() + timeout
        while len(self.calls(chat)) < count:
            assert time.monotonic() < deadline, f"only {self.calls(chat)}"
            time.sleep(0.05)
        return self.calls(chat)


@pytest.fixture
def telegram(stack, telegram_api, locales) -> Telegram:
    api = BotApi(telegram_api)
    api.install()
    telegram_api.clear()
    telegram = Telegram(stack.gateway_url, api, locales)
    yield telegram
    telegram.client.close()


def key_of(chat: int) -> str:
    return user_key("test-secret", "telegram", str(chat))


# -- conversations through the real model ---------------------------------------------------------


def test_a_thai_conversation_with_buttons(telegram):
    chat = new_chat()
    telegram.send(command(chat, "start", "th"))
    [(_, greeting)] = telegram.wait(chat, 1)
    welcome = telegram.say("utter_greet", "th")
    assert greeting == sent_form(chat, welcome)
    assert welcome.buttons  # the welcome's buttons came as an inline keyboard

    # Button presses are answered, then routed like their payload, in order.
    greeting_id = telegram.api.sent[chat][0]
    first = press(chat, "/talk_to_human", greeting_id)
    second = press(chat, "/handoff_cancel", greeting_id)
    telegram.send(first, second)
    story = text(chat, "มีคนขู่ว่าจะปล่อยรูปหนูถ้าไม่ส่งรูปเพิ่ม")
    telegram.send(story)
    calls = telegram.settle(chat)
    summary = calls[2][1]["text"]  # the person asked for: straight to the summary to approve
    assert summary.startswith(telegram.say("utter_handoff_summary", "th").text.split("{")[0])
    assert calls[:5] == [
        ("sendMessage", greeting),
        ("answerCallbackQuery", {"callback_query_id": first["callback_query"]["id"]}),
        ("sendMessage", calls[2][1]),
        ("answerCallbackQuery", {"callback_query_id": second["callback_query"]["id"]}),
        ("sendMessage", sent_form(chat, telegram.say("utter_handoff_cancelled", "th"))),
    ]
    guidance = calls[5:]
    thai = {t for language, _, t in telegram.locales.sentences() if language == "th"}
    assert guidance and all(m == "sendMessage" and f["text"] in thai for m, f in guidance)
    assert all(f["chat_id"] == str(chat) for _, f in guidance)


def test_an_english_conversation_with_commands(telegram):
    chat = new_chat()
    telegram.send(command(chat, "start", "en"))
    telegram.send(command(chat, "help", "en"))
    telegram.send(command(chat, "language", "en"))
    calls = telegram.settle(chat)
    choice = telegram.say("utter_choose_language", "en")
    assert calls == [
        ("sendMessage", sent_form(chat, telegram.say("utter_greet", "en"))),
        ("sendMessage", sent_form(chat, telegram.say("utter_routes_overview", "en"))),
        ("sendMessage", sent_form(chat, choice)),
    ]
    to_thai = [b.payload for b in choice.buttons if b.payload.endswith('"th"}')]
    assert to_thai == ['/choose_language{"language":"th"}']

    # The language buttons switch; /human then asks in Thai.
    telegram.api.standin.clear()
    switch = press(chat, to_thai[0], telegram.api.sent[chat][2], "en")
    telegram.send(switch, command(chat, "human", "en"))
    calls = telegram.wait(chat, 3)  # a sentinel would be read as a line added to the summary
    assert calls[:2] == [
        ("answerCallbackQuery", {"callback_query_id": switch["callback_query"]["id"]}),
        ("sendMessage", sent_form(chat, telegram.say("utter_language_changed", "th"))),
    ]
    [(sent, summary)] = calls[2:]
    assert sent == "sendMessage"
    assert summary["text"].startswith(
        telegram.say("utter_handoff_summary", "th").text.split("{")[0]
    )


def test_an_edited_message_is_read_as_a_new_message(telegram):
    chat = new_chat()
    original = message(chat, "en", text="hmm")
    edited = {**original, "text": "hello", "edit_date": int(time.time())}
    telegram.send(update(edited_message=edited))
    assert telegram.settle(chat) == [
        ("sendMessage", sent_form(chat, telegram.say("utter_greet", "en"))),
    ]


# -- /clear and /forget ---------------------------------------------------------------------------


def recorded_ids(stack, chat: int) -> list[int]:
    rows = stack.query(
        "select message_id from telegram_message_ids where user_key = :key", {"key": key_of(chat)}
    )
    return sorted(r[0] for r in rows)


def test_clear_deletes_the_chat_s_messages_after_a_confirmation(telegram, stack):
    chat = new_chat()
    hello = command(chat, "start", "en")
    old = media(chat, "sticker", "en", age_s=49 * 3600)  # too old for a bot to delete
    telegram.send(hello, old)
    clear = command(chat, "clear", "en")
    telegram.send(clear)
    calls = telegram.wait(chat, 3)
    greeting_id, old_reply_id, question_id = telegram.api.sent[chat]
    question = Outgoing(
        text=telegram.say("utter_clear_confirm", "en").text,
        buttons=(
            Button(telegram.locales.text("ui_button_clear", "en"), CLEAR),
            Button(telegram.locales.text("ui_button_keep", "en"), KEEP),
        ),
    )
    assert calls[2] == ("sendMessage", sent_form(chat, question))

    yes = press(chat, CLEAR, question_id, "en")
    telegram.send(yes)
    calls = telegram.wait(chat, 5)
    ids = [hello["message"]["message_id"], greeting_id, old_reply_id]
    ids += [clear["message"]["message_id"], question_id]
    notice = telegram.say("utter_cleared_partly", "en").text  # the old sticker stays
    assert calls[3:] == [
        ("deleteMessages", {"chat_id": str(chat), "message_ids": sorted(ids)}),
        ("answerCallbackQuery", {"callback_query_id": yes["callback_query"]["id"], "text": notice}),
    ]
    assert old["message"]["message_id"] not in ids

    assert recorded_ids(stack, chat) == [old["message"]["message_id"]]  # it is still there

    # Cleared again later: only what came since; the old sticker is still mentioned.
    telegram.api.standin.clear()
    again = command(chat, "clear", "en")
    telegram.send(again)
    telegram.wait(chat, 1)
    yes_again = press(chat, CLEAR, telegram.api.sent[chat][-1], "en")
    telegram.send(yes_again)
    ids = [again["message"]["message_id"], telegram.api.sent[chat][-1]]
    assert telegram.wait(chat, 3)[1:] == [
        ("deleteMessages", {"chat_id": str(chat), "message_ids": ids}),
        (
            "answerCallbackQuery",
            {"callback_query_id": yes_again["callback_query"]["id"], "text": notice},
        ),
    ]


def test_clear_in_a_new_chat_deletes_everything(telegram, stack):
    chat = new_chat()
    clear = command(chat, "clear", "th")
    telegram.send(clear)
    telegram.wait(chat, 1)
    question_id = telegram.api.sent[chat][0]
    yes = press(chat, CLEAR, question_id, "th")
    telegram.send(yes)
    ids = [clear["message"]["message_id"], question_id]
    assert telegram.wait(chat, 3)[1:] == [
        ("deleteMessages", {"chat_id": str(chat), "message_ids": ids}),
        (
            "answerCallbackQuery",
            {
                "callback_query_id": yes["callback_query"]["id"],
                "text": telegram.say("utter_cleared", "th").text,
            },
        ),
    ]
    assert recorded_ids(stack, chat) == []


def conversation_rows(stack, chat: int) -> tuple[int, int]:
    [(conversations,)] = stack.query(
        "select count(*) from conversations where user_key = :key", {"key": key_of(chat)}
    )
    [(messages,)] = stack.query(
        "select count(*) from messages join conversations c on c.id = conversation_id"
        " where c.user_key = :key",
        {"key": key_of(chat)},
    )
    return conversations, messages


def test_forget_deletes_what_is_stored_only_after_yes(telegram, stack):
    chat = new_chat()
    telegram.send(command(chat, "start", "en"), command(chat, "forget", "en"))
    telegram.wait(chat, 2)
    question_id = telegram.api.sent[chat][1]
    question = Outgoing(
        text=telegram.say("utter_forget_confirm", "en").text,
        buttons=(
            Button(telegram.locales.text("ui_button_forget", "en"), FORGET),
            Button(telegram.locales.text("ui_button_keep", "en"), KEEP),
        ),
    )
    assert telegram.calls(chat)[1] == ("sendMessage", sent_form(chat, question))

    # "No": the buttons go, a short notice, nothing is deleted.
    no = press(chat, KEEP, question_id, "en")
    telegram.send(no)
    calls = telegram.wait(chat, 4)
    assert calls[2:] == [
        ("editMessageReplyMarkup", {"chat_id": str(chat), "message_id": str(question_id)}),
        (
            "answerCallbackQuery",
            {
                "callback_query_id": no["callback_query"]["id"],
                "text": telegram.say("utter_nothing_deleted", "en").text,
            },
        ),
    ]
    # Typing the button's payload deletes nothing either.
    telegram.send(text(chat, FORGET, "en"))
    telegram.settle(chat)
    conversations, messages = conversation_rows(stack, chat)
    assert conversations == 1 and messages >= 4
    assert recorded_ids(stack, chat)

    telegram.api.standin.clear()
    yes = press(chat, FORGET, question_id, "en")
    telegram.send(yes)
    assert telegram.wait(chat, 3) == [
        ("editMessageReplyMarkup", {"chat_id": str(chat), "message_id": str(question_id)}),
        ("answerCallbackQuery", {"callback_query_id": yes["callback_query"]["id"]}),
        ("sendMessage", sent_form(chat, telegram.say("utter_forgotten", "en"))),
    ]
    time.sleep(0.3)
    assert conversation_rows(stack, chat) == (0, 0)
    assert recorded_ids(stack, chat) == []
    # Rasa's own record of the conversation is gone too.
    tracker = httpx.get(
        f"{stack.rasa_url}/conversations/{key_of(chat)}/tracker",
        params={"token": stack.rasa_token},
    ).json()
    assert [e for e in tracker["events"] if e["event"] == "user"] == []


def test_forget_as_the_first_message_is_asked_in_the_app_s_language(telegram, stack):
    chat = new_chat()  # the default language is Thai: an English app must change it
    telegram.send(command(chat, "forget", "en"))
    [(method, form)] = telegram.wait(chat, 1)
    assert method == "sendMessage"
    assert form["text"] == telegram.say("utter_forget_confirm", "en").text
    no = press(chat, KEEP, telegram.api.sent[chat][0], "en")
    telegram.send(no)
    assert telegram.wait(chat, 3)[2] == (
        "answerCallbackQuery",
        {
            "callback_query_id": no["callback_query"]["id"],
            "text": telegram.say("utter_nothing_deleted", "en").text,
        },
    )


# -- duplicates, refusals, what is never done -----------------------------------------------------


def test_a_duplicate_update_is_handled_once(telegram):
    chat = new_chat()
    hello = json.dumps(text(chat, "hello", "en")).encode()
    assert telegram.post(hello).status_code == 200
    assert telegram.post(hello).status_code == 200  # Telegram delivers it again
    assert telegram.settle(chat) == [
        ("sendMessage", sent_form(chat, telegram.say("utter_greet", "en"))),
    ]


def test_a_wrong_secret_and_malformed_bodies_are_refused_and_nothing_is_sent(telegram):
    chat = new_chat()
    body = json.dumps(text(chat, "hello", "en")).encode()
    assert telegram.post(body, secret=None).status_code == 401
    assert telegram.post(body, secret="").status_code == 401
    assert telegram.post(body, secret=TELEGRAM_SECRET + "x").status_code == 401
    assert telegram.post(body, secret=TELEGRAM_SECRET.upper()).status_code == 401
    assert telegram.post(b"{not json", secret="wrong").status_code == 401  # secret first
    malformed = (
        b"{not json",
        b"\xff\xfe{}",
        b"[]",
        b"{}",
        b'{"update_id": "7"}',
        b'{"update_id": 7, "message": 5}',
        b'{"update_id": 8, "message": {"message_id": 1}}',
        b'{"update_id": 9, "callback_query": {"id": "x"}}',
    )
    for bad in malformed:
        assert telegram.post(bad).status_code == 400, bad
    assert telegram.settle(chat) == []
    assert [method(c) for c in telegram.api.standin.requests()] == ["sendMessage"]


def test_media_is_never_downloaded_and_gets_a_kind_answer(telegram):
    chats = {kind: new_chat() for kind in [*MEDIA, "sticker"]}
    for kind, chat in chats.items():
        telegram.send(media(chat, kind))
    for kind, chat in chats.items():
        name = "utter_received_sticker" if kind == "sticker" else "utter_received_media"
        assert telegram.wait(chat, 1) == [
            ("sendMessage", sent_form(chat, telegram.say(name, "th")))
        ]

    # A caption's words are read; the picture is not opened.
    chat = new_chat()
    telegram.send(media(chat, "photo", "en", caption="hello"))
    assert telegram.settle(chat) == [
        ("sendMessage", sent_form(chat, telegram.say("utter_received_media", "th"))),
        ("sendMessage", sent_form(chat, telegram.say("utter_greet", "en"))),
    ]
    paths = {method(c) for c in telegram.api.standin.requests()}
    assert paths == {"sendMessage"}  # no getFile, no file download
    assert not [c for c in telegram.api.standin.requests() if "/file/" in c.path]


def group_chat(kind: str = "supergroup") -> dict:
    return {"id": -(10**12) - random.randint(1, 10**6), "type": kind, "title": "Class 3/2"}


def test_groups_and_channels_are_told_private_only_and_left(telegram):
    group = group_chat()
    in_group = message(0, "en", text="hi bot")
    in_group["chat"] = group
    telegram.send(update(message=in_group))
    private_only = telegram.say("utter_private_only", "en").text
    assert telegram.wait(group["id"], 2) == [
        ("sendMessage", {"chat_id": str(group["id"]), "text": private_only}),
        ("leaveChat", {"chat_id": str(group["id"])}),
    ]

    added = group_chat("group")
    membership = {
        "chat": added,
        "from": person(new_chat(), "th"),
        "date": int(time.time()),
        "old_chat_member": {"status": "left", "user": BOT_USER},
        "new_chat_member": {"status": "member", "user": BOT_USER},
    }
    telegram.send(update(my_chat_member=membership))
    assert telegram.wait(added["id"], 2) == [
        (
            "sendMessage",
            {"chat_id": str(added["id"]), "text": telegram.say("utter_private_only", "th").text},
        ),
        ("leaveChat", {"chat_id": str(added["id"])}),
    ]

    channel = group_chat("channel")
    post = {"message_id": 1, "date": int(time.time()), "chat": channel, "text": "news"}
    telegram.send(update(channel_post=post))
    assert [m for m, _ in telegram.wait(channel["id"], 2)] == ["sendMessage", "leaveChat"]

    # Being removed from a group needs nothing.
    removed = {**membership, "old_chat_member": membership["new_chat_member"]}
    removed["new_chat_member"] = {"status": "left", "user": BOT_USER}
    telegram.send(update(my_chat_member=removed))
    time.sleep(0.5)
    assert len(telegram.calls(added["id"])) == 2


def test_a_user_who_blocks_the_bot_is_unreachable(telegram, stack):
    chat = new_chat()
    telegram.send(command(chat, "start", "en"))
    telegram.wait(chat, 1)
    blocked = {
        "chat": private(chat),
        "from": person(chat, "en"),
        "date": int(time.time()),
        "old_chat_member": {"status": "member", "user": BOT_USER},
        "new_chat_member": {"status": "kicked", "user": BOT_USER, "until_date": 0},
    }
    telegram.send(update(my_chat_member=blocked))
    deadline = time.monotonic() + 10
    while True:
        row = stack.query_one(
            "select unreachable, address from conversations where user_key = :key",
            {"key": key_of(chat)},
        )
        if row == (1, None) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert row == (1, None)

    # A 403 from sendMessage means the same.
    other = new_chat()
    telegram.api.blocked.add(other)
    telegram.send(media(other, "sticker"))
    telegram.wait(other, 1)
    time.sleep(0.3)
    row = stack.query_one(
        "select unreachable, address from conversations where user_key = :key",
        {"key": key_of(other)},
    )
    assert row == (1, None)


def test_the_chat_id_is_stored_only_encrypted(telegram, stack):
    chat = new_chat()
    telegram.send(media(chat, "sticker"))
    telegram.wait(chat, 1)
    time.sleep(0.2)
    [(address,)] = stack.query(
        "select address from conversations where user_key = :key", {"key": key_of(chat)}
    )
    dump = stack.dump()
    assert address and str(chat) not in address
    assert str(chat) not in dump


def test_the_webhook_answers_before_the_update_is_handled(telegram):
    chat = new_chat()
    telegram.api.delay[chat] = 2.0
    telegram.client.get("/healthz")
    started = time.perf_counter()
    telegram.send(media(chat, "sticker"))
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, elapsed  # answering took less than the one send the update needs
    assert telegram.wait(chat, 1)[0][0] == "sendMessage"


# -- in-process: a restart, polling, pushes, the webhook script -----------------------------------


@pytest.fixture
def app_settings(tmp_path, telegram_api) -> Settings:
    database_url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate(database_url)
    BotApi(telegram_api).install()
    telegram_api.clear()
    return dataclasses.replace(
        Settings.from_env(),
        database_url=database_url,
        rasa_url="http://127.0.0.1:9",  # stickers and media never reach Rasa
        user_id_secret="test-secret",
        line_channel_secret="",
        line_channel_access_token="",
        telegram_bot_token=TELEGRAM_TOKEN,
        telegram_webhook_secret=TELEGRAM_SECRET,
        telegram_mode="webhook",
        telegram_api_base_url=telegram_api.url,
        public_base_url="https://gateway.example.org/",
    )


def post_in_process(client: TestClient, *updates: dict) -> None:
    for one in updates:
        response = client.post(
            "/webhooks/telegram", json=one, headers={SECRET_HEADER: TELEGRAM_SECRET}
        )
        assert response.status_code == 200, response.text


def sends(api: StandIn) -> list[dict]:
    return [form(c) for c in api.requests(API + "sendMessage")]


def test_a_duplicate_after_a_restart_is_dropped(app_settings, telegram_api):
    chat = new_chat()
    sticker, sentinel = media(chat, "sticker"), media(chat, "photo")
    with TestClient(create_app(app_settings)) as client:
        post_in_process(client, sticker)
    with TestClient(create_app(app_settings)) as client:  # a new process on the same database
        post_in_process(client, sticker, sentinel)
    texts = [f["text"] for f in sends(telegram_api)]
    assert texts == [
        Locales(app_settings.locales_dir).text("utter_received_sticker", "th"),
        Locales(app_settings.locales_dir).text("utter_received_media", "th"),
    ]


def test_polling_feeds_the_same_path_and_moves_the_offset(app_settings, telegram_api, caplog):
    caplog.set_level(logging.DEBUG, logger="bot")
    chat = new_chat()
    first, second = media(chat, "sticker"), media(chat, "voice", caption="my secret words")
    batches = [[first], [first, second]]  # Telegram sends `first` again: not confirmed yet

    def get_updates(call: Call) -> tuple[int, dict]:
        time.sleep(0.05)
        return ok(batches.pop(0) if batches else [])

    telegram_api.handlers[("POST", API + "getUpdates")] = get_updates
    settings = dataclasses.replace(app_settings, telegram_mode="polling")
    with TestClient(create_app(settings)) as client:
        deadline = time.monotonic() + 20
        while len(sends(telegram_api)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        refused = client.post(
            "/webhooks/telegram", json=first, headers={SECRET_HEADER: TELEGRAM_SECRET}
        )
        assert refused.status_code == 404
    locales = Locales(settings.locales_dir)
    assert [f["text"] for f in sends(telegram_api)] == [
        locales.text("utter_received_sticker", "th"),
        locales.text("utter_received_media", "th"),
        locales.text("utter_fallback", "en"),  # the caption went to Rasa, which is not running
    ]
    polls = [c for c in telegram_api.requests(API) if method(c) in ("deleteWebhook", "getUpdates")]
    assert method(polls[0]) == "deleteWebhook"
    offsets = [form(c).get("offset") for c in polls[1:4]]
    assert offsets == [None, str(first["update_id"] + 1), str(second["update_id"] + 1)]
    assert form(polls[1])["timeout"] == "30"
    assert form(polls[1])["allowed_updates"] == list(ALLOWED_UPDATES)
    assert not [c for c in telegram_api.requests() if "getFile" in c.path or "/file/" in c.path]
    # Privacy: no message text, chat id or token in the gateway's log.
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("my secret words", str(chat), TELEGRAM_TOKEN):
        assert secret not in logged


def test_flood_control_is_waited_out_once(app_settings, telegram_api):
    api = BotApi(telegram_api)
    api.install()
    patient, unlucky = new_chat(), new_chat()
    api.flooded[patient] = 1
    api.flooded[unlucky] = 2
    with TestClient(create_app(app_settings)) as client:
        post_in_process(client, media(patient, "sticker"), media(unlucky, "sticker"))
    attempts = [int(f["chat_id"]) for f in sends(telegram_api)]
    # The second refusal leaves the answer to the push outbox, which sends it when flood
    # control lets it: each child gets the answer once.
    assert sorted(attempts) == sorted([patient, patient, unlucky, unlucky, unlucky])
    assert {chat: len(ids) for chat, ids in api.sent.items()} == {patient: 1, unlucky: 1}


def test_a_push_by_key_uses_the_sealed_chat_id(app_settings, telegram_api):
    chat = new_chat()
    with TestClient(create_app(app_settings)) as client:
        channel = client.app.state.channels["telegram"]
        post_in_process(client, media(chat, "sticker"))
        telegram_api.wait_for(lambda calls: len(sends(telegram_api)) == 1)
        time.sleep(0.2)
        assert client.portal.call(channel.push, key_of(chat), [Outgoing(text="hi")], "test:1")
        assert not client.portal.call(
            channel.push, key_of(new_chat()), [Outgoing(text="hi")], "test:2"
        )
    assert sends(telegram_api)[1] == {"chat_id": str(chat), "text": "hi"}


def test_the_webhook_and_command_menus_are_registered(app_settings, telegram_api, locales):
    asyncio.run(telegram_webhook.register(app_settings, locales))
    calls = [(method(c), form(c)) for c in telegram_api.requests()]
    assert calls[0][0] == "getMe"  # the token is checked first

    def menu(language: str) -> list[dict]:
        return [
            {"command": name, "description": locales.text(f"ui_command_{name}", language)}
            for name in COMMANDS
        ]

    assert calls[1:] == [
        ("setMyCommands", {"commands": menu("en"), "language_code": "en"}),
        ("setMyCommands", {"commands": menu("th"), "language_code": "th"}),
        ("setMyCommands", {"commands": menu("th")}),  # every other app language: Thai
        (
            "setWebhook",
            {
                "url": "https://gateway.example.org/webhooks/telegram",
                "secret_token": TELEGRAM_SECRET,
                "allowed_updates": list(ALLOWED_UPDATES),
            },
        ),
    ]
    assert all(c.path.startswith(API) for c in telegram_api.requests())


def test_the_webhook_script_refuses_without_https_or_secret(app_settings, tmp_path):
    with pytest.raises(telegram_webhook.SetupError, match="https"):
        telegram_webhook.webhook_url(dataclasses.replace(app_settings, public_base_url=""))
    with pytest.raises(telegram_webhook.SetupError, match="SECRET"):
        telegram_webhook.webhook_url(dataclasses.replace(app_settings, telegram_webhook_secret=""))
    (tmp_path / "th.yml").write_text('{"language": "th", "responses": {}}')
    with pytest.raises(telegram_webhook.SetupError, match="ui_command_start"):
        telegram_webhook.menus(Locales(tmp_path), "th")


# -- rendering for Telegram's limits --------------------------------------------------------------


def keyboard_of(markup) -> list[list[tuple[str, str]]]:
    return [[(b.text, b.callback_data) for b in row] for row in markup.inline_keyboard]


def test_long_texts_are_split_within_telegram_limits_without_breaking_thai():
    long_thai = "น้ำใจ " * 2000  # 12,000 characters with combining marks
    buttons = (Button("ใช่", "/affirm"),)
    messages = telegram_messages([Outgoing(text=long_thai, buttons=buttons)])
    assert len(messages) == 3
    assert all(utf16_len(t) <= 4096 for t, _ in messages)
    assert "".join(t.replace(" ", "") for t, _ in messages) == long_thai.replace(" ", "")
    assert [m is not None for _, m in messages] == [False, False, True]
    for piece, _ in messages:
        assert piece[0] not in "\u0e31\u0e34\u0e35\u0e36\u0e37\u0e47\u0e48\u0e49\u0e33"
    emoji = "🙏" * 3000  # 6,000 UTF-16 units
    assert all(utf16_len(t) <= 4096 for t, _ in telegram_messages([Outgoing(text=emoji)]))


def test_each_reply_keeps_its_own_buttons_and_bad_payloads_are_left_out():
    replies = [
        Outgoing(text="หนึ่ง", buttons=(Button("ก", "/affirm"), Button("ก อีก", "/affirm"))),
        Outgoing(text="สอง"),
        Outgoing(text="", buttons=(Button("ข", "/deny"), Button("ยาว", "/" + "x" * 64))),
    ]
    messages = telegram_messages(replies)
    assert [t for t, _ in messages] == ["หนึ่ง", "สอง"]
    assert keyboard_of(messages[0][1]) == [[("ก", "/affirm")]]
    assert keyboard_of(messages[1][1]) == [[("ข", "/deny")]]


def test_commands_are_recognised():
    assert command_of("/start") == "start"
    assert command_of("/HELP@kuidaina_bot please") == "help"
    assert command_of('/choose_language{"language":"th"}') is None
    assert command_of("hello /start") is None


def test_mode_must_be_webhook_or_polling(app_settings):
    with pytest.raises(ValueError, match="TELEGRAM_MODE"):
        TelegramChannel(dataclasses.replace(app_settings, telegram_mode="push"))
