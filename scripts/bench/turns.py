"""`make bench`, one turn per path: the web chat, LINE (through its stand-in) and Rasa direct."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from scripts.bench.settings import CLIENT_TIMEOUT_S, ROOT
from tests.gateway.standin import Call, StandIn

LINE_SECRET = "bench-line-channel-secret"
LINE_TOKEN = "bench-line-access-token"
LINE_REPLY = "/v2/bot/message/reply"
LINE_PUSH = "/v2/bot/message/push"


@dataclass
class Tally:
    """What one path saw in one phase."""

    ms: list[float] = field(default_factory=list)
    errors: int = 0
    fallbacks: int = 0
    handoffs: int = 0
    ack_ms: list[float] = field(default_factory=list)  # LINE only

    @property
    def answered(self) -> int:
        return len(self.ms)


async def webchat_turn(client: httpx.AsyncClient, user: str, text: str, tally: Tally) -> None:
    started = time.perf_counter()
    try:
        response = await client.post("/webchat/messages", json={"user": user, "text": text})
        elapsed = (time.perf_counter() - started) * 1000
        body = response.json() if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        tally.errors += 1
        return
    messages = body.get("messages") or []
    if not messages:  # an error status, or silence: both are what a child must never get
        tally.errors += 1
        return
    tally.ms.append(elapsed)
    tally.fallbacks += any(m.get("sender") == "fallback" for m in messages)
    tally.handoffs += body.get("mode") != "bot"


async def direct_turn(client: httpx.AsyncClient, user: str, text: str, tally: Tally) -> None:
    started = time.perf_counter()
    try:
        response = await client.post(
            "/webhooks/rest/webhook", json={"sender": user, "message": text}
        )
        elapsed = (time.perf_counter() - started) * 1000
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError):
        tally.errors += 1
        return
    tally.ms.append(elapsed)
    tally.fallbacks += not body  # Rasa said nothing: through the gateway, the fallback answer


class LineReplies:
    """The LINE stand-in's reply and push handlers: note when each event's answer arrives.

    They run in the stand-in's threads; the waiting turn is woken on the bench's event loop."""

    def __init__(self, standin: StandIn, loop: asyncio.AbstractEventLoop) -> None:
        from bot.locales import Locales

        locales = Locales(ROOT / "locales")
        self.fallbacks = {locales.render("utter_fallback", lang, {}).text for lang in ("th", "en")}
        self.loop = loop
        self.pushes = 0
        self._by_token: dict[str, asyncio.Future] = {}
        self._by_user: dict[str, asyncio.Future] = {}
        self._lock = threading.Lock()
        standin.handlers[("POST", LINE_REPLY)] = self._reply
        standin.handlers[("POST", LINE_PUSH)] = self._push

    def expect(self, token: str, user: str) -> asyncio.Future:
        future = self.loop.create_future()
        with self._lock:
            self._by_token[token] = self._by_user[user] = future
        return future

    def forget(self, token: str, user: str) -> None:
        with self._lock:
            self._by_token.pop(token, None)
            self._by_user.pop(user, None)

    def _arrived(self, future: asyncio.Future | None, call: Call) -> None:
        """Wakes the turn with (when, whether the answer was the fallback)."""
        at = time.perf_counter()
        texts = {m.get("text") for m in (call.json or {}).get("messages") or []}
        if future is not None:
            self.loop.call_soon_threadsafe(_resolve, future, (at, bool(texts & self.fallbacks)))

    def _reply(self, call: Call) -> tuple[int, Any]:
        with self._lock:
            future = self._by_token.pop((call.json or {}).get("replyToken"), None)
        self._arrived(future, call)
        return 200, {"sentMessages": [{"id": "1", "quoteToken": "q"}]}

    def _push(self, call: Call) -> tuple[int, Any]:
        with self._lock:
            self.pushes += 1
            future = self._by_user.pop((call.json or {}).get("to"), None)
        self._arrived(future, call)
        return 200, {"sentMessages": [{"id": "2", "quoteToken": "q"}]}


def _resolve(future: asyncio.Future, result: tuple[float, bool]) -> None:
    if not future.done():
        future.set_result(result)


def line_event(user: str, text: str, token: str) -> dict[str, Any]:
    """A LINE text message, or a postback for a button press (a payload starting with "/")."""
    event: dict[str, Any] = {
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "source": {"type": "user", "userId": user},
        "webhookEventId": uuid.uuid4().hex.upper(),
        "deliveryContext": {"isRedelivery": False},
        "replyToken": token,
    }
    if text.startswith("/"):
        return {**event, "type": "postback", "postback": {"data": text}}
    message = {"type": "text", "id": uuid.uuid4().hex[:12], "quoteToken": "q", "text": text}
    return {**event, "type": "message", "message": message}


def signed(body: bytes) -> str:
    digest = hmac.new(LINE_SECRET.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


async def line_turn(
    client: httpx.AsyncClient, replies: LineReplies, user: str, text: str, tally: Tally
) -> None:
    """Acknowledgement: until the webhook's 200. Turn: until the answer reaches the stand-in."""
    token = f"bench-{uuid.uuid4().hex}"
    body = json.dumps(
        {"destination": "Ubench", "events": [line_event(user, text, token)]}, ensure_ascii=False
    ).encode()
    answered = replies.expect(token, user)
    headers = {"content-type": "application/json", "x-line-signature": signed(body)}
    started = time.perf_counter()
    try:
        response = await client.post("/webhooks/line", content=body, headers=headers)
        acknowledged = time.perf_counter()
        response.raise_for_status()
    except httpx.HTTPError:
        replies.forget(token, user)
        tally.errors += 1
        return
    tally.ack_ms.append((acknowledged - started) * 1000)
    try:
        arrived, fallback = await asyncio.wait_for(answered, CLIENT_TIMEOUT_S)
    except asyncio.TimeoutError:
        replies.forget(token, user)
        tally.errors += 1
        return
    tally.ms.append((arrived - started) * 1000)
    tally.fallbacks += fallback
