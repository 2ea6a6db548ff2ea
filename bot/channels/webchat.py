"""The local web chat: the page at `/` and the JSON API it (and the tests) use.

The page arrives with the greeting and its buttons in the browser's language, so a child never
faces an empty screen, and opening it stores nothing: a conversation begins with the first message.

POST /webchat/messages takes {"user", "text"} and, for a button the page's user pressed,
"pressed": true (only a pressed "yes" deletes anything, bot/forget.py); "language", the page's,
for a payload sent before the child has written anything. Its answer carries
"forgotten": true once the user's data was erased, so the page lets go of its own copy too.

A message goes through the durable inbox like a LINE or Telegram event (bot/inbox.py): it is
written first, and a child's messages are answered one at a time, in order, whichever replica
each request reaches; the request waits for its own message's answer. Past capacity
(bot/holding.py) the request answers with the holding line (sender "holding") and the real
answer follows in the later messages the page polls for (sender "bot").
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from bot import assets
from bot.identity import user_key
from bot.inbox import Early, Event
from bot.language import reply_language, written
from bot.message import Incoming, Outgoing
from bot.ratelimit import client_address
from bot.store.models import Conversation, Message
from bot.untrusted import loads

CHANNEL = "webchat"
MAX_BODY_BYTES = 64 * 1024
MAX_USER_CHARS = 128
MAX_FETCH = 100
MAX_CURSOR = 2**63 - 1  # the largest id a database stores
# The longest a request waits for its answer (the child's earlier messages are answered first);
# past it the fail-safe answers, and the answer still comes, fetched like a counsellor's words.
ANSWER_WAIT_S = 60.0
STATIC = Path(__file__).resolve().parent.parent / "static"
PAGE = Environment(loader=FileSystemLoader(STATIC), autoescape=select_autoescape(["html"]))
# The page's labels (locales/, like every other sentence).
LABELS = (
    "ui_title",
    "ui_placeholder",
    "ui_offline",
    "ui_forget",
    "ui_send",
    "ui_quick_exit",
    "ui_quick_exit_hint",
)
ASSETS = ("webchat.js", "webchat.css")


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _parse(body: Any) -> tuple[str, str]:
    """The (user, text) of a request body, or ValueError saying what is wrong with it."""
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    user, text = body.get("user"), body.get("text")
    if not isinstance(user, str) or not 0 < len(user) <= MAX_USER_CHARS:
        raise ValueError(f"user must be a string of 1 to {MAX_USER_CHARS} characters")
    if not isinstance(text, str):
        raise ValueError("text must be a string")
    return user, text


def _rate_limited(request: Request, raw: bytes = b"") -> JSONResponse | None:
    """429 with `utter_rate_limited` (in the language of the text sent, else in each language)
    when this client address is over RATE_IP_PER_MIN; None when it may go on (bot/ratelimit.py)."""
    state = request.app.state
    address = client_address(request.scope.get("client"), state.settings.trusted_proxies)
    if address is None or state.ip_limit.hit(address):
        return None
    try:
        _, text = _parse(_json(raw))
    except ValueError:
        text = ""
    default = state.settings.default_language
    languages = sorted(state.locales.languages or [default], key=lambda lang: lang != default)
    words = written(text)
    say = [
        state.locales.render("utter_rate_limited", language, {"channel": CHANNEL})
        for language in ([words] if words in languages else languages)
    ]
    return JSONResponse(
        {"messages": [m.as_json() for m in say if m is not None], "mode": "bot"},
        status_code=429,
        headers={"Retry-After": str(state.ip_limit.retry_after(address))},
    )


async def post_message(request: Request) -> JSONResponse:
    raw = await request.body()
    limited = _rate_limited(request, raw if len(raw) <= MAX_BODY_BYTES else b"")
    if limited is not None:
        return limited
    if len(raw) > MAX_BODY_BYTES:
        return _error("body too large", 413)
    try:
        body = _json(raw)
        user, text = _parse(body)
    except ValueError as exc:
        return _error(str(exc), 400)
    state = request.app.state
    event = Event(
        event_id=uuid.uuid4().hex,
        user_id="",  # the web chat's own id is only ever used hashed
        kind="text",
        text=text,
        pressed=body.get("pressed") is True,  # a button on the page, not typed
        reply={"language": _spoken(state, body.get("language"))},  # the page's
    )
    key = user_key(state.settings.user_id_secret, CHANNEL, user)
    answer = await state.inbox.answer(CHANNEL, key, event, ANSWER_WAIT_S)
    if answer is None:
        answer = await WebChat(state).fail_safe(event, key)
    return JSONResponse(answer)


class WebChat:
    """The web chat's answers to the inbox's events (bot/inbox.py): the router's reply as the
    request's JSON answer."""

    def __init__(self, state: Any) -> None:
        self.state = state

    async def handle(self, event: Event, user: str, early: Early) -> dict[str, Any]:
        async def hold(messages: list[Outgoing]) -> None:
            await early({"messages": [m.as_json() for m in messages], "mode": "bot"})

        incoming = Incoming(
            channel=CHANNEL,
            user_key=user,
            text=event.text,
            pressed=event.pressed,
            language=event.reply.get("language"),
        )
        reply = await self.state.router.handle(incoming, hold)
        answer: dict[str, Any] = {
            "messages": [m.as_json() for m in reply.messages],
            "mode": reply.mode,
        }
        if reply.forgotten:
            answer["forgotten"] = True
        return answer

    async def fail_safe(self, event: Event, user: str) -> dict[str, Any]:
        """1387, 1300, 191 and a person, in the language of the words sent, else the page's."""
        settings, languages = self.state.settings, self.state.locales.languages
        page = event.reply.get("language")
        language = reply_language(
            written(event.text), None, page, settings.default_language, languages
        )
        fallback = replace(self.state.locales.say("utter_fallback", language), sender="fallback")
        return {"messages": [fallback.as_json()], "mode": "bot"}


async def later_messages(request: Request) -> JSONResponse:
    """What was said to the child after `after` (counsellor words, queue updates), by cursor."""
    limited = _rate_limited(request)
    if limited is not None:
        return limited
    user = request.query_params.get("user", "")
    try:
        after = min(max(int(request.query_params.get("after", "0")), 0), MAX_CURSOR)
    except ValueError:
        return _error("after must be a whole number", 400)
    if not 0 < len(user) <= MAX_USER_CHARS:
        return _error(f"user must be a string of 1 to {MAX_USER_CHARS} characters", 400)
    state = request.app.state
    key = user_key(state.settings.user_id_secret, CHANNEL, user)
    async with state.sessions() as session:
        conversation = await session.scalar(
            select(Conversation).where(Conversation.user_key == key)
        )
        if conversation is None:
            return JSONResponse({"messages": [], "mode": "bot"})
        rows = await session.scalars(
            select(Message)
            .where(
                Message.conversation_id == conversation.id,
                Message.id > after,
                Message.sender != "user",
            )
            .order_by(Message.id)
            .limit(MAX_FETCH)
        )
        messages = [_fetched(row) for row in rows]
    return JSONResponse({"messages": messages, "mode": conversation.mode})


def _fetched(row: Message) -> dict[str, Any]:
    return {
        "text": row.text,
        "buttons": json.loads(row.buttons) if row.buttons else [],
        "sender": row.sender,
        "cursor": row.id,
    }


def _json(raw: bytes) -> Any:
    """The body as JSON, or ValueError (bot/untrusted.py: also too deep, lone surrogates fixed)."""
    return loads(raw)


def _spoken(state: Any, language: Any) -> str | None:
    """`language` if it is one we speak, else None."""
    return language if isinstance(language, str) and language in state.locales.languages else None


def page_language(state: Any, accept_language: str) -> str:
    """The browser's first preferred language that we speak (Accept-Language lists them in
    order), else the default: Thai."""
    for part in accept_language.split(","):
        tag = part.split(";")[0].strip().split("-")[0].lower()
        if _spoken(state, tag):
            return tag
    return state.settings.default_language


async def page(request: Request) -> HTMLResponse:
    """The chat with its greeting already on it: nothing to wait for, nothing stored."""
    state = request.app.state
    language = page_language(state, request.headers.get("accept-language", ""))
    html = PAGE.get_template("index.html").render(
        lang=language,
        t={name: state.locales.text(name, language) for name in LABELS},
        greeting=state.locales.say("utter_greet", language, {"channel": CHANNEL}),
        exit_url=state.settings.webchat_exit_url,
    )
    # The words follow the browser's language, so no cache may hand them to another browser.
    headers = {"Cache-Control": "no-store", "Vary": "Accept-Language"}
    return HTMLResponse(html, headers=headers)


routes = [
    Route("/", page, methods=["GET"]),
    Route("/webchat/messages", post_message, methods=["POST"]),
    Route("/webchat/messages", later_messages, methods=["GET"]),
    *assets.routes("/webchat", STATIC, ASSETS),
]
