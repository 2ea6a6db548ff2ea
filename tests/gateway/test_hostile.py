"""Hostile input: whatever arrives, the gateway never answers 5xx and never falls over.

Property-based (hypothesis) against the running `stack`: random bytes, JSON of the wrong types,
deep nesting, huge strings, invalid UTF-8, lone surrogates, zero-width and right-to-left
characters, at the web chat (POST and GET), both platform webhooks (unsigned and correctly
signed, with structurally valid envelopes whose fields are odd), /nlg with the right token and
the console's sign-in form, and a second counsellor at every console endpoint of cases that are
not theirs (a colleague's, an offered and a closed one). At the end the gateway and Rasa are still
up, and the gateway's log holds no traceback from anything sent here (a platform event is handled
after the webhook has answered, so a failure there would be silent otherwise).

Then the limits (bot/ratelimit.py, bot/untrusted.py): per user before Rasa, per address for the
web chat (in-process, with low limits), body size, and that Rasa and the action server listen
on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import dataclasses
import hashlib
import hmac
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from bot.app import create_app
from bot.config import Settings
from bot.locales import Locales
from bot.ratelimit import RateLimiter
from bot.store.models import Conversation
from bot.untrusted import MAX_BODY_BYTES
from scripts.counsellor import create
from tests.gateway.conftest import (
    LINE_SECRET,
    ROOT,
    TELEGRAM_SECRET,
    Console,
    offline_settings,
)
from tests.gateway.test_handoff_flow import ASK, Child

HOSTILE = settings(
    # 60 per property keeps the file at about 3 minutes; HOSTILE_EXAMPLES=1000 searches deeper.
    max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "60")),
    deadline=None,
    database=None,  # nothing written into the repository
    suppress_health_check=list(HealthCheck),
)
TRIED: collections.Counter[str] = collections.Counter()
STATUSES: collections.Counter[tuple[str, int]] = collections.Counter()
FALLBACKS: collections.Counter[str] = collections.Counter()
VARIANT = ["sqlite"]  # the `stack` variant being tried (its database)


# -- what strangers send ---------------------------------------------------------------------------

ZERO_WIDTH_AND_RTL = (
    "\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2060\u2066\u2067\u2068\u2069"
    "\ufeff\u061c"
)
ODD = ZERO_WIDTH_AND_RTL + "\x00\x7f\r\n\t \u0e33\u0e48\u0e49\u0301\ufffd\U0001f64f\U0010ffff"
SURROGATES = "\ud800\udbff\udc00\udfff"

chars = st.one_of(
    st.sampled_from(ODD + SURROGATES),
    st.characters(min_codepoint=0x0E00, max_codepoint=0x0E7F),  # Thai
    st.characters(exclude_categories=()),  # anything, lone surrogates too
)
texts = st.one_of(
    st.text(alphabet=chars, max_size=120),
    st.builds(lambda c, n: c * n, st.sampled_from(ODD + "กa"), st.integers(0, 3000)),
    st.sampled_from(["/start", "/help", "/forget", "/clear", "/talk_to_human", "/affirm"]),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**100), max_value=2**100),
    st.floats(),  # NaN and Infinity too: Python writes them, strict JSON does not have them
    texts,
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=20,
)
encodings = st.sampled_from(["ascii", "utf-8", "surrogatepass"])


def encode(value: object, how: str) -> bytes:
    """JSON as a client might send it: \\u escapes (lone surrogates become "\\ud800"), raw
    UTF-8, or raw with surrogates as CESU bytes (invalid UTF-8)."""
    if how == "ascii":
        return json.dumps(value).encode()
    errors = "surrogatepass" if how == "surrogatepass" else "replace"
    return json.dumps(value, ensure_ascii=False).encode("utf-8", errors)


def deep(levels: int, opening: str = "[", closing: str = "]") -> bytes:
    return (opening * levels + closing * levels).encode()


def sign(body: bytes, secret: str = LINE_SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@pytest.fixture(scope="module")
def log_start(stack) -> int:
    """Where the gateway's log was before this module sent anything."""
    return stack.processes["gateway"].log.stat().st_size


@pytest.fixture(scope="module")
def http(stack, log_start) -> Iterator[httpx.Client]:
    """A client of the running gateway; the counts below are kept per database."""
    VARIANT[0] = stack.env()["DATABASE_URL"].split(":")[0].split("+")[0]
    with httpx.Client(base_url=stack.gateway_url, timeout=60) as client:
        yield client


@pytest.fixture(scope="session", autouse=True)
def report(request) -> Iterator[None]:
    """Prints how many inputs each endpoint was sent, once, at the end of the run."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not TRIED:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line("hostile inputs tried per endpoint {status: count}:")
        for endpoint, count in sorted(TRIED.items()):
            statuses = sorted((s, n) for (e, s), n in STATUSES.items() if e == endpoint)
            fallbacks = f", Rasa fell back {FALLBACKS[endpoint]}" if FALLBACKS[endpoint] else ""
            reporter.write_line(f"  {endpoint}: {count} {dict(statuses)}{fallbacks}")


def expected(body: bytes, *statuses: int) -> tuple[int, ...]:
    """The answers a body may get: `statuses`, or 413 when it is over the gateway's 1 MB."""
    return (413,) if len(body) > MAX_BODY_BYTES else statuses


def sent(endpoint: str, response: httpx.Response) -> httpx.Response:
    """Counts the answer, and checks the one property every answer has."""
    endpoint = f"[{VARIANT[0]}] {endpoint}"
    TRIED[endpoint] += 1
    STATUSES[(endpoint, response.status_code)] += 1
    assert response.status_code < 500, (endpoint, response.status_code, response.text[:300])
    return response


# -- the web chat ----------------------------------------------------------------------------------


@HOSTILE
@given(body=st.binary(max_size=3000))
def test_webchat_random_bytes(http, body):
    response = sent("POST /webchat/messages", http.post("/webchat/messages", content=body))
    assert response.status_code in (200, 400)


@HOSTILE
@given(value=json_values, how=encodings)
def test_webchat_json_of_any_shape(http, value, how):
    body = encode(value, how)
    response = sent("POST /webchat/messages", http.post("/webchat/messages", content=body))
    assert response.status_code in (200, 400, 413)


@HOSTILE
@given(
    user=st.text(alphabet=chars, min_size=1, max_size=128) | st.uuids().map(str),
    text=texts,
    how=st.sampled_from(["ascii", "utf-8"]),
)
def test_webchat_any_text_from_any_user_gets_a_kind_answer(http, user, text, how):
    """Well-formed requests: whatever the words, never silence."""
    response = sent(
        "POST /webchat/messages",
        http.post("/webchat/messages", content=encode({"user": user, "text": text}, how)),
    )
    if not user.replace("\x00", ""):  # NULs are dropped (bot/untrusted.py): no user is left
        assert response.status_code == 400
        return
    assert response.status_code == 200, response.text
    messages = response.json()["messages"]
    assert messages and all(m["text"] for m in messages)
    fell_back = any(m["sender"] == "fallback" for m in messages)
    FALLBACKS[f"[{VARIANT[0]}] POST /webchat/messages"] += fell_back


THAI_10K = ("หนูโดนขู่ว่าจะปล่อยรูป " * 500)[:10_000]
EXTREMES = {
    "10,000 nested lists": (deep(10_000), 400),
    "10,000 nested objects": (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 400),
    "nesting inside the text": (b'{"user":"a","text":' + deep(5_000) + b"}", 400),
    "a 4,400-digit number": (b'{"user":"a","text":' + b"9" * 4_400 + b"}", 400),
    "NaN as the text": (b'{"user":"a","text":NaN}', 400),
    "a 1 MB string": (json.dumps({"user": "a", "text": "x" * 1_000_000}).encode(), 413),
    "just over 1 MB": (b" " * (1024 * 1024 + 1), 413),
    "invalid UTF-8": (b'{"user":"a","text":"\xff\xfe"}', 400),
    "an overlong slash": (b'{"user":"a","text":"\xc0\xaf"}', 400),
    "a CESU surrogate": (b'{"user":"a","text":"\xed\xa0\x80"}', 400),
    "a UTF-8 BOM": (b'\xef\xbb\xbf{"user":"a","text":"hi"}', 400),
    "empty": (b"", 400),
    "null": (b"null", 400),
    "a user of 129 characters": (json.dumps({"user": "u" * 129, "text": "hi"}).encode(), 400),
}


@pytest.mark.parametrize("name", list(EXTREMES))
def test_webchat_extremes_are_refused_kindly(http, name):
    body, status = EXTREMES[name]
    response = sent("POST /webchat/messages", http.post("/webchat/messages", content=body))
    assert response.status_code == status, response.text[:300]
    assert "error" in response.json()


@pytest.mark.parametrize(
    "text",
    [
        THAI_10K,
        "\u200b" * 10_000,
        "\u202eevil\u202c " * 1_000,
        "\u2067ฉันโดนแบล็กเมล์\u2069" * 400,
        "\ud83d",  # half an emoji
        "ก\u0e48\u0e48\u0e48\u0e48\u0e33" * 1_500,
        "\x00" * 5_000,
        "x" * 60_000,  # within the web chat's 64 KB, far beyond what reaches Rasa
    ],
    ids=[
        "thai 10k",
        "zero-width 10k",
        "rtl override",
        "rtl isolate",
        "lone surrogate",
        "stacked tone marks",
        "NUL",
        "60k",
    ],
)
def test_webchat_long_and_odd_messages_get_an_answer(http, text):
    user = f"hostile-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"user": user, "text": text}).encode()  # \u escapes: lone surrogates too
    response = sent("POST /webchat/messages", http.post("/webchat/messages", content=body))
    assert response.status_code == 200, response.text[:300]
    messages = response.json()["messages"]
    assert messages and all(m["text"] for m in messages)


def test_a_body_too_large_is_refused_before_it_is_read(http):
    """More than 1 MB is refused (413) by its Content-Length, and a body without one (chunked) as
    soon as 1 MB has arrived: the gateway never buffers more."""

    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 4 MB in 64 KB pieces
            yield b" " * 65_536

    streamed = sent("POST /webchat/messages", http.post("/webchat/messages", content=chunks()))
    assert streamed.status_code == 413
    for path in ("/webhooks/line", "/webhooks/telegram", "/nlg", "/console/login"):
        big = b"{" + b" " * (2 * 1024 * 1024) + b"}"
        assert sent(f"POST {path}", http.post(path, content=big)).status_code == 413


@HOSTILE
@given(
    params=st.lists(
        st.tuples(
            st.sampled_from(["user", "user", "after"]) | st.text(max_size=10),
            st.one_of(
                st.text(alphabet=chars, max_size=200),
                st.integers(min_value=-(10**40), max_value=10**40).map(str),
                st.sampled_from(["", "-0", "1e9", "0x10", "٣", " 7 ", "1_000", "9" * 5000]),
            ),
        ),
        max_size=4,
    ),
    raw=st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60),
)
def test_webchat_fetch_with_odd_query_parameters(http, params, raw):
    # Lone surrogates cannot go into a URL: the client encodes them as "?" (what a browser does).
    query = urlencode(
        [(k.encode("utf-8", "replace"), v.encode("utf-8", "replace")) for k, v in params]
    )
    response = sent("GET /webchat/messages", http.get(f"/webchat/messages?{query}"))
    assert response.status_code in (200, 400)
    response = sent("GET /webchat/messages", http.get("/webchat/messages?" + raw.replace("#", "")))
    assert response.status_code in (200, 400)


# -- LINE ------------------------------------------------------------------------------------------

header_values = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0xFF, exclude_characters="\x7f"),
    max_size=80,
)


def post_line(http: httpx.Client, body: bytes, signature: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-line-signature"] = signature.encode("latin-1")  # type: ignore[assignment]
    return sent("POST /webhooks/line", http.post("/webhooks/line", content=body, headers=headers))


@HOSTILE
@given(
    body=st.binary(max_size=2000) | json_values.map(lambda v: encode(v, "ascii")),
    signature=st.none() | header_values,
)
def test_line_unsigned_or_wrongly_signed_is_refused(http, body, signature):
    response = post_line(http, body, signature)
    assert response.status_code in expected(body, 400, 401)
    if response.status_code == 413:
        return
    if signature is None:
        assert response.status_code == 401
    with contextlib.suppress(UnicodeDecodeError):
        body.decode("utf-8")  # LINE signs UTF-8 text: other bytes are unreadable (400) first
        assert response.status_code == 401


@HOSTILE
@given(body=st.binary(max_size=2000) | st.builds(encode, json_values, encodings))
def test_line_signed_garbage_is_refused_or_ignored(http, body):
    assert post_line(http, body, sign(body)).status_code in expected(body, 200, 400)


LINE_EVENT_FIELDS = (
    "type",
    "mode",
    "timestamp",
    "source",
    "source.type",
    "source.userId",
    "webhookEventId",
    "deliveryContext",
    "replyToken",
    "message",
    "message.type",
    "message.text",
    "message.id",
    "postback",
    "postback.data",
)


@st.composite
def line_events(draw) -> dict:
    """An event LINE could send, except for the fields picked to hold anything at all."""
    odd = draw(st.sets(st.sampled_from(LINE_EVENT_FIELDS), max_size=3))
    kind = draw(
        st.sampled_from(
            [
                "message",
                "postback",
                "follow",
                "unfollow",
                "join",
                "leave",
                "unsend",
                "memberJoined",
                "beacon",
                "videoPlayComplete",
            ]
        )
    )
    content = draw(
        st.sampled_from(
            ["text", "image", "video", "audio", "file", "location", "sticker", "brand-new"]
        )
    )
    message: dict = {"type": content, "id": "468789577898262530", "quoteToken": "q"}
    if content == "text":
        message["text"] = draw(texts)
    elif content == "sticker":
        message.update(packageId="1", stickerId="2", stickerResourceType="STATIC")
    elif content == "location":
        message.update(latitude=13.75, longitude=100.5)
    elif content in ("image", "video", "audio"):
        message.update(contentProvider={"type": "line"}, duration=1)
    elif content == "file":
        message.update(fileName="a.zip", fileSize=1)
    event: dict = {
        "type": kind,
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "source": {"type": "user", "userId": "U" + draw(st.uuids()).hex},
        "webhookEventId": draw(st.uuids()).hex.upper(),
        "deliveryContext": {"isRedelivery": False},
        "replyToken": draw(st.uuids()).hex,
        "message": message,
        "postback": {"data": draw(texts)},
    }
    for path in sorted(odd):
        where, _, key = path.rpartition(".")
        target = event[where] if where else event
        if isinstance(target, dict):
            target[key] = draw(json_values | st.integers(min_value=-(2**70), max_value=2**70))
    return event


@HOSTILE
@given(
    events=st.lists(line_events(), max_size=3),
    how=encodings,
    destination=st.just("Ubot") | json_values,
)
def test_line_signed_envelopes_with_odd_events(http, events, how, destination):
    body = encode({"destination": destination, "events": events}, how)
    assert post_line(http, body, sign(body)).status_code in expected(body, 200, 400)


@pytest.mark.parametrize("content_type", [[], {}, None, 5, "brand-new"])
def test_line_a_message_of_an_odd_type_is_answered(http, line_api, content_type):
    """Found by the search above: the SDK gives up on such a message, and reading it from its JSON
    failed (500) when its type could not be looked up."""
    event = {
        "type": "message",
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "source": {"type": "user", "userId": "U" + uuid.uuid4().hex},
        "webhookEventId": uuid.uuid4().hex.upper(),
        "deliveryContext": {"isRedelivery": False},
        "replyToken": uuid.uuid4().hex,
        "message": {"type": content_type, "id": "1", "quoteToken": "q"},
    }
    body = encode({"destination": "Ubot", "events": [event]}, "ascii")
    assert post_line(http, body, sign(body)).status_code == 200
    line_api.wait_for(
        lambda calls: any(c.json and c.json.get("replyToken") == event["replyToken"] for c in calls)
    )


# -- Telegram --------------------------------------------------------------------------------------

_update_ids = iter(range(7 * 10**9, 8 * 10**9))
TELEGRAM_FIELDS = (
    "message",
    "message.chat",
    "message.chat.id",
    "message.chat.type",
    "message.from",
    "message.date",
    "message.text",
    "message.message_id",
    "message.sticker",
    "message.photo",
    "message.caption",
    "callback.data",
    "callback.id",
    "callback.message",
    "member.new_chat_member",
    "member.chat",
)


@st.composite
def telegram_updates(draw) -> dict:
    odd = draw(st.sets(st.sampled_from(TELEGRAM_FIELDS), max_size=3))
    chat = draw(st.integers(min_value=10**8, max_value=10**10))
    private = {"id": chat, "type": draw(st.sampled_from(["private", "group", "channel"]))}
    person = {
        "id": chat,
        "is_bot": False,
        "first_name": "P",
        "language_code": draw(st.sampled_from(["th", "en", "xx", ""])),
    }
    message: dict = {
        "message_id": draw(st.integers(1, 10**6)),
        "date": int(time.time()),
        "chat": private,
        "from": person,
    }
    content = draw(st.sampled_from(["text", "sticker", "photo", "location", "caption", "none"]))
    if content == "text":
        message["text"] = draw(texts)
    elif content == "sticker":
        message["sticker"] = {
            "file_id": "f",
            "file_unique_id": "u",
            "width": 1,
            "height": 1,
            "is_animated": False,
            "is_video": False,
            "type": "regular",
        }
    elif content in ("photo", "caption"):
        message["photo"] = [{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}]
        if content == "caption":
            message["caption"] = draw(texts)
    elif content == "location":
        message["location"] = {"latitude": 13.7, "longitude": 100.5}
    callback = {
        "id": str(draw(st.integers(1, 10**9))),
        "from": person,
        "chat_instance": "c",
        "message": dict(message),
        "data": draw(
            texts
            | st.sampled_from(["/forget_confirmed", "/clear_confirmed", "/keep", "/report_help"])
        ),
    }
    member = {
        "chat": private,
        "from": person,
        "date": int(time.time()),
        "old_chat_member": {"status": "member", "user": person},
        "new_chat_member": {
            "status": draw(st.sampled_from(["kicked", "member", "left"])),
            "user": person,
        },
    }
    parts = {"message": message, "callback": callback, "member": member}
    for path in sorted(odd):
        node: object = parts
        *where, key = path.split(".")
        for step in where:
            node = node.get(step) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node[key] = draw(json_values | st.integers(min_value=-(2**70), max_value=2**70))
    kind = draw(
        st.sampled_from(
            ["message", "edited_message", "channel_post", "callback_query", "my_chat_member"]
        )
    )
    body = {
        "message": message,
        "edited_message": message,
        "channel_post": message,
        "callback_query": callback,
        "my_chat_member": member,
    }[kind]
    return {"update_id": next(_update_ids), kind: body}


def post_telegram(http: httpx.Client, body: bytes, secret: str | None) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if secret is not None:
        headers["x-telegram-bot-api-secret-token"] = secret.encode("latin-1")  # type: ignore
    response = http.post("/webhooks/telegram", content=body, headers=headers)
    return sent("POST /webhooks/telegram", response)


@HOSTILE
@given(
    body=st.binary(max_size=2000) | st.builds(encode, json_values, encodings),
    secret=st.none() | header_values,
)
def test_telegram_without_the_secret_is_refused(http, body, secret):
    assert post_telegram(http, body, secret).status_code in expected(body, 401)


@HOSTILE
@given(
    value=json_values
    | st.builds(lambda v: {"update_id": 5, **v} if isinstance(v, dict) else v, json_values),
    how=encodings,
)
def test_telegram_any_json_with_the_secret(http, value, how):
    body = encode(value, how)
    assert post_telegram(http, body, TELEGRAM_SECRET).status_code in expected(body, 200, 400)


@HOSTILE
@given(update_=telegram_updates(), how=encodings)
def test_telegram_updates_with_odd_fields(http, update_, how):
    body = encode(update_, how)
    assert post_telegram(http, body, TELEGRAM_SECRET).status_code in expected(body, 200, 400)


def test_telegram_deep_json_with_the_secret(http):
    assert post_telegram(http, deep(10_000), TELEGRAM_SECRET).status_code == 400
    nested = b'{"update_id": 1, "message": ' + deep(900, '{"a":', "}") + b"}"
    assert post_telegram(http, nested, TELEGRAM_SECRET).status_code in (200, 400)


# -- /nlg and the console --------------------------------------------------------------------------

RESPONSE_NAMES = sorted(Locales(ROOT / "locales").responses.get("th", {}))[:40]


@st.composite
def nlg_bodies(draw) -> dict:
    tracker = {
        "sender_id": draw(st.just("webchat-" + "0" * 40) | texts | json_values),
        "slots": draw(
            st.fixed_dictionaries(
                {},
                optional={
                    "language": st.sampled_from(["th", "en", "xx"]) | json_values,
                    "age_band": json_values,
                    "role": json_values,
                    "urgent": json_values,
                },
            )
            | json_values
        ),
        "latest_message": draw(st.fixed_dictionaries({"text": texts | json_values}) | json_values),
        "latest_input_channel": draw(st.sampled_from(["webchat", "line"]) | json_values),
    }
    return {
        "response": draw(st.sampled_from(RESPONSE_NAMES or ["utter_greet"]) | json_values),
        "tracker": draw(st.just(tracker) | json_values),
    }


@HOSTILE
@given(
    body=st.binary(max_size=2000)
    | st.builds(encode, json_values, encodings)
    | st.builds(encode, nlg_bodies(), encodings)
)
def test_nlg_with_the_right_token_and_any_body(http, stack, body):
    response = sent("POST /nlg", http.post(f"/nlg?token={stack.nlg_token}", content=body))
    assert response.status_code in expected(body, 200, 400, 404)


@HOSTILE
@given(token=st.text(alphabet=chars, max_size=40))
def test_nlg_with_any_wrong_token(http, stack, token):
    if token == stack.nlg_token:
        return
    response = sent(
        "POST /nlg",
        http.post("/nlg?" + urlencode({"token": token.encode("utf-8", "replace")}), json={}),
    )
    assert response.status_code == 401


form_keys = st.sampled_from(["username", "password", "lang"]) | st.text(max_size=12)
form_values = st.one_of(
    st.text(alphabet=chars, max_size=300),
    st.sampled_from(["\x00", "admin\x00", "\ud800", "%", "&=&", "a" * 5000, "\u202eadmin"]),
)


@HOSTILE
@given(
    form=st.lists(st.tuples(form_keys, form_values), max_size=6),
    csrf=st.just("csrf-token-for-the-hostile-test") | st.none(),
    raw=st.none() | st.binary(max_size=2000),
    language=st.text(alphabet=chars, max_size=20),
)
def test_console_login_with_any_form(http, form, csrf, raw, language):
    if csrf is not None:  # the login form's CSRF cookie, and the same value in the form
        form = [*form, ("csrf", csrf)]
    body = (
        raw
        if raw is not None
        else urlencode(
            [(k.encode("utf-8", "replace"), v.encode("utf-8", "replace")) for k, v in form]
        ).encode()
    )
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if csrf is not None:
        headers["cookie"] = f"console_csrf={csrf}"
    http.cookies.clear()
    response = sent(
        "POST /console/login", http.post("/console/login", content=body, headers=headers)
    )
    assert response.status_code in (303, 401, 403, 413)
    page = sent(
        "GET /console/login",
        http.get("/console/login", params={"lang": language.encode("utf-8", "replace")}),
    )
    assert page.status_code == 200


@HOSTILE
@given(
    action=st.sampled_from(["reply", "note", "close", "transfer", "claim"]),
    case=st.integers(min_value=0, max_value=10**30),
    body=st.binary(max_size=2000)
    | st.builds(encode, json_values, encodings)
    | st.builds(
        encode,
        st.fixed_dictionaries(
            {}, optional={"text": json_values, "categories": json_values, "to": json_values}
        ),
        encodings,
    ),
)
def test_console_api_with_any_body_from_a_signed_in_counsellor(console, action, case, body):
    """Behind a sign-in and CSRF, but a counsellor's browser must not be able to break it."""
    response = console.client.post(
        f"/console/api/cases/{case}/{action}",
        content=body,
        headers={"X-CSRF-Token": console.csrf, "content-type": "application/json"},
    )
    assert sent(f"POST /console/api/cases/*/{action}", response).status_code in (
        200,
        400,
        404,
        409,
        413,
    )
    page = console.client.get(f"/console/api/cases/{case}")
    assert sent("GET /console/api/cases/*", page).status_code in (200, 400, 404)


# -- a second counsellor, on cases that are not theirs (bot/console/policy.py) ---------------------


@dataclasses.dataclass
class NotTheirs:
    """Cases a second counsellor may not see: one a colleague holds, one the child has not sent
    (offered), one closed; the words the children said in them; both consoles."""

    cases: dict[str, int]
    words: list[str]
    holder: Console
    other: Console


def _signed_in(stack, role: str = "counsellor") -> Console:
    username, password = f"c{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    asyncio.run(create(stack.database_url, username, "พี่ฝน", password, role))
    console = Console(stack.gateway_url)
    assert console.login(username, password).status_code == 303
    return console


@pytest.fixture(scope="module")
def not_theirs(stack, http) -> Iterator[NotTheirs]:
    holder, other = _signed_in(stack), _signed_in(stack)
    words, cases = [], {}
    for name in ("held", "offered", "closed"):
        child, said = Child(stack), f"คำลับของเด็ก {uuid.uuid4().hex[:10]}"
        words.append(said)
        child.say(ASK)
        child.say("/affirm")
        child.say(said)
        if name != "offered":
            child.say("/handoff_agree")
            [case] = [c for c in holder.get("/console/api/queue")["queued"] if said in c["preview"]]
            assert holder.post(f"/console/api/cases/{case['id']}/claim").status_code == 200
            cases[name] = case["id"]
        else:
            cases[name] = stack.query_one(
                "select max(id) from cases where state = 'offered' and child_note = :said",
                {"said": said},
            )[0]
    closed = holder.post(
        f"/console/api/cases/{cases['closed']}/close", {"categories": ["violence.other"]}
    )
    assert closed.status_code == 200, closed.text
    yield NotTheirs(cases, words, holder, other)
    holder.client.close()
    other.client.close()


@HOSTILE
@given(
    which=st.sampled_from(["held", "offered", "closed"]),
    action=st.sampled_from(["GET", "reply", "note", "close", "transfer", "claim"]),
    body=st.builds(encode, json_values, encodings)
    | st.builds(
        encode,
        st.fixed_dictionaries(
            {}, optional={"text": json_values, "categories": json_values, "to": json_values}
        ),
        encodings,
    )
    | st.sampled_from([b'{"text": "hi"}', b'{"categories": ["violence.other"]}', b'{"to": null}']),
    lang=st.sampled_from(["th", "en", ""]),
)
def test_a_second_counsellor_gets_nothing_of_cases_not_theirs(
    not_theirs, which, action, body, lang
):
    """Every endpoint on a colleague's, an offered and a closed case: 404 like a missing case,
    the same answer whatever is sent, and not a word of the child's."""
    path = f"/console/api/cases/{not_theirs.cases[which]}"
    other = not_theirs.other
    if action == "GET":
        response = other.client.get(path, params={"lang": lang})
    else:
        response = other.client.post(
            f"{path}/{action}",
            params={"lang": lang},
            content=body,
            headers={"X-CSRF-Token": other.csrf, "content-type": "application/json"},
        )
    sent(f"{action} /console/api/cases/<not theirs>", response)
    assert (response.status_code, response.json()) == (404, {"error": "no such case"})
    listed = other.client.get("/console/api/queue").text
    assert not any(word in response.text + listed for word in not_theirs.words)


def test_nothing_a_second_counsellor_tried_changed_the_cases(not_theirs, stack):
    states = dict(
        stack.query(
            "select id, state from cases where id in (:a, :b, :c)",
            dict(zip("abc", not_theirs.cases.values(), strict=True)),
        )
    )
    assert [states[not_theirs.cases[n]] for n in ("held", "offered", "closed")] == [
        "assigned",
        "offered",
        "closed",
    ]
    notes = stack.query(
        "select count(*) from case_notes where case_id in (:a, :b, :c)",
        dict(zip("abc", not_theirs.cases.values(), strict=True)),
    )
    assert notes == [(0,)]


def test_the_event_stream_names_no_case_to_another_counsellor(not_theirs, stack):
    """The colleague's reply is announced to every console as "something changed", never with
    the case's number."""
    other = not_theirs.other
    with other.client.stream("GET", "/console/api/events", timeout=30) as stream:
        lines = stream.iter_lines()
        assert next(line for line in lines if line.startswith("retry:"))
        held = not_theirs.cases["held"]
        reply = not_theirs.holder.post(f"/console/api/cases/{held}/reply", {"text": "ยังอยู่ไหม"})
        assert reply.status_code == 200
        event = json.loads(next(line for line in lines if line.startswith("data:"))[5:])
    assert event == {"type": "changed"}


# -- waiting for events handled after their webhooks ----------------------------------------------


def settle(stack, *standins, quiet_s: float = 3, timeout: float = 180) -> None:
    """Waits until events handled after their webhooks are done: nothing new in the gateway's
    log or at the stand-ins for `quiet_s`."""
    log = stack.processes["gateway"].log

    def now() -> tuple[int, ...]:
        return (log.stat().st_size, *(len(s.requests()) for s in standins))

    deadline, last, since = time.monotonic() + timeout, now(), time.monotonic()
    while time.monotonic() - since < quiet_s:
        assert time.monotonic() < deadline, "the gateway is still busy with hostile events"
        time.sleep(0.5)
        current = now()
        if current != last:
            last, since = current, time.monotonic()


# -- rate limits -----------------------------------------------------------------------------------


def test_a_web_chat_child_over_the_user_limit_gets_the_kind_message(http, locales):
    """RATE_USER_PER_MIN defaults to 20: the 21st to 25th message in a minute get
    utter_rate_limited in Thai, recorded like any reply; another child is unaffected."""
    user, other = f"fast-{uuid.uuid4().hex[:8]}", f"calm-{uuid.uuid4().hex[:8]}"
    limited = locales.render("utter_rate_limited", "th", {}).text
    started = time.monotonic()
    replies = []
    for _ in range(25):
        response = http.post("/webchat/messages", json={"user": user, "text": "สวัสดีค่ะ"})
        assert response.status_code == 200
        replies.append([m["text"] for m in response.json()["messages"]])
    assert time.monotonic() - started < 55, "too slow to test a per-minute limit"
    assert all(limited not in texts for texts in replies[:20])
    assert replies[20:] == [[limited]] * 5
    later = http.get("/webchat/messages", params={"user": user, "after": 0}).json()["messages"]
    assert [m["text"] for m in later].count(limited) == 5
    assert {m["sender"] for m in later if m["text"] == limited} == {"bot"}

    calm = http.post("/webchat/messages", json={"user": other, "text": "hello"}).json()
    assert [m["text"] for m in calm["messages"]] == [locales.render("utter_greet", "en", {}).text]


@pytest.fixture
def low_limits(tmp_path) -> Settings:
    return offline_settings(
        tmp_path,
        line_channel_secret=LINE_SECRET,
        line_channel_access_token="test-token",
        line_api_base_url="http://127.0.0.1:9",
        rate_user_per_min=3,
        rate_ip_per_min=5,
    )


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple]:
    """The app in this event loop, and a client factory for a given client address."""
    app = create_app(settings)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(app.router.lifespan_context(app))

        async def client(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(address, 40_000))
            return await stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://gateway")
            )

        yield app, client


def test_over_the_address_limit_the_web_chat_answers_429_with_the_kind_message(low_limits):
    locales = Locales(ROOT / "locales")
    thai, english = (locales.render("utter_rate_limited", lang, {}).text for lang in ("th", "en"))

    async def scenario() -> None:
        async with running(low_limits) as (_, client):
            school, home, machine = [
                await client(a) for a in ("198.51.100.7", "203.0.113.9", "127.0.0.1")
            ]
            for i in range(5):  # RATE_IP_PER_MIN=5: POSTs and GETs count alike
                if i % 2:
                    answer = await school.get("/webchat/messages", params={"user": f"s{i}"})
                else:
                    answer = await school.post(
                        "/webchat/messages", json={"user": f"s{i}", "text": "hi"}
                    )
                assert answer.status_code == 200, answer.text
            over = await school.post("/webchat/messages", json={"user": "s9", "text": "ช่วยด้วย"})
            assert over.status_code == 429
            assert [m["text"] for m in over.json()["messages"]] == [thai]
            assert 1 <= int(over.headers["retry-after"]) <= 60
            english_over = await school.post(
                "/webchat/messages", json={"user": "s9", "text": "help me"}
            )
            assert [m["text"] for m in english_over.json()["messages"]] == [english]
            polled = await school.get("/webchat/messages", params={"user": "s9"})
            assert polled.status_code == 429  # no words to tell the language: both, Thai first
            assert [m["text"] for m in polled.json()["messages"]] == [thai, english]
            junk = await school.post("/webchat/messages", content=b"\xff")
            assert junk.status_code == 429

            # Another address, and the machine itself (a local page, or a proxy that did not
            # pass the address on) are not held back.
            assert (
                await home.post("/webchat/messages", json={"user": "h", "text": "hi"})
            ).status_code == 200
            for i in range(20):
                polled = await machine.get("/webchat/messages", params={"user": f"m{i}"})
                assert polled.status_code == 200

            # Platform webhooks are authenticated and carry many users from one address.
            body = json.dumps({"destination": "Ubot", "events": []}).encode()
            for _ in range(10):
                hook = await school.post(
                    "/webhooks/line", content=body, headers={"x-line-signature": sign(body)}
                )
                assert hook.status_code == 200

    asyncio.run(scenario())


def test_the_user_limit_counts_only_what_would_reach_rasa(low_limits):
    """RATE_USER_PER_MIN=3: the 4th text in a minute is answered with utter_rate_limited in the
    child's language; empty messages (answered without Rasa) are neither counted nor refused."""
    locales = Locales(ROOT / "locales")

    async def scenario() -> None:
        async with running(low_limits) as (_, client):
            local = await client("127.0.0.1")

            async def say(user: str, text: str) -> list[str]:
                answer = await local.post("/webchat/messages", json={"user": user, "text": text})
                assert answer.status_code == 200
                return [m["text"] for m in answer.json()["messages"]]

            # Without Rasa (and so /nlg) nothing remembers the language: the default's empty
            # message is fine here, what matters is that it is not refused.
            empty = [[locales.text("utter_empty_message", lang)] for lang in ("th", "en")]
            for _ in range(3):
                assert await say("en-child", "hello") == [
                    locales.render("utter_fallback", "en", {}).text
                ]
                assert await say("en-child", "\u200b ") in empty
            assert await say("en-child", "hello") == [
                locales.render("utter_rate_limited", "en", {}).text
            ]
            for _ in range(3):
                await say("th-child", "สวัสดี")
            assert await say("th-child", "สวัสดี") == [
                locales.render("utter_rate_limited", "th", {}).text
            ]
            assert await say("another-child", "hello") != [
                locales.render("utter_rate_limited", "en", {}).text
            ]

    asyncio.run(scenario())


def test_while_a_person_has_the_chat_the_child_is_never_rate_limited(low_limits):
    """The limit is checked only before Rasa: with a counsellor, every message reaches the case."""

    async def scenario() -> None:
        async with running(low_limits) as (app, client):
            local = await client("127.0.0.1")
            user = "with-a-counsellor"
            await local.post("/webchat/messages", json={"user": user, "text": "hello"})
            async with app.state.sessions() as session:
                await session.execute(update(Conversation).values(mode="assigned"))
                await session.commit()
            to_case: list[str] = []

            async def from_child(conversation_id, text, kind, language):
                to_case.append(text)
                return []  # the bot stays silent while a person has the chat

            app.state.handoff.from_child = from_child
            for i in range(10):
                answer = await local.post(
                    "/webchat/messages", json={"user": user, "text": f"message {i}"}
                )
                assert answer.status_code == 200
                assert answer.json()["messages"] == []
            assert to_case == [f"message {i}" for i in range(10)]

    asyncio.run(scenario())


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limiter_slides_forgets_idle_keys_and_stays_bounded():
    clock = Clock()
    limiter = RateLimiter(3, window_s=60, slots=12, max_keys=100, clock=clock)
    assert [limiter.hit("a") for _ in range(5)] == [True, True, True, False, False]
    assert 55 <= limiter.retry_after("a") <= 60
    clock.now += 30
    assert not limiter.hit("a")  # refused hits were not counted, but the first three still are
    clock.now += 31
    assert limiter.retry_after("a") == 0
    assert limiter.hit("a")
    assert limiter.hit("b")

    for i in range(10_000):  # a crowd of one-off keys
        limiter.hit(f"key-{i}")
    assert limiter.keys <= 100
    clock.now += 61
    limiter.hit("late")
    assert limiter.keys == 1  # everyone idle for a minute is forgotten

    unlimited = RateLimiter(0, clock=clock)
    assert all(unlimited.hit("x") for _ in range(1000)) and unlimited.keys == 0


# -- where Rasa and the action server listen ---------------------------------------------------


def listening(port: int) -> set[str]:
    """The local addresses with a listening TCP socket on `port` (/proc/net/tcp and tcp6)."""
    found = set()
    for name, width in (("tcp", 8), ("tcp6", 32)):
        table = Path("/proc/net") / name
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].split(":")
            if fields[3] != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            if width == 8:
                found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
            else:
                words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


def outward_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
            address = probe.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_rasa_and_the_action_server_listen_on_127_0_0_1_only(stack):
    rasa = stack.processes["rasa"].args
    assert rasa[rasa.index("-i") + 1] == "127.0.0.1"
    assert stack.env()["SANIC_HOST"] == "127.0.0.1"  # rasa_sdk binds 0.0.0.0 without it
    ports = {"rasa": stack.rasa_port, "actions": stack.action_port, "gateway": stack.gateway_port}
    elsewhere = outward_address()
    for name, port in ports.items():
        addresses = listening(port)
        assert addresses, f"{name} is not listening on {port}"
        assert addresses <= {"127.0.0.1", "::1", "::ffff:127.0.0.1"}, (name, addresses)
        if elsewhere:
            with pytest.raises(OSError), socket.create_connection((elsewhere, port), timeout=2):
                pass


# -- after all that (last) ----------------------------------------------------------------------


def test_after_all_that_everything_is_still_up_and_nothing_failed(
    http, stack, log_start, line_api, telegram_api
):
    settle(stack, line_api, telegram_api)
    for name in ("gateway", "rasa", "actions"):
        assert stack.processes[name].alive(), f"{name} died"
    assert http.get("/healthz").status_code == 200
    with stack.processes["gateway"].log.open("rb") as log:
        log.seek(log_start)
        written = log.read().decode("utf-8", "replace")
    assert "Traceback" not in written, written[written.find("Traceback") - 300 :][:3000]
    assert "Exception in ASGI application" not in written
    line_api.clear()
    telegram_api.clear()
