"""Decides who answers a message (Rasa, or a person while a handoff is open); records the turn."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace

from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.handoff.relay import stored
from bot.handoff.service import Handoff
from bot.language import detect
from bot.locales import Locales
from bot.message import Incoming, Outgoing
from bot.rasa_client import RasaClient, RasaUnavailable
from bot.ratelimit import RateLimiter
from bot.store.conversations import get_or_create
from bot.store.models import Conversation, Message
from bot.untrusted import valid_text

log = logging.getLogger(__name__)

# Zero-width and other invisible characters that chat apps and keyboards insert.
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\s]+")


@dataclass(frozen=True)
class Reply:
    messages: list[Outgoing]
    mode: str
    language: str


class Router:
    def __init__(
        self,
        sessions: async_sessionmaker,
        rasa: RasaClient,
        locales: Locales,
        handoff: Handoff,
        default_language: str,
        max_text_chars: int = 2000,
        user_limit: RateLimiter | None = None,
    ) -> None:
        self._sessions = sessions
        self._rasa = rasa
        self._locales = locales
        self._handoff = handoff
        self._default_language = default_language
        self._max_text_chars = max_text_chars
        self._user_limit = user_limit if user_limit is not None else RateLimiter(0)

    async def handle(self, incoming: Incoming) -> Reply:
        text = _INVISIBLE.sub(" ", valid_text(incoming.text)).strip()[: self._max_text_chars]
        async with self._sessions() as session:
            conversation = await get_or_create(session, incoming.user_key, incoming.channel)
            session.add(
                Message(conversation=conversation, sender="user", kind=incoming.kind, text=text)
            )
            await session.commit()
        # What the user is writing now decides; a button payload ("/affirm") or emoji does not.
        written = None if text.startswith("/") else detect(text)
        language = written or conversation.language or self._default_language

        messages, sender = await self._answer(conversation, incoming, text, language)

        async with self._sessions() as session:
            rows = stored(conversation.id, sender, messages)
            session.add_all(rows)
            await session.commit()
            conversation = await session.get(Conversation, conversation.id)
            return Reply(
                messages=[
                    replace(m, cursor=row.id, sender=sender)
                    for m, row in zip(messages, rows, strict=True)
                ],
                mode=conversation.mode,
                language=conversation.language or language,
            )

    async def _answer(
        self, conversation: Conversation, incoming: Incoming, text: str, language: str
    ) -> tuple[list[Outgoing], str]:
        """Who answers and what: a person's case while one is open, else Rasa, else the fallback."""
        if conversation.mode != "bot":
            answer = await self._handoff.from_child(conversation.id, text, incoming.kind, language)
            if answer is not None:
                return answer, "system"
        if incoming.kind != "text" or not text:
            name = (
                f"utter_received_{incoming.kind}"
                if incoming.kind != "text"
                else "utter_empty_message"
            )
            return [self._say(name, language)], "bot"
        if not self._user_limit.hit(incoming.user_key):  # bot/ratelimit.py: before Rasa only
            return [self._say("utter_rate_limited", language)], "bot"
        try:
            messages = await self._rasa.send(
                incoming.user_key, text, incoming.channel, incoming.metadata
            )
        except RasaUnavailable as exc:
            log.warning("rasa unavailable (%s); answering with the fallback", exc)
            messages = []
        resolved: list[Outgoing] = []
        for message in messages:
            handoff = (message.custom or {}).get("handoff")
            if handoff is None:
                resolved.append(message)
            else:
                resolved += await self._handoff.request(conversation.id, handoff, language)
        resolved = [m for m in resolved if m.text or m.buttons]
        if not resolved:
            return [self._say("utter_fallback", language)], "fallback"
        return resolved, "bot"

    def _say(self, name: str, language: str) -> Outgoing:
        rendered = self._locales.render(name, language, {})
        return rendered or self._locales.render("utter_fallback", language, {})  # type: ignore[return-value]
