"""Decides who answers a message (Rasa, or a person while a handoff is open); records the turn.

"Delete my data" (bot/forget.py) is answered here, before Rasa or a counsellor, on every channel.
Past capacity a turn may get the holding line first, and its answer later (bot/holding.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from bot import failsafe, forget
from bot.handoff import cases
from bot.handoff.relay import stored
from bot.handoff.service import HELPED, Handoff
from bot.holding import HOLD_MAX_S, Abandoned, Hold, HoldingRate, answered_or_held
from bot.language import reply_language, written
from bot.locales import Locales
from bot.message import Incoming, Outgoing
from bot.rasa_client import RasaClient, RasaUnavailable
from bot.ratelimit import RateLimiter
from bot.store.conversations import adopt_language, get_or_create, language_of
from bot.store.models import Conversation, Message
from bot.store.retention import Retention
from bot.untrusted import valid_text

log = logging.getLogger(__name__)

# Zero-width and other invisible characters that chat apps and keyboards insert.
_INVISIBLE = re.compile(r"[\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff\s]+")


@dataclass(frozen=True)
class Reply:
    """`forgotten`: the user's data was just erased; the messages are not stored (no cursor),
    and a channel keeping anything of its own (the web chat page) should let it go too.
    `held`: the child already got the holding line (bot/holding.py), so these messages go the
    channel's later way (none: the holding line was the last word)."""

    messages: list[Outgoing]
    mode: str
    language: str
    forgotten: bool = False
    held: bool = False


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
        retention: Retention | None = None,
        hold_after_s: float = 4.0,
        hold_max_s: float = HOLD_MAX_S,
    ) -> None:
        """`hold_after_s` (RASA_TIMEOUT_S) and `hold_max_s`: bot/holding.py."""
        self._sessions = sessions
        self._rasa = rasa
        self._locales = locales
        self._handoff = handoff
        self._default_language = default_language
        self._max_text_chars = max_text_chars
        self._user_limit = user_limit if user_limit is not None else RateLimiter(0)
        self._hold_after_s = hold_after_s
        self._hold_max_s = hold_max_s
        self.holding = HoldingRate()  # the supervisors' overload banner reads it
        # Without the app's Retention (tests), erasure reaches the gateway's tables only.
        retention = retention or Retention(sessions, None, 0)
        self._forget = forget.Forget(sessions, locales, retention, handoff.events)

    async def handle(self, incoming: Incoming, hold: Hold | None = None) -> Reply:
        """The answer to one message. With `hold`, a turn Rasa has not answered within
        RASA_TIMEOUT_S gets the holding line through it first (bot/holding.py)."""
        text = _INVISIBLE.sub(" ", valid_text(incoming.text)).strip()[: self._max_text_chars]
        if forget.erases(incoming, text):
            return await self._erase(incoming)
        async with self._sessions() as session:
            conversation = await get_or_create(session, incoming.user_key, incoming.channel)
        # The child's words are written while Rasa thinks (make bench: the write is a few ms of
        # every turn), and always before anything else may read this turn: a counsellor's
        # console, a handoff summary, the answer's own rows.
        heard = written(text)
        first = heard if conversation.language is None else None
        words = asyncio.ensure_future(
            self._store_words(conversation.id, incoming.kind, text, first)
        )
        try:
            language = self._language(heard, conversation.language, incoming)
            if forget.wanted(text):
                await words
                handoff_open = conversation.mode != "bot"
                answer = self._forget.answer(text, language, incoming.channel, handoff_open)
                messages, sender, held = [answer], "bot", False
            else:
                messages, sender, held = await self._answer(
                    conversation, incoming, text, language, words, hold
                )
        finally:
            await words

        async with self._sessions() as session:
            rows = stored(conversation.id, sender, messages)
            session.add_all(rows)
            await session.flush()
            mode, known = (
                await session.execute(
                    select(Conversation.mode, Conversation.language).where(
                        Conversation.id == conversation.id
                    )
                )
            ).one()
            await session.commit()
        return Reply(
            messages=[
                replace(m, cursor=row.id, sender=sender)
                for m, row in zip(messages, rows, strict=True)
            ],
            mode=mode,
            language=known or language,
            held=held,
        )

    async def _store_words(
        self, conversation_id: int, kind: str, text: str, language: str | None
    ) -> None:
        """The child's words, and (`language`) the language they first wrote in."""
        async with self._sessions() as session:
            session.add(
                Message(conversation_id=conversation_id, sender="user", kind=kind, text=text)
            )
            if language is not None:
                await adopt_language(session, conversation_id, language)
            await session.commit()

    async def _erase(self, incoming: Incoming) -> Reply:
        """Erases the user's data and says so. Nothing of this turn is stored: the conversation
        it would belong to is gone, and nothing about the child may stay."""
        async with self._sessions() as session:
            known = await language_of(session, incoming.user_key)
        language = self._language(None, known, incoming)
        if await self._forget.erase(incoming.user_key, incoming.channel):
            await self._handoff.announce()
        done = self._forget.done(language, incoming.channel)
        return Reply(messages=[done], mode="bot", language=language, forgotten=True)

    def _language(self, words: str | None, stored: str | None, incoming: Incoming) -> str:
        return reply_language(
            words, stored, incoming.language, self._default_language, self._locales.languages
        )

    async def _answer(
        self,
        conversation: Conversation,
        incoming: Incoming,
        text: str,
        language: str,
        words: Awaitable[None],
        hold: Hold | None,
    ) -> tuple[list[Outgoing], str, bool]:
        """Who answers and what: a person's case while one is open, else Rasa, else the fallback;
        and whether the holding line went first. Only Rasa is asked before the child's `words`
        are stored."""
        if conversation.mode != "bot":
            await words
            answer = await self._handoff.from_child(conversation.id, text, incoming.kind, language)
            if answer is not None:
                return answer, "system", False
        if incoming.kind != "text" or not text:
            name = (
                f"utter_received_{incoming.kind}"
                if incoming.kind != "text"
                else "utter_empty_message"
            )
            return [self._locales.say(name, language)], "bot", False
        if text in HELPED:  # "did this help?" after a counsellor's chat: the handoff keeps it
            return await self._handoff.helped(conversation.id, text, language), "system", False
        if not self._user_limit.hit(incoming.user_key):  # bot/ratelimit.py: before Rasa only
            return [self._locales.say("utter_rate_limited", language)], "bot", False
        answered, held = await self._from_rasa(conversation, incoming, text, language, words, hold)
        messages = answered or []
        if answered is None and text == failsafe.PERSON:  # the fallback's button, without Rasa
            summary = failsafe.handoff_summary(language)
            messages = [Outgoing(text="", custom={"handoff": summary})]
        await words
        resolved: list[Outgoing] = []
        for message in messages:
            handoff = (message.custom or {}).get("handoff")
            if handoff is None:
                resolved.append(message)
            else:
                resolved += await self._handoff.request(conversation.id, handoff, language)
        resolved = [m for m in resolved if m.text or m.buttons]
        if held and resolved:
            self.holding.answered_later()
        if not resolved and not held:
            return [self._locales.say("utter_fallback", language)], "fallback", False
        return resolved, "bot", held

    async def _from_rasa(
        self,
        conversation: Conversation,
        incoming: Incoming,
        text: str,
        language: str,
        words: Awaitable[None],
        hold: Hold | None,
    ) -> tuple[list[Outgoing] | None, bool]:
        """Rasa's answer (None: none came), and whether the holding line went first
        (bot/holding.py). A child in a handoff or once marked urgent goes ahead of every waiting
        turn and is never held, and so does a child asking for a person (the holding line's own
        button); whether they were marked is asked only when there is a queue."""
        first = conversation.mode != "bot" or text == failsafe.PERSON
        if not first and self._rasa.full(incoming.user_key):
            async with self._sessions() as session:
                first = await cases.ever_urgent(session, conversation.id)
        holds = hold is not None and not first
        self.holding.turn()
        held = False

        async def holding_line() -> None:
            nonlocal held
            held = True
            self.holding.held()
            await words  # the child's words are stored before anything said after them
            await hold(await self._holding_line(conversation.id, language))

        send = self._rasa.send(
            incoming.user_key,
            text,
            incoming.channel,
            incoming.metadata,
            patience_s=self._hold_max_s if holds else None,
            first=first,
        )
        try:
            if not holds:
                return await send, False
            down = functools.partial(self._rasa.down, incoming.user_key)
            answer = answered_or_held(send, self._hold_after_s, holding_line, down)
            return await answer, held
        except (RasaUnavailable, Abandoned) as exc:
            what = "the holding line was the last word" if held else "answering with the fallback"
            log.warning("rasa unavailable (%s); %s", exc, what)
            return None, held

    async def _holding_line(self, conversation_id: int, language: str) -> list[Outgoing]:
        """The holding line, stored (sender "holding") so the web chat's later messages follow it
        and a counsellor's transcript shows it."""
        line = self._locales.say("utter_holding", language)
        async with self._sessions() as session:
            rows = stored(conversation_id, "holding", [line])
            session.add_all(rows)
            await session.commit()
        return [replace(line, cursor=rows[0].id, sender="holding")]
