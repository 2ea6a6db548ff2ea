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
    holding: int = 0  # turns first answered with the holding line (the real answer comes later)
    handoffs: int = 0
    ack_ms: list[float] = field(default_factory=list)  # LINE only

    @property
    def answered(self) -> int:
        return len(self.ms)

    def count(self, kind: str) -> None:
        """Notes what an answered turn got: "answer", "fallback" or "holding"."""
        self.fallbacks += kind == "fallback"
        self.holding += kind == "holding"


def webchat_kind(messages: list[dict[str, Any]]) -> str:
    """The fail-safe, the holding line (the real answer follows in later-messages) or an answer."""
    senders = {m.get("sender") for m in messages}
    return "fallback" if "fallback" in senders else "holding" if "holding" in senders else "answer"


async def webchat_send(
    client: httpx.AsyncClient, user: str, text: str
) -> tuple[float, dict[str, Any]] | None:
    """(ms until the answer, the answer), or None when the child got nothing."""
    started = time.perf_counter()
    try:
        response = await client.post("/webchat/messages", json={"user": user, "text": text})
        elapsed = (time.perf_counter() - started) * 1000
        body = response.json() if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return None
    if not body.get("messages"):  # an error status, or silence: what a child must never get
        return None
    return elapsed, body


async def webchat_turn(client: httpx.AsyncClient, user: str, text: str, tally: Tally) -> None:
    sent = await webchat_send(client, user, text)
    if sent is None:
        tally.errors += 1
        return
    elapsed, body = sent
    tally.ms.append(elapsed)
    tally.count(webchat_kind(body["messages"]))
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


Arrival = tuple[float, str]  # when a reply or push reached LINE's stand-in, and its kind


class LineReplies:
    """The LINE stand-in's reply and push handlers: note when each event's answers arrive.

    They run in the stand-in's threads; each arrival is queued for the waiting turn on the
    bench's event loop (a holding line's reply is followed by the real answer's push)."""

    def __init__(self, standin: StandIn, loop: asyncio.AbstractEventLoop) -> None:
        from bot.locales import Locales

        locales = Locales(ROOT / "locales")
        self.fallbacks = _rendered(locales, "utter_fallback")
        self.holdings = _rendered(locales, "utter_holding")
        self.loop = loop
        self.pushes = 0
        self._users: dict[str, str] = {}  # reply token -> user
        self._queues: dict[str, asyncio.Queue[Arrival]] = {}
        self._lock = threading.Lock()
        standin.handlers[("POST", LINE_REPLY)] = self._reply
        standin.handlers[("POST", LINE_PUSH)] = self._push

    def expect(self, token: str, user: str) -> asyncio.Queue[Arrival]:
        """A new queue for this user's turn: what came for an earlier turn is dropped."""
        queue: asyncio.Queue[Arrival] = asyncio.Queue()
        with self._lock:
            self._users[token] = user
            self._queues[user] = queue
        return queue

    def forget(self, token: str, user: str) -> None:
        with self._lock:
            self._users.pop(token, None)
            self._queues.pop(user, None)

    def _arrived(self, queue: asyncio.Queue[Arrival] | None, call: Call) -> None:
        at = time.perf_counter()
        texts = {m.get("text") for m in (call.json or {}).get("messages") or []}
        kind = "fallback" if texts & self.fallbacks else "holding" if texts & self.holdings else ""
        if queue is not None:
            self.loop.call_soon_threadsafe(queue.put_nowait, (at, kind or "answer"))

    def _reply(self, call: Call) -> tuple[int, Any]:
        with self._lock:
            user = self._users.pop((call.json or {}).get("replyToken"), None)
            queue = self._queues.get(user) if user else None
        self._arrived(queue, call)
        return 200, {"sentMessages": [{"id": "1", "quoteToken": "q"}]}

    def _push(self, call: Call) -> tuple[int, Any]:
        with self._lock:
            self.pushes += 1
            queue = self._queues.get((call.json or {}).get("to"))
        self._arrived(queue, call)
        return 200, {"sentMessages": [{"id": "2", "quoteToken": "q"}]}


def _rendered(locales: Any, name: str) -> set[str]:
    """Every language's text of a locale response as LINE gets it (none while it is missing)."""
    texts = set()
    for language in ("th", "en"):
        for context in ({}, {"channel": "line"}):
            if rendered := locales.render(name, language, context):
                texts.add(rendered.text)
    return texts


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


async def line_send(
    client: httpx.AsyncClient, replies: LineReplies, user: str, text: str, tally: Tally
) -> tuple[float, str, asyncio.Queue[Arrival]] | None:
    """Sends one signed webhook and times its acknowledgement (until the 200); returns when it
    was sent, its reply token and the queue its answers arrive on, or None on an error."""
    token = f"bench-{uuid.uuid4().hex}"
    body = json.dumps(
        {"destination": "Ubench", "events": [line_event(user, text, token)]}, ensure_ascii=False
    ).encode()
    arrivals = replies.expect(token, user)
    headers = {"content-type": "application/json", "x-line-signature": signed(body)}
    started = time.perf_counter()
    try:
        response = await client.post("/webhooks/line", content=body, headers=headers)
        acknowledged = time.perf_counter()
        response.raise_for_status()
    except httpx.HTTPError:
        replies.forget(token, user)
        tally.errors += 1
        return None
    tally.ack_ms.append((acknowledged - started) * 1000)
    return started, token, arrivals


async def line_turn(
    client: httpx.AsyncClient, replies: LineReplies, user: str, text: str, tally: Tally
) -> None:
    """Acknowledgement: until the webhook's 200. Turn: until the answer reaches the stand-in."""
    sent = await line_send(client, replies, user, text, tally)
    if sent is None:
        return
    started, token, arrivals = sent
    try:
        arrived, kind = await asyncio.wait_for(arrivals.get(), CLIENT_TIMEOUT_S)
    except asyncio.TimeoutError:
        replies.forget(token, user)
        tally.errors += 1
        return
    tally.ms.append((arrived - started) * 1000)
    tally.count(kind)
