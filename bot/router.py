"""Decides who answers a message (Rasa now; a person once handoff exists) and records the turn."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import async_sessionmaker

from bot.language import detect
from bot.locales import Locales
from bot.message import Incoming, Outgoing
from bot.rasa_client import RasaClient, RasaUnavailable
from bot.store.conversations import get_or_create
from bot.store.models import Conversation, Message

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
        default_language: str,
        max_text_chars: int = 2000,
    ) -> None:
        self._sessions = sessions
        self._rasa = rasa
        self._locales = locales
        self._default_language = default_language
        self._max_text_chars = max_text_chars

    async def handle(self, incoming: Incoming) -> Reply:
        text = _INVISIBLE.sub(" ", incoming.text).strip()[: self._max_text_chars]
        async with self._sessions() as session:
            conversation = await get_or_create(session, incoming.user_key, incoming.channel)
            session.add(
                Message(conversation=conversation, sender="user", kind=incoming.kind, text=text)
            )
            await session.commit()
        # What the user is writing now decides; a button payload ("/affirm") or emoji does not.
        written = None if text.startswith("/") else detect(text)
        language = written or conversation.language or self._default_language

        if incoming.kind != "text" or not text:
            name = (
                f"utter_received_{incoming.kind}"
                if incoming.kind != "text"
                else "utter_empty_message"
            )
            messages, sender = [self._say(name, language)], "bot"
        else:
            try:
                messages = await self._rasa.send(
                    incoming.user_key, text, incoming.channel, incoming.metadata
                )
                sender = "bot"
            except RasaUnavailable as exc:
                log.warning("rasa unavailable (%s); answering with the fallback", exc)
                messages = []
            messages = [self._resolve(m, language) for m in messages]
            messages = [m for m in messages if m.text or m.buttons]
            if not messages:
                messages, sender = [self._say("utter_fallback", language)], "fallback"

        async with self._sessions() as session:
            conversation = await session.get(Conversation, conversation.id)
            session.add_all(
                Message(conversation=conversation, sender=sender, text=m.text) for m in messages
            )
            await session.commit()
            return Reply(
                messages=messages,
                mode=conversation.mode,
                language=conversation.language or language,
            )

    def _resolve(self, message: Outgoing, language: str) -> Outgoing:
        """A handoff request from Rasa becomes, until live handoff exists, the helplines to call."""
        handoff = (message.custom or {}).get("handoff")
        if handoff is None:
            return message
        return self._say("utter_handoff_pending", handoff.get("language") or language)

    def _say(self, name: str, language: str) -> Outgoing:
        rendered = self._locales.render(name, language, {})
        return rendered or self._locales.render("utter_fallback", language, {})  # type: ignore[return-value]
