"""The Telegram channel: the Bot API's webhook (or long polling) in, Bot API calls out
(python-telegram-bot v22).

What is Telegram's own lives here; the journey of an event (acknowledge at once, drop
redeliveries by update_id, order per chat, hash the id, route) is bot/channels/platform.py's.

- A webhook request must carry the secret registered with setWebhook (make telegram-webhook);
  without TELEGRAM_WEBHOOK_SECRET every request is refused. TELEGRAM_MODE=polling fetches the
  same updates with getUpdates instead, for a machine without a public URL.
- Commands map to the payloads the web chat's buttons send (/help, /human, /start, /language);
  /forget and /clear are the gateway's own and act only after a confirmation button. /forget's
  question and answers are the router's, as on every channel (bot/forget.py); what is Telegram's
  is kept here: the pressed button's query is answered, its buttons go, "no" shows as a short
  notice, and the goodbye after an erasure is sent without keeping its message id.
- /clear needs the ids of the messages in the chat, so ids (never text) are kept for as long as
  Telegram lets bots delete them (48 hours).
- Photos, videos, files, voice and stickers are never downloaded: getFile is never called.
- Groups and channels: one short message that the assistant works in private chats, then leave.
- The chat id is kept only encrypted (bot/address.py), so a later push can reach the child.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import re
from collections.abc import AsyncIterator, Iterable
from datetime import timedelta
from typing import Any

import httpx
from starlette.applications import Starlette
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
)
from telegram.request import HTTPXRequest

from bot import forget
from bot.channels.platform import Event, PlatformChannel, Refused
from bot.config import Settings
from bot.language import reply_language
from bot.message import Button, Outgoing
from bot.store import deliveries
from bot.text_split import fit_utf16, split_utf16
from bot.untrusted import loads

log = logging.getLogger(__name__)

# Bot API limits (core.telegram.org/bots/api): message text, callback_data (bytes), the text of
# an answered callback query, and message ids per deleteMessages call.
MAX_TEXT = 4096
MAX_CALLBACK_DATA = 64
MAX_CALLBACK_ANSWER = 200
MAX_DELETE_BATCH = 100
# Bots may delete messages for 48 hours; a few minutes' margin for clocks and the queue.
DELETABLE_FOR = timedelta(hours=48) - timedelta(minutes=5)
POLL_TIMEOUT_S = 30
REQUEST_TIMEOUT_S = 10
MAX_RETRY_AFTER_S = 30
SECRET_HEADER = "x-telegram-bot-api-secret-token"
MODES = ("webhook", "polling")
# What the bot asks Telegram for (setWebhook and getUpdates): nothing else is ever handled.
ALLOWED_UPDATES = ("message", "edited_message", "callback_query", "my_chat_member", "channel_post")

# The command menu, in this order; each description is `ui_command_<name>` in locales/.
COMMANDS = ("start", "help", "language", "human", "forget", "clear")
# Commands that are a button's payload, routed like a press of that button.
COMMAND_PAYLOADS = {"help": "/report_help", "human": "/talk_to_human"}
# The gateway's own actions behind confirmation buttons; honoured from a button only, never from
# typed text, so nothing is deleted without the child pressing "yes". /forget's are the router's.
FORGET = forget.CONFIRMED
CLEAR = "/clear_confirmed"
KEEP = forget.KEEP
_ACTIONS = (FORGET, CLEAR, KEEP)

_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@\w+)?(?:\s|$)")
_MEDIA = (
    "photo",
    "video",
    "document",
    "voice",
    "audio",
    "video_note",
    "animation",
    "paid_media",
    "story",
)
_NO_WORDS = ("location", "venue", "contact", "poll", "dice", "game")  # answered like no text
_JOINED = (ChatMemberStatus.MEMBER, ChatMemberStatus.ADMINISTRATOR)
# A refusal, or an answer the SDK could not read (KeyError and the like).
_API_ERRORS = (TelegramError, KeyError, TypeError, ValueError)
# What a send came to, besides the Message Telegram answered with.
_NOT_SENT, _MAYBE_SENT, _BLOCKED = object(), object(), object()


def make_bot(settings: Settings) -> Bot:
    """The SDK's Bot on TELEGRAM_API_BASE_URL: methods at <root>/bot<token>/<method>, files at
    <root>/file/bot<token>/<path>. Used by the gateway and by scripts/telegram_webhook.py."""
    root = settings.telegram_api_base_url.rstrip("/")
    timeouts = {"connect_timeout": REQUEST_TIMEOUT_S, "read_timeout": REQUEST_TIMEOUT_S}
    return Bot(
        settings.telegram_bot_token,
        base_url=f"{root}/bot",
        base_file_url=f"{root}/file/bot",
        request=HTTPXRequest(connection_pool_size=8, **timeouts),
        get_updates_request=HTTPXRequest(**timeouts),
    )


def keyboard(buttons: Iterable[Button]) -> InlineKeyboardMarkup | None:
    """Buttons as an inline keyboard, one per row (Thai titles are long); a payload too long for
    callback_data is left out rather than cut, since a cut payload would mean something else."""
    rows, seen = [], set()
    for button in buttons:
        if button.payload in seen or len(button.payload.encode()) > MAX_CALLBACK_DATA:
            continue
        seen.add(button.payload)
        rows.append([InlineKeyboardButton(button.title, callback_data=button.payload)])
    return InlineKeyboardMarkup(rows) if rows else None


def telegram_messages(replies: list[Outgoing]) -> list[tuple[str, InlineKeyboardMarkup | None]]:
    """The router's replies as (text, keyboard) messages within Telegram's text limit. A reply's
    buttons go under its own last piece (inline keyboards stay where they are sent); buttons of a
    reply without text join the message before it."""
    return [(text, markup) for _, text, markup in _numbered(replies)]


def _numbered(replies: list[Outgoing]) -> list[tuple[int, str, InlineKeyboardMarkup | None]]:
    """telegram_messages, each with the number of the reply it starts from."""
    out: list[tuple[int, str, list[Button]]] = []
    for number, reply in enumerate(replies):
        texts = split_utf16(reply.text, MAX_TEXT)
        out.extend((number, text, []) for text in texts)
        if out:
            out[-1][2].extend(reply.buttons)
    return [(number, text, keyboard(buttons)) for number, text, buttons in out]


def command_of(text: str) -> str | None:
    """The command of `/help@SomeBot please` is "help"; None when the text is not a command."""
    match = _COMMAND.match(text.strip())
    return match.group(1).lower() if match else None


# -- updates in ---------------------------------------------------------------------------------

# What reading an update can raise: the SDK checks no types, so a field of the wrong type fails
# wherever it is used (a date too large for a datetime: OverflowError or OSError).
_UNREADABLE = (
    ValueError,
    KeyError,
    TypeError,
    AttributeError,
    ArithmeticError,
    OSError,
    RecursionError,
)


def _checked(event: Event) -> Event:
    """The event, or TypeError when a field the gateway uses has the wrong type."""
    reply = event.reply
    typed = (
        isinstance(event.text, str)
        and isinstance(reply.get("chat", 0), int)
        and isinstance(reply.get("message", 0), int)
        and isinstance(reply.get("on_message", 0), int)
        and isinstance(reply.get("callback", ""), str)
        and isinstance(reply.get("caption", ""), str)
        and isinstance(reply.get("language") or "", str)
    )
    if not typed and event.kind != "ignore":
        raise TypeError("an update field has the wrong type")
    return event


def _event(update: Update) -> Event:
    """One update as the gateway's Event. `reply` holds the chat id, the user's message id and
    date (for /clear), the user's language tag, and for a button press the callback query id and
    the message the button was on."""
    event_id = str(update.update_id)
    if update.channel_post is not None:
        return _group(event_id, update.channel_post.chat.id, None)
    if update.my_chat_member is not None:
        return _membership(event_id, update)
    if update.callback_query is not None:
        return _pressed(event_id, update)
    message = update.message or update.edited_message
    if message is None:
        return Event(event_id=event_id, user_id="", kind="ignore")
    language = message.from_user.language_code if message.from_user else None
    if message.chat.type != ChatType.PRIVATE:
        return _group(event_id, message.chat.id, language)
    return _message(event_id, message, language, edited=update.edited_message is not None)


def _group(event_id: str, chat_id: int, language: str | None) -> Event:
    reply = {"chat": chat_id, "language": language}
    return Event(event_id=event_id, user_id=str(chat_id), kind="group", reply=reply)


def _membership(event_id: str, update: Update) -> Event:
    """Added to a group: say we work in private chats and leave. Blocked (or unblocked) by a
    user: unreachable (or reachable again). Anything else: nothing to do."""
    member = update.my_chat_member
    chat, status = member.chat, member.new_chat_member.status
    if chat.type != ChatType.PRIVATE:
        if status in _JOINED:
            return _group(event_id, chat.id, member.from_user.language_code)
        return Event(event_id=event_id, user_id="", kind="ignore")
    kinds = {ChatMemberStatus.BANNED: "unfollow", ChatMemberStatus.MEMBER: "follow"}
    kind = kinds.get(status, "ignore")
    return Event(event_id=event_id, user_id=str(chat.id), kind=kind, reply={"chat": chat.id})


def _pressed(event_id: str, update: Update) -> Event:
    """A button press, routed like its payload once the query is answered."""
    query = update.callback_query
    message = query.message
    if message is None or message.chat.type != ChatType.PRIVATE or not query.data:
        return Event(event_id=event_id, user_id="", kind="ignore")
    reply = {
        "chat": message.chat.id,
        "language": query.from_user.language_code,
        "callback": query.id,
        "on_message": message.message_id,
    }
    user_id = str(message.chat.id)
    return Event(
        event_id=event_id, user_id=user_id, kind="text", text=query.data, reply=reply, pressed=True
    )


def _message(event_id: str, message: Message, language: str | None, edited: bool) -> Event:
    """A private message: text (an edit is read as a new message), sticker, media (caption kept,
    the file never fetched), something without words, or a service message (ignored)."""
    reply: dict[str, Any] = {"chat": message.chat.id, "language": language}
    if not edited:
        reply.update(message=message.message_id, at=message.date.timestamp())
    kind, text = "ignore", ""
    if message.text is not None:
        kind, text = "text", message.text
    elif edited:
        kind = "ignore"  # an edited caption: the media was answered already
    elif message.sticker is not None:
        kind = "sticker"
    elif any(getattr(message, name, None) for name in _MEDIA):
        kind = "media"
        reply["caption"] = message.caption or ""
    elif any(getattr(message, name, None) for name in _NO_WORDS):
        kind = "text"  # no readable text: the router answers kindly (utter_empty_message)
    user_id = str(message.chat.id) if kind != "ignore" else ""
    return Event(event_id=event_id, user_id=user_id, kind=kind, text=text, reply=reply)


class TelegramChannel(PlatformChannel):
    name = "telegram"

    def __init__(self, settings: Settings) -> None:
        if settings.telegram_mode not in MODES:
            raise ValueError(f"TELEGRAM_MODE must be one of {', '.join(MODES)}")
        self.settings = settings
        self._bot: Bot | None = None

    @property
    def polling(self) -> bool:
        return self.settings.telegram_mode == "polling"

    @contextlib.asynccontextmanager
    async def running(self, app: Starlette) -> AsyncIterator[None]:
        """The SDK's Bot for the app's lifetime, and the polling loop when chosen; events still
        queued at shutdown are finished before the Bot closes."""
        self.state = app.state
        # httpx logs every request's URL at INFO, and a Bot API URL carries the token.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        if not self.polling and not self.settings.telegram_webhook_secret:
            log.error(
                "TELEGRAM_WEBHOOK_SECRET is not set: every Telegram webhook request is refused "
                "(set it and run make telegram-webhook, or use TELEGRAM_MODE=polling)"
            )
        bot = make_bot(self.settings)
        try:
            await bot.initialize()  # getMe: checks the token early
        except _API_ERRORS as exc:
            # The web chat and LINE must keep working while Telegram is unreachable.
            log.warning("Telegram getMe failed (%s); sending will be tried anyway", _why(exc))
        self._bot = bot
        poller = asyncio.create_task(self._poll()) if self.polling else None
        try:
            yield
        finally:
            if poller is not None:
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller
            await app.state.inbox.drain()
            self._bot = None
            await bot.shutdown()

    # -- in ------------------------------------------------------------------------------------

    def parse(self, headers: dict[str, str], body: bytes) -> list[Event]:
        """The update, or Refused: 401 without the right secret token, 400 for a body that is not
        an update, 404 when the channel is polled instead."""
        if self.polling:
            raise Refused(404, "Telegram is polled (TELEGRAM_MODE=polling); no webhook")
        secret = self.settings.telegram_webhook_secret.encode()
        given = headers.get(SECRET_HEADER, "").encode("utf-8", "replace")
        if not secret or not hmac.compare_digest(given, secret):
            raise Refused(401, "missing or wrong X-Telegram-Bot-Api-Secret-Token")
        try:
            data = loads(body)
        except ValueError as exc:
            raise Refused(400, str(exc)) from None
        if not isinstance(data, dict) or type(data.get("update_id")) is not int:
            raise Refused(400, "not an update: an object with an integer update_id")
        try:
            return [_checked(_event(Update.de_json(data, self._bot)))]
        except _UNREADABLE:
            raise Refused(400, "malformed update") from None

    async def _poll(self) -> None:
        """Long polling: the same updates as the webhook, through the same dedupe and queue.
        The offset moves on only once updates are queued; a redelivery is dropped by its id."""
        bot, offset, delay, webhook_deleted = self._client(), None, 1.0, False
        while True:
            try:
                if not webhook_deleted:  # getUpdates is refused while a webhook is set
                    webhook_deleted = await bot.delete_webhook()
                updates = await bot.get_updates(
                    offset=offset, timeout=POLL_TIMEOUT_S, allowed_updates=list(ALLOWED_UPDATES)
                )
                await self.accept(self.state, [self._polled(u) for u in updates])
            except Exception as exc:  # the loop must outlive a bad answer or a database hiccup
                log.warning("Telegram polling failed (%s); again in %.0f s", _why(exc), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60)
                continue
            delay = 1.0
            if updates:
                offset = updates[-1].update_id + 1

    @staticmethod
    def _polled(update: Update) -> Event:
        try:
            return _checked(_event(update))
        except _UNREADABLE:
            log.warning("a polled Telegram update could not be read; ignored")
            return Event(event_id=str(update.update_id), user_id="", kind="ignore")

    async def on_special(self, event: Event, user: str) -> list[Outgoing] | None:
        if event.kind == "group":
            await self._private_only(event)
            return []
        if event.kind == "unfollow":
            await self.mark_unreachable(user)
            return []
        await self.remember_address(user, str(event.reply["chat"]), event.kind == "follow")
        if event.kind == "follow":
            return []  # unblocked: Telegram's "Restart" sends /start, answered then
        if event.reply.get("message"):
            await self._record(user, [(event.reply["message"], event.reply["at"])])
        if event.reply.get("callback"):
            return await self._on_button(event, user)
        if event.kind == "media" and event.reply.get("caption"):
            # The picture is not opened, but the child's words are read.
            media = await self.route(user, "", "media")
            return media + await self.route(user, event.reply["caption"])
        command = command_of(event.text) if event.kind == "text" else None
        return await self._on_command(event, user, command) if command else None

    async def _on_command(self, event: Event, user: str, command: str) -> list[Outgoing] | None:
        if command == "start":
            language = await self._language(user, event)
            return await self.route(user, f'/greeting{{"language":"{language}"}}')
        if command in COMMAND_PAYLOADS:
            return await self.route(user, COMMAND_PAYLOADS[command])
        language = await self._language(user, event)
        if command == "language":
            return [self._say("utter_choose_language", language)]
        if command == "forget":
            return await self.route(user, forget.ASK, language=language)
        if command == "clear":
            return [self._confirm("utter_clear_confirm", "ui_button_clear", CLEAR, language)]
        return None  # any other /word reaches the router as written

    async def _on_button(self, event: Event, user: str) -> list[Outgoing] | None:
        """Answers the callback query (the button stops spinning); a confirmation's buttons go
        once one is pressed. /clear is done here; "yes" and "no" to /forget are answered by the
        router (bot/forget.py); any other payload is routed like any pressed button."""
        query = event.reply["callback"]
        if event.text not in _ACTIONS:
            await self._answer(query)
            return None
        if event.text == CLEAR:
            language = await self._language(user, event)
            await self._answer(query, self._say(await self._clear(event, user), language).text)
            return []
        await self._drop_buttons(event)
        language = await self._language(user, event)
        replies = await self.route(user, event.text, pressed=True, language=language)
        if event.text == KEEP:  # "no" to /forget or /clear: a short notice over the chat
            await self._answer(query, "\n".join(r.text for r in replies))
            return []
        await self._answer(query)
        # Not recorded: after /forget nothing about the child is kept, not even a message id.
        await self._send(event.reply["chat"], user, replies, record=False)
        return []

    async def _language(self, user: str, event: Event) -> str:
        """The conversation's language once known, else the Telegram app's."""
        stored = await self.conversation_language(user)
        app, default = event.reply.get("language"), self.state.settings.default_language
        return reply_language(None, stored, app, default, self.state.locales.languages)

    def _say(self, name: str, language: str) -> Outgoing:
        return self.state.locales.say(name, language, {"channel": self.name})

    def _confirm(self, name: str, yes: str, action: str, language: str) -> Outgoing:
        """A question that deletes something only when its "yes" button is pressed."""
        text = self.state.locales.text
        buttons = (
            Button(text(yes, language), action),
            Button(text("ui_button_keep", language), KEEP),
        )
        return Outgoing(text=self._say(name, language).text, buttons=buttons)

    # -- /clear --------------------------------------------------------------------------------

    async def _record(self, user: str, sent: list[tuple[int, float]]) -> None:
        """Keeps message ids for /clear (bot/store/deliveries.py)."""
        await deliveries.record_message_ids(self.state.sessions, user, sent, DELETABLE_FOR)

    async def _clear(self, event: Event, user: str) -> str:
        """Deletes every message of this chat that bots may still delete (the /clear command and
        its question included); returns the response to show as the button's answer."""
        fresh, complete = await deliveries.take_message_ids(
            self.state.sessions, user, DELETABLE_FOR
        )
        for start in range(0, len(fresh), MAX_DELETE_BATCH):
            batch = fresh[start : start + MAX_DELETE_BATCH]
            try:
                await self._client().delete_messages(event.reply["chat"], batch)
            except _API_ERRORS as exc:
                log.warning("Telegram deleteMessages failed (%s)", _why(exc))
                complete = False
        return "utter_cleared" if complete else "utter_cleared_partly"

    # -- out -----------------------------------------------------------------------------------

    async def send(self, event: Event, user: str, replies: list[Outgoing]) -> list[Outgoing]:
        return await self._send(event.reply["chat"], user, replies)

    async def push(self, user: str, replies: list[Outgoing], key: str) -> bool:
        """Sends to a user known only by key (the outbox: a counsellor's message, a queue
        update), through the sealed chat id; never to a user who blocked the bot. Telegram has
        no retry key: a send whose answer was lost counts as sent, so nothing arrives twice."""
        chat = await self.push_address(user)
        return bool(chat) and not await self._send(int(chat), user, replies)

    async def _send(
        self, chat: int, user: str, replies: list[Outgoing], record: bool = True
    ) -> list[Outgoing]:
        """Sends in order, stopping at the first failure; records the sent ids for /clear.
        Returns the replies not sent, for the push outbox (none once the user blocked the bot)."""
        sent: list[tuple[int, float]] = []
        undelivered: list[Outgoing] = []
        for number, text, markup in _numbered(replies):
            outcome = await self._send_one(chat, user, text, markup)
            if isinstance(outcome, Message):
                sent.append((outcome.message_id, outcome.date.timestamp()))
            elif outcome is _NOT_SENT:
                undelivered = replies[number:]
                break
            elif outcome is _BLOCKED:
                break
        if record and sent:
            await self._record(user, sent)
        return undelivered

    async def _send_one(
        self, chat: int, user: str, text: str, markup: InlineKeyboardMarkup | None
    ) -> Message | object:
        """One sendMessage: the Message, _MAYBE_SENT when the request went out but its answer was
        lost (never sent again: it may have arrived), _NOT_SENT, or _BLOCKED. Tried once more
        when _retry_wait says so."""
        for attempt in (1, 2):
            try:
                return await self._client().send_message(chat, text, reply_markup=markup)
            except Forbidden:
                log.info("a Telegram user blocked the bot; not sending to them any more")
                await self.mark_unreachable(user)
                return _BLOCKED
            except _API_ERRORS as exc:
                wait = _retry_wait(exc) if attempt == 1 else None
                if wait is None:
                    if _maybe_sent(exc):
                        log.warning("Telegram sendMessage's answer was lost (%s)", _why(exc))
                        return _MAYBE_SENT
                    log.error("Telegram sendMessage failed (%s)", _why(exc))
                    return _NOT_SENT
                await asyncio.sleep(wait)
        return _NOT_SENT

    async def _answer(self, query_id: str, text: str | None = None) -> None:
        """Answers a button press, with a short notice when there is something to say."""
        notice = fit_utf16(text, MAX_CALLBACK_ANSWER) if text else None
        try:
            await self._client().answer_callback_query(query_id, text=notice)
        except _API_ERRORS as exc:  # too old, or already answered: the press still counts
            log.info("Telegram answerCallbackQuery failed (%s)", _why(exc))

    async def _drop_buttons(self, event: Event) -> None:
        """Removes a confirmation's buttons once one is pressed, so it cannot act twice."""
        try:
            await self._client().edit_message_reply_markup(
                chat_id=event.reply["chat"], message_id=event.reply["on_message"]
            )
        except _API_ERRORS as exc:
            log.info("Telegram editMessageReplyMarkup failed (%s)", _why(exc))

    async def _private_only(self, event: Event) -> None:
        """In a group or channel: one short message, then leave (nothing is stored)."""
        language = self.known_language(event.reply.get("language"))
        chat = event.reply["chat"]
        with contextlib.suppress(*_API_ERRORS):  # a channel may not let the bot post
            await self._client().send_message(chat, self._say("utter_private_only", language).text)
        try:
            await self._client().leave_chat(chat)
        except _API_ERRORS as exc:
            log.warning("Telegram leaveChat failed (%s)", _why(exc))

    def _client(self) -> Bot:
        if self._bot is None:
            raise RuntimeError("the Telegram channel is not running")
        return self._bot


def _retry_wait(exc: BaseException) -> float | None:
    """Seconds before the one retry a failed send deserves; None for no retry. Flood control
    says how long; a connection that failed before anything was sent is retried at once; any
    other network error (a timeout, a connection lost before the answer: the message may have
    arrived) or a refusal is not retried."""
    if isinstance(exc, RetryAfter):
        wait = exc.retry_after
        seconds = wait.total_seconds() if isinstance(wait, timedelta) else float(wait)
        return min(seconds, MAX_RETRY_AFTER_S)
    if _unsent(exc):
        return 0.0
    return None


def _unsent(exc: BaseException) -> bool:
    """The request never reached Telegram: the connection could not even be opened."""
    return isinstance(exc, NetworkError) and isinstance(exc.__cause__, httpx.ConnectError)


def _maybe_sent(exc: BaseException) -> bool:
    """The request went out and its answer was lost: Telegram may have sent the message."""
    return isinstance(exc, NetworkError) and not isinstance(exc, BadRequest) and not _unsent(exc)


def _why(exc: BaseException) -> str:
    """An error's kind for the log, never its text (it may echo a message, or the token)."""
    return type(exc).__name__
