"""The LINE channel: LINE's webhook in, replies out through the Messaging API (line-bot-sdk v3).

What is LINE's own lives here; the journey of an event (acknowledge at once, drop redeliveries,
order per user, hash the id, route) is bot/channels/platform.py's.

- Requests are verified with the SDK's signature check before anything is read.
- Replies use the event's reply token (free). When it is missing, too old, or the reply fails, the
  same messages go to the push outbox (bot/handoff/relay.py) and are pushed (billed) with an
  X-Line-Retry-Key derived from their outbox row, unless the user has blocked the account: a push
  retried after its answer was lost is delivered once (LINE answers 409 to the repeated key, which
  counts as delivered). Pushes are counted per month and a warning is logged at 80% of
  LINE_PUSH_BUDGET.
- Images, videos, audio and files are never downloaded: the data API is never called.
- The LINE user id is kept only encrypted (bot/address.py), so a later push can reach the child.
- Quick replies and rich-menu areas arrive as postbacks, marked as pressed: "delete my data" (the
  menu's tile, or /forget typed) is the router's (bot/forget.py), and only a pressed "yes" deletes.
- While a turn runs, the child sees LINE's loading animation and their message marked read (by the
  message's read token, the endpoint every channel may use). Only 1:1 chats reach a turn at all;
  neither call can hold up or stop the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from linebot.v3 import WebhookParser
from linebot.v3.exceptions import InvalidSignatureError
from linebot.v3.messaging import (
    ApiException,
    AsyncApiClient,
    AsyncMessagingApi,
    Configuration,
    MarkMessagesAsReadByTokenRequest,
    PostbackAction,
    PushMessageRequest,
    QuickReply,
    QuickReplyItem,
    ReplyMessageRequest,
    ShowLoadingAnimationRequest,
    TextMessage,
)
from linebot.v3.models.events import UnknownEvent
from linebot.v3.webhooks import (
    AudioMessageContent,
    EventMode,
    FileMessageContent,
    FollowEvent,
    ImageMessageContent,
    LocationMessageContent,
    MessageEvent,
    PostbackEvent,
    StickerMessageContent,
    TextMessageContent,
    UnfollowEvent,
    UserSource,
    VideoMessageContent,
)
from starlette.applications import Starlette

from bot.channels.platform import Event, PlatformChannel, Refused
from bot.config import Settings
from bot.message import Button, Outgoing
from bot.store import deliveries
from bot.text_split import fit_utf16, split_utf16, utf16_len

log = logging.getLogger(__name__)

# LINE's limits (Messaging API reference, "Message objects" and "Quick reply"). LINE counts
# characters in UTF-16 code units, so an emoji counts twice.
MAX_TEXT = 5000
MAX_MESSAGES_PER_REQUEST = 5
MAX_QUICK_REPLIES = 13
MAX_LABEL = 20
MAX_POSTBACK_DATA = 300
MAX_DISPLAY_TEXT = 300
# A reply token is good for about a minute after the event; an older event is answered by push.
REPLY_WINDOW_S = 50
REQUEST_TIMEOUT_S = 10
PUSH_WARNING_SHARE = 0.8
# The loading animation and "read" are courtesies: the reply waits for them at most this long.
STATUS_TIMEOUT_S = 3
# LINE shows the animation for 5 to 60 seconds, in steps of 5, and hides it when the reply comes;
# it lasts the longest a turn may wait for Rasa plus this margin for the queue before it.
LOADING_STEP_S, LOADING_MAX_S, LOADING_MARGIN_S = 5, 60, 5

# The rich menu's ภาษา/Language area sends this: switch to the other language.
LANGUAGE_TOGGLE = "/choose_language"

_MEDIA = (ImageMessageContent, VideoMessageContent, AudioMessageContent, FileMessageContent)
_MEDIA_TYPES = ("image", "video", "audio", "file")
_RETRY_KEYS = uuid.UUID("5f0c1e9e-4a1b-4d59-9a55-3d1f8f0b7c21")  # namespace for push retry keys
_SEND_ERRORS = (ApiException, aiohttp.ClientError, asyncio.TimeoutError)


def _merge(texts: list[str], most: int) -> list[str]:
    """Joins the shortest neighbouring bubbles until `most` remain, so one free reply can carry
    what would otherwise need a billed push; stops when no pair fits in one bubble."""
    texts = list(texts)
    while len(texts) > most:
        sizes = [utf16_len(texts[i]) + utf16_len(texts[i + 1]) + 2 for i in range(len(texts) - 1)]
        best = min(range(len(sizes)), key=sizes.__getitem__)
        if sizes[best] > MAX_TEXT:
            break
        texts[best : best + 2] = [texts[best] + "\n\n" + texts[best + 1]]
    return texts


def _fitting(replies: list[Outgoing]) -> int:
    """How many of the replies, from the first, one request can carry (0: not even the first)."""
    fitting = 0
    while (
        fitting < len(replies)
        and len(line_messages(replies[: fitting + 1])) <= MAX_MESSAGES_PER_REQUEST
    ):
        fitting += 1
    return fitting


def quick_replies(buttons: list[Button]) -> QuickReply | None:
    """Buttons as quick replies (postbacks that show the button's title as the child's message)."""
    items, seen = [], set()
    for button in buttons:
        if button.payload in seen or utf16_len(button.payload) > MAX_POSTBACK_DATA:
            continue
        seen.add(button.payload)
        action = PostbackAction(
            label=fit_utf16(button.title, MAX_LABEL),
            data=button.payload,
            display_text=fit_utf16(button.title, MAX_DISPLAY_TEXT),
        )
        items.append(QuickReplyItem(action=action))
    return QuickReply(items=items[:MAX_QUICK_REPLIES]) if items else None


def line_messages(replies: list[Outgoing]) -> list[TextMessage]:
    """The router's replies as LINE text messages; every button goes on the last bubble, because
    LINE shows quick replies only under the latest message."""
    texts = _merge(
        [p for r in replies for p in split_utf16(r.text, MAX_TEXT)], MAX_MESSAGES_PER_REQUEST
    )
    if not texts:
        return []
    messages = [TextMessage(text=t) for t in texts]
    messages[-1].quick_reply = quick_replies([b for r in replies for b in r.buttons])
    return messages


def _event(raw: Any) -> Event:
    """One SDK event as the gateway's Event; group chats, standby mode and the unknown: ignore."""
    source = getattr(raw, "source", None)
    user_id = source.user_id if isinstance(source, UserSource) else None
    event_id = getattr(raw, "webhook_event_id", None) or ""
    if not user_id or not event_id or getattr(raw, "mode", None) != EventMode.ACTIVE:
        return Event(event_id=event_id, user_id=user_id or "", kind="ignore")
    reply = {
        "token": getattr(raw, "reply_token", None),
        "timestamp_ms": raw.timestamp,
    }
    kind, text, pressed = "ignore", "", False
    if isinstance(raw, MessageEvent):
        content = raw.message
        reply["read_token"] = getattr(content, "mark_as_read_token", None)
        if isinstance(content, TextMessageContent):
            kind, text = "text", content.text
        elif isinstance(content, StickerMessageContent):
            kind = "sticker"
        elif isinstance(content, _MEDIA):
            kind = "media"
        elif isinstance(content, LocationMessageContent):
            kind = "text"  # no readable text: the router answers kindly (utter_empty_message)
    elif isinstance(raw, PostbackEvent):  # a quick reply or a rich-menu area
        kind, text, pressed = "text", raw.postback.data, True
    elif isinstance(raw, FollowEvent):
        kind = "follow"
    elif isinstance(raw, UnfollowEvent):
        kind = "unfollow"
    return Event(
        event_id=event_id, user_id=user_id, kind=kind, text=text, reply=reply, pressed=pressed
    )


_LENIENT_KINDS = {"text": "text", "sticker": "sticker", **{m: "media" for m in _MEDIA_TYPES}}


def _lenient(raw: dict[str, Any]) -> Event:
    """A message or postback whose JSON the SDK's models rejected (a field missing, or a new
    message type), read from the JSON itself: a child must never be met with silence. A message
    of a kind not known here gets the kind answer to a message without readable text."""
    source = raw.get("source") if isinstance(raw.get("source"), dict) else {}
    user_id, event_id = source.get("userId"), raw.get("webhookEventId")
    if (
        source.get("type") != "user"
        or raw.get("mode") != "active"
        or not isinstance(user_id, str)
        or not isinstance(event_id, str)
    ):
        return Event(event_id=str(event_id or ""), user_id="", kind="ignore")
    pressed = raw.get("type") == "postback"
    if pressed:
        postback = raw.get("postback") if isinstance(raw.get("postback"), dict) else {}
        kind, text, read_token = "text", postback.get("data"), None
    else:
        message = raw.get("message") if isinstance(raw.get("message"), dict) else {}
        content = message.get("type")  # any JSON at all: a list cannot even be looked up
        kind = _LENIENT_KINDS.get(content, "text") if isinstance(content, str) else "text"
        text = message.get("text")
        read_token = message.get("markAsReadToken")
    text = text if isinstance(text, str) and kind == "text" else ""
    timestamp = raw.get("timestamp")
    reply = {
        "token": raw.get("replyToken") if isinstance(raw.get("replyToken"), str) else None,
        "timestamp_ms": timestamp if isinstance(timestamp, int) else int(time.time() * 1000),
        "read_token": read_token if isinstance(read_token, str) else None,
    }
    log.warning("a LINE %s event the SDK could not read was answered from its JSON", raw["type"])
    return Event(
        event_id=event_id, user_id=user_id, kind=kind, text=text, reply=reply, pressed=pressed
    )


class LineChannel(PlatformChannel):
    name = "line"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._parser = WebhookParser(settings.line_channel_secret)
        self._api: AsyncMessagingApi | None = None
        # The loading animation and read mark of each event being handled, by event id.
        self._status: dict[str, asyncio.Task[None]] = {}
        steps = math.ceil((settings.rasa_timeout_s + LOADING_MARGIN_S) / LOADING_STEP_S)
        self._loading_s = min(max(steps * LOADING_STEP_S, LOADING_STEP_S), LOADING_MAX_S)

    @contextlib.asynccontextmanager
    async def running(self, app: Starlette) -> AsyncIterator[None]:
        """The SDK's client, pointed at LINE_API_BASE_URL; events still queued at shutdown are
        finished before it closes."""
        self.state = app.state
        configuration = Configuration(
            host=self.settings.line_api_base_url,
            access_token=self.settings.line_channel_access_token,
        )
        async with AsyncApiClient(configuration) as client:
            self._api = AsyncMessagingApi(client)
            try:
                yield
            finally:
                await app.state.inbox.drain()
                self._api = None

    # -- in ------------------------------------------------------------------------------------

    def parse(self, headers: dict[str, str], body: bytes) -> list[Event]:
        """Verified events, or Refused: 401 without a valid signature, 400 for an unreadable body.
        LINE signs UTF-8 JSON; a body that is not UTF-8 cannot be checked and is refused (400)."""
        signature = headers.get("x-line-signature", "")
        if not signature:
            raise Refused(401, "missing X-Line-Signature")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(400, "body must be UTF-8 JSON") from None
        try:
            events = self._parser.parse(text, signature)
        except InvalidSignatureError:
            raise Refused(401, "invalid X-Line-Signature") from None
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise Refused(400, "malformed webhook body") from None
        raw_events = json.loads(text)["events"]  # the SDK has just read it: one per event
        return [
            _lenient(raw)
            if isinstance(event, UnknownEvent) and raw.get("type") in ("message", "postback")
            else _event(event)
            for event, raw in zip(events, raw_events, strict=True)
        ]

    async def on_special(self, event: Event, user: str) -> list[Outgoing] | None:
        if event.kind == "unfollow":
            await self.mark_unreachable(user)
            return []
        await self.remember_address(user, event.user_id, reachable=event.kind == "follow")
        if event.kind == "follow":
            language = await self._profile_language(event.user_id)
            return await self.route(user, f'/greeting{{"language":"{language}"}}')
        if event.kind == "text" and event.text.strip() == LANGUAGE_TOGGLE:
            language = await self._other_language(user)
            return await self.route(user, f'/choose_language{{"language":"{language}"}}')
        return None

    async def _profile_language(self, line_id: str) -> str:
        """The LINE profile's language when we speak it, else the default (Thai)."""
        default = self.settings.default_language
        try:
            profile = await self._client().get_profile(line_id, _request_timeout=REQUEST_TIMEOUT_S)
        except (*_SEND_ERRORS, ValueError) as exc:
            log.info("LINE profile unavailable (%s); welcoming in %s", _why(exc), default)
            return default
        return self.known_language(profile.language)

    async def _other_language(self, user: str) -> str:
        current = await self.conversation_language(user)
        languages = self.state.locales.languages or [self.settings.default_language]
        current = current if current in languages else self.settings.default_language
        index = languages.index(current) if current in languages else -1
        return languages[(index + 1) % len(languages)]

    # -- out -----------------------------------------------------------------------------------

    def started(self, event: Event) -> None:
        """The child sees at once that their message arrived: the loading animation, and "read"
        when the message carries a read token. Runs beside the turn; `send` lets it finish first
        so both come before the reply. Only 1:1 chats get here (_event ignores groups and rooms)."""
        if event.kind == "unfollow":
            return
        task = asyncio.create_task(self._show_status(event))
        self._status[event.event_id] = task
        task.add_done_callback(lambda _: self._status.pop(event.event_id, None))

    async def _show_status(self, event: Event) -> None:
        """LINE's loading animation and read mark; a failure is logged and the turn goes on."""
        try:
            api = self._client()
            calls = [
                api.show_loading_animation(
                    ShowLoadingAnimationRequest(
                        chat_id=event.user_id, loading_seconds=self._loading_s
                    ),
                    _request_timeout=STATUS_TIMEOUT_S,
                )
            ]
            token = event.reply.get("read_token")
            if token:
                read = MarkMessagesAsReadByTokenRequest(mark_as_read_token=token)
                calls.append(
                    api.mark_messages_as_read_by_token(read, _request_timeout=STATUS_TIMEOUT_S)
                )
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
        except Exception as exc:  # a courtesy: nothing here may stop the reply
            outcomes = [exc]
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                log.info("LINE loading animation or read mark failed (%s)", _why(outcome))

    async def send(self, event: Event, user: str, replies: list[Outgoing]) -> list[Outgoing]:
        """The replies that fit in one reply request go with the reply token (free); the rest,
        or all of them when the reply cannot be made, are handed back for the push outbox, which
        pushes them with retry keys of their own (bot/handoff/relay.py)."""
        status = self._status.get(event.event_id)
        if status is not None:
            await status  # never raises: _show_status logs its own failures
        fitting = _fitting(replies)
        if fitting and await self._reply(event, line_messages(replies[:fitting])):
            return replies[fitting:]
        return replies

    async def push(self, user: str, replies: list[Outgoing], key: str) -> bool:
        """Pushes to a user known only by key (the outbox: a counsellor's message, a queue
        update, a reply that could not be made), through the sealed address; never to a user
        who blocked the account. `key` names the outbox row: the retry key derived from it is
        the same at every retry, so LINE delivers a push once however often it is retried."""
        line_id = await self.push_address(user)
        messages = line_messages(replies)
        if not line_id or not messages:
            return False
        sent = True
        for number, start in enumerate(range(0, len(messages), MAX_MESSAGES_PER_REQUEST)):
            batch = messages[start : start + MAX_MESSAGES_PER_REQUEST]
            retry_key = uuid.uuid5(_RETRY_KEYS, f"{key}:{number}")
            sent = await self._push(user, line_id, batch, retry_key) and sent
        return sent

    async def _reply(self, event: Event, batch: list[TextMessage]) -> bool:
        token = event.reply.get("token")
        age_s = time.time() - event.reply.get("timestamp_ms", 0) / 1000
        if not token or age_s > REPLY_WINDOW_S:
            log.info("LINE reply token %s; pushing", "missing" if not token else "expired")
            return False
        request = ReplyMessageRequest(reply_token=token, messages=batch)
        try:
            await self._client().reply_message(request, _request_timeout=REQUEST_TIMEOUT_S)
        except (*_SEND_ERRORS, ValueError) as exc:
            # ValueError: an answer the SDK could not read; a duplicate beats silence
            log.info("LINE reply failed (%s); pushing", _why(exc))
            return False
        return True

    async def _push(
        self, user: str, line_id: str, batch: list[TextMessage], key: uuid.UUID
    ) -> bool:
        """One push, retried once on a network or server error under the same retry key (LINE
        then sends it at most once); counted against the monthly budget."""
        if await deliveries.unreachable(self.state.sessions, user):
            log.info("not pushing to a LINE user who blocked the account")
            return False
        request = PushMessageRequest(to=line_id, messages=batch)
        for attempt in (1, 2):
            try:
                await self._client().push_message(
                    request, x_line_retry_key=str(key), _request_timeout=REQUEST_TIMEOUT_S
                )
            except ApiException as exc:
                if exc.status == 409:  # already accepted under this retry key
                    break
                if exc.status < 500 or attempt == 2:
                    log.error("LINE push failed (%s)", _why(exc))
                    return False
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                if attempt == 2:
                    log.error("LINE push failed (%s)", _why(exc))
                    return False
            except ValueError as exc:
                log.error("LINE push answer unreadable (%s)", _why(exc))
                return False
            else:
                break
        await self._count_push()
        return True

    async def _count_push(self) -> None:
        total = await deliveries.count_push(self.state.sessions, self.name)
        budget = self.settings.line_push_budget
        if budget <= 0:
            return
        threshold = math.ceil(budget * PUSH_WARNING_SHARE)
        if total == threshold or total >= budget:
            log.warning(
                "LINE pushes this month: %d of a budget of %d (%d%%); replies are free, "
                "pushes are billed",
                total,
                budget,
                round(100 * total / budget),
            )

    def _client(self) -> AsyncMessagingApi:
        if self._api is None:
            raise RuntimeError("the LINE channel is not running")
        return self._api


def _why(exc: BaseException) -> str:
    """An error's status for the log, never its body (it may echo the message)."""
    status = getattr(exc, "status", None)
    return f"HTTP {status}" if status else type(exc).__name__
