"""What every messaging-platform channel shares: the webhook's shape and each event's journey.

A platform adapter (LINE, Telegram) says only what is particular to its platform: how a request is
verified and parsed into events, and how replies are sent. Everything else happens here, once:
write each event to the durable inbox before the webhook is answered (bot/inbox.py: a redelivery
is dropped by its event id, each user's events are answered in order, by any replica, also after
a crash), hash the user id, route, hand the replies to the adapter to send, and what it could not
send to the push outbox (bot/handoff/relay.py). Past capacity (bot/holding.py) the holding line is
sent as the reply, and the real answer follows through the push outbox (LINE's reply token is
spent by then).
"""

from __future__ import annotations

import contextlib
import functools
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from bot.holding import Hold
from bot.identity import user_key
from bot.inbox import Early, Event
from bot.language import reply_language
from bot.message import Incoming, Outgoing
from bot.router import Reply
from bot.store import deliveries, turns
from bot.untrusted import valid_text

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024

__all__ = ["Event", "PlatformChannel", "Refused"]


class Refused(Exception):
    """The request is not the platform's (401) or not readable (400); nothing is handled."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


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
    async def send(self, event: Event, user: str, replies: list[Outgoing]) -> list[Outgoing]:
        """Delivers the replies to this event's user; returns those it could not deliver (they
        go to the push outbox)."""

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
        """Writes every event not ignored to the durable inbox; once this returns they are kept.
        Webhooks and polling (Telegram without a public URL) both come in through here."""
        secret = state.settings.user_id_secret
        accepted = [
            (user_key(secret, self.name, e.user_id), e)
            for e in (_valid(e) for e in events if e.kind != "ignore")
        ]
        if accepted:
            await state.inbox.accept(self.name, accepted)

    async def handle(self, event: Event, user: str, early: Early | None = None) -> None:
        """Answers one event from the inbox (bot/inbox.py); `early` is the web chat's only."""
        self.started(event)
        replies = await self.on_special(event, user)
        if replies is None:
            hold = functools.partial(self.deliver, event, user)
            reply = await self._routed(user, event.text, event.kind, event.pressed, hold=hold)
            if reply.held:  # the holding line was the reply: the answer follows as a push
                if reply.messages:
                    await self.state.relay.later(user, reply.messages)
                return
            replies = reply.messages
        if replies:
            await self.deliver(event, user, replies)

    async def fail_safe(self, event: Event, user: str) -> None:
        """The answer to an event that could not be answered: 1387, 1300, 191, and a person."""
        language = await self.conversation_language(user) or self.state.settings.default_language
        await self.deliver(event, user, [self.state.locales.say("utter_fallback", language)])

    async def deliver(self, event: Event, user: str, replies: list[Outgoing]) -> None:
        """Sends; what could not be sent goes to the push outbox, so the event is answered."""
        undelivered = await self.send(event, user, replies)
        if undelivered:
            await self.state.relay.later(user, undelivered)

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
        return (await self._routed(user, text, kind, pressed, language)).messages

    async def _routed(
        self,
        user: str,
        text: str,
        kind: str = "text",
        pressed: bool = False,
        language: str | None = None,
        hold: Hold | None = None,
    ) -> Reply:
        incoming = Incoming(
            channel=self.name,
            user_key=user,
            text=text,
            kind=kind,
            pressed=pressed,
            language=language,
        )
        return await self.state.router.handle(incoming, hold)

    def known_language(self, tag: str | None) -> str:
        """A platform's language tag ("en-US") as a language we speak, else the default."""
        settings, locales = self.state.settings, self.state.locales
        return reply_language(None, None, tag, settings.default_language, locales.languages)

    async def conversation_language(self, user: str) -> str | None:
        return await self.state.steps.run(turns.known_language, user)

    async def remember_address(self, user: str, platform_id: str, reachable: bool) -> None:
        """Keeps the platform id, sealed, for later pushes (bot/store/deliveries.py)."""
        await deliveries.remember_address(
            self.state.sessions, self.state.addresses, user, self.name, platform_id, reachable
        )

    async def mark_unreachable(self, user: str) -> None:
        """The user blocked the bot: never push again, and the address is no longer kept."""
        await deliveries.mark_unreachable(self.state.sessions, user, self.name)

    async def push_address(self, user: str) -> str | None:
        """The platform id a push to this user goes to; None when unknown or blocked."""
        return await deliveries.push_address(self.state.sessions, self.state.addresses, user)
