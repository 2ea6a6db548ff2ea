"""LINE: signed webhooks in, and exactly what the real SDK sends to the LINE stand-in out.

End-to-end tests run against `stack` (trained model, Rasa, actions, gateway) with the gateway's
LINE SDK pointed at the `line_api` stand-in. Events are processed after the webhook is answered,
so tests wait for the stand-in's calls. "Nothing happened" is proved by a sentinel: a later event
of the same user, which is processed strictly after the earlier ones.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import hmac
import io
import json
import logging
import threading
import time
import uuid

import httpx
import pytest
from PIL import Image

from bot import forget
from bot.app import create_app
from bot.channels.line import LANGUAGE_TOGGLE, line_messages
from bot.config import Settings
from bot.identity import user_key
from bot.locales import Locales
from bot.message import Button, Outgoing
from bot.text_split import truncate, utf16_len
from scripts import line_richmenu
from tests.gateway.conftest import LINE_SECRET, LINE_TOKEN, ROOT, migrate
from tests.gateway.standin import LINE_LOADING, LINE_MARK_READ, LINE_STATUS, Call, StandIn

REPLY = "/v2/bot/message/reply"
PUSH = "/v2/bot/message/push"


# -- building and sending webhooks --------------------------------------------------------------


def sign(body: bytes, secret: str = LINE_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def new_user() -> str:
    return "U" + uuid.uuid4().hex


def new_token(prefix: str = "tok") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def event(kind: str, user: str, age_s: float = 0, **fields) -> dict:
    return {
        "type": kind,
        "mode": "active",
        "timestamp": int((time.time() - age_s) * 1000),
        "source": {"type": "user", "userId": user},
        "webhookEventId": uuid.uuid4().hex.upper(),
        "deliveryContext": {"isRedelivery": False},
        **fields,
    }


def text(user: str, words: str, token: str | None = None, **extra) -> dict:
    message = {"type": "text", "id": uuid.uuid4().hex[:12], "quoteToken": "q", "text": words}
    return event("message", user, replyToken=token or new_token(), message=message, **extra)


def postback(user: str, data: str, token: str | None = None) -> dict:
    return event("postback", user, replyToken=token or new_token(), postback={"data": data})


def media(user: str, kind: str, token: str | None = None) -> dict:
    message = {"type": kind, "id": uuid.uuid4().hex[:12], "quoteToken": "q"}
    if kind == "sticker":
        message.update(packageId="11537", stickerId="52002734", stickerResourceType="STATIC")
    elif kind == "file":
        message.update(fileName="photo.zip", fileSize=2048)
    else:
        message.update(contentProvider={"type": "line"}, duration=1000)
    return event("message", user, replyToken=token or new_token(), message=message)


def envelope(*events: dict) -> bytes:
    return json.dumps({"destination": "Ubot", "events": list(events)}, ensure_ascii=False).encode()


def token_of(call: Call) -> str:
    return call.json["replyToken"]


class Line:
    """Posts signed webhooks to the gateway and reads what reached the stand-in."""

    def __init__(self, gateway_url: str, api: StandIn) -> None:
        self.api = api
        self.client = httpx.Client(base_url=gateway_url, timeout=30)

    def post(self, body: bytes, signature: str | None = None) -> httpx.Response:
        headers = {"content-type": "application/json"}
        headers["x-line-signature"] = sign(body) if signature is None else signature
        return self.client.post("/webhooks/line", content=body, headers=headers)

    def send(self, *events: dict) -> None:
        response = self.post(envelope(*events))
        assert response.status_code == 200, response.text

    def replies_to(self, *tokens: str, timeout: float = 60) -> list[Call]:
        """The reply calls for these tokens, once each has arrived."""

        def done(calls: list[Call]) -> bool:
            seen = {token_of(c) for c in calls if c.path == REPLY}
            return set(tokens) <= seen

        calls = self.api.wait_for(done, timeout)
        return [c for t in tokens for c in calls if c.path == REPLY and token_of(c) == t]

    def calls(self) -> list[Call]:
        """What reached the stand-in, but the loading animations and read marks (tested alone)."""
        return self.api.without_line_status()


def reply_ok(call: Call) -> tuple[int, dict]:
    if token_of(call).startswith("expired"):
        return 400, {"message": "Invalid reply token"}
    return 200, {"sentMessages": [{"id": "1", "quoteToken": "q"}]}


def install_handlers(api: StandIn) -> None:
    api.handlers[("POST", REPLY)] = reply_ok
    api.handlers[("POST", PUSH)] = lambda call: (200, {"sentMessages": [{"id": "2"}]})
    api.answer_line_status()


@pytest.fixture
def line(stack, line_api) -> Line:
    install_handlers(line_api)
    line_api.clear()
    line = Line(stack.gateway_url, line_api)
    yield line
    line.client.close()


# -- what LINE must receive ---------------------------------------------------------------------


# Responses the gateway's router says itself (no Rasa turn, so no channel in their context).
ROUTER_SAYS = {
    "utter_received_sticker",
    "utter_received_media",
    "utter_empty_message",
    "utter_fallback",
}


def bubbles(locales: Locales, language: str, *names: str) -> list[dict]:
    """The LINE messages for these responses, written out independently of the adapter."""
    rendered = [
        locales.render(n, language, {} if n in ROUTER_SAYS else {"channel": "line"}) for n in names
    ]
    assert all(rendered), names
    messages = [{"type": "text", "text": r.text} for r in rendered]
    buttons = list({b.payload: b for r in rendered for b in r.buttons}.values())[:13]
    if buttons:
        messages[-1]["quickReply"] = quick_reply(buttons)
    return messages


def quick_reply(buttons: list[Button]) -> dict:
    """Buttons as LINE quick replies: postbacks that show the title as the child's message."""
    items = [
        {
            "type": "action",
            "action": {
                "type": "postback",
                "label": truncate(b.title, 20),
                "data": b.payload,
                "displayText": b.title,
            },
        }
        for b in buttons
    ]
    return {"items": items}


def reply_body(token: str, messages: list[dict]) -> dict:
    return {"replyToken": token, "messages": messages, "notificationDisabled": False}


def push_body(user: str, messages: list[dict]) -> dict:
    return {"to": user, "messages": messages, "notificationDisabled": False}


def conversation(stack, user: str) -> tuple[int, str | None]:
    """(unreachable, address) of a LINE user's conversation in the running gateway's database."""
    key = user_key("test-secret", "line", user)  # USER_ID_SECRET of the `stack` fixture
    query = "select unreachable, address from conversations where user_key = :key"
    return stack.query_one(query, {"key": key})


# -- conversations through the real model -------------------------------------------------------


def test_a_thai_conversation_end_to_end(line, locales):
    user = new_user()
    hello, person, yes, story = new_token(), new_token(), new_token(), new_token()
    line.send(text(user, "สวัสดีค่ะ", hello))
    [greeting] = line.replies_to(hello)
    assert greeting.json == reply_body(hello, bubbles(locales, "th", "utter_greet"))
    assert greeting.headers["Authorization"] == f"Bearer {LINE_TOKEN}"

    # Button presses arrive as postbacks; several events of one user are answered in order.
    line.send(postback(user, "/talk_to_human", person), postback(user, "/handoff_cancel", yes))
    summary, cancelled = line.replies_to(person, yes)
    head = locales.text("utter_handoff_summary", "th").split("{")[0]
    assert summary.json["messages"][0]["text"].startswith(head)  # asked: straight to the summary
    assert cancelled.json == reply_body(yes, bubbles(locales, "th", "utter_handoff_cancelled"))

    line.send(text(user, "มีคนขู่ว่าจะปล่อยรูปหนูถ้าไม่ส่งรูปเพิ่ม", story))
    [guidance] = line.replies_to(story)
    thai = {t for language, _, t in locales.sentences() if language == "th"}
    sent = [m["text"] for m in guidance.json["messages"]]
    assert sent and all(t in thai for t in sent), sent
    assert not [c for c in line.calls() if c.path == PUSH]


def test_an_english_conversation_starts_from_the_follow_welcome(line, locales, line_api):
    user = new_user()
    line_api.handlers[("GET", f"/v2/bot/profile/{user}")] = lambda call: (
        200,
        {"displayName": "A", "userId": user, "language": "en-US"},
    )
    follow, report, switch = new_token(), new_token(), new_token()
    line.send(event("follow", user, replyToken=follow, follow={"isUnblocked": False}))
    [welcome] = line.replies_to(follow)
    assert welcome.json == reply_body(follow, bubbles(locales, "en", "utter_greet"))

    line.send(postback(user, "/report_help", report))
    [routes] = line.replies_to(report)
    assert routes.json == reply_body(report, bubbles(locales, "en", "utter_routes_overview"))

    # The rich menu's ภาษา/Language area switches to the other language.
    line.send(postback(user, LANGUAGE_TOGGLE, switch))
    [changed] = line.replies_to(switch)
    assert changed.json == reply_body(switch, bubbles(locales, "th", "utter_language_changed"))


def test_follow_without_a_profile_language_is_welcomed_in_thai(line, locales, line_api):
    user, follow = new_user(), new_token()
    profile = {"displayName": "A", "userId": user}  # no language: not consented to share it
    line_api.handlers[("GET", f"/v2/bot/profile/{user}")] = lambda call: (200, profile)
    line.send(event("follow", user, replyToken=follow, follow={"isUnblocked": False}))
    [welcome] = line.replies_to(follow)
    assert welcome.json == reply_body(follow, bubbles(locales, "th", "utter_greet"))


# -- delete my data -------------------------------------------------------------------------------


def rasa_user_events(stack, key: str) -> list[dict]:
    """What the user said, as Rasa's tracker store still has it."""
    tracker = httpx.get(
        f"{stack.rasa_url}/conversations/{key}/tracker", params={"token": stack.rasa_token}
    ).json()
    return [e for e in tracker["events"] if e["event"] == "user"]


def conversation_id(stack, key: str) -> int:
    [(found,)] = stack.query("select id from conversations where user_key = :key", {"key": key})
    return found


def kept_rows(stack, key: str, conversation: int) -> tuple[int, int]:
    """(conversations of this user, messages of their old conversation) in the gateway's DB."""
    [(conversations,)] = stack.query(
        "select count(*) from conversations where user_key = :key", {"key": key}
    )
    [(messages,)] = stack.query(
        "select count(*) from messages where conversation_id = :id", {"id": conversation}
    )
    return conversations, messages


def test_delete_my_data_from_the_rich_menu_erases_everything_after_a_pressed_yes(
    line, locales, stack
):
    user = new_user()
    key = user_key("test-secret", "line", user)  # USER_ID_SECRET of the `stack` fixture
    hello = new_token()
    line.send(text(user, "hello", hello))
    line.replies_to(hello)
    conversation = conversation_id(stack, key)
    assert rasa_user_events(stack, key)

    # The menu's tile asks first, with the two buttons as quick replies.
    yes = Button(locales.text("ui_button_forget", "en"), forget.CONFIRMED)
    keep = Button(locales.text("ui_button_keep", "en"), forget.KEEP)
    asked = {
        "type": "text",
        "text": locales.render("utter_forget_confirm", "en", {"channel": "line"}).text,
        "quickReply": quick_reply([yes, keep]),
    }
    tile, no, typed = new_token(), new_token(), new_token()
    line.send(postback(user, forget.ASK, tile))
    [question] = line.replies_to(tile)
    assert question.json == reply_body(tile, [asked])

    # "No", and a "yes" typed instead of pressed, delete nothing.
    line.send(postback(user, forget.KEEP, no), text(user, forget.CONFIRMED, typed))
    kept, asked_again = line.replies_to(no, typed)
    assert kept.json == reply_body(no, bubbles(locales, "en", "utter_nothing_deleted"))
    assert asked_again.json == reply_body(typed, [asked])
    assert kept_rows(stack, key, conversation)[0] == 1

    # The pressed "yes": everything goes, and the child is told so (nothing of it is stored).
    done = new_token()
    line.send(postback(user, forget.CONFIRMED, done))
    [goodbye] = line.replies_to(done)
    assert goodbye.json == reply_body(done, bubbles(locales, "en", "utter_forgotten"))
    assert kept_rows(stack, key, conversation) == (0, 0)
    assert rasa_user_events(stack, key) == []
    assert not [c for c in line.calls() if c.path == PUSH]


# -- reply token, push, duplicates ---------------------------------------------------------------


def test_an_expired_reply_token_falls_back_to_a_push(line, locales):
    user, expired = new_user(), new_token("expired")
    line.send(text(user, "hello", expired))
    line.api.wait_for(lambda calls: any(c.path == PUSH for c in calls))
    calls = line.calls()
    expected = bubbles(locales, "en", "utter_greet")
    assert [(c.method, c.path) for c in calls] == [("POST", REPLY), ("POST", PUSH)]
    assert calls[0].json == reply_body(expired, expected)
    assert calls[1].json == push_body(user, expected)
    assert uuid.UUID(calls[1].headers["X-Line-Retry-Key"])


def test_an_event_too_old_for_its_reply_token_is_pushed_without_trying(line, locales):
    user = new_user()
    line.send(text(user, "hello", age_s=120))
    line.api.wait_for(lambda calls: any(c.path == PUSH for c in calls))
    calls = line.calls()
    assert [(c.method, c.path) for c in calls] == [("POST", PUSH)]
    assert calls[0].json == push_body(user, bubbles(locales, "en", "utter_greet"))


def test_a_duplicate_delivery_gets_one_reply(line, locales):
    user, token, sentinel = new_user(), new_token(), new_token()
    first = text(user, "hello", token)
    body = envelope(first)
    assert line.post(body).status_code == 200
    assert line.post(body).status_code == 200  # the same request again
    redelivery = {**first, "deliveryContext": {"isRedelivery": True}}
    line.send(redelivery)
    line.send(media(user, "sticker", sentinel))
    line.replies_to(token, sentinel)
    replies = [c for c in line.calls() if c.path == REPLY]
    assert [token_of(c) for c in replies] == [token, sentinel]
    assert replies[0].json == reply_body(token, bubbles(locales, "en", "utter_greet"))


# -- refusals and events without a conversation --------------------------------------------------


def test_bad_signatures_and_malformed_bodies_are_refused_and_nothing_is_sent(line, locales):
    user = new_user()
    body = envelope(text(user, "hello"))
    assert line.post(body, signature="").status_code == 401
    assert line.post(body, signature=sign(body, "not-the-secret")).status_code == 401
    assert line.post(body + b" ", signature=sign(body)).status_code == 401  # body changed
    for malformed in (b"{not json", b"[]", b'{"events": 5}', b'{"events": ["x"]}', b"{}"):
        assert line.post(malformed).status_code == 400, malformed
    assert line.post(b"\xff\xfe{}", signature="x").status_code == 400  # not UTF-8
    assert line.post(b"{not json", signature=sign(b"other")).status_code == 401

    sentinel = new_token()
    line.send(media(user, "sticker", sentinel))
    line.replies_to(sentinel)
    assert [token_of(c) for c in line.calls()] == [sentinel]


def test_unknown_and_foreign_events_are_ignored_without_error(line):
    user, sentinel = new_user(), new_token()
    unknown = event("somethingNew", user, replyToken=new_token(), surprise={"x": 1})
    beacon = event("beacon", user, replyToken=new_token(), beacon={"hwid": "d4", "type": "enter"})
    group = text(user, "hello")
    group["source"] = {"type": "group", "groupId": "C123", "userId": user}
    standby = text(user, "hello", mode="standby")
    unsend = event("unsend", user, unsend={"messageId": "325708"})
    response = line.post(envelope(unknown, beacon, group, standby, unsend))
    assert response.status_code == 200, response.text
    line.send(media(user, "sticker", sentinel))
    line.replies_to(sentinel)
    assert [token_of(c) for c in line.calls()] == [sentinel]


def test_a_sticker_gets_a_kind_reply(line, locales):
    user, token = new_user(), new_token()
    line.send(media(user, "sticker", token))
    [reply] = line.replies_to(token)
    assert reply.json == reply_body(token, bubbles(locales, "th", "utter_received_sticker"))


def test_images_videos_audio_and_files_are_never_downloaded(line, locales):
    tokens = {kind: new_token() for kind in ("image", "video", "audio", "file")}
    line.send(*[media(new_user(), kind, token) for kind, token in tokens.items()])
    replies = line.replies_to(*tokens.values())
    for reply, token in zip(replies, tokens.values(), strict=True):
        assert reply.json == reply_body(token, bubbles(locales, "th", "utter_received_media"))
    assert [c.path for c in line.calls()] == [REPLY] * 4  # no content, no data API, no push


def test_a_location_gets_the_answer_to_a_message_without_words(line, locales):
    user, token = new_user(), new_token()
    location = {"type": "location", "id": "1", "latitude": 13.75, "longitude": 100.5}
    line.send(event("message", user, replyToken=token, message=location))
    [reply] = line.replies_to(token)
    assert reply.json == reply_body(token, bubbles(locales, "th", "utter_empty_message"))


def test_a_message_the_sdk_cannot_read_is_still_answered(line, locales):
    user, token = new_user(), new_token()
    odd = text(user, "hello", token)
    del odd["message"]["quoteToken"]  # the SDK's model requires it
    line.send(odd)
    [reply] = line.replies_to(token)
    assert reply.json == reply_body(token, bubbles(locales, "en", "utter_greet"))


def test_unfollow_marks_the_conversation_and_nothing_is_ever_pushed(line, locales, stack):
    user, hello = new_user(), new_token()
    line.send(text(user, "hello", hello))
    line.replies_to(hello)
    assert conversation(stack, user)[1] not in (None, "")
    assert user not in conversation(stack, user)[1]  # kept for pushes, but only encrypted

    expired = new_token("expired")
    line.send(event("unfollow", user), text(user, "hello", expired))
    line.api.wait_for(lambda calls: any(c.path == REPLY and token_of(c) == expired for c in calls))
    sentinel = new_token()
    line.send(media(user, "sticker", sentinel))
    line.replies_to(sentinel)
    assert not [c for c in line.calls() if c.path == PUSH]
    assert conversation(stack, user) == (1, None)

    # Unblocking (follow) makes the user reachable again.
    again = new_token()
    line.send(event("follow", user, replyToken=again, follow={"isUnblocked": True}))
    line.replies_to(again)
    line.api.clear()
    line.send(text(user, "hello", new_token("expired")))
    line.api.wait_for(lambda calls: any(c.path == PUSH for c in calls))
    assert conversation(stack, user)[0] == 0


# -- the acceptance measurement ------------------------------------------------------------------


def test_twenty_users_are_acknowledged_in_under_100_ms_and_each_gets_one_reply(line, locales):
    users = [new_user() for _ in range(20)]
    tokens = [new_token() for _ in users]
    greetings = ["สวัสดี" if i % 2 else "hello" for i in range(20)]
    body = envelope(*[text(u, g, t) for u, g, t in zip(users, greetings, tokens, strict=True)])
    line.client.get("/healthz")  # an open connection, as LINE's would be
    started = time.perf_counter()
    response = line.post(body)
    elapsed_ms = (time.perf_counter() - started) * 1000
    assert response.status_code == 200
    print(f"\nLINE webhook with 20 events for 20 users acknowledged in {elapsed_ms:.1f} ms")
    assert elapsed_ms < 100

    replies = line.replies_to(*tokens, timeout=120)
    for reply, token, greeting in zip(replies, tokens, greetings, strict=True):
        language = "th" if greeting == "สวัสดี" else "en"
        assert reply.json == reply_body(token, bubbles(locales, language, "utter_greet"))
    assert len([c for c in line.calls() if c.path == REPLY]) == 20
    assert not [c for c in line.calls() if c.path == PUSH]


# -- in-process: a restart, the push budget ------------------------------------------------------


@pytest.fixture
def app_settings(tmp_path, line_api) -> Settings:
    database_url = f"sqlite:///{tmp_path / 'gateway.db'}"
    migrate(database_url)
    install_handlers(line_api)
    line_api.clear()
    return dataclasses.replace(
        Settings.from_env(),
        database_url=database_url,
        rasa_url="http://127.0.0.1:9",  # stickers never reach Rasa
        user_id_secret="test-secret",
        locales_dir=ROOT / "locales",
        line_channel_secret=LINE_SECRET,
        line_channel_access_token=LINE_TOKEN,
        line_api_base_url=line_api.url,
        line_data_api_base_url=line_api.url + "/data",
        line_push_budget=5,
        telegram_bot_token="",
    )


class Gateway:
    """One gateway process's worth of app, run in this test's event loop (start to shutdown)."""

    def __init__(self, settings: Settings, timeout: float = 5.0) -> None:
        self.app = create_app(settings)
        self.stack = contextlib.AsyncExitStack()
        self.timeout = timeout  # seconds a request may take (httpx's default)

    async def __aenter__(self) -> Gateway:
        await self.stack.enter_async_context(self.app.router.lifespan_context(self.app))
        transport = httpx.ASGITransport(app=self.app)
        self.client = await self.stack.enter_async_context(
            httpx.AsyncClient(transport=transport, base_url="http://gateway", timeout=self.timeout)
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stack.aclose()  # shutdown finishes every queued event first

    async def post(self, *events: dict) -> None:
        body = envelope(*events)
        headers = {"x-line-signature": sign(body)}
        response = await self.client.post("/webhooks/line", content=body, headers=headers)
        assert response.status_code == 200, response.text

    async def settle(self) -> None:
        await self.app.state.inbox.drain()


def test_a_redelivery_after_a_restart_is_dropped(app_settings, line_api):
    user, token, sentinel = new_user(), new_token(), new_token()
    sticker = media(user, "sticker", token)

    async def scenario() -> None:
        async with Gateway(app_settings) as gateway:
            await gateway.post(sticker)
        async with Gateway(app_settings) as gateway:  # a new process on the same database
            await gateway.post({**sticker, "deliveryContext": {"isRedelivery": True}})
            await gateway.post(media(user, "sticker", sentinel))

    asyncio.run(scenario())
    assert [token_of(c) for c in line_api.without_line_status()] == [token, sentinel]


def test_pushes_are_counted_and_warned_about_at_80_percent(app_settings, line_api, caplog):
    caplog.set_level(logging.INFO, logger="bot.channels.line")
    user = new_user()

    async def scenario() -> None:
        async with Gateway(app_settings) as gateway:
            for _ in range(6):
                await gateway.post(media(user, "sticker", new_token("expired")))

    asyncio.run(scenario())
    pushes = [c for c in line_api.requests() if c.path == PUSH]
    assert len(pushes) == 6 and all(c.json["to"] == user for c in pushes)
    warnings = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.name == "bot.channels.line"
    ]
    assert len(warnings) == 3, warnings  # at 4 of 5 (80%), at 5 and at 6
    assert "4 of a budget of 5 (80%)" in warnings[0]
    assert all(user not in r.getMessage() for r in caplog.records)


def test_a_push_by_key_uses_the_sealed_address_and_never_reaches_a_blocked_user(
    app_settings, line_api
):
    user = new_user()
    hashed = user_key(app_settings.user_id_secret, "line", user)
    results = []

    async def scenario() -> None:
        async with Gateway(app_settings) as gateway:
            channel = gateway.app.state.channels["line"]
            await gateway.post(media(user, "sticker"))
            await gateway.settle()
            results.append(await channel.push(hashed, [Outgoing(text="hi")], "test:1"))
            await gateway.post(event("unfollow", user))
            await gateway.settle()
            results.append(await channel.push(hashed, [Outgoing(text="hi")], "test:1"))

    asyncio.run(scenario())
    assert results == [True, False]
    pushes = [c for c in line_api.requests() if c.path == PUSH]
    assert [c.json for c in pushes] == [push_body(user, [{"type": "text", "text": "hi"}])]


# -- the child sees their message arrive: the loading animation and "read" ---------------------


def read_marked(message: dict, read_token: str) -> dict:
    """A message event as LINE sends it to a channel that may mark messages read."""
    message["message"]["markAsReadToken"] = read_token
    return message


def handled(settings: Settings, *events: dict) -> None:
    """The events through an in-process gateway, until every one is answered (Rasa is
    unreachable here: text gets the fallback, which is sent like any reply)."""

    async def scenario() -> None:
        async with Gateway(settings) as gateway:
            await gateway.post(*events)

    asyncio.run(scenario())


def test_a_one_to_one_chat_sees_loading_and_read_before_each_reply(app_settings, line_api):
    settings = dataclasses.replace(app_settings, rasa_timeout_s=12)
    user, typed, pressed = new_user(), new_token(), new_token()
    handled(
        settings,
        read_marked(text(user, "hello", typed), "read-1"),
        postback(user, "/report_help", pressed),  # a button: no message, nothing to mark read
    )
    calls = [(c.path, c.json) for c in line_api.requests()]
    loading = (LINE_LOADING, {"chatId": user, "loadingSeconds": 20})  # Rasa's 12 s + 5, in 5s
    # The two courtesies go out together; the reply waits for both.
    assert sorted(calls[:2]) == sorted([loading, (LINE_MARK_READ, {"markAsReadToken": "read-1"})])
    assert [path for path, _ in calls[2:]] == [REPLY, LINE_LOADING, REPLY]
    assert calls[3] == loading
    assert [token_of(c) for c in line_api.requests(REPLY)] == [typed, pressed]
    status = line_api.line_status()
    assert all(c.headers["Authorization"] == f"Bearer {LINE_TOKEN}" for c in status)


def test_group_and_room_messages_get_no_loading_animation_and_no_read_mark(
    app_settings, line_api
):
    user, sentinel = new_user(), new_token()
    group = read_marked(text(user, "hello"), "read-group")
    group["source"] = {"type": "group", "groupId": "C" + uuid.uuid4().hex, "userId": user}
    room = read_marked(text(user, "hello"), "read-room")
    room["source"] = {"type": "room", "roomId": "R" + uuid.uuid4().hex, "userId": user}
    handled(app_settings, group, room, media(user, "sticker", sentinel))
    assert [c.json["chatId"] for c in line_api.line_status()] == [user]  # the 1:1 sticker only
    assert [token_of(c) for c in line_api.requests(REPLY)] == [sentinel]


@pytest.mark.parametrize("failure", ["error", "hanging"])
def test_the_reply_goes_out_when_loading_and_read_fail(app_settings, line_api, caplog, failure):
    caplog.set_level(logging.INFO, logger="bot.channels.line")
    released = threading.Event()
    if failure == "error":
        line_api.answer_line_status(500)
    else:  # LINE does not answer them: the reply waits for them a few seconds at most

        def hanging(call: Call) -> tuple[int, dict]:
            released.wait(60)
            return 202, {}

        for path in LINE_STATUS:
            line_api.handlers[("POST", path)] = hanging
    user, token = new_user(), new_token()
    started = time.monotonic()
    try:
        handled(app_settings, read_marked(media(user, "sticker", token), "read-2"))
        waited_s = time.monotonic() - started
    finally:
        released.set()
    assert [token_of(c) for c in line_api.requests(REPLY)] == [token]
    assert {c.path for c in line_api.line_status()} == set(LINE_STATUS)
    assert waited_s < 30  # not held until LINE gives up
    assert any("loading animation or read mark failed" in r.getMessage() for r in caplog.records)


# -- rendering for LINE's limits -----------------------------------------------------------------


def test_long_texts_are_split_within_line_limits_without_breaking_thai():
    long_thai = "น้ำใจ " * 2000  # 12,000 characters with combining marks
    messages = [m.to_dict() for m in line_messages([Outgoing(text=long_thai)])]
    assert len(messages) == 3
    assert all(utf16_len(m["text"]) <= 5000 for m in messages)
    assert "".join(m["text"].replace(" ", "") for m in messages) == long_thai.replace(" ", "")
    emoji = "🙏" * 4000  # 8,000 UTF-16 units
    assert all(utf16_len(m.text) <= 5000 for m in line_messages([Outgoing(text=emoji)]))


def test_buttons_become_at_most_13_quick_replies_with_safely_cut_labels():
    buttons = tuple(Button(f"ตัวเลือกที่ต้องการ {i} น้ำ", f"/x{i}") for i in range(20))
    [message] = line_messages([Outgoing(text="เลือก", buttons=buttons)])
    items = message.to_dict()["quickReply"]["items"]
    assert [i["action"]["data"] for i in items] == [f"/x{i}" for i in range(13)]
    for item in items:
        label = item["action"]["label"]
        assert utf16_len(label) <= 20
        assert label.endswith("…") and label[-2] not in "\u0e31\u0e34\u0e35\u0e36\u0e37\u0e47\u0e48"
    [emoji] = line_messages([Outgoing(text="x", buttons=(Button("🙏" * 15, "/y"),))])
    assert utf16_len(emoji.to_dict()["quickReply"]["items"][0]["action"]["label"]) <= 20


def test_buttons_of_every_reply_go_under_the_last_bubble_and_bubbles_fit_one_request():
    replies = [Outgoing(text=f"ข้อ {i}", buttons=(Button("ใช่", "/affirm"),)) for i in range(8)]
    messages = [m.to_dict() for m in line_messages(replies)]
    assert len(messages) == 5  # one free reply carries everything
    assert "".join(m["text"] for m in messages).count("ข้อ") == 8
    assert [m.get("quickReply") is not None for m in messages] == [False] * 4 + [True]
    assert len(messages[-1]["quickReply"]["items"]) == 1


# -- the rich menu -------------------------------------------------------------------------------

MENU_LABELS = {
    "th": {
        "ui_menu_person": "คุยกับเจ้าหน้าที่",
        "ui_menu_report": "แจ้งเหตุที่ไหนได้บ้าง",
        "ui_menu_safety": "เคล็ดลับความปลอดภัย",
        "ui_menu_language": "ภาษา",
        "ui_menu_forget": "ลบข้อมูลของฉัน",
        "ui_menu_chat_bar": "เมนู · Menu",
    },
    "en": {
        "ui_menu_person": "Talk to a person",
        "ui_menu_report": "Where to report",
        "ui_menu_safety": "Safety tips",
        "ui_menu_language": "Language",
        "ui_menu_forget": "Delete my data",
        "ui_menu_chat_bar": "Menu · เมนู",
    },
}


@pytest.fixture
def menu_locales(tmp_path) -> Locales:
    """Test sentences in the locale format (the product's own live in locales/)."""
    for language, names in MENU_LABELS.items():
        responses = {name: [{"text": words}] for name, words in names.items()}
        document = {"language": language, "responses": responses}
        (tmp_path / f"{language}.yml").write_text(json.dumps(document, ensure_ascii=False))
    return Locales(tmp_path)


def test_the_menu_image_draws_thai_and_english(menu_locales):
    font = line_richmenu.thai_font()
    png = line_richmenu.draw(line_richmenu.labels(menu_locales), font)
    image = Image.open(io.BytesIO(png))
    assert image.size == (2500, 1686) and image.format == "PNG" and len(png) < 1024 * 1024
    # Thai drawn with this font is not the "missing glyph" box.
    from PIL import ImageFont

    face = ImageFont.truetype(str(font), 60)
    assert face.getmask("ภาษา").getbbox() != face.getmask("\U0010fffd" * 4).getbbox()
    # Every tile has white text on it.
    for x, y, w, h in line_richmenu._bounds():
        tile = image.crop((x, y, x + w, y + h)).convert("L")
        assert tile.getextrema()[1] == 255


def test_a_missing_menu_sentence_stops_the_script(tmp_path):
    (tmp_path / "th.yml").write_text('{"language": "th", "responses": {}}')
    with pytest.raises(line_richmenu.MenuError, match="ui_menu_person"):
        line_richmenu.labels(Locales(tmp_path))


def test_the_rich_menu_is_created_through_the_api(menu_locales, line_api, settings):
    line_api.clear()
    line_api.handlers[("GET", "/v2/bot/richmenu/list")] = lambda call: (
        200,
        {"richmenus": [menu_json("old-1", "main-actions"), menu_json("other", "campaign")]},
    )
    line_api.handlers[("POST", "/v2/bot/richmenu")] = lambda call: (200, {"richMenuId": "new-1"})
    texts = line_richmenu.labels(menu_locales)
    png = line_richmenu.draw(texts, line_richmenu.thai_font())
    settings = dataclasses.replace(
        settings,
        line_channel_access_token=LINE_TOKEN,
        line_api_base_url=line_api.url,
        line_data_api_base_url=line_api.url + "/data",
    )
    menu_id = asyncio.run(line_richmenu.install(settings, line_richmenu.menu_request(texts), png))
    assert menu_id == "new-1"
    calls = line_api.requests()
    assert [(c.method, c.path) for c in calls] == [
        ("GET", "/v2/bot/richmenu/list"),
        ("POST", "/v2/bot/richmenu"),
        ("POST", "/data/v2/bot/richmenu/new-1/content"),
        ("POST", "/v2/bot/user/all/richmenu/new-1"),
        ("DELETE", "/v2/bot/richmenu/old-1"),
    ]
    created = calls[1].json
    assert created["size"] == {"width": 2500, "height": 1686}
    assert created["chatBarText"] == "เมนู · Menu" and created["selected"] is True
    assert [a["action"]["data"] for a in created["areas"]] == [
        "/talk_to_human",
        "/report_help",
        "/online_safety",
        LANGUAGE_TOGGLE,
        forget.ASK,
    ]
    assert created["areas"][0]["action"]["displayText"] == "คุยกับเจ้าหน้าที่ · Talk to a person"
    assert calls[2].headers["Content-Type"] == "image/png" and calls[2].body == png
    assert all(c.headers["Authorization"] == f"Bearer {LINE_TOKEN}" for c in calls)


def menu_json(menu_id: str, name: str) -> dict:
    return {
        "richMenuId": menu_id,
        "size": {"width": 2500, "height": 1686},
        "selected": False,
        "name": name,
        "chatBarText": "x",
        "areas": [],
    }


def test_the_product_menu_has_its_sentences_in_both_languages(locales):
    texts = line_richmenu.labels(locales)
    request = line_richmenu.menu_request(texts).to_dict()
    assert utf16_len(request["chatBarText"]) <= 14
    assert all(utf16_len(a["action"]["label"]) <= 20 for a in request["areas"])
