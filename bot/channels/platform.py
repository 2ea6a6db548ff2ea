"""What every messaging-platform channel shares: the webhook's shape and each event's journey.

A platform adapter (LINE, Telegram) says only what is particular to its platform: how a request is
verified and parsed into events, and how replies are sent. Everything else happens here, once:
answer the webhook at once, drop redeliveries by event id, process each user's events in order
after the response, hash the user id, route, and hand the replies back to the adapter to send.
"""

from __future__ import annotations

import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from bot.identity import user_key
from bot.language import reply_language
from bot.message import Incoming, Outgoing
from bot.store.conversations import get_or_create, language_of
from bot.store.deliveries import first_deliveries
from bot.store.models import Conversation
from bot.untrusted import valid_text

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024


class Refused(Exception):
    """The request is not the platform's (401) or not readable (400); nothing is handled."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Event:
    """One platform event, reduced to what the gateway needs.

    `kind`: text (text and button presses), sticker, media, follow, unfollow, or ignore.
    `reply` carries what the adapter needs to answer (a reply token, a chat id, message ids).
    `pressed`: the text is the payload of a button (or menu area) the user pressed, not typed.
    """

    event_id: str
    user_id: str
    kind: str
    text: str = ""
    reply: dict[str, Any] = field(default_factory=dict)
    pressed: bool = False


def _valid(event: Event) -> Event:
    """The event with ids and text that can be hashed, stored and sent on (bot/untrusted.py)."""
    return replace(
        event,
        event_id=valid_text(event.event_id),
        user_id=valid_text(event.user_id),
        text=valid_text(event.text),
    )


class PlatformChannel(ABC):
    name: str

    @abstractmethod
    def parse(self, headers: dict[str, str], body: bytes) -> list[Event]:
        """Verify and parse a webhook request; raise Refused when it is not acceptable."""

    @abstractmethod
    async def send(self, event: Event, user: str, replies: list[Outgoing]) -> None:
        """Deliver the replies to this event's user."""

    @contextlib.asynccontextmanager
    async def running(self, app: Starlette) -> AsyncIterator[None]:
        """Open the platform's API client (and anything else it needs) for the app's lifetime."""
        self.state = app.state
        yield

    async def on_special(self, event: Event, user: str) -> list[Outgoing] | None:
        """Handle follow/unfollow-like events; None means "route it as usual"."""
        return None

    def started(self, event: Event) -> None:
        """This event's turn begins: a platform may show the user it is being answered (LINE's
        loading animation). Must return at once and never raise."""
        return None

    async def webhook(self, request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return JSONResponse({"error": "body too large"}, status_code=413)
        try:
            events = self.parse({k.lower(): v for k, v in request.headers.items()}, body)
        except Refused as refused:
            return JSONResponse({"error": str(refused)}, status_code=refused.status)
        await self.accept(request.app.state, events)
        return JSONResponse({"ok": True})

    async def accept(self, state: Any, events: list[Event]) -> None:
        """Drops ignored events and queues the rest, in order per user (an already delivered one
        is dropped when its turn comes, see _handle). Webhooks and polling (Telegram without a
        public URL) both come in through here."""
        for event in [_valid(e) for e in events if e.kind != "ignore"]:
            user = user_key(state.settings.user_id_secret, self.name, event.user_id)
            state.inbox.submit(user, lambda e=event, u=user: self._handle(state, e, u))

    async def _handle(self, state: Any, event: Event, user: str) -> None:
        # The delivery is recorded here, in the user's queue, not before the acknowledgement: the
        # webhook then answers without waiting for the database (make bench), and a redelivery
        # queued behind its original finds the id taken and is dropped.
        if not await first_deliveries(state.sessions, self.name, [event.event_id]):
            return
        self.started(event)
        replies = await self.on_special(event, user)
        if replies is None:
            replies = await self.route(user, event.text, event.kind, event.pressed)
        if replies:
            await self.send(event, user, replies)

    # -- what adapters share once an event is theirs -------------------------------------------

    async def route(
        self,
        user: str,
        text: str,
        kind: str = "text",
        pressed: bool = False,
        language: str | None = None,
    ) -> list[Outgoing]:
        """The router's answer to one message or payload of this user (`pressed`: a button's;
        `language`: the app's, when the platform tells it)."""
        incoming = Incoming(
            channel=self.name,
            user_key=user,
            text=text,
            kind=kind,
            pressed=pressed,
            language=language,
        )
        return (await self.state.router.handle(incoming)).messages

    def known_language(self, tag: str | None) -> str:
        """A platform's language tag ("en-US") as a language we speak, else the default."""
        settings, locales = self.state.settings, self.state.locales
        return reply_language(None, None, tag, settings.default_language, locales.languages)

    async def conversation_language(self, user: str) -> str | None:
        async with self.state.sessions() as session:
            return await language_of(session, user)

    async def remember_address(self, user: str, platform_id: str, reachable: bool) -> None:
        """Keeps the platform id, sealed, for later pushes; `reachable` (an unblock) clears the
        unreachable flag. Writes only when something changed."""
        addresses = self.state.addresses
        async with self.state.sessions() as session:
            conversation = await get_or_create(session, user, self.name)
            if reachable and conversation.unreachable:
                conversation.unreachable = False
            if not conversation.unreachable and addresses.open(conversation.address) != platform_id:
                conversation.address = addresses.seal(platform_id)
            await session.commit()

    async def mark_unreachable(self, user: str) -> None:
        """The user blocked the bot: never push again, and the address is no longer kept."""
        async with self.state.sessions() as session:
            conversation = await get_or_create(session, user, self.name)
            conversation.unreachable = True
            conversation.address = None
            await session.commit()

    async def push_address(self, user: str) -> str | None:
        """The platform id a push to this user goes to; None when unknown or blocked."""
        async with self.state.sessions() as session:
            row = (
                await session.execute(
                    select(Conversation.address, Conversation.unreachable).where(
                        Conversation.user_key == user
                    )
                )
            ).first()
        if row is None or row.unreachable:
            return None
        return self.state.addresses.open(row.address)
